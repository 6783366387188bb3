"""The whole containment of a case's findings, in the order a responder works.

contain the network (NetworkPolicies: quarantine, restore, pinned selectors, egress blocks,
default deny), cut the access (RBAC), evict (workloads, nodes), rotate (credentials), watch.
Each action cites its evidence; `validate` checks every object the way the API server would and
`check` also keeps credential-looking values out of what is written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import duckdb

from kforensics.contain.access import cut_access
from kforensics.contain.evict import evict
from kforensics.contain.footprint import Footprint, footprints
from kforensics.contain.gitops import revert_note
from kforensics.contain.rbac_validate import BINDING_KINDS, ROLE_KINDS, validate_rbac
from kforensics.contain.rotate import rotate
from kforensics.contain.steps import STEPS, Action, say
from kforensics.detection.run import Finding
from kforensics.investigate.redact import redact
from kforensics.netpol.inventory import Inventory
from kforensics.netpol.plan import QUARANTINE_LABEL, Remedy
from kforensics.netpol.plan import plan as netpol_plan
from kforensics.netpol.remediation import Simulation, simulate
from kforensics.netpol.validate import validate_object

# How a pod was touched, for the quarantine's notes
_TOUCH = {"exec": "exec'd into", "attach": "attached to", "portforward": "port-forwarded to",
          "ephemeral container": "given an ephemeral container", "created": "created",
          "its token used": "its token used"}  # fmt: skip


@dataclass
class Plan:
    """The ordered actions, the NetworkPolicy simulation, and what failed validation."""

    actions: list[Action]
    simulation: Simulation
    identities: list[str]
    inventory: Inventory
    invalid: dict[int, list[str]] = field(default_factory=dict)  # id(object) -> errors

    def by_step(self) -> list[tuple[str, list[Action]]]:
        """Return (step, its actions) in the order to run them, empty steps left out."""
        return [(s, [a for a in self.actions if a.step == s]) for s in STEPS
                if any(a.step == s for a in self.actions)]  # fmt: skip

    def objects(self) -> list[tuple[Action, dict]]:
        """Return every object to apply, with its action, in plan order."""
        return [(a, o) for a in self.actions for o in a.objects]

    @property
    def errors(self) -> list[str]:
        """Return the validation errors of every object, each naming it."""
        out = []
        for _action, obj in self.objects():
            for e in self.invalid.get(id(obj), []):
                out.append(f"{describe(obj)}: {e}")
        return out


def describe(obj: dict) -> str:
    """Return 'Kind namespace/name' of an object, escaped for any output."""
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return say(f"{obj.get('kind')} {where}{meta.get('name')}")


def _touched(fps: list[Footprint]) -> dict[tuple[str, str], str]:
    """Return the pods to quarantine: (namespace, pod) -> how the identity touched it."""
    out = {}
    for fp in fps:
        for row in fp.pods:
            how = ", ".join(_TOUCH.get(h, h) for h in row["how"])
            out.setdefault((row["namespace"], row["pod"]), f"{how} by {say(fp.identity)}")
    return out


def _network(remedies: list[Remedy], sim: Simulation, inv: Inventory) -> list[Action]:
    """Return the contain step: each NetworkPolicy remedy, recorded for the watch."""
    actions = []
    for r in remedies:
        action = Action(
            step="contain", kind=r.kind, name=r.name, rationale=r.rationale,
            findings=r.findings, objects=r.objects, commands=r.commands, notes=list(r.notes),
            quarantine=r.quarantine,
        )  # fmt: skip
        for ns, pod in r.quarantine:
            labels = dict(((inv.get("Pod", ns, pod) or {}).get("metadata") or {}).get("labels")
                          or {})  # fmt: skip
            labels[QUARANTINE_LABEL] = "true"
            action.records.append({"action": "quarantine-pod", "kind": "Pod", "namespace": ns,
                                   "name": pod, "labels": labels})  # fmt: skip
        for obj in r.objects:
            meta = obj["metadata"]
            note = revert_note(describe(obj), obj)
            if note and r.kind != "quarantine":
                action.notes.append(note)
            action.records.append({"action": "policy", "kind": "NetworkPolicy",
                                   "namespace": meta.get("namespace"), "name": meta["name"],
                                   "object": obj})  # fmt: skip
        actions.append(action)
    if sim.fixes or sim.commands:
        fix = Action(
            step="contain", kind="fix-quarantine-defeats", name="fix-quarantine-defeats",
            rationale=(
                "Narrow the policies that would defeat the quarantine (policies are additive) "
                f"to pods without {QUARANTINE_LABEL}"
            ),
            objects=sim.fixes, commands=list(sim.commands),
            findings=[f for r in remedies if r.kind == "quarantine" for f in r.findings],
        )  # fmt: skip
        for obj in sim.fixes:
            meta = obj["metadata"]
            note = revert_note(describe(obj), obj)
            if note:
                fix.notes.append(note)
            fix.records.append({"action": "policy", "kind": "NetworkPolicy",
                                "namespace": meta.get("namespace"), "name": meta["name"],
                                "object": obj})  # fmt: skip
        actions.append(fix)
    return actions


def _watch(identities: list[str]) -> Action:
    """Return the watch step: what the watch rules look for once the plan is applied."""
    action = Action(
        step="watch", kind="watch", name="watch",
        rationale=(
            "Load the newer audit logs into this case on a schedule and run `kforensics detect`: "
            "the k8s-containment-* rules raise high findings when a quarantine label is removed, "
            "a containment policy is deleted or changed, a new policy lets a quarantined pod "
            "talk, a revoked binding comes back, a contained identity or a rotated credential is "
            "used again, or a cordoned node is uncordoned or gets a privileged pod"
        ),
    )  # fmt: skip
    action.notes += [f"contained identity: {say(i)}" for i in identities]
    return action


def scrub(obj: dict) -> tuple[dict, list[str], list[str]]:
    """Return obj without credential-looking metadata values, notes, and errors for the rest.

    An annotation or label that looks like a credential is dropped (and named); one anywhere
    else (a selector, a rule) cannot be dropped without changing what the object does, so the
    object is refused.
    """
    clean = copy.deepcopy(obj)
    notes, errors = [], []
    meta = clean.get("metadata") if isinstance(clean.get("metadata"), dict) else {}
    for where in ("annotations", "labels"):
        values = meta.get(where) if isinstance(meta.get(where), dict) else {}
        for key in list(values):
            if redact({key: values[key]}) != {key: values[key]}:
                del values[key]
                notes.append(f"{describe(obj)}: {where[:-1]} {say(key)} dropped (it looks like "
                             "a credential)")  # fmt: skip
    rest = {k: v for k, v in clean.items() if k != "metadata"}
    if redact(rest) != rest:
        errors.append(
            "holds a credential-looking value outside its metadata: not written (restore it "
            "from version control)"
        )
    return clean, notes, errors


def validate(actions: list[Action], refused: dict[int, list[str]]) -> dict[int, list[str]]:
    """Return the API-server and schema errors of every object (by id), the valid left out."""
    invalid = {}
    for action in actions:
        for obj in action.objects:
            errors = refused.get(id(obj), []) + validate_object(obj)
            if obj.get("kind") in ROLE_KINDS + BINDING_KINDS:
                errors += validate_rbac(obj)
            if errors:
                invalid[id(obj)] = errors
    return invalid


def _merged(actions: list[Action]) -> list[Action]:
    """Return the actions with repeats (the same step, kind and name: two identities revoking
    one binding) merged into the first, their findings and evidence added to it."""
    first: dict[tuple[str, str, str], Action] = {}
    out = []
    for a in actions:
        key = (a.step, a.kind, a.name)
        if key not in first:
            first[key] = a
            out.append(a)
            continue
        kept = first[key]
        kept.findings += [f for f in a.findings if f not in kept.findings]
        kept.evidence += [e for e in a.evidence if e not in kept.evidence]
        kept.notes += [n for n in a.notes if n not in kept.notes]
    return out


def build(
    con: duckdb.DuckDBPyConnection,
    findings: list[Finding],
    inv_at,
    *,
    forensics_namespace: str | None = None,
) -> Plan:
    """Return the containment plan for the findings; inv_at(t) is the inventory as of t."""
    inv = inv_at(None)
    fps = footprints(con, findings)
    remedies = netpol_plan(
        findings, inv_at, forensics_namespace=forensics_namespace, touched=_touched(fps)
    )
    sim = simulate(inv, remedies)
    actions = _network(remedies, sim, inv)
    for fp in fps:
        actions += cut_access(con, fp, inv)
    for fp in fps:
        actions += evict(fp, inv)
    for fp in fps:
        actions += rotate(con, fp, inv)
    actions.append(_watch([fp.identity for fp in fps]))
    actions = _merged(actions)
    refused: dict[int, list[str]] = {}
    for action in actions:
        cleaned = {}
        for obj in action.objects:
            clean, notes, errors = scrub(obj)
            cleaned[id(obj)] = clean
            action.notes += notes
            if errors:
                refused[id(clean)] = errors
        for record in action.records:  # the case keeps what is written, nothing more
            obj = record.get("object")
            record["object"] = cleaned.get(id(obj)) or (obj and redact(obj))
        action.objects = [cleaned[id(o)] for o in action.objects]
    order = {s: n for n, s in enumerate(STEPS)}
    actions.sort(key=lambda a: order[a.step])  # stable: each step keeps its own order
    return Plan(actions, sim, [fp.identity for fp in fps], inv, validate(actions, refused))
