"""Opening case files: read-write only while loading, read-only for everyone else."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

SCHEMA_VERSION = 1


def connect(case: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Return a connection to the case file (read-only unless asked), in UTC."""
    path = Path(case)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no case file at {path}")
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the canonical tables and views if they are missing."""
    con.execute(resources.files("kforensics").joinpath("schema.sql").read_text())
