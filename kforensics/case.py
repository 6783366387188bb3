"""Opening case files: read-write only while loading, read-only for everyone else."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

SCHEMA_VERSION = 1


class CaseError(Exception):
    """A case file that cannot be opened: missing, locked by another process, or not DuckDB."""


def connect(case: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Return a connection to the case file (read-only unless asked), in UTC."""
    path = Path(case)
    if read_only and not path.exists():
        raise CaseError(f"{path}: no such case file (create it with `kforensics load`)")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            who = "being loaded" if read_only else "open"
            raise CaseError(
                f"{path}: the case is {who} in another process; DuckDB allows one writer "
                "and no readers beside it. Close the other process (a notebook?) and retry."
            ) from exc
        raise CaseError(f"{path}: cannot open the case: {exc}") from exc
    con.execute("SET TimeZone = 'UTC'")
    return con


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the canonical tables and views if they are missing."""
    con.execute(resources.files("kforensics").joinpath("schema.sql").read_text())
