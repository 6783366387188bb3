"""Who to contain, and everything each of them touched: pods, objects, credentials.

An identity is contained when a finding at medium or above names it as the actor (after the
case's exceptions, applied by `kforensics detect`), unless it is a control-plane component or a
node: those are not "an attacker's identity" to cut off, and their misuse shows as findings on
the objects. The footprint comes from the named investigations footprint_pods,
footprint_objects and footprint_credentials, so a notebook shows the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from kforensics.detection.run import Finding
from kforensics.investigate.canned import run_query
from kforensics.levels import at_or_above

CONTAINED_LEVELS = at_or_above("medium")


@dataclass
class Footprint:
    """One identity to contain: its findings and what it touched (rows of the investigations)."""

    identity: str
    findings: list[Finding]
    pods: list[dict] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    credentials: list[dict] = field(default_factory=list)

    @property
    def first_seen(self) -> datetime | None:
        """Return the time of its earliest dated finding: the incident's start for it."""
        times = [f.first_seen for f in self.findings if f.first_seen is not None]
        return min(times) if times else None

    @property
    def service_account(self) -> tuple[str, str] | None:
        """Return (namespace, name) when the identity is a service account."""
        return service_account(self.identity)


def service_account(identity: str | None) -> tuple[str, str] | None:
    """Return (namespace, name) of a system:serviceaccount:NS:NAME identity, else None."""
    if identity and identity.startswith("system:serviceaccount:"):
        parts = identity.split(":")
        if len(parts) == 4 and parts[2] and parts[3]:
            return parts[2], parts[3]
    return None


def containable(identity: str | None) -> bool:
    """True for a person's or a workload's identity (not a component, a node, or anonymous)."""
    if not identity:
        return False
    if service_account(identity):
        return True
    return not identity.startswith("system:")


def identities(findings: list[Finding]) -> dict[str, list[Finding]]:
    """Return the identities to contain, each with its findings at medium or above."""
    out: dict[str, list[Finding]] = {}
    for f in findings:
        if f.level in CONTAINED_LEVELS and containable(f.actor):
            out.setdefault(f.actor, []).append(f)
    return dict(sorted(out.items()))


def _rows(con: duckdb.DuckDBPyConnection, name: str, identity: str) -> list[dict]:
    return run_query(con, name, {"identity": identity}).to_pylist()


def footprints(con: duckdb.DuckDBPyConnection, findings: list[Finding]) -> list[Footprint]:
    """Return the footprint of every identity to contain, in identity order."""
    out = []
    for identity, own in identities(findings).items():
        out.append(
            Footprint(
                identity=identity,
                findings=own,
                pods=_rows(con, "footprint_pods", identity),
                objects=_rows(con, "footprint_objects", identity),
                credentials=_rows(con, "footprint_credentials", identity),
            )
        )
    return out
