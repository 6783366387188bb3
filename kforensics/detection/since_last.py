"""`detect --since-last`: the rules over the events loaded since the last stored run, merged.

A run's watermark is the set of loads its findings cover (`detect_watermarks`), never a time
taken from the log (timestamps are the attacker's to choose). The next run with --since-last
gives the rules that judge one event on its own (a predicate over one row of `ev`: `local_rule`)
only the events of the loads since, and the events that the last run's findings of those rules
cite (so that their subjects and exceptions are judged again the same way); every other rule
(windows, baselines, sequences, rules reading other tables) sees the whole case, the history it
needs. Hits are then grouped as a full run groups them: a finding of the same rule and subject
(the same finding_id) gathers the old evidence and the new, with its counts and first and last
seen recomputed, so the findings are those of a full run over the same events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from kforensics.errors import KforensicsError

if TYPE_CHECKING:
    from kforensics.detection.rule import Rule
    from kforensics.detection.run import Exception_


class SinceLastError(KforensicsError):
    """--since-last cannot continue the last run: the message says why and what to run."""


@dataclass(frozen=True)
class Incremental:
    """What a --since-last run continues: the last run and the loads added since."""

    last_run: datetime
    covered: tuple[int, ...]  # the loads the last run's findings cover
    new: tuple[int, ...]  # the loads since
    local: frozenset[str]  # the ids of the rules that see only the new events (and old evidence)


def describe(inc: Incremental | None, rules: int) -> str:
    """Return one line saying what a --since-last run does."""
    if inc is None:
        return "--since-last: no earlier run recorded the loads it covered: a full run"
    loads = ", ".join(map(str, inc.new)) or "none"
    return (
        f"--since-last: going on from the run of {inc.last_run:%Y-%m-%d %H:%M:%S} UTC; loads "
        f"since: {loads}; {len(inc.local)} of {rules} rules judge one event alone and see "
        "only those loads' events, the others the whole case"
    )


def rules_digest(rules: list[Rule], exceptions: list[Exception_]) -> str:
    """Return a digest of what decides the hits and their grouping: rules' SQL, exceptions."""
    doc = {
        "rules": sorted([r.id, r.sql, list(r.group_by)] for r in rules),
        "exceptions": sorted([e.rule_id, [[k, list(v)] for k, v in e.fields]] for e in exceptions),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def loads(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Return the ids of the case's loads (a load's events are visible once it has committed)."""
    return [r[0] for r in con.execute("SELECT load_id FROM loads ORDER BY load_id").fetchall()]


def last_run(
    con: duckdb.DuckDBPyConnection, rules: list[Rule], exceptions: list[Exception_]
) -> tuple[datetime, list[int]] | None:
    """Return the run a --since-last run continues (when, the loads it covered); None when no
    run has stored its watermark.

    Raise SinceLastError when the last run cannot be continued: it had a --since/--until window,
    or other rules or exceptions judged it.
    """
    last = con.execute(
        "SELECT w.detected_at, w.loads, w.rules_digest, r.since, r.until FROM detect_watermarks w "
        "JOIN detect_runs r USING (detected_at) ORDER BY w.detected_at DESC LIMIT 1"
    ).fetchall()
    if not last:
        return None
    at, covered, digest, since, until = last[0]
    newest = con.execute("SELECT max(detected_at) FROM detect_runs").fetchall()[0][0]
    if newest != at:
        # a later run (by an older kforensics) stored findings without a watermark
        return None
    if since is not None or until is not None:
        raise SinceLastError(
            "the last detect ran over a --since/--until window, not the whole case: run detect "
            "without --since-last once"
        )
    if digest != rules_digest(rules, exceptions):
        raise SinceLastError(
            "the last detect ran other rules or exceptions (or the rules changed since): run "
            "detect without --since-last with these, then --since-last goes on from it"
        )
    return at, covered


def plan(
    con: duckdb.DuckDBPyConnection, rules: list[Rule], exceptions: list[Exception_]
) -> Incremental | None:
    """Return what a --since-last run continues; None when no run has stored its watermark.

    Raise SinceLastError as last_run does.
    """
    last = last_run(con, rules, exceptions)
    if last is None:
        return None
    at, covered = last
    done = set(covered)
    return Incremental(
        at,
        tuple(sorted(done)),
        tuple(i for i in loads(con) if i not in done),
        frozenset(r.id for r in rules if local_rule(con, r.sql)),
    )


def local_rule(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """Return whether sql judges each row of ev on its own: one SELECT reading ev once, with no
    window, aggregate, subquery, grouping, CTE, set operation, limit or other table."""
    doc = json.loads(con.execute("SELECT json_serialize_sql($s)", {"s": sql}).fetchall()[0][0])
    if doc.get("error") or len(doc.get("statements", [])) != 1:
        return False
    node = doc["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE" or node.get("cte_map", {}).get("map"):
        return False
    if node.get("group_expressions") or node.get("having") or node.get("qualify"):
        return False
    if any(m.get("type") != "DISTINCT_MODIFIER" for m in node.get("modifiers", [])):
        return False
    table = node.get("from_table") or {}
    if table.get("type") != "BASE_TABLE" or table.get("table_name", "").lower() != "ev":
        return False
    if table.get("schema_name") or table.get("catalog_name"):
        return False
    aggregates = _aggregates(con)
    rest = {k: v for k, v in node.items() if k != "from_table"}
    return not any(_global(n, aggregates) for n in _nodes(rest))


_AGGREGATES: set[str] = set()  # DuckDB's aggregate and table functions, read once a process


def _aggregates(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Return the names of DuckDB's aggregate and table functions (lowercase)."""
    if not _AGGREGATES:
        _AGGREGATES.update(
            r[0].lower()
            for r in con.execute(
                "SELECT DISTINCT function_name FROM duckdb_functions() "
                "WHERE function_type IN ('aggregate', 'table', 'table_macro')"
            ).fetchall()
        )
    return _AGGREGATES


def _nodes(value: object) -> Iterator[dict]:
    """Yield every mapping inside a parsed statement."""
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _nodes(v)
    elif isinstance(value, list):
        for v in value:
            yield from _nodes(v)


def _global(node: dict, aggregates: set[str]) -> bool:
    """Return whether a parse-tree node looks beyond the row: a subquery, window, aggregate."""
    if node.get("class") in ("SUBQUERY", "WINDOW") or "table_name" in node:
        return True
    if node.get("class") == "FUNCTION" and node.get("function_name", "").lower() in aggregates:
        return True
    return node.get("type") in ("SUBQUERY", "TABLE_FUNCTION", "BASE_TABLE", "JOIN")


@contextmanager
def new_events_only(con: duckdb.DuckDBPyConnection, inc: Incremental) -> Iterator[None]:
    """Make `ev` the events of the new loads and those cited by the last run's findings of
    the local rules, for the local rules to run over; the whole `ev` again afterwards."""
    (whole,) = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'ev' AND temporary"
    ).fetchall()[0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE kf_ev_new AS SELECT * FROM ev "
        "WHERE list_contains($new, load_id) OR event_id IN (SELECT unnest(evidence).event_id "
        "FROM findings WHERE list_contains($local, rule_id))",
        {"new": list(inc.new), "local": sorted(inc.local)},
    )
    try:
        con.execute("CREATE OR REPLACE TEMP VIEW ev AS SELECT * FROM kf_ev_new")
        yield
    finally:
        # the view as prepare made it (duckdb_views gives `CREATE TEMP VIEW ev AS ...`)
        con.execute(whole.replace("CREATE TEMP VIEW", "CREATE OR REPLACE TEMP VIEW", 1))
        con.execute("DROP TABLE IF EXISTS kf_ev_new")


def store_watermark(
    con: duckdb.DuckDBPyConnection,
    at: datetime,
    covered: list[int],
    rules: list[Rule],
    exceptions: list[Exception_],
) -> None:
    """Record the loads a stored run covers and what judged them (in the caller's transaction)."""
    con.execute(
        "INSERT INTO detect_watermarks VALUES ($at, $loads, $digest)",
        {"at": at, "loads": covered, "digest": rules_digest(rules, exceptions)},
    )
