"""Who is a suspect: the one definition the storyline and the containment plan share.

An identity is suspicious when a stored finding at medium or above names it as the actor (after
the case's exceptions, applied by `kforensics detect`), unless it is a control-plane component
or a node: those are not "an attacker's identity" to follow or cut off, and their misuse shows
as findings on the objects.
"""

from __future__ import annotations

from typing import Any

from kforensics.investigate.canned import run_query
from kforensics.investigate.sql import Time
from kforensics.levels import at_or_above, rank

SUSPECT_LEVELS = at_or_above("medium")


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


def suspicious(level: str, actor: str | None) -> bool:
    """True when a finding of this level by this actor makes the actor a suspect."""
    return level in SUSPECT_LEVELS and containable(actor)


def suspects(con: Any, since: Time = None, until: Time = None) -> list[str]:
    """Return the case's suspects in the window: worst finding first, then most findings."""
    window = {"min_level": SUSPECT_LEVELS[0], "since": since, "until": until}
    worst: dict[str, tuple[int, int]] = {}
    for row in run_query(con, "suspect_levels", window).to_pylist():
        if suspicious(row["level"], row["actor"]):
            top, n = worst.get(row["actor"], (0, 0))
            worst[row["actor"]] = (max(top, rank(row["level"])), n + row["findings"])
    return sorted(worst, key=lambda who: (-worst[who][0], -worst[who][1], who))
