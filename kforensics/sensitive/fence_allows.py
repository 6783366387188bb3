"""The allows of a fence, each inferred from the case and saying from what.

Ingress from the workloads that name one of its Services or hold one of its secrets, and from
the peers an earlier inventory's policies let in (namespaces pinned by name); egress to the
Services its own pod spec names and to the API server. `fences` assembles them into policies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass, field

from kforensics.netpol.inventory import Inventory
from kforensics.netpol.model import NAME_LABEL, effective_policy_types, parse_selector
from kforensics.netpol.names import is_dns1123_label, is_label
from kforensics.netpol.plan import api_server_ips
from kforensics.sensitive.fence_refs import port_text, shown, target_ports
from kforensics.sensitive.resolve import Workload, held

HASH_LABELS = ("pod-template-hash", "controller-revision-hash")


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


class AllowSet:
    """The allows of one fence, merged by peer and ports (reasons joined)."""

    def __init__(self, fence: Fence) -> None:
        self.fence = fence
        self.evidence: list[str] = []

    def add(self, allow: Allow, evidence: str = "") -> None:
        """Add an allow (or its reason to the same allow) and the evidence behind it."""
        if evidence and evidence not in self.evidence:
            self.evidence.append(evidence)
        for a in self.fence.allows:
            if (a.direction, a.to, a.port_rules) == (allow.direction, allow.to, allow.port_rules):
                a.inferred_from += "; " + allow.inferred_from
                return
        self.fence.allows.append(allow)


def client(b: AllowSet, other: Workload, ports: list[dict], why: str) -> None:
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


def own_secrets(spec: dict) -> set[str]:
    """Return the secrets a pod spec reads, a registry pull secret apart (shared by many)."""
    return set(held({k: v for k, v in spec.items() if k != "imagePullSecrets"})[0])


def as_of(inv: Inventory) -> str:
    """Return when an inventory stands, as the fences' text says it: "as of <time>"."""
    return f"as of {inv.at}" if inv.at is not None else "in the earlier inventory"


def earlier_peers(b: AllowSet, w: Workload, before: Inventory) -> None:
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
                        f"{where} {as_of(before)} let every source in: not carried into the "
                        "fence (a fence names its clients); add it by hand if it must stay"
                    )
                for peer in peers:
                    _earlier_peer(b, w, before, names, peer, ports, f"{where} ({evidence})")
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            b.fence.problems.append(f"{where} {as_of(before)} not readable: {shown(str(exc))}")


def _earlier_peer(
    b: AllowSet,
    w: Workload,
    before: Inventory,
    names: list[str],
    peer: dict,
    ports: list[dict],
    where: str,
) -> None:
    why = f"{where} let it in {as_of(before)}"
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


def dependencies(
    b: AllowSet, w: Workload, inv: Inventory, known: dict[str, Workload], refs: tuple
) -> None:
    """Allow egress to the recorded Services its pod spec names, on their target ports."""
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


def api_server(b: AllowSet, w: Workload, inv: Inventory, api_users: Collection[str]) -> None:
    """Allow egress to the API server when its service account sent requests in the case."""
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
