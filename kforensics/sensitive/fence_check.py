"""Before anyone applies a fence: simulate it on the cluster rebuilt from the log.

The NetworkPolicy evaluator runs on the inventory before and after the fences are added. For
each fence it checks that every inferred client can still reach the workload (and the workload
its dependencies) on the inferred ports, that nothing is newly allowed, and which other live
policies selecting the same pods allow more than the fence (policies are additive); it lists
the connections the fence removes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kforensics.netpol.evaluate import ConnSet, Evaluator, allowed_connections, connection_map
from kforensics.netpol.inventory import Inventory
from kforensics.netpol.model import Cluster, Pod, build_cluster, parse_selector
from kforensics.netpol.remediation import evaluator_objects
from kforensics.sensitive.fence_refs import shown
from kforensics.untrusted import visible

if TYPE_CHECKING:
    from kforensics.sensitive.fence_allows import Allow, Fence
    from kforensics.sensitive.resolve import Workload

MAX_LINES = 20
_UNSIMULATED = "simulation not possible on this inventory: "
_SIM_ERRORS = (ValueError, TypeError, AttributeError, KeyError)


def _mine(cluster: Cluster, w: Workload, inv: Inventory) -> list[Pod]:
    """Return the evaluator's peers that are the workload's pods."""
    owners = {w.name}
    for name in w.pods:
        pod = inv.get("Pod", w.namespace, name) or {}
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
            if isinstance(ref, dict) and ref.get("controller"):
                owners.add(str(ref.get("name") or ""))
    return [
        p
        for p in cluster.peers
        if p.namespace == w.namespace and (p.owner_name in owners or p.name in w.pods)
    ]


def _selected(cluster: Cluster, peer: dict, namespace: str) -> list[Pod]:
    """Return the pods a NetworkPolicy peer entry (of a policy in namespace) selects."""
    if "ipBlock" in peer:
        return []
    nsel, psel = peer.get("namespaceSelector"), peer.get("podSelector")
    out = []
    for p in cluster.peers:
        if nsel is None and p.namespace != namespace:
            continue
        if nsel is not None and not parse_selector(nsel).matches(
            cluster.namespaces[p.namespace].labels
        ):
            continue
        if psel is None or parse_selector(psel).matches(p.labels):
            out.append(p)
    return out


def _wanted(allow: Allow, dst: Pod) -> ConnSet:
    """Return the connections an allow's ports grant towards dst (named ports resolved)."""
    if not allow.port_rules:
        return ConnSet.all()
    out = ConnSet.none()
    for r in allow.port_rules:
        proto, port = str(r.get("protocol") or "TCP"), r.get("port")
        if port is None:
            out |= ConnSet.port(proto, 1, 65535)
        elif isinstance(port, int):
            out |= ConnSet.port(proto, port, r.get("endPort") or port)
        elif (named := dst.named_port(port)) is not None and named.protocol.upper() == proto:
            out |= ConnSet.port(proto, named.port)
    return out


def _bounded(lines: list[str]) -> list[str]:
    extra = len(lines) - MAX_LINES
    return lines if extra <= 0 else lines[:MAX_LINES] + [f"... and {extra} more"]


def simulate(out: list[Fence], chosen: list[Workload], inv: Inventory) -> None:
    """Fill each fence's simulation and add its findings to its problems."""
    proposed = [o for f in out for o in f.objects]
    if not proposed:
        return
    try:
        base = evaluator_objects(inv)
        before_c, after_c = build_cluster(base), build_cluster([*base, *proposed])
        cut = [*before_c.policies, *after_c.policies]
        before = connection_map(allowed_connections(before_c, cut_with=cut))
        after_conns = allowed_connections(after_c, cut_with=cut)
        after = connection_map(after_conns)
        # What the fences alone allow: the same peers, no other policy.
        alone = Evaluator(
            build_cluster([o for o in base if o.get("kind") != "NetworkPolicy"] + proposed)
        )
        live = Evaluator(after_c)
    except _SIM_ERRORS as exc:
        for f in out:
            if f.objects:
                f.problems.append(_UNSIMULATED + shown(exc, 300))
        return
    for fence, w in zip(out, chosen, strict=True):
        if fence.objects:
            try:
                _check(fence, w, inv, after_c, before, after, after_conns, alone, live)
            except _SIM_ERRORS as exc:
                fence.problems.append(_UNSIMULATED + shown(exc, 300))


def _check(fence, w, inv, cluster, before, after, after_conns, alone, live) -> None:
    mine = _mine(cluster, w, inv)
    if not mine:
        fence.simulation.append("none of its pods is in the rebuilt cluster: nothing simulated")
        return
    names = {p.workload for p in mine}
    policy = fence.objects[0]
    selector = policy["spec"]["podSelector"]
    others = [
        p.workload
        for p in cluster.peers
        if p.namespace == w.namespace
        and p.workload not in names
        and parse_selector(selector).matches(p.labels)
    ]
    if others:
        fence.problems.append(
            f"the fence's podSelector also selects {', '.join(others[:5])}: "
            "they would be fenced too"
        )
    none = ConnSet.none()
    lines = []
    for allow in fence.allows:
        for peer in _selected(cluster, allow.to, w.namespace):
            if peer.workload in names:
                continue
            for m in mine:
                src, dst = (peer, m) if allow.direction == "ingress" else (m, peer)
                pair = (src.workload, dst.workload)
                want = _wanted(allow, dst)
                lost = (before.get(pair, none) & want) - after.get(pair, none)
                kept = after.get(pair, none) & want
                arrow = f"{pair[0]} => {pair[1]}"
                if lost:
                    fence.problems.append(
                        f"the fence cuts {arrow} : {lost}, which the case shows "
                        f"it needs ({allow.peer})"
                    )
                elif kept:
                    lines.append(f"kept: {arrow} : {kept} ({allow.peer})")
                else:
                    lines.append(
                        f"not allowed before the fence either: {arrow} "
                        f"({allow.peer}; other policies deny it)"
                    )
    removed = []
    for pair in sorted(before.keys() | after.keys()):
        if not names & set(pair):
            continue
        b, a = before.get(pair, none), after.get(pair, none)
        if a - b:
            fence.problems.append(f"newly allowed: {pair[0]} => {pair[1]} : {a - b}")
        if b - a:
            removed.append(f"removed: {pair[0]} => {pair[1]} : {b - a} (left: {a})")
    fence.simulation += _bounded([visible(line) for line in lines + removed])
    _additive(fence, w, mine, names, after_conns, alone, live)


def _additive(fence, w, mine, names, after_conns, alone, live) -> None:
    """Name the live policies that select the workload's pods and allow more than the fence."""
    fence_names = {o["metadata"]["name"] for o in fence.objects}
    extra: dict[str, list[str]] = {}
    for c in after_conns:
        for direction, m in (("Ingress", c.dst_peer), ("Egress", c.src_peer)):
            if not isinstance(m, Pod) or m.workload not in names:
                continue
            more = c.conns - alone.allowed(c.src_peer, c.dst_peer)
            if not more:
                continue
            for p in live.selecting(m, direction):
                if p.name not in fence_names and (
                    p.ingress if direction == "Ingress" else p.egress
                ):
                    extra.setdefault(f"{p.namespace}/{p.name}", []).append(
                        f"{c.src} => {c.dst} : {more}"
                    )
    for name, examples in sorted(extra.items()):
        shown = "; ".join(examples[:3]) + (
            f"; and {len(examples) - 3} more" if len(examples) > 3 else ""
        )
        fence.problems.append(
            f"NetworkPolicy {name} also selects these pods and allows more than the fence "
            f"(policies are additive): {shown}; narrow or remove it"
        )
