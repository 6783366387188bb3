"""Peer classes: the pods that every NetworkPolicy of one or more clusters treats alike.

Policies read a pod through its namespace (and its labels), its labels and its named ports
only, so pods alike in all three are evaluated alike; further, pods that every selector of
every policy answers the same for, and whose named ports resolve the same, are evaluated
alike wherever they are (the evaluator's `signature`). Connectivity is evaluated once per pair
of classes and expanded to pods only where a caller lists pods: a cluster of thousands of pods
in a few label sets has a few hundred classes, as policy analysers (netpol-analyzer among
them) group pods before they evaluate.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # evaluate builds on this module; these are its types
    from kforensics.netpol.evaluate import Evaluator, Peer
    from kforensics.netpol.model import Pod


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


def _shape(pod: Pod) -> Hashable:
    """Return what any policy can read of a pod: namespace, labels and ports."""
    return pod.namespace, tuple(sorted(pod.labels.items())), pod.ports


def peer_classes(evaluators: Sequence[Evaluator]) -> list[PeerClass]:
    """Return the pods of the evaluators' clusters (matched by workload) in classes, each
    class the pods whose signature is the same in every cluster, in first-seen order."""
    by_name: dict[str, list[Pod | None]] = {}
    for i, ev in enumerate(evaluators):
        for pod in ev.cluster.peers:
            by_name.setdefault(pod.workload, [None] * len(evaluators))[i] = pod
    signatures: list[dict[Hashable, Hashable]] = [{} for _ in evaluators]

    def signature(i: int, pod: Pod | None) -> Hashable:
        if pod is None:
            return None
        shape = _shape(pod)
        if shape not in signatures[i]:
            signatures[i][shape] = evaluators[i].signature(pod)
        return signatures[i][shape]

    groups: dict[tuple, tuple[list[str], list[tuple]]] = {}
    for name, pods in by_name.items():
        key = tuple(signature(i, pod) for i, pod in enumerate(pods))
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
