"""Exact repeats of events removed after a load, and audit IDs that two events share counted."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from kforensics.ingest.sources import SourceStats


def remove_duplicates(
    con: duckdb.DuckDBPyConnection, load_id: int, sources: list[SourceStats]
) -> None:
    """Delete this load's events already in the case (or seen earlier in this load).

    An exact repeat is the same JSON whatever its whitespace or escaping: the same event as a
    native line with spaces, inside a pretty-printed EventList and re-encoded from an AKS
    record is one event. Only events sharing audit ID, stage and time can be repeats, so the
    canonical text is computed for those alone.
    """
    # Read by the query below as a replacement scan (see events.EventWriter.insert).
    file_order = pa.table(  # noqa: F841
        {"source_file": [s.path for s in sources], "seq": list(range(len(sources)))}
    )
    had_events = con.execute(
        "SELECT count(*) > 0 FROM events WHERE load_id < $id", {"id": load_id}
    ).fetchone()[0]
    same = (
        "e.audit_id IS NOT DISTINCT FROM m.audit_id AND e.stage IS NOT DISTINCT FROM m.stage "
        "AND e.ts IS NOT DISTINCT FROM m.ts"
    )
    scope = (
        "FROM events e JOIN (SELECT DISTINCT audit_id, stage, ts FROM events "  # noqa: S608
        "WHERE load_id = $id) m ON " + same
        if had_events
        else "FROM events e WHERE e.load_id = $id"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dup AS
        WITH cand AS (
            SELECT e.rowid AS rid, e.source_file, e.load_id, e.source_line, e.source_index,
                   e.audit_id, e.stage, e.ts, e.raw
            {scope}
        ),
        multi AS (SELECT audit_id, stage, ts FROM cand GROUP BY ALL HAVING count(*) > 1),
        keyed AS (
            SELECT e.*, md5(json(e.raw)) AS canonical
            FROM cand e JOIN multi m ON {same}
        )
        SELECT rid, source_file FROM (
            SELECT k.rid, k.source_file, k.load_id,
                   row_number() OVER (
                       PARTITION BY k.canonical
                       ORDER BY k.load_id, o.seq, k.source_line, k.source_index
                   ) AS rn
            FROM keyed k
            LEFT JOIN file_order o ON k.load_id = $id AND o.source_file = k.source_file
        ) WHERE rn > 1 AND load_id = $id
        """,  # noqa: S608 (scope and same are constant strings)
        {"id": load_id},
    )
    counts = dict(con.execute("SELECT source_file, count(*) FROM dup GROUP BY 1").fetchall())
    if counts:
        con.execute("DELETE FROM events WHERE rowid IN (SELECT rid FROM dup)")
    con.execute("DROP TABLE dup")
    for s in sources:
        n = counts.get(s.path, 0)
        s.duplicates += n
        s.events_loaded -= n


def count_collisions(con: duckdb.DuckDBPyConnection, load_id: int) -> int:
    """Return how many (audit ID, stage) pairs of this load's events more than one event has."""
    return con.execute(
        "SELECT count(*) FROM (SELECT audit_id, stage FROM events WHERE audit_id IN "
        "(SELECT audit_id FROM events WHERE load_id = $id) GROUP BY ALL HAVING count(*) > 1)",
        {"id": load_id},
    ).fetchone()[0]
