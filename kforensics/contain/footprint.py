"""Who to contain, and everything each of them touched: pods, objects, credentials.

The identities contained are the suspects (kforensics.investigate.suspects, the one definition
the triage storyline uses too): actors of findings at medium or above, after the case's
exceptions, components and nodes left out. The footprint comes from the named investigations
footprint_pods, footprint_objects and footprint_credentials, so a notebook shows the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from kforensics.detection.run import Finding
from kforensics.investigate.canned import run_query
from kforensics.investigate.suspects import service_account, suspicious


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


def identities(findings: list[Finding]) -> dict[str, list[Finding]]:
    """Return the identities to contain, each with its findings at medium or above."""
    out: dict[str, list[Finding]] = {}
    for f in findings:
        if suspicious(f.level, f.actor):
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
