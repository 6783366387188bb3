"""Fences: proposed NetworkPolicies around sensitive workloads, from what the case shows.

An audit log records no packets, so every allow is inferred and says from what: ingress from the
workloads whose pod specs name one of its Services by DNS name (env values, args, command), from
the workloads that hold one of its secrets, and from the peers the policies of an earlier
inventory let in (namespaces pinned by their immutable name); egress to DNS, to the Services its
own pod spec names, and to the API server when its service account sent requests in the case.
Each fence is validated like the remediation's objects and simulated (`sensitive.fence_check`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection

import yaml

from kforensics.investigate.redact import clip
from kforensics.netpol.inventory import Inventory
from kforensics.netpol.names import (
    dns1123_subdomain,
    is_dns1123_label,
    label_value,
)
from kforensics.netpol.plan import DNS_PEER, DNS_PORTS
from kforensics.netpol.validate import validate_object
from kforensics.sensitive.fence_allows import (
    Allow,
    AllowSet,
    Fence,
    api_server,
    as_of,
    client,
    dependencies,
    earlier_peers,
    own_secrets,
    selector_labels,
)
from kforensics.sensitive.fence_check import simulate
from kforensics.sensitive.fence_refs import (
    container_ports,
    port_text,
    service_references,
    shown,
    target_ports,
)
from kforensics.sensitive.resolve import Workload, workloads
from kforensics.untrusted import visible

EVIDENCE_LIMIT = 8
NO_PACKETS = (
    "an audit log records no packets: every allow here is inferred ({sources}), none observed"
)
UNSEEN_CLIENTS = (
    "clients that reach it by IP address, from outside the cluster (LoadBalancer, NodePort, "
    "Ingress controllers) or through configuration the log does not show (configmap contents, "
    "files, images) are unknown: the fence cuts them"
)
UNSEEN_DEPENDENCIES = (
    "dependencies it reaches by IP address, outside the cluster, or named only in configmaps or "
    "files are unknown: the fence cuts them"
)


# --- one fence ------------------------------------------------------------------------------


def _no_fence(w: Workload, fence: Fence) -> bool:
    """Return True (the reason stated) when the workload cannot be fenced."""
    if w.kind == "Secret":
        fence.unknowns.append(
            "a bare secret: nothing to fence (no pods); who read it is what the detections show"
        )
        return True
    why = None
    if not w.recorded:
        fence.unknowns.append("never recorded whole: its pods, labels and ports are unknown")
        why = "the log never recorded it whole"
    elif not is_dns1123_label(w.namespace):
        why = f"its namespace {shown(w.namespace)!r} is not a valid name"
    elif selector_labels(w.labels) is None:
        why = "one of its pods' labels is not a valid label, so no selector can name them"
    elif not selector_labels(w.labels):
        why = "its pods have no labels (an empty podSelector would fence the whole namespace)"
    elif w.spec.get("hostNetwork") is True:
        why = "its pods use the host network, where no NetworkPolicy applies"
    if why:
        fence.problems.append(f"no fence: {why}")
    return why is not None


def _ingress_ports(w: Workload, inv: Inventory, fence: Fence) -> list[dict]:
    """Return the ports clients use: its Services' target ports, else its container ports."""
    ports: list[dict] = []
    for name in w.services:
        svc = inv.get("Service", w.namespace, name) or {}
        kind = (svc.get("spec") or {}).get("type")
        if kind in ("LoadBalancer", "NodePort"):
            fence.unknowns.append(
                f"Service {w.namespace}/{shown(name, 63)} is of type {kind}: its clients outside "
                "the cluster are unknown, the fence cuts them"
            )
        found, unresolved = target_ports(svc, [w.spec], keep_named=False)
        ports += [p for p in found if p not in ports]
        for p in unresolved:
            fence.unknowns.append(
                f"Service {w.namespace}/{shown(name, 63)}: target port {p!r} names no container "
                "port of its pods: not allowed"
            )
    if not ports:
        ports = [{"protocol": pr, "port": n} for pr, n, _ in container_ports([w.spec])]
        ports = [p for i, p in enumerate(ports) if p not in ports[:i]]
    if not ports:
        fence.unknowns.append(
            "its ports are unknown (no Service or container port recorded): "
            "the inferred clients are allowed on every port"
        )
    return ports


def _policy_name(w: Workload, taken: set[tuple[str, str]]) -> str:
    name = dns1123_subdomain(f"kforensics-fence-{w.name}")
    if (w.namespace, name) in taken:  # two kinds of one name in one namespace
        name = dns1123_subdomain(f"kforensics-fence-{w.kind.lower()}-{w.name}")
    taken.add((w.namespace, name))
    return name


def _rules(allows: list[Allow], direction: str, key: str) -> list[dict]:
    """Return the rules of one direction: one per set of ports, its peers in order."""
    rules: dict[str, dict] = {}
    for a in allows:
        if a.direction == direction:
            rule = rules.setdefault(json.dumps(a.port_rules, sort_keys=True), {key: []})
            if a.port_rules:
                rule["ports"] = a.port_rules
            if a.to not in rule[key]:
                rule[key].append(a.to)
    return list(rules.values())


def _policy(w: Workload, name: str, b: AllowSet) -> dict:
    evidence = [clip(e, 200) for e in [w.evidence, *b.evidence] if e]
    evidence = list(dict.fromkeys(evidence))
    if len(evidence) > EVIDENCE_LIMIT:
        more = len(evidence) - EVIDENCE_LIMIT
        evidence = evidence[:EVIDENCE_LIMIT] + [f"... and {more} more"]
    clients = sum(a.direction == "ingress" for a in b.fence.allows)
    rationale = (
        f"Fence around sensitive workload {shown(w.key, 200)}: ingress only from the "
        f"{clients} client(s) the case shows, egress only to DNS and what it needs; every allow "
        "is inferred from the audit log (it records no packets)"
    )
    # copied: the allows share dicts with each other and with plan's DNS constants
    return copy.deepcopy(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": name,
                "namespace": w.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": label_value("kforensics"),
                    "kforensics.io/remedy": label_value("fence"),
                },
                "annotations": {
                    "kforensics.io/rationale": rationale,
                    "kforensics.io/evidence": "; ".join(evidence),
                },
            },
            "spec": {
                "podSelector": {"matchLabels": selector_labels(w.labels)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": _rules(b.fence.allows, "ingress", "from"),
                "egress": _rules(b.fence.allows, "egress", "to"),
            },
        }
    )


def _fence(w: Workload, ctx: dict, taken: set[tuple[str, str]]) -> Fence:
    inv, known, refs, before = ctx["inv"], ctx["known"], ctx["refs"], ctx["before"]
    fence = Fence(w.key)
    if _no_fence(w, fence):
        return fence
    b = AllowSet(fence)
    sources = ["Service names in pod specs", "shared secrets"]
    ports = _ingress_ports(w, inv, fence)
    mine = own_secrets(w.spec)
    for other in sorted(known.values(), key=lambda x: x.key):
        if other.key == w.key:
            continue
        for svc in w.services:
            where = refs[other.key][0].get((w.namespace, svc))
            if where:
                client(b, other, ports, f"its {where}, a Service of {shown(w.key, 200)}")
        if other.namespace == w.namespace:
            for secret in sorted(mine & own_secrets(other.spec)):
                why = f"its pods hold secret {w.namespace}/{shown(secret, 253)} too (shared "
                client(b, other, ports, why + "credentials make it a client)")
    if before is not None:
        sources.append(f"the NetworkPolicies {as_of(before)}")
        earlier_peers(b, w, before)
    b.add(
        Allow(
            "egress",
            "DNS (kube-system k8s-app=kube-dns)",
            port_text(DNS_PORTS),
            "every pod resolves names through the cluster DNS (its pods' labels assumed: "
            "the log does not show them)",
            DNS_PEER,
            DNS_PORTS,
        )
    )
    dependencies(b, w, inv, known, refs[w.key])
    api_server(b, w, inv, ctx["api_users"])
    sources.append("the API requests of its service account")
    fence.unknowns[:0] = [
        NO_PACKETS.format(sources=", ".join(sources)),
        UNSEEN_CLIENTS,
        UNSEEN_DEPENDENCIES,
    ]
    obj = _policy(w, _policy_name(w, taken), b)
    live = inv.get("NetworkPolicy", w.namespace, obj["metadata"]["name"])
    if (
        live
        and ((live.get("metadata") or {}).get("labels") or {}).get("kforensics.io/remedy")
        != "fence"
    ):
        fence.problems.append(
            f"NetworkPolicy {w.namespace}/{obj['metadata']['name']} exists "
            "and is not a fence: applying this one replaces it"
        )
    errors = validate_object(obj)
    if errors:
        fence.problems += [f"fence not valid, not emitted: {shown(e, 300)}" for e in errors[:5]]
    else:
        fence.objects.append(obj)
    return fence


def fences(
    chosen: list[Workload],
    inv: Inventory,
    *,
    before: Inventory | None = None,
    api_users: Collection[str] = frozenset(),
) -> list[Fence]:
    """Return a fence per chosen workload (empty, with the reason, when none can be built),
    each validated and simulated against the inventory; `before` is the inventory before the
    incident, `api_users` the identities that sent requests in the case."""
    known = workloads(inv)
    services = {
        (s["metadata"].get("namespace") or "", s["metadata"]["name"])
        for s in inv.of_kind("Service")
    }
    for w in chosen:  # a workload built by hand, not from this inventory
        if w.kind != "Secret" and w.recorded:
            known.setdefault(w.key, w)
    refs = {key: service_references(x.spec, x.namespace, services) for key, x in known.items()}
    ctx = {"inv": inv, "known": known, "refs": refs, "before": before, "api_users": set(api_users)}
    taken: set[tuple[str, str]] = set()
    out = [_fence(w, ctx, taken) for w in chosen]
    simulate(out, chosen, inv)
    for f in out:  # names from the log reach a person: control characters escaped
        f.problems = [visible(p) for p in f.problems]
        f.unknowns = [visible(u) for u in f.unknowns]
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # shared dicts (DNS ports) are written out each time, no anchors


def to_yaml(fences: list[Fence]) -> str:
    """Return the fences' objects as a multi-document YAML stream (a serializer, no templates)."""
    objects = [o for f in fences for o in f.objects]
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
