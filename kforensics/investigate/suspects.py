"""Who is a suspect: the one definition the storyline and the containment plan share.

An identity is suspicious when a stored finding at medium or above names it as the actor (after
the case's exceptions, applied by `kforensics detect`), unless it is a control-plane component
or a node: those are not "an attacker's identity" to follow or cut off, and their misuse shows
as findings on the objects.
"""

from __future__ import annotations

from kforensics.levels import at_or_above

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
