"""Rejects: each record that cannot be an event, counted in its file's stats, written in batches."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from kforensics.ingest import read
from kforensics.ingest.read import FileReader
from kforensics.ingest.sources import SourceStats

# Raw text kept for a reject: enough to see what it was, never the 20 MB line.
REJECT_RAW_CHARS = 4096
# Rejects are written to the case in batches, so millions of them never pile up in memory.
REJECT_BATCH = 20000


class Rejects:
    """The rejects of one load, held until a batch is full or the file ends."""

    def __init__(self, con: duckdb.DuckDBPyConnection, load_id: int) -> None:
        self.con = con
        self.load_id = load_id
        self.pending: list[tuple] = []

    def add(
        self,
        stats: SourceStats,
        line: int,
        index: int | None,
        reason: str,
        raw: str | bytes | memoryview | None,
        new: bool = True,
    ) -> None:
        """Record a reject; `new` when it is a record not already counted in stats.records."""
        size = None if raw is None else len(raw)
        if isinstance(raw, bytes | memoryview):
            raw = bytes(raw[: REJECT_RAW_CHARS * 4]).decode("utf-8", errors="backslashreplace")
        text = None if raw is None else raw[:REJECT_RAW_CHARS]
        self.pending.append((self.load_id, stats.path, line, index, reason, text, size))
        stats.rejected += 1
        stats.records += new
        if len(self.pending) >= REJECT_BATCH:
            self.flush()

    def oversized(self, stats: SourceStats, line: int, size: int) -> None:
        """Reject a line over read.MAX_LINE_BYTES, never read whole (returns nothing)."""
        limit = read.MAX_LINE_BYTES  # looked up now: tests lower it
        self.add(stats, line, None, f"line longer than {limit} bytes ({size:,} bytes)", None)

    def read_error(self, reader: FileReader, stats: SourceStats) -> None:
        """Reject the rest of a file that a read error cut short (returns nothing)."""
        if reader.error and not reader.unopened:
            # The unreadable rest of the file counts as one line: its true count is unknowable.
            stats.lines_read += 1
            reason = f"{reader.error} (the rest of the file, from this line on, is unreadable)"
            self.add(stats, stats.lines_read, None, reason, None)

    def flush(self) -> None:
        """Write the pending rejects to the case (returns nothing)."""
        if not self.pending:
            return
        cols = list(zip(*self.pending, strict=True))
        reject_chunk = pa.table(  # noqa: F841 (read by the INSERT below: a replacement scan)
            {
                "load_id": pa.array(cols[0], pa.int32()),
                "source_file": pa.array(cols[1], pa.string()),
                "source_line": pa.array(cols[2], pa.int64()),
                "source_index": pa.array(cols[3], pa.int32()),
                "reason": pa.array(cols[4], pa.string()),
                "raw": pa.array(cols[5], pa.string()),
                "raw_bytes": pa.array(cols[6], pa.int64()),
            }
        )
        self.con.execute("INSERT INTO rejects BY NAME SELECT * FROM reject_chunk")
        self.pending.clear()


def reject_reasons(con: duckdb.DuckDBPyConnection, load_id: int) -> list[tuple[str, int]]:
    """Return (reason, count) of the load's rejects, the most frequent first."""
    return con.execute(
        "SELECT reason, count(*) FROM rejects WHERE load_id = $id GROUP BY reason "
        "ORDER BY count(*) DESC, reason",
        {"id": load_id},
    ).fetchall()
