"""Finding levels and their order: the one definition that Python and SQL both use."""

from __future__ import annotations

LEVELS = ("info", "low", "medium", "high", "critical")  # least to most severe
MOST_SEVERE_FIRST = tuple(reversed(LEVELS))


def rank(level: str) -> int:
    """Return the level's rank, 0 for info up to 4 for critical (ValueError if not a level)."""
    return LEVELS.index(level)


def at_or_above(level: str) -> tuple[str, ...]:
    """Return the levels at least as severe as `level`, least severe first."""
    return LEVELS[rank(level) :]


def severity_sql(column: str = "level") -> str:
    """Return a SQL expression sorting `column` most severe first (0 for critical)."""
    whens = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(MOST_SEVERE_FIRST))
    return f"CASE {column} {whens} END"
