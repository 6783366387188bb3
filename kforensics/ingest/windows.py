"""Loading a line file (native JSON lines, or one envelope per line) in windows of blocks.

A line file is mapped in windows: one streaming INSERT per window, then the lines DuckDB did
not take (envelopes, bad lines) are handled from the window's blocks, still in memory. So each
file is read once, and memory holds one window whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from kforensics.ingest import shapes
from kforensics.ingest.events import CHUNK_SCHEMA, RECORD_BATCH, EventWriter, batch_rows
from kforensics.ingest.mapping import LEADING_SPACE
from kforensics.ingest.read import FileReader, Lines
from kforensics.ingest.sources import SourceStats

WINDOW_BYTES = 256 * 1024 * 1024
WINDOW_LINES = 4 * 1024 * 1024
# Lines the typed path left, mapped per INSERT (each held as Python objects until then).
UNTYPED_BATCH = 65536


@dataclass
class _Block:
    """What a window keeps of one block: its non-blank lines' numbers and byte ranges."""

    numbers: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    block: memoryview | bytes
    at: int  # the block's offset in the decompressed file
    digests: pa.Array  # each kept line's SHA-256, computed by the reader

    def line_bytes(self, i: int) -> bytes:
        """Return the bytes of the i-th kept line, without its line end."""
        return bytes(self.block[self.starts[i] : self.ends[i]])


def _kept(lines: Lines) -> _Block:
    """Return what a window keeps of a block: its non-blank lines."""
    valid = lines.valid
    return _Block(
        numbers=lines.numbers[valid],
        starts=lines.offsets[0:-1:2][valid],
        ends=lines.offsets[1::2][valid],
        block=lines.block,
        at=lines.at,
        digests=lines.digests[0::2].filter(pa.array(valid)),
    )


@dataclass
class _Window:
    """The blocks of one streaming INSERT, and whether the file goes on after them."""

    blocks: list[_Block] = field(default_factory=list)
    bytes: int = 0
    lines: int = 0
    full: bool = False  # more of the file may follow


def native_chunk(lines: Lines) -> pa.Table:
    """Return a block's lines as a chunk for the mapping (line ends and blanks are null rows)."""
    n = len(lines.numbers)
    if lines.blank > n // 2:
        # Mostly blank: hand DuckDB only the lines (a file of blank lines costs nothing).
        keep = pa.array(2 * np.flatnonzero(lines.valid))
        columns = (lines.text, lines.digests, lines.positions)
        text, digests, positions = (a.take(keep) for a in columns)
        numbers, rows = lines.numbers[lines.valid], len(keep)
    else:
        text, digests, positions, rows = lines.text, lines.digests, lines.positions, 2 * n
        numbers = np.zeros(rows, dtype=np.int64)
        numbers[0::2] = lines.numbers
    return pa.table(
        {
            "source_line": numbers,
            "source_index": pa.nulls(rows, pa.int32()),
            "line": text,
            "event": pa.nulls(rows, pa.string()),
            "raw": pa.nulls(rows, pa.string()),
            "envelope": pa.nulls(rows, pa.string()),
            "source_format": pa.nulls(rows, pa.string()),  # NULL means native
            "digest": digests,
            "position": positions,
        },
        schema=CHUNK_SCHEMA,
    )


def load_lines(
    writer: EventWriter, reader: FileReader, blocks: Iterator[Lines], stats: SourceStats
) -> None:
    """Load a line-oriented file (native JSON lines, or one envelope per line)."""
    params = {"file": stats.path, "load": writer.load_id}
    full = True
    while full:
        window = _Window()
        # `chunk` in the SQL is this local variable (a DuckDB replacement scan). Not
        # con.register(): a view registered inside a transaction pins its data until commit.
        chunk = pa.RecordBatchReader.from_batches(  # noqa: F841
            CHUNK_SCHEMA, _fill(writer, window, blocks, stats)
        )
        with writer.mapping():
            inserted = writer.con.execute(writer.typed_sql, params).fetchone()[0]
        kept = sum(len(b.numbers) for b in window.blocks)
        if inserted < kept:
            inserted += _untyped(writer, window.blocks, stats)
        stats.events_loaded += inserted
        stats.formats[shapes.NATIVE] += inserted
        stats.records += inserted
        if inserted < kept:
            _leftovers(writer, window.blocks, stats)
        full = window.full
    for rest in reader.oversized.values():  # the file ended inside an oversized line
        stats.lines_read += 1
        writer.rejects.oversized(stats, stats.lines_read, rest)
    writer.rejects.read_error(reader, stats)


def _fill(
    writer: EventWriter, window: _Window, blocks: Iterator[Lines], stats: SourceStats
) -> Iterator[pa.RecordBatch]:
    """Yield the next blocks as Arrow batches until the window is full or the file ends."""
    for lines in blocks:
        _account(writer, lines, stats)
        window.blocks.append(_kept(lines))
        chunk = native_chunk(lines)
        yield from chunk.to_batches(max_chunksize=batch_rows(chunk))
        window.bytes += len(lines.block)
        window.lines += len(lines.numbers)
        if window.bytes >= WINDOW_BYTES or window.lines >= WINDOW_LINES:
            window.full = True
            return


def _account(writer: EventWriter, lines: Lines, stats: SourceStats) -> None:
    """Count a block's lines; an oversized line's placeholder becomes its reject."""
    first = int(lines.numbers[0]) if len(lines.numbers) else stats.lines_read + 1
    stats.lines_read += len(lines.numbers)
    blank = lines.blank
    if lines.oversized:
        writer.rejects.oversized(stats, first, lines.oversized)
        blank -= 1
    for line, size in lines.too_long:
        writer.rejects.oversized(stats, line, size)
    stats.blank_lines += blank


def _left(writer: EventWriter, window: list[_Block], stats: SourceStats) -> Iterator[tuple]:
    """Yield (block, index) of the window's lines that no INSERT has taken yet."""
    lo = int(min(b.numbers[0] for b in window if len(b.numbers)))
    hi = int(max(b.numbers[-1] for b in window if len(b.numbers)))
    taken = writer.con.execute(
        "SELECT source_line FROM events WHERE load_id = $load AND source_file = $file "
        "AND source_line BETWEEN $lo AND $hi",
        {"load": writer.load_id, "file": stats.path, "lo": lo, "hi": hi},
    ).fetchnumpy()["source_line"]
    for b in window:
        for i in np.flatnonzero(~np.isin(b.numbers, taken, assume_unique=True)).tolist():
            yield b, i


def _untyped(writer: EventWriter, window: list[_Block], stats: SourceStats) -> int:
    """Map the native lines the typed fast path left with the full mapping; return how many.

    Lines that are no object at all cannot be events: they go straight to the envelope
    parsers, which give a reject its reason. Mapped UNTYPED_BATCH lines at a time: a window
    of objects that are not events (millions of lines) must not be held as Python objects.
    """
    rows: dict[str, list] = {k: [] for k in ("source_line", "line", "digest", "position")}
    inserted = 0
    for b, i in _left(writer, window, stats):
        data = b.line_bytes(i)
        if not data.lstrip(LEADING_SPACE.encode()).startswith(b"{"):
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        rows["source_line"].append(int(b.numbers[i]))
        rows["line"].append(text)
        rows["digest"].append(b.digests[i].as_py())
        rows["position"].append(b.at + int(b.starts[i]))
        if len(rows["line"]) >= UNTYPED_BATCH:
            inserted += _map_untyped(writer, rows, stats)
    return inserted + _map_untyped(writer, rows, stats)


def _map_untyped(writer: EventWriter, rows: dict[str, list], stats: SourceStats) -> int:
    """Insert the events the full mapping makes of rows, then empty rows; return how many."""
    n = len(rows["line"])
    if not n:
        return 0
    chunk = pa.table(  # noqa: F841 (read by the INSERT: a replacement scan)
        {
            **rows,
            "source_index": [None] * n,
            "event": [None] * n,
            "raw": [None] * n,
            "envelope": [None] * n,
            "source_format": [None] * n,
        },
        schema=CHUNK_SCHEMA,
    ).select(CHUNK_SCHEMA.names)
    for column in rows.values():
        column.clear()
    params = {"file": stats.path, "load": writer.load_id}
    with writer.mapping():
        return writer.con.execute(writer.insert_sql, params).fetchone()[0]


def _leftovers(writer: EventWriter, window: list[_Block], stats: SourceStats) -> None:
    """Route the window's lines that the SQL mapping did not take to the envelope parsers."""
    records: list[shapes.Record] = []
    raw_text: dict[tuple[int, int | None], str] = {}
    for b, i in _left(writer, window, stats):
        ln, data = int(b.numbers[i]), b.line_bytes(i)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            writer.rejects.add(stats, ln, None, f"invalid UTF-8 at byte {exc.start}", data)
            continue
        if not text.strip():  # whitespace that is not ASCII blank: U+00A0, BOM...
            stats.blank_lines += 1
            continue
        raw_text[(ln, None)] = text
        records.extend(shapes.classify_line(text, ln))
        if len(records) >= RECORD_BATCH:
            writer.records(records, stats, raw_text)
            records, raw_text = [], {}
    writer.records(records, stats, raw_text)
