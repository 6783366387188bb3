"""Exact repeats of events removed after a load, and audit IDs that two events share counted."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import duckdb
import pyarrow as pa

from kforensics.ingest.original import locate, read_lines
from kforensics.ingest.sources import SourceStats

# Two texts of one event compare equal as JSON when this gives the same string (DuckDB's json()
# re-serialises: whitespace and escapes differ, values and key order not).
CANONICAL_JSON = "'c' || json({text})"


def remove_duplicates(
    con: duckdb.DuckDBPyConnection, load_id: int, sources: list[SourceStats]
) -> int:
    """Delete this load's events already in the case (or seen earlier in this load).

    An exact repeat is the same JSON whatever its whitespace or escaping: the same event as a
    native line with spaces, inside a pretty-printed EventList and re-encoded from an AKS
    record is one event. Only events sharing audit ID, stage and time can be repeats. Where
    they share their SHA-256 too they are the same bytes; where they differ, their texts are
    compared as JSON, a native line's read again from its source (and checked against its
    digest). Returns how many events could not be compared, their source being gone or
    changed: those are kept, never dropped on a guess.
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
        CREATE OR REPLACE TEMP TABLE dup_cand AS
        WITH cand AS (
            SELECT e.rowid AS rid, e.source_file, e.load_id, e.source_line, e.source_index,
                   e.audit_id, e.stage, e.ts, e.digest, e.raw, e.raw_offset
            {scope}
        ),
        multi AS (
            SELECT audit_id, stage, ts, count(DISTINCT digest) > 1 AS mixed
            FROM cand GROUP BY ALL HAVING count(*) > 1
        )
        SELECT e.*, m.mixed FROM cand e JOIN multi m ON {same}
        """,  # noqa: S608 (scope and same are constant strings)
        {"id": load_id},
    )
    texts = _native_texts(con)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dup AS
        SELECT rid, source_file, rn > 1 AND canonical IS NOT NULL AS repeat FROM (
            SELECT k.rid, k.source_file, k.load_id, k.canonical,
                   row_number() OVER (
                       PARTITION BY coalesce(k.canonical, 'u' || k.rid)
                       ORDER BY k.load_id, o.seq, k.source_line, k.source_index
                   ) AS rn,
                   -- an event of the group could not be read again: no one can say
                   count(*) FILTER (k.canonical IS NULL)
                       OVER (PARTITION BY k.audit_id, k.stage, k.ts) > 0 AS unsure
            FROM (
                SELECT c.*, CASE WHEN NOT c.mixed THEN 'd' || hex(c.digest)
                    ELSE {CANONICAL_JSON.format(text="coalesce(c.raw, t.text)")} END AS canonical
                FROM dup_cand c LEFT JOIN texts t USING (rid)
            ) k
            LEFT JOIN file_order o ON k.load_id = $id AND o.source_file = k.source_file
        ) WHERE load_id = $id AND (rn > 1 OR unsure)
        """,  # noqa: S608 (CANONICAL_JSON is a constant)
        {"id": load_id},
    )
    del texts
    counts = dict(
        con.execute("SELECT source_file, count(*) FROM dup WHERE repeat GROUP BY 1").fetchall()
    )
    unconfirmed = con.execute("SELECT count(*) FROM dup WHERE NOT repeat").fetchone()[0]
    if counts:
        con.execute("DELETE FROM events WHERE rowid IN (SELECT rid FROM dup WHERE repeat)")
    con.execute("DROP TABLE dup")
    con.execute("DROP TABLE dup_cand")
    for s in sources:
        n = counts.get(s.path, 0)
        s.duplicates += n
        s.events_loaded -= n
    return unconfirmed


def _native_texts(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return (rid, text) of the candidate native lines that must be compared as JSON."""
    wanted = con.execute(
        "SELECT source_file, list(rid), list(raw_offset), list(digest) FROM dup_cand "
        "WHERE mixed AND raw IS NULL AND raw_offset IS NOT NULL GROUP BY source_file"
    ).fetchall()
    texts = read_native_texts(wanted)
    return pa.table(
        {
            "rid": pa.array(list(texts), pa.int64()),
            "text": pa.array(list(texts.values()), pa.string()),
        }
    )


def read_native_texts(
    wanted: Iterable[tuple[str, list[Any], list[int], list[bytes]]],
) -> dict[Any, str]:
    """Return {id: text} of native lines read again from their sources.

    wanted holds (source_file, ids, raw_offsets, digests). A line whose bytes no longer have
    its digest (the file changed or is gone) has no text, and is never taken for a repeat.
    """
    texts = {}
    for source_file, ids, offsets, digests in wanted:
        where = locate(source_file)
        if where is None:
            continue
        lines, _ = read_lines(where, offsets)
        for key, offset, digest in zip(ids, offsets, digests, strict=True):
            line = lines.get(offset)
            if line is not None and hashlib.sha256(line).digest() == bytes(digest):
                texts[key] = line.decode("utf-8")
    return texts


def count_collisions(con: duckdb.DuckDBPyConnection, load_id: int) -> int:
    """Return how many (audit ID, stage) pairs of this load's events more than one event has."""
    return con.execute(
        "SELECT count(*) FROM (SELECT audit_id, stage FROM events WHERE audit_id IN "
        "(SELECT audit_id FROM events WHERE load_id = $id) GROUP BY ALL HAVING count(*) > 1)",
        {"id": load_id},
    ).fetchone()[0]
