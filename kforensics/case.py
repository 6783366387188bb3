"""Opening case files: read-write only while loading, read-only for everyone else."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

from kforensics.errors import CaseError

SCHEMA_VERSION = 2


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
    _check_version(con, path)
    return con


def _check_version(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a case written with another schema: its columns would not mean what ours do."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "events" not in tables:
        return  # a new case: create_schema writes the version
    found = 1
    if "schema_version" in tables:
        # fetchall: a result left unfinished (fetchone) makes every later con.sql() refuse
        row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
        found = row[0] if row and row[0] is not None else 1
    if found != SCHEMA_VERSION:
        con.close()
        hint = "list them with `kforensics sql`: SELECT DISTINCT path FROM sources"
        raise CaseError(
            f"{path}: the case has schema version {found}, this kforensics reads version "
            f"{SCHEMA_VERSION}. Load its sources again into a new case ({hint})."
        )


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the canonical tables and views if they are missing."""
    con.execute(resources.files("kforensics").joinpath("schema.sql").read_text())
    if not con.execute("SELECT count(*) FROM schema_version").fetchone()[0]:
        con.execute("INSERT INTO schema_version VALUES ($v)", {"v": SCHEMA_VERSION})
