"""Opening case files: read-write only while loading, read-only for everyone else."""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb

from kforensics.errors import CaseError
from kforensics.untrusted import visible
from kforensics.version import __version__

SCHEMA_VERSION = 7
# Versions whose tables still mean what ours do: the newer schema only adds tables or columns.
# Opened for writing, such a case gains them; read-only, it is read as it is, the tables it
# lacks empty. Version 7 adds `loads.cluster`. Older than 6, whose events keep a native line's
# bytes in its source (raw_offset, digest) and user.extra in a column, a case is loaded again.
ADDITIVE_FROM: set[int] = {6}
# newer than version 2 (3: remediations; 4: notes; 5: the sensitive workloads)
ADDED_TABLES = (
    "remediations", "notes", "sensitive_declaration", "sensitive_workloads", "sensitive_targets",
    "sensitive_findings",
)  # fmt: skip
RELOAD_PATHS_SHOWN = 10
# How long a reader waits for a load or detect to finish storing, and a writer for readers'
# queries to end (notebooks open a connection per query), before saying who holds the case.
READ_WAIT = 15.0
# What DuckDB may hold in memory for a reading connection (notebooks, reports, queries): past it,
# sorts, joins and aggregates spill to a temporary folder, so memory stays flat in the case's
# size (the triage report of 10M events peaked at 4.3 GB with DuckDB's default, 80% of RAM).
READ_MEMORY_LIMIT = "1GB"
WRITE_WAIT = 120.0  # the reload hint names at most this many source files


def connect(
    case: str | Path, *, read_only: bool = True, wait: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Return a connection to the case file (read-only unless asked), in UTC.

    DuckDB lets one process write a file, or several read it, never both: while another process
    holds the case the other way, this retries for up to `wait` seconds (default READ_WAIT or
    WRITE_WAIT), saying on stderr once that it waits for a writer's turn.
    """
    path = Path(case)
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        # DuckDB takes UTF-8 paths only (it fails with a bare `std::bad_cast`)
        raise CaseError(
            f"{visible(os.fsencode(path).decode('utf-8', 'backslashreplace'))}: the case path "
            "is not UTF-8, which DuckDB cannot open: choose another name"
        ) from None
    if read_only and not path.exists():
        raise CaseError(f"{path}: no such case file (create it with `kforensics load`)")
    limit = (READ_WAIT if read_only else WRITE_WAIT) if wait is None else wait
    start, pause, said = time.monotonic(), 0.02, False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            waited = time.monotonic() - start
            if "lock" not in str(exc).lower():
                raise CaseError(f"{path}: cannot open the case: {exc}") from exc
            if waited >= limit:
                who = "being loaded or detected" if read_only else "open"
                raise CaseError(
                    f"{path}: the case is {who} in another process (waited {waited:.0f} s); "
                    "DuckDB allows one writer and no readers beside it. Retry when it is done, "
                    "or close the other process."
                ) from exc
            if not read_only and not said and waited >= 1:
                # a notebook cell mid-query: worth a word, since the writer may wait its turn
                print(f"{path}: waiting for other processes reading the case...", file=sys.stderr)
                said = True
            time.sleep(min(pause, max(0.0, limit - waited)))
            pause = min(pause * 2, 0.25)
        except duckdb.ConnectionException as exc:  # DuckDB: one mode per file and process
            mode = "read-only" if not read_only else "for writing"
            raise CaseError(
                f"{path}: the case is open {mode} elsewhere in this process (a notebook kernel?); "
                "close that connection and retry"
            ) from exc
    con.execute("SET TimeZone = 'UTC'")
    if read_only:
        con.execute("SET memory_limit = $m", {"m": READ_MEMORY_LIMIT})
        con.execute("SET temp_directory = $d", {"d": _spill_folder()})
    _check_version(con, path, read_only)
    return con


@cache
def _spill_folder() -> str:
    """Return this process's folder for what reading connections spill, removed at exit.

    Not DuckDB's default beside the case: the case's folder may be read-only (evidence).
    """
    folder = tempfile.mkdtemp(prefix="kforensics-spill-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _check_version(con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
    """Refuse a case written with another schema: its columns would not mean what ours do."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "events" not in tables:
        return  # a new case: create_schema writes the version
    found = 1
    if "schema_version" in tables:
        # fetchall: a result left unfinished (fetchone) makes every later con.sql() refuse
        row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
        found = row[0] if row and row[0] is not None else 1
    if found == SCHEMA_VERSION:
        return
    if found in ADDITIVE_FROM:
        if not read_only:
            create_schema(con)
            con.execute("UPDATE schema_version SET version = $v", {"v": SCHEMA_VERSION})
        else:
            for name in ADDED_TABLES:  # queries that read them (findings' notes) find them empty
                added_table(con, name)
        return
    if found > SCHEMA_VERSION:
        con.close()
        raise CaseError(
            f"{visible(str(path))}: the case was written by a newer kforensics (schema version "
            f"{found}); this one ({__version__}) reads version {SCHEMA_VERSION}. Upgrade "
            "kforensics (pip install --upgrade kforensics) to open it."
        )
    paths, total = _source_paths(con, tables)
    con.close()
    raise CaseError(
        f"{visible(str(path))}: the case has schema version {found}; this kforensics "
        f"({__version__}) reads version {SCHEMA_VERSION}, whose tables mean other things. "
        f"Load its sources again into a new case: {reload_command(path, paths, total)}"
    )


def reload_command(case: Path, paths: list[str], total: int | None = None) -> str:
    """Return the shell command that loads paths (of `total` sources) into a new case beside it."""
    shown = paths[:RELOAD_PATHS_SHOWN]
    more = (len(paths) if total is None else total) - len(shown)
    words = [shlex.quote(visible(p)) for p in shown] or ["PATHS..."]
    new = case.with_name(f"{case.stem}-v{SCHEMA_VERSION}{case.suffix or '.duckdb'}")
    command = f"kforensics load {' '.join(words)} --case {shlex.quote(visible(str(new)))}"
    if more > 0:
        # kforensics refuses this case, so the list is read with DuckDB's own command line
        listing = shlex.quote("SELECT DISTINCT path FROM sources ORDER BY path")
        command += f"   # and {more} more: duckdb -readonly {shlex.quote(visible(str(case)))} "
        command += listing
    return command


def _source_paths(con: duckdb.DuckDBPyConnection, tables: set[str]) -> tuple[list[str], int]:
    """Return the first source paths (enough for the hint) and how many there are."""
    if "sources" not in tables:  # an old schema may lack the table or the column
        return [], 0
    try:
        rows = con.execute(
            "SELECT DISTINCT path FROM sources WHERE path IS NOT NULL ORDER BY path LIMIT $n",
            {"n": RELOAD_PATHS_SHOWN},
        ).fetchall()
        total = con.execute("SELECT count(DISTINCT path) FROM sources").fetchall()[0][0]
    except duckdb.Error:
        return [], 0
    return [r[0] for r in rows], total


def own_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the names of the case's own tables: its main schema's, not temporary, in order."""
    return [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT temporary ORDER BY table_name"
        ).fetchall()
    ]


def added_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Create an empty temp table `name`, as schema.sql defines it, if the case lacks it.

    For a case opened read-only whose schema version predates the table (ADDITIVE_FROM):
    queries that read it then find it empty, as it would be.
    """
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n", {"n": name}
    ).fetchall()[0][0]
    if exists:
        return
    schema = resources.files("kforensics").joinpath("schema.sql").read_text()
    start = schema.index(f"CREATE TABLE IF NOT EXISTS {name} (")
    statement = schema[start : schema.index(");", start) + 2]
    con.execute(statement.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the canonical tables and views if they are missing."""
    con.execute(resources.files("kforensics").joinpath("schema.sql").read_text())
    if not con.execute("SELECT count(*) FROM schema_version").fetchone()[0]:
        con.execute("INSERT INTO schema_version VALUES ($v)", {"v": SCHEMA_VERSION})


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction of con: committed at its end, rolled back on error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
