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


def covered(con: duckdb.DuckDBPyConnection, full: str) -> list[int] | None:
    """Return the loads whose requests the kept rows hold, if full derived them; else None."""
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT temporary"
        ).fetchall()
    }
    if not {ROWS, STATE} <= tables:
        return None
    row = con.execute(f"SELECT loads, ev_digest FROM main.{STATE}").fetchall()  # noqa: S608
    if len(row) != 1 or row[0][1] != digest(full):
        return None
    loads = {r[0] for r in con.execute("SELECT load_id FROM loads").fetchall()}
    # rows of a load the case no longer has were not derived from this case's events
    return sorted(row[0][0]) if set(row[0][0]) <= loads else None


def current(con: duckdb.DuckDBPyConnection, full: str) -> bool:
    """Return whether the kept rows are those full gives now: derived by it, every load in."""
    loads = covered(con, full)
    return loads is not None and loads == sorted(
        r[0] for r in con.execute("SELECT load_id FROM loads").fetchall()
    )


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
