"""The public API's own objects: `Case` (a case file for notebooks and scripts), `detect`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from kforensics.case import connect
from kforensics.contain.remediate import Remediation, remediate_case
from kforensics.detection.rule import Rule, load_rules
from kforensics.detection.run import Exception_, Finding, load_exceptions, stored_findings
from kforensics.detection.run import detect as run_detect
from kforensics.errors import QueryError
from kforensics.investigate import canned
from kforensics.investigate.sql import as_time
from kforensics.sensitive.declare import from_value
from kforensics.sensitive.store import targets
from kforensics.sqlcheck import select_problem
from kforensics.untrusted import visible

if TYPE_CHECKING:
    from kforensics.investigate.frames import Frame
    from kforensics.sensitive.view import SensitiveView


def detect(
    case: str | Path,
    rules: list[Rule] | None = None,
    *,
    rule_dirs: list[Path] | tuple[Path, ...] = (),
    exceptions: list[Exception_] | str | Path = (),
    since: datetime | None = None,
    until: datetime | None = None,
    store: bool = True,
    sensitive: str | Path | dict | None = None,
    baseline: str | Path | None = None,
    baseline_until: datetime | None = None,
) -> list[Finding]:
    """Return the findings of the rules (default: built-in plus rule_dirs) over the case, stored.

    `exceptions` is a list or the path of an exceptions file, as `kforensics detect
    --exceptions` takes; `sensitive` a sensitive-workloads file or mapping (default:
    sensitive.yaml beside the case, else what the case stored), `baseline` a baseline case.
    """
    if rules is None:
        rules = load_rules([Path(d) for d in rule_dirs])
    if isinstance(exceptions, str | Path):
        exceptions = load_exceptions(Path(exceptions))
    declared = from_value(sensitive, case)
    return run_detect(
        case, rules, exceptions=exceptions, since=since, until=until, store=store,
        sensitive=None if declared is None else targets(case, declared, baseline),
        baseline_case=baseline,
        baseline_until=as_time(baseline_until),
    )  # fmt: skip


def open_case(case: str | Path, *, since: Any = None, until: Any = None) -> Case:
    """Return the case file as a `Case` (read-only; see `Case` for the window)."""
    return Case(case, since=since, until=until)


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

        `evidence` is a list of {source_file, source_line, ...} per event behind the finding
        (the named investigation `findings`).
        """
        window = {k: v for k, v in (("since", since), ("until", until)) if v is not ...}
        return self.query(
            "findings", min_level=min_level, identity=identity, namespace=namespace, **window
        )

    def stored_findings(self) -> list:
        """Return the stored findings as `Finding`s (what `remediate` takes), most severe first."""
        with self.connection() as con:
            return stored_findings(con)

    def queries(self) -> Frame:
        """Return the named investigations: name, description and parameters."""
        from kforensics.investigate.frames import Frame

        rows = [(q.name, q.description, [p.name for p in q.params]) for q in canned.queries()]
        return Frame(rows, columns=["name", "description", "params"])

    def table(self, name: str, **params: Any) -> Any:
        """Return the named investigation's rows as a pyarrow Table (the window applied)."""
        query = canned.get(name)
        taken = {p.name for p in query.params}
        window = {k: v for k, v in self._window(params).items() if k in taken or k in params}
        with self.connection() as con:
            return canned.run_query(con, name, window)

    def query(self, name: str, **params: Any) -> Frame:
        """Return the rows of the named investigation (see `queries`), the window applied."""
        from kforensics.investigate.frames import frame

        return frame(self.table(name, **params))

    def export(self, what: str, path: str | Path, format: str | None = None, **params: Any) -> int:
        """Return how many rows of a named investigation (the window applied) or of one SELECT
        (`$name` values bound) were written to path as csv, jsonl or parquet (kf.export)."""
        from kforensics.investigate.export import export

        if what in {q.name for q in canned.queries()}:
            return export(self.table(what, **params), path, format)
        problem = select_problem(what)
        if problem:
            shown = visible(repr(what[:60]))
            raise QueryError(f"Case.export: {shown} is no investigation, and the query {problem}")
        with self.connection() as con:
            try:
                return export(con.sql(what, params=params), path, format)
            except duckdb.Error as exc:
                raise QueryError(visible(str(exc).splitlines()[0])) from exc

    def chart(self, name: str, **params: Any) -> Any:
        """Return the named Altair chart (`CHARTS`) of the case, the window applied."""
        from kforensics.investigate import charts

        if name not in CHARTS:
            raise QueryError(f"no chart {name!r}; known: {', '.join(CHARTS)}")
        with self.connection() as con:
            return getattr(charts, name)(con, **self._window(params))

    def note(self, target_kind: str, target: str, **values: Any) -> int:
        """Return the id of a note stored on an event, finding or identity (see add_note)."""
        from kforensics.investigate.notes import add_note

        return add_note(self.path, target_kind, target, **values)

    def notes(self, target_kind: str | None = None, target: str | None = None) -> Frame:
        """Return the case's notes (of one target kind and/or target when given), oldest first."""
        from kforensics.investigate.notes import check_kind, notes_sql

        check_kind(target_kind)
        return self._rows(notes_sql(subject=False), {"kind": target_kind, "target": target})

    def sensitive(self, sensitive: Any = None, *, with_fences: bool = True) -> SensitiveView:
        """Return the sensitive workloads in the window: declared (sensitive: a file or a
        mapping; default sensitive.yaml beside the case, else what detect stored), who reached
        into them, first-time pairs, candidates and fences."""
        from kforensics.sensitive.view import sensitive_view

        with self.connection() as con:
            return sensitive_view(
                con, self.path, sensitive, since=self.since, until=self.until,
                with_fences=with_fences,
            )  # fmt: skip

    def remediate(self, out: str | Path, **options: Any) -> Remediation:
        """Return what `kforensics.remediate` writes to out for the case's stored findings."""
        return remediate_case(self.path, Path(out), findings=self.stored_findings(), **options)


def _time(what: str, value: Any) -> datetime | None:
    try:
        return as_time(value)
    except (AttributeError, TypeError, ValueError) as exc:  # a date has no tzinfo
        raise QueryError(f"{what}: not an ISO 8601 time: {visible(repr(value))}") from exc
