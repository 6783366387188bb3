"""Opening case files: read-write only while loading, read-only for everyone else."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from kforensics.errors import CaseError, QueryError
from kforensics.untrusted import visible

SCHEMA_VERSION = 2
RELOAD_PATHS_SHOWN = 10  # the reload hint names at most this many source files

if TYPE_CHECKING:
    from kforensics.investigate.frames import Frame


def connect(case: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Return a connection to the case file (read-only unless asked), in UTC."""
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
    if found == SCHEMA_VERSION:
        return
    if found > SCHEMA_VERSION:
        con.close()
        raise CaseError(
            f"{visible(str(path))}: the case was written by a newer kforensics (schema version "
            f"{found}); this one ({_version()}) reads version {SCHEMA_VERSION}. Upgrade "
            "kforensics (pip install --upgrade kforensics) to open it."
        )
    paths = _source_paths(con, tables)
    con.close()
    raise CaseError(
        f"{visible(str(path))}: the case has schema version {found}; this kforensics "
        f"({_version()}) reads version {SCHEMA_VERSION}, whose tables mean other things. "
        f"Load its sources again into a new case: {reload_command(path, paths)}"
    )


def reload_command(case: Path, paths: list[str]) -> str:
    """Return the shell command that loads paths into a new case beside `case`."""
    shown = paths[:RELOAD_PATHS_SHOWN]
    more = len(paths) - len(shown)
    words = [shlex.quote(visible(p)) for p in shown] or ["PATHS..."]
    new = case.with_name(f"{case.stem}-v{SCHEMA_VERSION}{case.suffix or '.duckdb'}")
    command = f"kforensics load {' '.join(words)} --case {shlex.quote(visible(str(new)))}"
    if more:
        command += f"   # and {more} more: SELECT DISTINCT path FROM sources"  # noqa: S608 (a shell comment)
    return command


def _source_paths(con: duckdb.DuckDBPyConnection, tables: set[str]) -> list[str]:
    # An old schema may lack the table or the column: then the user names the files.
    if "sources" not in tables:
        return []
    try:
        rows = con.execute("SELECT DISTINCT path FROM sources ORDER BY path").fetchall()
    except duckdb.Error:
        return []
    return [r[0] for r in rows if isinstance(r[0], str)]


def _version() -> str:
    from kforensics import __version__  # late: kforensics/__init__ imports this module

    return __version__


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the canonical tables and views if they are missing."""
    con.execute(resources.files("kforensics").joinpath("schema.sql").read_text())
    if not con.execute("SELECT count(*) FROM schema_version").fetchone()[0]:
        con.execute("INSERT INTO schema_version VALUES ($v)", {"v": SCHEMA_VERSION})


def open_case(case: str | Path, *, since: Any = None, until: Any = None) -> Case:
    """Return the case file as a `Case` (read-only; see `Case` for the window)."""
    return Case(case, since=since, until=until)


# The columns of `Case.findings`, most telling first; `evidence` is a list of the events behind.
_FINDINGS = """
SELECT first_seen, last_seen, level, rule_id, title, actor, impersonated, namespace, resource,
       name, count, source_ips, tactics, attack, evidence, quality, finding_id
FROM findings
WHERE list_contains($levels, level)
  AND ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
  AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
  AND (first_seen IS NULL OR (($since::TIMESTAMPTZ IS NULL OR first_seen >= $since::TIMESTAMPTZ)
       AND ($until::TIMESTAMPTZ IS NULL OR first_seen < $until::TIMESTAMPTZ)))
ORDER BY {order}, first_seen NULLS LAST, rule_id, finding_id
"""
CHARTS = ("timeline", "outcomes_over_time", "identity_verb_heatmap", "attack_matrix")


class Case:
    """A case file for notebooks and scripts: every call opens it read-only and closes it again.

    Holding a Case keeps no DuckDB lock, so `kforensics load` or `detect` can write the file
    from another process between calls. `since` (inclusive) and `until` (exclusive), datetimes
    or ISO 8601 strings ("" or None: open), are the window of every query, chart and findings
    call that is not given its own; undated rows (flagged `no-timestamp`) are in every window.
    Results are `Frame`s: pandas DataFrames that Jupyter shows with log text escaped.
    """

    def __init__(self, path: str | Path, *, since: Any = None, until: Any = None) -> None:
        self.path = Path(path)
        self.since = _time("since", since)
        self.until = _time("until", until)
        with self.connection():
            pass  # a missing, locked or foreign case fails here, not at the first query

    def __repr__(self) -> str:
        return f"Case({str(self.path)!r}, since={self.since}, until={self.until})"

    def window(self, since: Any = None, until: Any = None) -> Case:
        """Return the same case with another window."""
        return Case(self.path, since=since, until=until)

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a read-only connection to the case, closed (and its lock released) after."""
        con = connect(self.path)
        try:
            yield con
        finally:
            con.close()

    def _window(self, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        params["since"] = _time("since", params.get("since", self.since))
        params["until"] = _time("until", params.get("until", self.until))
        return params

    def sql(self, query: str, **params: Any) -> Frame:
        """Return the rows of one SELECT (or WITH ... SELECT) with `$name` values bound."""
        from kforensics.detection.rule import select_problem

        problem = select_problem(query)
        if problem:
            raise QueryError(f"Case.sql: the query {problem}")
        return self._rows(query, params)

    def _rows(self, query: str, params: dict[str, Any]) -> Frame:
        from kforensics.investigate.frames import frame

        with self.connection() as con:
            try:
                return frame(con.sql(query, params=params).to_arrow_table())
            except duckdb.Error as exc:
                raise QueryError(visible(str(exc).splitlines()[0])) from exc

    def findings(
        self,
        min_level: str = "info",
        *,
        identity: str | None = None,
        namespace: str | None = None,
        since: Any = ...,
        until: Any = ...,
    ) -> Frame:
        """Return the stored findings at or above min_level in the window, most severe first.

        `evidence` is a list of {source_file, source_line, ...} per event behind the finding.
        """
        from kforensics.levels import LEVELS, at_or_above, severity_sql

        if min_level not in LEVELS:
            raise QueryError(f"min_level {min_level!r} is not a level: {', '.join(LEVELS)}")
        window = {k: v for k, v in (("since", since), ("until", until)) if v is not ...}
        params = self._window(window) | {
            "levels": list(at_or_above(min_level)),
            "identity": identity or None,
            "namespace": namespace or None,
        }
        return self._rows(_FINDINGS.format(order=severity_sql()), params)

    def stored_findings(self) -> list:
        """Return the stored findings as `Finding`s (what `remediate` takes), most severe first."""
        from kforensics.detection.run import stored_findings

        with self.connection() as con:
            return stored_findings(con)

    def queries(self) -> Frame:
        """Return the named investigations: name, description and parameters."""
        from kforensics.investigate import canned
        from kforensics.investigate.frames import Frame

        rows = [(q.name, q.description, [p.name for p in q.params]) for q in canned.queries()]
        return Frame(rows, columns=["name", "description", "params"])

    def table(self, name: str, **params: Any) -> Any:
        """Return the named investigation's rows as a pyarrow Table (the window applied)."""
        from kforensics.investigate import canned

        query = canned.get(name)
        taken = {p.name for p in query.params}
        window = {k: v for k, v in self._window(params).items() if k in taken or k in params}
        with self.connection() as con:
            return canned.run_query(con, name, window)

    def query(self, name: str, **params: Any) -> Frame:
        """Return the rows of the named investigation (see `queries`), the window applied."""
        from kforensics.investigate.frames import frame

        return frame(self.table(name, **params))

    def chart(self, name: str, **params: Any) -> Any:
        """Return the named Altair chart (`CHARTS`) of the case, the window applied."""
        from kforensics.investigate import charts

        if name not in CHARTS:
            raise QueryError(f"no chart {name!r}; known: {', '.join(CHARTS)}")
        with self.connection() as con:
            return getattr(charts, name)(con, **self._window(params))

    def remediate(self, out: str | Path, **options: Any) -> tuple:
        """Return what `kforensics.remediate` writes to out for the case's stored findings."""
        from kforensics.netpol.remediation import remediate_case

        return remediate_case(self.path, Path(out), findings=self.stored_findings(), **options)


def _time(what: str, value: Any) -> datetime | None:
    from kforensics.investigate.sql import as_time

    try:
        return as_time(value)
    except (AttributeError, TypeError, ValueError) as exc:  # a date has no tzinfo
        raise QueryError(f"{what}: not an ISO 8601 time: {visible(repr(value))}") from exc
