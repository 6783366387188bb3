"""Before anyone applies them: validate the proposed NetworkPolicies and simulate their effect.

The simulation runs the NetworkPolicy evaluator on the inventory rebuilt from the log, before
and after the proposals (quarantine labels applied), and checks that every quarantine really
isolates its pods: policies are additive, so another policy that selects the pod and allows
traffic defeats it. Then it says so and proposes the fix.
"""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass, field

from kforensics.netpol.comparison import Change, compare_clusters
from kforensics.netpol.inventory import Inventory, clean
from kforensics.netpol.model import (
    POLICY_TYPES,
    build_cluster,
    effective_policy_types,
    selector_matches,
)
from kforensics.netpol.names import is_dns1123_subdomain, is_label_key
from kforensics.netpol.plan import QUARANTINE_LABEL, Remedy
from kforensics.netpol.validate import validate_object

_NOT_QUARANTINED = {"key": QUARANTINE_LABEL, "operator": "DoesNotExist"}


@dataclass
class Simulation:
    """What the proposals change, and whether each quarantine holds."""

    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fixes: list[dict] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str | None = None


def evaluator_objects(
    inv: Inventory, quarantined: set[tuple[str, str]] = frozenset(), relabel: bool = False
) -> list[dict]:
    """Return the inventory as evaluator input: namespaces, policies, pods (copies; quarantined
    ones stand alone, relabelled if asked), and the workloads whose pods the log never showed."""
    objects = [*inv.of_kind("Namespace"), *inv.of_kind("NetworkPolicy")]
    owners = set()  # (namespace, owner name) of the pods the log showed
    for pod in inv.of_kind("Pod"):
        pod = copy.deepcopy(pod)
        meta = pod["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if isinstance(ref, dict):
                owners.add((meta.get("namespace"), str(ref.get("name") or "")))
        if (meta.get("namespace"), meta["name"]) in quarantined:
            meta.pop("ownerReferences", None)
            if relabel:
                meta.setdefault("labels", {})[QUARANTINE_LABEL] = "true"
        objects.append(pod)
    # Workloads whose pods the log never showed still count as peers. A pod belongs to a
    # workload directly or through a ReplicaSet / Job named after it ("<workload>-<hash>").
    for kind in ("Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob"):
        for w in inv.of_kind(kind):
            ns, name = w["metadata"].get("namespace"), w["metadata"]["name"]
            if not any(
                o_ns == ns and (o == name or o.startswith(name + "-")) for o_ns, o in owners
            ):
                objects.append(w)
    return objects


def _policies_defeating(inv: Inventory, ns: str, pod: dict, proposed: list[dict]) -> list[dict]:
    """Return the policies (live or proposed) that select the quarantined pod and allow traffic."""
    labels = {**(pod["metadata"].get("labels") or {}), QUARANTINE_LABEL: "true"}
    names = {(p["metadata"].get("namespace"), p["metadata"]["name"]) for p in proposed}
    live = [
        p for p in inv.of_kind("NetworkPolicy")
        if (p["metadata"].get("namespace"), p["metadata"]["name"]) not in names
    ]  # fmt: skip
    out = []
    for policy in [*live, *proposed]:
        meta, spec = policy["metadata"], policy.get("spec") or {}
        if meta.get("namespace") != ns or meta["name"] == "kforensics-quarantine":
            continue
        if not selector_matches(spec.get("podSelector") or {}, labels):
            continue
        # rules of a direction the policy is not typed for are ignored by every CNI
        types = effective_policy_types(spec)
        if any(spec.get(t.lower()) for t in POLICY_TYPES if t in types):
            out.append(policy)
    return out


def _excluding_quarantine(policy: dict) -> dict:
    """Return the policy with its podSelector narrowed to pods not in quarantine."""
    fixed = clean(policy)
    fixed["apiVersion"] = "networking.k8s.io/v1"
    annotations = fixed["metadata"].setdefault("annotations", {})
    annotations["kforensics.io/rationale"] = (
        "narrowed to pods without the quarantine label: policies are additive, so this one "
        "would otherwise let quarantined pods keep its traffic"
    )
    sel = fixed.setdefault("spec", {}).setdefault("podSelector", {})
    exprs = sel.setdefault("matchExpressions", [])
    if _NOT_QUARANTINED not in exprs:
        exprs.append(dict(_NOT_QUARANTINED))
    return fixed


def simulate(inv: Inventory, remedies: list[Remedy]) -> Simulation:
    """Return the connectivity diff of the proposals and the quarantine checks."""
    sim = Simulation()
    proposed = [o for r in remedies for o in r.objects if o.get("kind") == "NetworkPolicy"]
    quarantined = {p for r in remedies for p in r.quarantine}
    for ns, name in sorted(quarantined):
        pod = inv.get("Pod", ns, name)
        if pod is None:
            continue
        for policy in _policies_defeating(inv, ns, pod, proposed):
            pname = policy["metadata"]["name"]
            sim.problems.append(
                f"quarantine of {ns}/{name} is defeated by NetworkPolicy {ns}/{pname}, which "
                "also selects the pod and allows traffic (policies are additive)"
            )
            fix = _excluding_quarantine(policy)
            if fix not in sim.fixes:
                sim.fixes.append(fix)
            selector = (policy.get("spec") or {}).get("podSelector") or {}
            keys = sorted(selector.get("matchLabels") or {})
            # Names come from the log: only well-formed ones reach a shell script.
            if keys and is_dns1123_subdomain(pname) and all(is_label_key(k) for k in keys):
                sim.commands.append(
                    f"# alternative: relabel the pod out of {pname} (its owner replaces it)\n"
                    f"# kubectl label pod --namespace {shlex.quote(ns)} {shlex.quote(name)} "
                    + " ".join(shlex.quote(f"{k}-") for k in keys)
                )
    try:
        base = evaluator_objects(inv, quarantined, relabel=False)
        after = evaluator_objects(inv, quarantined, relabel=True)
        fixes = sim.fixes
        comparison = compare_clusters(
            build_cluster(base), build_cluster([*after, *proposed, *fixes])
        )
    except ValueError as exc:
        sim.error = f"simulation not possible on this inventory: {exc}"
        return sim
    sim.changes = comparison.changes
    for ns, name in sorted(quarantined):
        peer = f"{ns}/{name}[Pod]"
        for conn in comparison.after_of(peer):
            sim.problems.append(f"after the proposals {peer} still has {conn}")
    return sim


def validate(remedies: list[Remedy], sim: Simulation) -> list[str]:
    """Return schema and API-server validation errors of every object to apply (empty: valid)."""
    errors = []
    for obj in [o for r in remedies for o in r.objects] + sim.fixes:
        name = f"{obj.get('kind')} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        errors += [f"{name}: {e}" for e in validate_object(obj)]
    return errors
