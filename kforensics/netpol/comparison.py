"""Before and after: what proposed NetworkPolicies change, evaluated per peer class.

Both clusters' peers are classed together (a class: peers alike in both), the external space
is cut by the policies of both, and a class pair's connections are compared once; only the
class pairs that change are listed per peer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from kforensics.netpol.classes import ClassMatrix, class_matrix
from kforensics.netpol.evaluate import Connection, ConnSet
from kforensics.netpol.model import Cluster, K8sObject, build_cluster


@dataclass(frozen=True)
class Change:
    """A pair whose allowed connections differ between two simulations."""

    src: str
    dst: str
    before: ConnSet
    after: ConnSet

    @property
    def removed(self) -> ConnSet:
        """Return the connections allowed before and not after."""
        return self.before - self.after

    @property
    def added(self) -> ConnSet:
        """Return the connections allowed after and not before."""
        return self.after - self.before


@dataclass(frozen=True)
class Comparison:
    """Two simulations of one cluster, their peers classed and external peers cut alike."""

    matrix: ClassMatrix  # per class pair: (before, after)

    @cached_property
    def changes(self) -> list[Change]:
        """Return the pairs whose allowed connections differ, sorted by (src, dst)."""
        out = [
            Change(src, dst, before, after)
            for (a, b), (before, after) in self.matrix.conns.items()
            if before != after
            for src, dst, _, _ in self.matrix.expand(a, b)
        ]
        return sorted(out, key=lambda c: (c.src, c.dst))

    def after_of(self, peer: str) -> list[Connection]:
        """Return the connections allowed after to or from one peer, sorted by (src, dst)."""
        out = [Connection(s, d, per[1]) for s, d, per in self.matrix.of_peer(peer) if per[1]]
        return sorted(out, key=lambda c: (c.src, c.dst))


def compare_clusters(before: Cluster, after: Cluster) -> Comparison:
    """Return the connections of both clusters, the external space cut by every policy of both.

    Cut alike, the external peers of the two line up, so that their connections can be diffed.
    Raises LabelGapError when pods of one owner differ in labels a policy selector reads.
    """
    return Comparison(class_matrix([before, after], [*before.policies, *after.policies]))


def compare(
    objects: Iterable[K8sObject | Mapping], proposed: Iterable[K8sObject | Mapping]
) -> list[Change]:
    """Return the pairs whose connections change once the proposed objects are applied.

    A proposed policy replaces the one of the same name (see `compare_clusters`).
    """
    base = list(objects)
    return compare_clusters(build_cluster(base), build_cluster([*base, *proposed])).changes
