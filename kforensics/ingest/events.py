"""Writing events: chunks of lines or records mapped into `events` by the one SQL mapping.

A chunk is an Arrow table of CHUNK_SCHEMA; DuckDB reads it where it lies, as a replacement
scan of the local variable `chunk`. What the mapping refuses becomes a reject with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from kforensics.ingest.mapping import mapped_select
from kforensics.ingest.rejects import Rejects
from kforensics.ingest.shapes import Record
from kforensics.ingest.sources import SourceStats
from kforensics.ingest.typed import typed_select

# Rows per Arrow batch handed to DuckDB (a block is ~70k rows: its lines and line ends).
ARROW_BATCH_ROWS = 65536
# ... and at most about this many bytes: DuckDB runs out of memory on a few big batches of long
# lines (tens of KB each) well before its limit, where many small ones load.
ARROW_BATCH_BYTES = 4 * 1024 * 1024
# Records of an envelope or document are mapped in batches of this many.
RECORD_BATCH = 20000
RECORD_BATCH_BYTES = 16 * 1024 * 1024

EVENT_COLUMNS = (
    "event_id, request_id, audit_id, stage, level, ts, stage_ts, verb, username, user_groups, "
    "user_extra, impersonated_user, impersonated_groups, source_ips, user_agent, resource, "
    "subresource, namespace, name, api_group, api_version, request_uri, code, decision, reason, "
    "annotations, "
    "request_object, response_object, source_format, source_line, source_index, quality, raw, "
    "raw_offset, digest, envelope"
)

CHUNK_SCHEMA = pa.schema(
    [
        ("source_line", pa.int64()),
        ("source_index", pa.int32()),
        ("line", pa.string()),
        ("event", pa.string()),
        ("raw", pa.string()),
        ("envelope", pa.string()),
        ("source_format", pa.string()),
        ("digest", pa.binary(32)),  # SHA-256 of the event's text (line, or event when set)
        ("position", pa.int64()),  # a native line's offset in its decompressed file
    ]
)


def batch_rows(chunk: pa.Table) -> int:
    """Return the rows per Arrow batch that keep a batch near ARROW_BATCH_BYTES."""
    per_row = max(1, chunk.nbytes // max(1, chunk.num_rows))
    return max(16, min(ARROW_BATCH_ROWS, ARROW_BATCH_BYTES // per_row))


class EventWriter:
    """Inserts a load's chunks into `events` and hands what the mapping refuses to `rejects`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, load_id: int) -> None:
        self.con = con
        self.load_id = load_id
        self.rejects = Rejects(con, load_id)
        # Both read the local variable `chunk` of the frame that executes them.
        self.insert_sql = (
            f"INSERT INTO events ({EVENT_COLUMNS}, source_file, load_id) "  # noqa: S608
            f"SELECT {EVENT_COLUMNS}, $file, $load FROM ({mapped_select('chunk')}) "
            "WHERE problem IS NULL"
        )
        # Native lines: the well-typed ones by the fast path; the caller maps the rest.
        self.typed_sql = (
            f"INSERT INTO events ({EVENT_COLUMNS}, source_file, load_id) "  # noqa: S608
            f"SELECT {EVENT_COLUMNS}, $file, $load FROM ({typed_select('chunk')})"
        )
        self.problem_sql = (
            "SELECT source_line, source_index, problem, raw "  # noqa: S608
            f"FROM ({mapped_select('chunk')}) WHERE problem IS NOT NULL"
        )

    @contextmanager
    def mapping(self) -> Iterator[None]:
        """Run the mapping statements inside without filter pushdown.

        The pushdown would copy the parse (`from_json`) into every pushed-down term of the
        checks instead of reading it once: a parse per term, and memory past the limit.
        """
        self.con.execute("SET disabled_optimizers = 'filter_pushdown'")
        try:
            yield
        finally:
            self.con.execute("RESET disabled_optimizers")

    def insert(self, chunk: pa.Table, stats: SourceStats) -> int:
        """Insert the chunk's mappable events; return how many."""
        # DuckDB scans one Arrow batch per thread: small batches keep every core busy.
        chunk = pa.Table.from_batches(chunk.to_batches(max_chunksize=batch_rows(chunk)))
        params = {"file": stats.path, "load": self.load_id}
        # `chunk` in the SQL is this local variable (a DuckDB replacement scan). Not
        # con.register(): a view registered inside a transaction pins its Arrow data until
        # commit, which made memory grow with the input.
        with self.mapping():
            count = self.con.execute(self.insert_sql, params).fetchone()[0]
        stats.events_loaded += count
        return count

    def records(self, records: list[Record], stats: SourceStats, raw_text: dict) -> None:
        """Map unwrapped records through the shared SQL; reject what it cannot take."""
        stats.records += len(records)
        events = [r for r in records if r.reason is None]
        for r in records:
            if r.reason is not None:
                raw = raw_text.get((r.line, r.index), raw_text.get((r.line, None)))
                self.rejects.add(stats, r.line, r.index, r.reason, raw, new=False)
        if not events:
            return
        chunk = pa.table(
            {
                "source_line": [r.line for r in events],
                "source_index": [r.index for r in events],
                "line": [None] * len(events),
                "event": [r.event for r in events],
                "raw": [r.raw for r in events],
                "envelope": [r.envelope for r in events],
                "source_format": [r.fmt for r in events],
                "digest": [hashlib.sha256(r.event.encode()).digest() for r in events],
                "position": [None] * len(events),
            },
            schema=CHUNK_SCHEMA,
        )
        inserted = self.insert(chunk, stats)
        failed: set[tuple[int, int | None]] = set()
        if inserted < len(events):
            with self.mapping():  # reads the local `chunk`
                problems = self.con.execute(self.problem_sql).fetchall()
            for line, index, problem, raw in problems:
                failed.add((line, index))
                self.rejects.add(stats, line, index, problem, raw, new=False)
        stats.formats.update(r.fmt for r in events if (r.line, r.index) not in failed)
