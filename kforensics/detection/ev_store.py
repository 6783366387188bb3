"""`ev` kept in the case by `detect --since-last`: each run derives only what new loads touch.

An ev row is a function of its request's own events alone (`detection.ev`), and loads only add
events (a later load's repeats are dropped from that load, never from an earlier one). So the
rows kept for the loads they cover stay right, except those of a request that a later load
gives another stage: those are derived again, with the new requests.

A `--since-last` run first brings the kept rows up to date (`keep`), then its rules read them
as `ev`. The rows are kept in `detect_ev`, and `detect_ev_state` says which loads they cover and the
digest of what derived them: the SELECT (rules naming other columns derive other columns),
kforensics' and DuckDB's versions. Rows another digest derived are not used, and replaced.
"""

from __future__ import annotations

import hashlib

import duckdb

from kforensics.case import own_tables
from kforensics.errors import CaseError
from kforensics.version import __version__

ROWS = "detect_ev"
STATE = "detect_ev_state"

# The requests of the loads the kept rows do not cover: those with any stage in those loads.
_TOUCHED = "SELECT request_id FROM events WHERE NOT list_contains($covered, load_id)"
# What detection.ev derives rows from, for the touched requests only (its {columns} kept).
TOUCHED_REQUESTS = f"SELECT {{columns}} FROM requests WHERE request_id IN ({_TOUCHED})"  # noqa: S608


def digest(full: str) -> str:
    """Return the hex SHA-256 of what derives ev's rows: the SELECT and the versions."""
    text = "\n".join((full, __version__, duckdb.__version__))
    return hashlib.sha256(text.encode()).hexdigest()


class StaleRows(CaseError):
    """The kept rows are not those of the case now (a load committed since they were kept)."""


def _state(con: duckdb.DuckDBPyConnection, full: str) -> tuple[list[int] | None, list[int]]:
    """Return the loads the kept rows cover if full derived them (else None), and the case's."""
    case_loads = [r[0] for r in con.execute("SELECT load_id FROM loads ORDER BY 1").fetchall()]
    if not {ROWS, STATE} <= set(own_tables(con)):
        return None, case_loads
    row = con.execute(f"SELECT loads, ev_digest FROM main.{STATE}").fetchall()  # noqa: S608
    if len(row) != 1 or row[0][1] != digest(full):
        return None, case_loads
    # rows of a load the case no longer has were not derived from this case's events
    kept = sorted(row[0][0])
    return (kept if set(kept) <= set(case_loads) else None), case_loads


def covered(con: duckdb.DuckDBPyConnection, full: str) -> list[int] | None:
    """Return the loads whose requests the kept rows hold, if full derived them; else None."""
    return _state(con, full)[0]


def check_current(con: duckdb.DuckDBPyConnection, full: str) -> None:
    """Raise StaleRows unless the kept rows are those full gives now: derived by it, every
    load of the case in."""
    kept, case_loads = _state(con, full)
    if kept != case_loads:
        raise StaleRows("ev kept in the case is not the case's now: run detect again")


def keep(con: duckdb.DuckDBPyConnection, full: str, touched: str) -> None:
    """Make the kept rows those full gives now, in the caller's transaction.

    full derives every request's row (no window), touched the same for TOUCHED_REQUESTS. Where
    the rows kept are full's, only the touched requests' rows are replaced; else every row is
    derived again.
    """
    loads = covered(con, full)
    if loads is None:
        whole = {"since": None, "until": None}
        con.execute(f"CREATE OR REPLACE TABLE main.{ROWS} AS {full}", whole)
    else:
        params = {"covered": loads}
        con.execute(f"CREATE OR REPLACE TEMP TABLE kf_ev_touched AS {touched}", params)
        con.execute(
            f"DELETE FROM main.{ROWS} WHERE event_id IN (SELECT event_id FROM events "  # noqa: S608
            f"WHERE request_id IN ({_TOUCHED}))",
            params,
        )
        con.execute(f"INSERT INTO main.{ROWS} SELECT * FROM kf_ev_touched")  # noqa: S608
        con.execute("DROP TABLE kf_ev_touched")
    con.execute(f"CREATE OR REPLACE TABLE main.{STATE} (loads INTEGER[] NOT NULL, "
                "ev_digest VARCHAR NOT NULL)")  # fmt: skip
    con.execute(
        f"INSERT INTO main.{STATE} SELECT list(load_id ORDER BY load_id), $d FROM loads",  # noqa: S608
        {"d": digest(full)},
    )
