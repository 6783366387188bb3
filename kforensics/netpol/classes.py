"""Peer classes: the pods that every NetworkPolicy of one or more clusters treats alike.

Policies read a pod through its namespace (and its labels), its labels and its named ports
only. Two pods are alike when the same policies of their namespace select them, the same
`from`/`to` selector entries select them, and the named ports the rules ask for resolve the
same on both (their `signature`): the evaluator then answers alike for them, as source,
destination and isolated side. Connectivity is evaluated once per pair of classes and expanded
to pods only where a caller lists pods: a cluster of thousands of pods in a few label sets has
a few hundred classes, as policy analysers (netpol-analyzer among them) group pods before they
evaluate.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from kforensics.netpol.evaluate import (
    ConnSet,
    Evaluator,
    Peer,
    cut_external,
    policy_blocks,
)
from kforensics.netpol.model import Cluster, LabelSelector, NetworkPolicy, Pod, PolicyRule


@dataclass(frozen=True)
class PeerClass:
    """Peers evaluated alike in every cluster: their names, and each one's peer per cluster."""

    names: tuple[str, ...]
    peers: tuple[tuple[Peer | None, ...], ...]  # peers[k][i]: names[k] in cluster i (None: absent)

    def member(self, cluster: int) -> Peer | None:
        """Return the peer that stands for the class in one cluster (None: not in it)."""
        return self.peers[0][cluster]

    @classmethod
    def single(cls, peer: Peer, clusters: int) -> PeerClass:
        """Return the class of one peer present in every cluster (an external interval)."""
        return cls((peer.workload,), ((peer,) * clusters,))


class _Signatures:
    """What one cluster's policies can tell apart in a pod, computed once per pod shape."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        keys: set[str] = set()  # the pod label keys some selector reads
        entries: list[tuple[NetworkPolicy, LabelSelector | None, LabelSelector | None]] = []
        names: set[str] = set()  # the named ports the rules ask for
        self.rules: list[PolicyRule] = []  # every rule of every policy, numbered
        self.rule_of: list[int] = []  # entry -> its rule's number
        self.numbers: dict[tuple[int, str], list[int]] = {}  # (policy, direction) -> rules
        self.everyone: set[int] = set()  # the rules without from/to: they select every peer
        for policy in cluster.policies:
            keys |= policy.pod_selector.keys
            for direction, rules in (("Ingress", policy.ingress), ("Egress", policy.egress)):
                for rule in rules:
                    self.numbers.setdefault((id(policy), direction), []).append(len(self.rules))
                    self.everyone |= set() if rule.peers else {len(self.rules)}
                    names |= {p.port for p in rule.ports if isinstance(p.port, str)}
                    for peer in rule.peers:
                        if peer.ip_block is None:
                            entries.append((policy, peer.namespace_selector, peer.pod_selector))
                            self.rule_of.append(len(self.rules))
                            keys |= peer.pod_selector.keys if peer.pod_selector else set()
                    self.rules.append(rule)
        self.keys, self.entries, self.port_names = keys, entries, sorted(names)
        self._in_namespace: dict[str, tuple] = {}
        self._of_shape: dict[Hashable, Hashable] = {}

    def _candidates(self, ns: str) -> tuple:
        """Return (own policies, selector entries) that can apply to pods of the namespace."""
        if ns not in self._in_namespace:
            labels = self.cluster.namespaces[ns].labels
            own = [(i, p) for i, p in enumerate(self.cluster.policies) if p.namespace == ns]
            entries = [
                (i, pod_sel)
                for i, (policy, ns_sel, pod_sel) in enumerate(self.entries)
                if (policy.namespace == ns if ns_sel is None else ns_sel.matches(labels))
            ]
            self._in_namespace[ns] = own, entries
        return self._in_namespace[ns]

    def of(self, pod: Pod) -> Hashable:
        """Return the pod's signature: pods of one signature are evaluated alike."""
        labels = tuple(sorted((k, v) for k, v in pod.labels.items() if k in self.keys))
        shape = pod.namespace, labels, pod.ports
        if shape not in self._of_shape:
            own, entries = self._candidates(pod.namespace)
            named = (pod.named_port(n) for n in self.port_names)
            self._of_shape[shape] = (
                tuple(i for i, p in own if p.pod_selector.matches(pod.labels)),
                tuple(i for i, sel in entries if sel is None or sel.matches(pod.labels)),
                tuple(None if p is None else (p.port, p.protocol.upper()) for p in named),
            )
        return self._of_shape[shape]


def peer_classes(
    evaluators: Sequence[Evaluator], signatures: Sequence[_Signatures] = ()
) -> list[PeerClass]:
    """Return the pods of the evaluators' clusters (matched by workload) in classes, each
    class the pods whose signature is the same in every cluster, in first-seen order."""
    by_name: dict[str, list[Pod | None]] = {}
    for i, ev in enumerate(evaluators):
        for pod in ev.cluster.peers:
            by_name.setdefault(pod.workload, [None] * len(evaluators))[i] = pod
    signatures = signatures or [_Signatures(ev.cluster) for ev in evaluators]
    groups: dict[tuple, tuple[list[str], list[tuple]]] = {}
    for name, pods in by_name.items():
        key = tuple(None if p is None else s.of(p) for s, p in zip(signatures, pods, strict=True))
        names, peers = groups.setdefault(key, ([], []))
        names.append(name)
        peers.append(tuple(pods))
    return [PeerClass(tuple(n), tuple(p)) for n, p in groups.values()]


def pairs(src: PeerClass, dst: PeerClass) -> Iterator[tuple[int, int]]:
    """Return the (source, destination) member indexes of two classes, a peer never to itself."""
    for i, s in enumerate(src.names):
        for j, d in enumerate(dst.names):
            if s != d:
                yield i, j


@dataclass(frozen=True)
class ClassMatrix:
    """Connections between peer classes of one or more clusters, external space cut alike.

    `conns[a, b]` holds, per cluster, what sources[a] may open to targets[b] (pairs empty in
    every cluster left out); every member of a class gets its class's connections.
    """

    sources: list[PeerClass]
    targets: list[PeerClass]
    conns: dict[tuple[int, int], tuple[ConnSet, ...]]

    def expand(self, a: int, b: int) -> Iterator[tuple[str, str, Peer | None, Peer | None]]:
        """Return (src, dst, src peer, dst peer) of the member pairs of one class pair (the
        peers as in the first cluster)."""
        src, dst = self.sources[a], self.targets[b]
        for i, j in pairs(src, dst):
            yield src.names[i], dst.names[j], src.peers[i][0], dst.peers[j][0]

    def of_peer(self, peer: str) -> Iterator[tuple[str, str, tuple[ConnSet, ...]]]:
        """Return (src, dst, conns per cluster) of the pairs to or from one peer."""
        ins = {a for a, c in enumerate(self.sources) if peer in c.names}
        outs = {b for b, c in enumerate(self.targets) if peer in c.names}
        for (a, b), per in self.conns.items():
            if a in ins or b in outs:
                src, dst = self.sources[a].names, self.targets[b].names
                yield from ((peer, d, per) for d in (dst if a in ins else ()) if d != peer)
                yield from ((s, peer, per) for s in (src if b in outs else ()) if s != peer)


class _Pods:
    """The pod-to-pod verdicts of one cluster, from the classes' signatures.

    A verdict is the union of the isolating rules that select the other side (the signature
    says which), resolved on the destination's ports: both memoised, so a pair of classes costs
    two set intersections and a few look-ups, not a walk over the policies.
    """

    def __init__(self, ev: Evaluator, sig: _Signatures) -> None:
        self.ev, self.sig = ev, sig
        self.unions: dict[tuple, ConnSet] = {}
        self.both: dict[tuple[int, int], ConnSet] = {}
        self.ports: dict[tuple, int] = {}

    def side(self, pod: Pod) -> tuple:
        """Return (selected by, egress rules or None, ingress rules or None, ports, pod)."""
        picked = {self.sig.rule_of[e] for e in self.sig.of(pod)[1]} | self.sig.everyone

        def isolating(direction: str) -> frozenset[int] | None:
            policies = self.ev.selecting(pod, direction)
            if not policies:
                return None
            numbers = self.sig.numbers
            return frozenset(r for p in policies for r in numbers.get((id(p), direction), ()))

        ports = self.ports.setdefault(pod.ports, len(self.ports))
        return frozenset(picked), isolating("Egress"), isolating("Ingress"), ports, pod

    def _union(self, rules: frozenset[int], ports: int, dst: Pod) -> ConnSet:
        key = rules, ports
        if key not in self.unions:
            allowed = ConnSet.none()
            for r in sorted(rules):
                allowed |= self.ev.rule_conns(self.sig.rules[r], dst)
            self.unions[key] = allowed
        return self.unions[key]

    def allowed(self, src: tuple, dst: tuple) -> ConnSet:
        """Return what `Evaluator.allowed` returns for two pods, given their sides."""
        egress = _EVERY if src[1] is None else self._union(src[1] & dst[0], dst[3], dst[4])
        if not egress:
            return egress
        ingress = _EVERY if dst[2] is None else self._union(dst[2] & src[0], dst[3], dst[4])
        both = id(egress), id(ingress)  # both held by the memo above: ids stay theirs
        if both not in self.both:
            self.both[both] = egress & ingress
        return self.both[both]


_EVERY = ConnSet.all()


def class_matrix(clusters: Sequence[Cluster], cutting: Iterable[NetworkPolicy]) -> ClassMatrix:
    """Return the connections of the clusters' peer classes; `cutting` cuts the external space.

    Raises LabelGapError when pods of one owner differ in labels a policy selector reads.
    """
    evaluators = [Evaluator(c) for c in clusters]
    signatures = [_Signatures(c) for c in clusters]
    n, cutting = len(clusters), list(cutting)
    pods = peer_classes(evaluators, signatures)
    verdicts = [_Pods(ev, sig) for ev, sig in zip(evaluators, signatures, strict=True)]
    sides = {}  # (class, cluster) -> its member's side
    for c in pods:
        for i, v in enumerate(verdicts):
            sides[id(c), i] = None if c.member(i) is None else v.side(c.member(i))
    sources = [*(PeerClass.single(e, n) for e in cut_external(policy_blocks(cutting, "Ingress")))]
    targets = [*(PeerClass.single(e, n) for e in cut_external(policy_blocks(cutting, "Egress")))]
    externals = len(sources), len(targets)
    sources += pods
    targets += pods
    none = ConnSet.none()
    conns = {}
    for a, src in enumerate(sources):
        for b, dst in enumerate(targets):
            if a < externals[0] and b < externals[1]:
                continue  # external to external is not a cluster's connection
            if src is dst and len(src.names) < 2:
                continue  # a workload to itself is never listed
            if a >= externals[0] and b >= externals[1]:  # pod to pod: from the signatures
                sided = [(v, sides[id(src), i], sides[id(dst), i]) for i, v in enumerate(verdicts)]
                per = tuple(
                    none if s is None or d is None else v.allowed(s, d) for v, s, d in sided
                )
            else:
                members = [(ev, src.member(i), dst.member(i)) for i, ev in enumerate(evaluators)]
                per = tuple(
                    none if s is None or d is None else e.allowed(s, d) for e, s, d in members
                )
            if any(per):
                conns[a, b] = per
    return ClassMatrix(sources, targets, conns)
