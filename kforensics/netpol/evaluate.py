"""NetworkPolicy evaluation with np-guard netpol-analyzer's semantics and connlist output.

Upstream Kubernetes semantics: a pod is isolated for a direction iff a policy of its namespace
selects it with that policy type; traffic is allowed iff the source's egress AND the
destination's ingress allow it, each the union of the rules of every selecting policy. In a
rule, `from`/`to` entries are ORed and so are `ports`; in one entry a namespaceSelector and a
podSelector are ANDed; a podSelector alone means the policy's namespace. Named ports are
resolved on the destination pod (egress rules too), protocol included.

Choices where netpol-analyzer decides (and the corpus confirms):

- ipBlocks select external addresses only: they never match a pod, whatever its IP;
- the external IPv4 space is cut into the intervals induced by the CIDRs and excepts of the
  ingress rules (sources) and, separately, of the egress rules (destinations) of every policy;
  one peer `<first>-<last>[External]` per interval; IPv6 blocks are ignored;
- hostNetwork pods are evaluated like any other pod;
- a named port cannot select an external destination (netpol-analyzer rejects the policy;
  here the port allows nothing there);
- pods of one owner whose labels differ are refused (`LabelGapError`) when some policy
  selector matches some of them but not the others; otherwise the first pod stands for all.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, reduce
from itertools import pairwise

from kforensics.errors import LabelGapError
from kforensics.netpol.model import (
    Cluster,
    IPBlock,
    K8sObject,
    LabelSelector,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    build_cluster,
)

PROTOCOLS = ("SCTP", "TCP", "UDP")  # alphabetical: the order of connlist output
MIN_PORT, MAX_PORT = 1, 65535
MAX_IP = 2**32 - 1
Intervals = tuple[tuple[int, int], ...]
_FULL: Intervals = ((MIN_PORT, MAX_PORT),)


def _canon(
    intervals: Iterable[tuple[int, int]], low: int = MIN_PORT, high: int = MAX_PORT
) -> Intervals:
    """Return sorted, disjoint intervals, adjacent ones merged, clipped to [low, high]."""
    out: list[list[int]] = []
    for lo, hi in sorted((max(a, low), min(b, high)) for a, b in intervals):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _subtract(a: Intervals, b: Intervals) -> Intervals:
    out = []
    for lo, hi in a:
        for blo, bhi in b:
            if bhi < lo or blo > hi:
                continue
            if blo > lo:
                out.append((lo, blo - 1))
            lo = bhi + 1
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)


@dataclass(frozen=True)
class ConnSet:
    """Allowed connections: protocol -> sorted disjoint port intervals (canonical, hashable)."""

    ports: tuple[tuple[str, Intervals], ...] = ()

    @classmethod
    def of(cls, by_protocol: Mapping[str, Iterable[tuple[int, int]]]) -> ConnSet:
        """Return the set of these protocols and port intervals (unknown protocols dropped)."""
        items = ((p, _canon(by_protocol.get(p, ()))) for p in PROTOCOLS)
        return cls(tuple((p, iv) for p, iv in items if iv))

    @classmethod
    def all(cls) -> ConnSet:
        """Return every protocol on every port."""
        return _ALL

    @classmethod
    def none(cls) -> ConnSet:
        """Return the empty set."""
        return cls()

    @classmethod
    def port(cls, protocol: str, start: int, end: int | None = None) -> ConnSet:
        """Return one protocol on a port or an inclusive port range."""
        return cls.of({protocol.upper(): [(start, start if end is None else end)]})

    def get(self, protocol: str) -> Intervals:
        """Return the port intervals allowed for a protocol."""
        protocol = protocol.upper()
        return next((iv for p, iv in self.ports if p == protocol), ())

    def __or__(self, other: ConnSet) -> ConnSet:
        return ConnSet.of({p: self.get(p) + other.get(p) for p in PROTOCOLS})

    def __and__(self, other: ConnSet) -> ConnSet:
        return ConnSet.of({p: _intersect(self.get(p), other.get(p)) for p in PROTOCOLS})

    def __sub__(self, other: ConnSet) -> ConnSet:
        return ConnSet.of({p: _subtract(self.get(p), other.get(p)) for p in PROTOCOLS})

    def __bool__(self) -> bool:
        return bool(self.ports)

    def __le__(self, other: ConnSet) -> bool:
        return not (self - other)

    def contains(self, protocol: str, port: int) -> bool:
        """Return whether the protocol on this port is allowed."""
        return any(lo <= port <= hi for lo, hi in self.get(protocol))

    @property
    def is_all(self) -> bool:
        """Return whether every protocol is allowed on every port."""
        return self == _ALL

    def __str__(self) -> str:
        if self.is_all:
            return "All Connections"
        if not self:
            return "No Connections"
        return ",".join(
            f"{p} " + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in iv)
            for p, iv in self.ports
        )


_ALL = ConnSet(tuple((p, _FULL) for p in PROTOCOLS))


@dataclass(frozen=True)
class External:
    """An interval of external IPv4 addresses (inclusive integer bounds)."""

    start: int
    end: int

    @cached_property
    def workload(self) -> str:
        """Return the peer as netpol-analyzer prints it."""
        return f"{ipaddress.IPv4Address(self.start)}-{ipaddress.IPv4Address(self.end)}[External]"


Peer = Pod | External


@dataclass(frozen=True)
class Connection:
    """Connections allowed from src to dst (names as printed; the peer objects alongside)."""

    src: str
    dst: str
    conns: ConnSet
    src_peer: Peer | None = field(default=None, compare=False, repr=False)
    dst_peer: Peer | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.src} => {self.dst} : {self.conns}"


def _ip_intervals(block: IPBlock) -> Intervals:
    """Return the IPv4 intervals of cidr minus excepts (empty for IPv6)."""
    net = ipaddress.ip_network(block.cidr, strict=False)
    if net.version != 4:
        return ()
    out: Intervals = ((int(net.network_address), int(net.broadcast_address)),)
    for exc in block.except_:
        e = ipaddress.ip_network(exc, strict=False)
        if e.version == 4:
            out = _subtract(out, ((int(e.network_address), int(e.broadcast_address)),))
    return out


def cut_external(blocks: Iterable[IPBlock]) -> list[External]:
    """Return the IPv4 space cut at every bound of the blocks' intervals."""
    bounds = {0, MAX_IP + 1}
    for block in blocks:
        for lo, hi in _ip_intervals(block):
            bounds |= {lo, hi + 1}
    return [External(a, b - 1) for a, b in pairwise(sorted(bounds))]


def policy_blocks(policies: Iterable[NetworkPolicy], direction: str) -> Iterator[IPBlock]:
    """Return the ipBlocks of the policies' rules of one direction."""
    for policy in policies:
        for rule in policy.ingress if direction == "Ingress" else policy.egress:
            yield from (p.ip_block for p in rule.peers if p.ip_block is not None)


@dataclass(frozen=True)
class _Rule:
    """A rule prepared for matching: its selector entries and the union of its ipBlocks."""

    rule: PolicyRule
    selectors: tuple[PolicyPeer, ...]
    ips: Intervals  # sorted disjoint IPv4 intervals of every ipBlock entry

    @classmethod
    def of(cls, rule: PolicyRule) -> _Rule:
        """Return the prepared rule."""
        ips = [iv for p in rule.peers if p.ip_block for iv in _ip_intervals(p.ip_block)]
        selectors = tuple(p for p in rule.peers if p.ip_block is None)
        return cls(rule, selectors, _canon(ips, 0, MAX_IP))


class Evaluator:
    """Allowed connections between the peers of a cluster under its NetworkPolicies."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._ns_policies: dict[str, list[NetworkPolicy]] = {}
        self._rules: dict[tuple[int, str], list[_Rule]] = {}
        for policy in cluster.policies:
            self._ns_policies.setdefault(policy.namespace, []).append(policy)
            self._rules[id(policy), "Ingress"] = [_Rule.of(r) for r in policy.ingress]
            self._rules[id(policy), "Egress"] = [_Rule.of(r) for r in policy.egress]
        self._selecting: dict[tuple[int, str], list[NetworkPolicy]] = {}
        self._check_gaps()

    def selecting(self, pod: Pod, direction: str) -> list[NetworkPolicy]:
        """Return the policies of the pod's namespace that isolate it for the direction."""
        key = (id(pod), direction)
        if key not in self._selecting:
            self._selecting[key] = [
                p
                for p in self._ns_policies.get(pod.namespace, ())
                if direction in p.policy_types and p.pod_selector.matches(pod.labels)
            ]
        return self._selecting[key]

    def selects(self, policy: NetworkPolicy, peer: PolicyPeer, target: Pod) -> bool:
        """Return whether one selector entry (ANDed selectors) of the policy selects the pod."""
        if peer.namespace_selector is None:
            if target.namespace != policy.namespace:
                return False
        elif not peer.namespace_selector.matches(self._ns_labels(target.namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(target.labels)

    def _rule_selects(self, policy: NetworkPolicy, rule: _Rule, target: Peer) -> bool:
        if not rule.rule.peers:
            return True  # no from/to: every source or destination
        if isinstance(target, External):
            # ipBlocks select external addresses only; the interval is one piece of the cut
            i = bisect.bisect_right(rule.ips, (target.start, MAX_IP + 1)) - 1
            return i >= 0 and target.end <= rule.ips[i][1]
        return any(self.selects(policy, p, target) for p in rule.selectors)

    def _ns_labels(self, namespace: str) -> Mapping[str, str]:
        return self.cluster.namespaces[namespace].labels

    def rule_conns(self, rule: PolicyRule, dst: Peer) -> ConnSet:
        """Return the connections a rule's ports allow towards dst (named ports resolved)."""
        if not rule.ports:
            return ConnSet.all()
        return reduce(ConnSet.__or__, (self._port_conns(p, dst) for p in rule.ports))

    @staticmethod
    def _port_conns(port: PolicyPort, dst: Peer) -> ConnSet:
        if port.port is None:
            return ConnSet.port(port.protocol, MIN_PORT, MAX_PORT)
        if isinstance(port.port, int):
            return ConnSet.port(port.protocol, port.port, port.end_port or port.port)
        named = dst.named_port(port.port) if isinstance(dst, Pod) else None
        # a named port counts only where the destination declares it with the same protocol
        if named is None or named.protocol.upper() != port.protocol:
            return ConnSet.none()
        return ConnSet.port(port.protocol, named.port)

    def _direction(self, src: Peer, dst: Peer, direction: str) -> ConnSet:
        """Return what the policies of the isolated side allow for one direction."""
        isolated, other = (dst, src) if direction == "Ingress" else (src, dst)
        if isinstance(isolated, External):
            return ConnSet.all()
        policies = self.selecting(isolated, direction)
        if not policies:
            return ConnSet.all()
        allowed = ConnSet.none()
        for policy in policies:
            for rule in self._rules[id(policy), direction]:
                if self._rule_selects(policy, rule, other):
                    allowed |= self.rule_conns(rule.rule, dst)
                    if allowed.is_all:
                        return allowed
        return allowed

    def allowed(self, src: Peer, dst: Peer) -> ConnSet:
        """Return the connections allowed from src to dst (egress of src AND ingress of dst)."""
        egress = self._direction(src, dst, "Egress")
        if not egress:
            return egress
        return egress & self._direction(src, dst, "Ingress")

    def _check_gaps(self) -> None:
        """Raise LabelGapError when a selector splits the pods of one owner."""
        for workload, pods in self.cluster.gaps.items():
            ns = pods[0].namespace
            for policy in self.cluster.policies:
                for sel in self._selectors_for(policy, ns):
                    verdicts = {sel.matches(p.labels) for p in pods}
                    if len(verdicts) > 1:
                        names = ", ".join(p.name for p in pods)
                        raise LabelGapError(
                            f"pods of {workload} ({names}) have different labels and "
                            f"NetworkPolicy {policy.namespace}/{policy.name} selects only some"
                        )

    def _selectors_for(self, policy: NetworkPolicy, ns: str) -> Iterator[LabelSelector]:
        """Return the pod selectors of a policy that can apply to pods of namespace ns."""
        if policy.namespace == ns:
            yield policy.pod_selector
        for rule in policy.ingress + policy.egress:
            for peer in rule.peers:
                if peer.pod_selector is None:
                    continue
                if peer.namespace_selector is None:
                    if policy.namespace == ns:
                        yield peer.pod_selector
                elif peer.namespace_selector.matches(self._ns_labels(ns)):
                    yield peer.pod_selector


def _cluster(objects: Iterable[K8sObject | Mapping] | Cluster) -> Cluster:
    return objects if isinstance(objects, Cluster) else build_cluster(objects)


def allowed_connections(
    objects: Iterable[K8sObject | Mapping] | Cluster,
    cut_with: Iterable[NetworkPolicy] = (),
) -> list[Connection]:
    """Return the non-empty connections between distinct peers, sorted by (src, dst).

    Evaluated per peer class (`class_matrix`), listed per peer. `cut_with`: policies whose
    ipBlocks also cut the external space without being enforced, so that a before/after
    comparison of proposed policies sees the same external peers.
    Raises LabelGapError when pods of one owner differ in labels a policy selector reads.
    """
    from kforensics.netpol.classes import class_matrix  # classes build on this evaluator

    cluster = _cluster(objects)
    if not cluster.peers:
        return []
    m = class_matrix([cluster], [*cluster.policies, *cut_with])
    out = [
        Connection(src, dst, per[0], sp, dp)
        for (a, b), per in m.conns.items()
        for src, dst, sp, dp in m.expand(a, b)
    ]
    return sorted(out, key=lambda c: (c.src, c.dst))


def pairwise_connections(
    objects: Iterable[K8sObject | Mapping] | Cluster,
    cut_with: Iterable[NetworkPolicy] = (),
) -> list[Connection]:
    """Return what `allowed_connections` returns, evaluated peer pair by peer pair.

    The reference that the class evaluation is tested and benchmarked against (quadratic in
    the peers: not for inventories).
    """
    cluster = _cluster(objects)
    if not cluster.peers:
        return []
    ev = Evaluator(cluster)
    cutting = [*cluster.policies, *cut_with]
    sources = [*cut_external(policy_blocks(cutting, "Ingress")), *cluster.peers]
    targets = [*cut_external(policy_blocks(cutting, "Egress")), *cluster.peers]
    out = []
    for src in sources:
        for dst in targets:
            if isinstance(src, External) and isinstance(dst, External):
                continue
            if src.workload == dst.workload:
                continue  # a workload to itself is never listed
            conns = ev.allowed(src, dst)
            if conns:
                out.append(Connection(src.workload, dst.workload, conns, src, dst))
    return sorted(out, key=lambda c: (c.src, c.dst))


def connlist(objects: Iterable[K8sObject | Mapping] | Cluster) -> str:
    """Return netpol-analyzer's txt connlist: one sorted `src => dst : conns` line each."""
    return "".join(f"{c}\n" for c in allowed_connections(objects))


def connection_map(connections: Iterable[Connection]) -> dict[tuple[str, str], ConnSet]:
    """Return {(src, dst): conns}, the form to diff two simulations with ConnSet operators."""
    return {(c.src, c.dst): c.conns for c in connections}
