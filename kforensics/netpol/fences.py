"""Fences: proposed NetworkPolicies around sensitive workloads, from what the case shows.

An audit log records no packets, so every allow is inferred and says from what: ingress from the
workloads whose pod specs name one of its Services by DNS name (env values, args, command), from
the workloads that hold one of its secrets, and from the peers the policies of an earlier
inventory let in (namespaces pinned by their immutable name); egress to DNS, to the Services its
own pod spec names, and to the API server when its service account sent requests in the case.
Each fence is validated like the remediation's objects and simulated (`netpol.fence_check`).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection
from dataclasses import dataclass, field

import yaml

from kforensics.investigate.redact import clip
from kforensics.netpol.fence_refs import (
    container_ports,
    port_text,
    service_references,
    shown,
    target_ports,
)
from kforensics.netpol.inventory import Inventory
from kforensics.netpol.model import NAME_LABEL, effective_policy_types, parse_selector
from kforensics.netpol.names import (
    dns1123_subdomain,
    is_dns1123_label,
    is_label,
    label_value,
)
from kforensics.netpol.plan import DNS_PEER, DNS_PORTS, api_server_ips
from kforensics.netpol.validate import validate_object
from kforensics.sensitive.resolve import Workload, held, workloads
from kforensics.untrusted import visible

HASH_LABELS = ("pod-template-hash", "controller-revision-hash")
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


@dataclass
class Allow:
    """One inferred allow, and the NetworkPolicy peer and ports it becomes."""

    direction: str  # "ingress" | "egress"
    peer: str  # how a person reads it
    ports: list[str]  # "TCP 8443"; empty: every port
    inferred_from: str  # what in the case says so, with evidence file:line when there is one
    to: dict = field(default_factory=dict, repr=False)  # the NetworkPolicy peer entry
    port_rules: list[dict] = field(default_factory=list, repr=False)  # its NetworkPolicy ports


@dataclass
class Fence:
    """The proposed policy around one sensitive workload, its allows, unknowns and checks."""

    workload: str  # Workload.key
    objects: list[dict] = field(default_factory=list)  # the NetworkPolicy dicts (validated)
    allows: list[Allow] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    simulation: list[str] = field(default_factory=list)


# --- peers ----------------------------------------------------------------------------------


def selector_labels(labels: dict) -> dict[str, str] | None:
    """Return pod labels fit for a selector (hash labels dropped), None if one is not valid."""
    out = {k: v for k, v in labels.items() if k not in HASH_LABELS}
    return dict(sorted(out.items())) if all(is_label(k, v) for k, v in out.items()) else None


def _pinned(namespace: str, pods: dict | None = None) -> dict:
    peer: dict = {"namespaceSelector": {"matchLabels": {NAME_LABEL: namespace}}}
    if pods is not None:
        peer["podSelector"] = pods
    return peer


def _describe(selector: object) -> str:
    if not isinstance(selector, dict) or not selector:
        return "all pods"
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    terms += [
        f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip()
        for e in selector.get("matchExpressions") or []
        if isinstance(e, dict)
    ]
    return shown(", ".join(terms) or "all pods", 120)


class _Builder:
    """The allows of one fence, merged by peer and ports (reasons joined)."""

    def __init__(self, fence: Fence) -> None:
        self.fence = fence
        self.evidence: list[str] = []

    def add(self, allow: Allow, evidence: str = "") -> None:
        if evidence and evidence not in self.evidence:
            self.evidence.append(evidence)
        for a in self.fence.allows:
            if (a.direction, a.to, a.port_rules) == (allow.direction, allow.to, allow.port_rules):
                a.inferred_from += "; " + allow.inferred_from
                return
        self.fence.allows.append(allow)


def _client(b: _Builder, other: Workload, ports: list[dict], why: str) -> None:
    """Allow ingress from another workload's pods, pinned by namespace name and labels."""
    labels = selector_labels(other.labels)
    if not is_dns1123_label(other.namespace) or not labels:
        b.fence.problems.append(
            f"client {shown(other.key, 200)} ({why}) has no valid namespace and pod labels to "
            "select it by: not allowed; allow it by hand if it is one"
        )
        return
    b.add(
        Allow(
            "ingress",
            shown(other.key, 200),
            port_text(ports),
            f"{why} ({other.evidence or 'no evidence'})",
            _pinned(other.namespace, {"matchLabels": labels}),
            ports,
        ),
        other.evidence,
    )


def _own_secrets(spec: dict) -> set[str]:
    """Return the secrets a pod spec reads, a registry pull secret apart (shared by many)."""
    return set(held({k: v for k, v in spec.items() if k != "imagePullSecrets"})[0])


def _earlier_peers(b: _Builder, w: Workload, before: Inventory) -> None:
    """Allow what the ingress policies of `before` let into the workload's pods, pinned."""
    names = sorted(n["metadata"]["name"] for n in before.of_kind("Namespace"))
    for pol in before.of_kind("NetworkPolicy"):
        meta, spec = pol.get("metadata") or {}, pol.get("spec") or {}
        if meta.get("namespace") != w.namespace or "Ingress" not in effective_policy_types(spec):
            continue
        where = f"NetworkPolicy {w.namespace}/{shown(str(meta.get('name')), 200)}"
        evidence = before.evidence.get(("NetworkPolicy", w.namespace, meta.get("name")), "")
        try:
            if not parse_selector(spec.get("podSelector") or {}).matches(w.labels):
                continue
            for rule in spec.get("ingress") or []:
                ports = [dict(p) for p in rule.get("ports") or [] if isinstance(p, dict)]
                peers = rule.get("from") or []
                if not peers:
                    b.fence.problems.append(
                        f"{where} let every source in as of {before.at}: not carried into the "
                        "fence (a fence names its clients); add it by hand if it must stay"
                    )
                for peer in peers:
                    _earlier_peer(b, w, before, names, peer, ports, f"{where} ({evidence})")
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            b.fence.problems.append(f"{where} as of {before.at} not readable: {shown(str(exc))}")


def _earlier_peer(
    b: _Builder,
    w: Workload,
    before: Inventory,
    names: list[str],
    peer: dict,
    ports: list[dict],
    where: str,
) -> None:
    why = f"{where} let it in as of {before.at}"
    if peer.get("ipBlock") is not None:
        block = peer["ipBlock"]
        b.add(
            Allow(
                "ingress",
                f"addresses {shown(str(block.get('cidr')), 60)}",
                port_text(ports),
                why,
                {"ipBlock": dict(block)},
                ports,
            ),
            where,
        )
        return
    nsel, psel = peer.get("namespaceSelector"), peer.get("podSelector")
    if nsel is None:
        chosen = [w.namespace]
    else:
        sel = parse_selector(nsel)
        chosen = [n for n in names if sel.matches(before.namespace_labels(n))]
        why += f" (namespaces matching {_describe(nsel)} then, pinned by name)"
    if not chosen:
        b.fence.unknowns.append(f"{why}: no namespace matched then, nothing carried")
    for ns in chosen:
        text = f"namespace {ns}" + ("" if psel is None else f", pods {_describe(psel)}")
        b.add(Allow("ingress", text, port_text(ports), why, _pinned(ns, psel), ports), where)


# --- egress ---------------------------------------------------------------------------------


def _dependencies(
    b: _Builder, w: Workload, inv: Inventory, known: dict[str, Workload], refs: tuple
) -> None:
    found, unknown = refs
    for (ns, name), where in sorted(found.items()):
        if ns == w.namespace and name in w.services:
            continue  # itself
        svc = inv.get("Service", ns, name) or {}
        sel = (svc.get("spec") or {}).get("selector")
        text = f"Service {shown(ns, 63)}/{shown(name, 63)}"
        if not isinstance(sel, dict) or not sel or not all(is_label(k, v) for k, v in sel.items()):
            b.fence.unknowns.append(
                f"its {where}: {text} has no usable selector (ExternalName or endpoints set by "
                "hand?): where it leads is unknown, the fence cuts it"
            )
            continue
        if not is_dns1123_label(ns):
            continue
        specs = [
            x.spec
            for x in known.values()
            if x.namespace == ns and all(x.labels.get(k) == v for k, v in sel.items())
        ]
        ports, unresolved = target_ports(svc, specs, keep_named=True)
        for p in unresolved:
            b.fence.problems.append(f"{text}: target port {p!r} is not a valid port name")
        evidence = inv.evidence.get(("Service", ns, name), "")
        b.add(
            Allow(
                "egress",
                f"{text} (pods {_describe({'matchLabels': sel})})",
                port_text(ports),
                f"its {where} ({w.evidence or 'no evidence'}); {text}: {evidence}",
                _pinned(ns, {"matchLabels": dict(sel)}),
                ports,
            ),
            evidence,
        )
    for token, where in sorted(unknown.items()):
        b.fence.unknowns.append(
            f"its {where} names {token}, a Service the log never recorded: egress to it is cut"
        )


def _api_server(b: _Builder, w: Workload, inv: Inventory, api_users: Collection[str]) -> None:
    ident = f"system:serviceaccount:{w.namespace}:{w.service_account or 'default'}"
    if ident not in api_users:
        b.fence.unknowns.append(
            f"{shown(ident, 200)} sent no API request the case shows: the API server is not allowed"
        )
        return
    ips = [ip for ip in api_server_ips(inv) if _address(ip)]
    if not ips:
        b.fence.unknowns.append(
            f"{shown(ident, 200)} sent API requests, but the log never recorded the API server's "
            "address (Service default/kubernetes): egress to it is cut; add it by hand"
        )
        return
    svc = inv.get("Service", "default", "kubernetes") or {}
    ports = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        for num in (p.get("port"), p.get("targetPort")) if isinstance(p, dict) else ():
            rule = {"protocol": "TCP", "port": num}
            if type(num) is int and 1 <= num <= 65535 and rule not in ports:
                ports.append(rule)
    evidence = inv.evidence.get(("Service", "default", "kubernetes"), "")
    for ip in ips:
        cidr = _address(ip)
        b.add(
            Allow(
                "egress",
                f"API server {cidr}",
                port_text(ports),
                f"{shown(ident, 200)} sent API requests in the case; the address is Service "
                f"default/kubernetes's ({evidence})",
                {"ipBlock": {"cidr": cidr}},
                ports,
            ),
            evidence,
        )
    b.fence.unknowns.append(
        "the API server is allowed at its Service address: a CNI that applies egress policy "
        "after the address is translated needs its endpoint addresses too (not in the log)"
    )


def _address(ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return f"{addr}/{32 if addr.version == 4 else 128}"


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


def _policy_name(w: Workload, inv: Inventory, taken: set[tuple[str, str]]) -> str:
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


def _policy(w: Workload, name: str, b: _Builder) -> dict:
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
    return {
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


def _fence(w: Workload, ctx: dict, taken: set[tuple[str, str]]) -> Fence:
    inv, known, refs, before = ctx["inv"], ctx["known"], ctx["refs"], ctx["before"]
    fence = Fence(w.key)
    if _no_fence(w, fence):
        return fence
    b = _Builder(fence)
    sources = ["Service names in pod specs", "shared secrets"]
    ports = _ingress_ports(w, inv, fence)
    mine = _own_secrets(w.spec)
    for other in sorted(known.values(), key=lambda x: x.key):
        if other.key == w.key:
            continue
        for svc in w.services:
            where = refs[other.key][0].get((w.namespace, svc))
            if where:
                _client(b, other, ports, f"its {where}, a Service of {shown(w.key, 200)}")
        if other.namespace == w.namespace:
            for secret in sorted(mine & _own_secrets(other.spec)):
                why = f"its pods hold secret {w.namespace}/{shown(secret, 253)} too (shared "
                _client(b, other, ports, why + "credentials make it a client)")
    if before is not None:
        sources.append(f"the NetworkPolicies of {before.at}")
        _earlier_peers(b, w, before)
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
    _dependencies(b, w, inv, known, refs[w.key])
    _api_server(b, w, inv, ctx["api_users"])
    sources.append("the API requests of its service account")
    fence.unknowns[:0] = [
        NO_PACKETS.format(sources=", ".join(sources)),
        UNSEEN_CLIENTS,
        UNSEEN_DEPENDENCIES,
    ]
    obj = _policy(w, _policy_name(w, inv, taken), b)
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
    each validated and simulated against the inventory."""
    from kforensics.netpol.fence_check import simulate  # it reads Fence and Allow

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
