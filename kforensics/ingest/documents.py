"""Loading a JSON document file (EventList, array, envelope, concatenated values), streamed.

A file is a document when its first line is JSON that does not end on that line; its records
come from jsonstream.RecordStream, are recognised by `shapes` and written by EventWriter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from kforensics.ingest import read, shapes
from kforensics.ingest.events import RECORD_BATCH, RECORD_BATCH_BYTES, EventWriter
from kforensics.ingest.jsonstream import Piece, RecordStream
from kforensics.ingest.read import FileReader
from kforensics.ingest.rejects import REJECT_RAW_CHARS
from kforensics.ingest.sources import SourceStats


def starts_document(block: bytes | memoryview) -> bool:
    """True when the file starts with JSON that does not fit on its first line."""
    view = memoryview(block)
    head = bytes(view[: 1 << 16]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] not in (b"{", b"["):
        return False
    skipped = min(len(view), 1 << 16) - len(head)
    end = bytes(view).find(b"\n", skipped) if len(view) > 1 << 16 else -1
    first = (
        head.split(b"\n", 1)[0]
        if b"\n" in head
        else bytes(view[skipped : end if end >= 0 else None])
    )
    error = shapes.parse_text(first.decode("utf-8", errors="replace"))[1]
    # Nested past Python's parser (DuckDB's has no such limit) is still a whole line.
    if error is None or "depth limit" in error:
        return False
    # A document's first line is JSON begun (it ends too soon) or one value followed by
    # another; JSON broken inside the line is a bad line of a line file. Read as a document,
    # it would open an object that never closes and swallow every line after it.
    if not any(m in error for m in ("unexpected end of data", "unexpected content after")):
        return False
    # followed by whole JSON objects, one per line (where an array's elements would end in a
    # comma): a line file whose first line is cut short (a rotated or copied file) or junk
    following = _next_lines(view, skipped + len(first) + 1, 2)
    return not (len(following) == 2 and all(_whole_object(line) for line in following))


def _next_lines(view: memoryview, start: int, n: int) -> list[bytes]:
    """Return the first n non-blank lines at or after start, within 1 MiB of the block."""
    rest = bytes(view[start : start + (1 << 20)])
    return [line.strip() for line in rest.split(b"\n") if line.strip()][:n]


def _whole_object(line: bytes) -> bool:
    """True when line is one JSON object on its own."""
    if not line.startswith(b"{"):
        return False
    return shapes.parse_text(line.decode("utf-8", errors="replace"))[1] is None


def load_document(
    writer: EventWriter, reader: FileReader, blocks: Iterator[bytes], stats: SourceStats
) -> None:
    """Load a JSON document (EventList, array, envelope, concatenated values), streamed."""
    rejects = writer.rejects
    blanks = _BlankCounter()
    stream = RecordStream(blanks.counted(blocks), max_record_bytes=read.MAX_LINE_BYTES)
    records: list[shapes.Record] = []
    raw_text: dict[tuple[int, int | None], str] = {}
    pending = 0
    for piece in stream:
        if piece.problem is not None:
            rejects.add(stats, piece.line, piece.index, piece.problem, piece.data)
            if piece.data is not None:
                records.extend(_salvage(piece))
            continue
        try:
            text = bytes(piece.data).decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8 at byte {exc.start} of the record"
            rejects.add(stats, piece.line, piece.index, reason, piece.data)
            continue
        found = shapes.classify_piece(text, piece.container, piece.line, piece.index)
        raw_text[(piece.line, piece.index)] = text[:REJECT_RAW_CHARS]
        records.extend(found)
        pending += len(text)
        if len(records) >= RECORD_BATCH or pending >= RECORD_BATCH_BYTES:
            writer.records(records, stats, raw_text)
            records, raw_text, pending = [], {}, 0
    writer.records(records, stats, raw_text)
    for line, container in stream.empty_containers:
        rejects.add(stats, line, None, f"empty {container or 'JSON'} array: no events", None)
    stats.lines_read = stream.lines
    stats.blank_lines = blanks.blank
    rejects.read_error(reader, stats)


def _salvage(piece: Piece) -> list[shapes.Record]:
    """Return the records of the whole JSON objects on their own lines in a broken value.

    A file that looked like a document because its first line is a stray `{` or `[` is
    really JSON lines: no such line can hide the events after it.
    """
    found: list[shapes.Record] = []
    for offset, raw in enumerate(bytes(piece.data).split(b"\n")):
        text = raw.strip().rstrip(b",").strip()
        # The broken value's own first line is no exception: after a stray `[` the piece
        # is an unterminated element that starts with a whole event.
        if not (text.startswith(b"{") and text.endswith(b"}")):
            continue
        try:
            line_text = text.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if shapes.parse_text(line_text)[1] is None:  # a record beside the broken value
            found.extend(shapes.classify_line(line_text, piece.line + offset))
    return found


class _BlankCounter:
    """Counts whitespace-only lines of a document as its blocks stream past."""

    def __init__(self) -> None:
        self.blank = 0
        self.line_has_text = False  # the current (unfinished) line has a non-blank byte

    def counted(self, blocks: Iterable[memoryview]) -> Iterator[memoryview]:
        """Return the blocks unchanged, counting the blank lines in them on the way."""
        ended = True
        for block in blocks:
            buf = np.frombuffer(block, dtype=np.uint8)
            if not len(buf):
                continue
            text = (buf != 32) & (buf != 10) & (buf != 13) & (buf != 9)
            nl = np.flatnonzero(buf == 10)
            if len(nl):
                # Whether each line (from the previous newline to this one) has any text.
                starts = np.concatenate(([0], nl[:-1] + 1))
                has = np.logical_or.reduceat(text[: nl[-1] + 1], starts)
                has[0] |= self.line_has_text
                self.blank += int(len(has) - np.count_nonzero(has))
                self.line_has_text = bool(text[nl[-1] + 1 :].any())
            else:
                self.line_has_text = self.line_has_text or bool(text.any())
            ended = buf[-1] == 10
            yield block
        if not ended and not self.line_has_text:
            self.blank += 1
