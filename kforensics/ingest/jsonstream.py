"""Split a JSON document into its records as it streams by, in bounded memory.

Audit logs often come as one JSON document per file, many GB and pretty-printed: an EventList
(`{"kind": "EventList", "items": [...]}`), an Azure export (`{"records": [...]}`), an EKS page
(`{"events": [...], "nextForwardToken": ...}`), a bare array, or objects one after another as
`jq` prints them. `RecordStream` reads such a document block by block, each block once, and
yields each record's bytes exactly as they appear in the document, never holding more than the
current block and the record in progress. The caller parses the records (orjson, DuckDB) and
judges them: only the structure is read here, not validated.

The structure of each slice is found with numpy (`jsonscan`); Python code runs per record
and per top-level value, never per byte or per token. Container arrays are cut into Pieces by
`jsonpieces`, scalars between top-level values are read by `jsonscalars`, and a root object's
envelope is cut out by `jsonenvelope`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import numpy as np

from kforensics.ingest.jsonenvelope import container_key, join_envelope
from kforensics.ingest.jsonpieces import ContainerArray, Piece
from kforensics.ingest.jsonscalars import TopLevelText
from kforensics.ingest.jsonscan import (
    CLOSE_BRACE,
    CLOSE_BRACKET,
    COMMA,
    NEWLINE,
    OPEN_BRACE,
    OPEN_BRACKET,
    PartialRecord,
    Slice,
    byte_views,
    first_nonws,
    structure,
)

# numpy temporaries are a few times the slice; caller blocks of 32 MiB are cut to this size.
SLICE_BYTES = 1 << 20
ENVELOPE_MAX = 64 << 10
# Enough text before an array's `[` to see the key that names it (`, "items": [`).
_LOOKBACK = 512
# Most delimiters (so pieces) one scan handles: a slice of tiny records is scanned in parts.
_MAX_PIECES = 1 << 16

_RESYNC = re.compile(rb"\n[\[{]")

# Where the scan is: between top-level values, in a root array, in a root object (its container
# key not seen yet), in the container array of a root object, or in that object after the array.
_TOP, _ARRAY, _OBJECT, _ITEMS, _AFTER = range(5)


class RecordStream(Iterator[Piece]):
    """The records of a JSON document read from byte blocks: an iterator of Pieces.

    Counters fill in as the iteration goes: `lines` (lines of the document, a last line without
    newline included), `values` (top-level values), `empty_containers` ((line, container key)
    of each empty array whose elements would have been records), `bytes` (bytes read, BOM
    included), and `envelope_text` (the other keys of the last root object whose records were
    in an items/records/events array, as a JSON object text) with `envelope_note` saying why
    it is None when it was too long.

    Memory: the current slice of a block (SLICE_BYTES) and its numpy arrays, the record in
    progress up to max_record_bytes (a root object up to ENVELOPE_MAX, for its envelope), and
    the pieces of one slice. Text between top-level values that is no value is reported and
    skipped up to the next line starting with `{` or `[`, where the scan starts afresh.
    """

    def __init__(self, blocks: Iterable[bytes | memoryview], *, max_record_bytes: int) -> None:
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be at least 1")
        self.max_record_bytes = max_record_bytes
        self.lines = 0
        self.values = 0
        self.empty_containers: list[tuple[int, str | None]] = []
        self.bytes = 0
        self.envelope_text: bytes | None = None
        self.envelope_note: str | None = None
        self._blocks = blocks
        self._pieces = self._run()
        self._out: list[Piece] = []
        # Root objects are kept whole until their container key shows, for the envelope.
        self._object_limit = max(max_record_bytes, ENVELOPE_MAX)
        self._abs = 0  # document offset of the current slice
        self._newlines = 0  # newlines before the current slice
        self._after_newline = True
        self._tail = b""
        self._skip = False
        self._reset()

    def _reset(self) -> None:
        """Start scanning afresh: at the document start, or at a resynchronisation point."""
        self._in_string = False
        self._depth = 0
        self._odd_backslashes = False
        self._mode = _TOP
        self._rec: PartialRecord | None = None
        self._gap: TopLevelText | None = None
        self._array: ContainerArray | None = None  # the container array being split
        self._object_line = 0
        self._prefix: bytes | None = None
        self._suffix: bytearray | None = None

    def __iter__(self) -> Iterator[Piece]:
        """Return the stream itself: it is an iterator, its blocks are read once."""
        return self

    def __next__(self) -> Piece:
        """Return the next piece of the document, in document order."""
        return next(self._pieces)

    def _count(self, n: int) -> None:
        self.bytes += n

    def _run(self) -> Iterator[Piece]:
        for view in byte_views(self._blocks, self._count):
            for start in range(0, len(view), SLICE_BYTES):
                yield from self._feed(view[start : start + SLICE_BYTES])
        self._finish()
        yield from self._out
        self._out = []

    # -- scanning ---------------------------------------------------------------------------

    def _feed(self, view: memoryview) -> Iterator[Piece]:
        """Return the pieces completed by one slice of the document."""
        while len(view):
            if self._skip:
                r = self._resync_point(view)
                part = np.frombuffer(view[:r], dtype=np.uint8)
                self._consume(view, r, int(np.count_nonzero(part == NEWLINE)))
                if r == len(view):
                    return
                self._skip = False
                self._reset()
                view = view[r:]
            view = view[self._scan(view) :]
            if self._out:
                out, self._out = self._out, []
                yield from out

    def _resync_point(self, view: memoryview) -> int:
        """Return where the next line starting with `{` or `[` begins, or len(view)."""
        if self._after_newline and view[0] in (OPEN_BRACE, OPEN_BRACKET):
            return 0
        found = _RESYNC.search(view)
        return found.start() + 1 if found else len(view)

    def _consume(self, view: memoryview, r: int, newlines: int) -> None:
        """Move past view[:r], which holds that many newlines."""
        self._abs += r
        self._newlines += newlines
        if r:
            self._after_newline = view[r - 1] == NEWLINE
            self._tail = (self._tail + bytes(view[max(0, r - _LOOKBACK) : r]))[-_LOOKBACK:]
        self.lines = self._newlines + (not self._after_newline)

    def _stop(self, r: int) -> int:
        """Return r after consuming the slice up to it and skipping to the next resync point."""
        self._consume(self._view, r, int(np.searchsorted(self._nl, r)))
        self._skip = True
        return r

    def _scan(self, view: memoryview) -> int:
        """Return how much of view was consumed: all of it, unless a resync is needed."""
        a = np.frombuffer(view, dtype=np.uint8)
        n = len(a)
        nl, sp, sc, after, in_string, odd_out = structure(
            a, in_string=self._in_string, depth=self._depth, odd_backslashes=self._odd_backslashes
        )
        is_comma = sc == COMMA
        # Events that change what the commas mean: top-level value bounds, and arrays opening
        # or closing right under the root (a root object's container).
        ctrl = (
            (after <= 0)
            | (((sc | 0x20) == OPEN_BRACE) & (after == 1))
            | ((sc == OPEN_BRACKET) & (after == 2))
            | ((sc == CLOSE_BRACKET) & (after == 1))
        )
        # Pieces wait in a list until the slice is done: tiny records would make it huge.
        many = ctrl | (is_comma & (after <= 2))
        if np.count_nonzero(many) > _MAX_PIECES:
            return self._scan(view[: int(sp[np.flatnonzero(many)[_MAX_PIECES - 1]]) + 1])
        self._view, self._nl = view, nl
        self._slice = Slice(view, a, self._abs, nl, self._newlines)
        self._commas1 = sp[is_comma & (after == 1)]
        self._commas2 = sp[is_comma & (after == 2)]

        cur = 0
        for p, c, d in zip(sp[ctrl].tolist(), sc[ctrl].tolist(), after[ctrl].tolist(), strict=True):
            mode = self._mode
            if mode == _TOP:
                r = self._gap_text(cur, p, final=True)
                if r >= 0:
                    return self._stop(r)
                if d == 1:
                    self._open(p, c)
                    cur = p + 1
                    continue
                what = "unexpected text between values" if c == COMMA else f"unbalanced {chr(c)!r}"
                self._problem(self._line_at(p), None, None, f"invalid JSON: {what}")
                return self._stop(p + 1)
            if mode == _ARRAY:
                if d == 0:
                    self._elements(cur, p, self._commas1, close=True)
                    self._close_root(p, c, CLOSE_BRACKET)
                    cur = p + 1
            elif mode == _OBJECT:
                if d == 2 and c == OPEN_BRACKET:
                    self._rec.append(self._view, self._abs, cur, p, self._object_limit)
                    cur = p
                    if self._container_opens(p):
                        cur = p + 1
                elif d == 0:
                    self._rec.append(self._view, self._abs, cur, p + 1, self._object_limit)
                    self._end_object(c)
                    cur = p + 1
            elif mode == _ITEMS:
                if d == 1 and c == CLOSE_BRACKET:
                    self._elements(cur, p, self._commas2, close=True)
                    self._mode = _AFTER
                    self._suffix = bytearray() if self._prefix is not None else None
                    cur = p + 1
                elif d == 0:
                    self._elements(cur, p, self._commas2, close=True)
                    self._close_root(p, c, None)
                    cur = p + 1
            elif d == 0:  # _AFTER
                self._suffix_text(cur, p + 1)
                self._end_envelope(p, c)
                cur = p + 1

        mode = self._mode
        if mode == _TOP:
            r = self._gap_text(cur, n, final=False)
            if r >= 0:
                return self._stop(r)
        elif mode == _ARRAY:
            self._elements(cur, n, self._commas1, close=False)
        elif mode == _ITEMS:
            self._elements(cur, n, self._commas2, close=False)
        elif mode == _OBJECT:
            self._rec.append(self._view, self._abs, cur, n, self._object_limit)
        else:
            self._suffix_text(cur, n)
        self._in_string = in_string
        self._depth = int(after[-1]) if len(after) else self._depth
        self._odd_backslashes = odd_out
        self._consume(view, n, len(self._nl))
        return n

    def _line_at(self, p: int) -> int:
        """Return the line of position p of the slice."""
        return self._newlines + int(self._nl.searchsorted(p)) + 1

    def _problem(self, line: int, index: int | None, container: str | None, why: str) -> None:
        self._out.append(Piece(line, index, container, None, why))

    # -- top-level values -------------------------------------------------------------------

    def _open(self, p: int, c: int) -> None:
        """Start the top-level value whose opening bracket c is at p."""
        self.values += 1
        line = self._line_at(p)
        if c == OPEN_BRACKET:
            self._mode = _ARRAY
            self._array = ContainerArray(None, line, self.max_record_bytes, self.empty_containers)
        else:
            self._mode = _OBJECT
            self._object_line = line
            self._rec = PartialRecord(self._abs + p, line, c, bytearray(b"{"))

    def _close_root(self, p: int, c: int, expected: int | None) -> None:
        """Close the root container at p; a mismatched bracket is reported after its records."""
        self._mode = _TOP
        if c != expected:
            self._problem(self._line_at(p), None, None, f"invalid JSON: unbalanced {chr(c)!r}")

    def _container_opens(self, p: int) -> bool:
        """Return whether the array opening at p is the root object's items/records/events."""
        look = self._lookback(p)
        found = container_key(look)
        if found is None:
            return False
        key, cut = found
        rec = self._rec
        keep = self._abs + p - len(look) + cut - rec.start
        if rec.buf is not None and keep <= ENVELOPE_MAX:
            self._prefix = bytes(rec.buf[:keep])
        else:
            self._prefix = None
            self.envelope_note = f"envelope longer than {ENVELOPE_MAX} bytes: dropped"
        self._rec = None
        self._mode = _ITEMS
        line = self._line_at(p)
        self._array = ContainerArray(key, line, self.max_record_bytes, self.empty_containers)
        return True

    def _lookback(self, p: int) -> bytes:
        """Return the document text just before position p of the slice."""
        if p >= _LOOKBACK:
            return bytes(self._view[p - _LOOKBACK : p])
        return (self._tail + bytes(self._view[:p]))[-_LOOKBACK:]

    def _end_object(self, c: int) -> None:
        """Yield the root object that just ended (at a closing bracket c) as one value."""
        rec, self._rec = self._rec, None
        self._mode = _TOP
        size = rec.last - rec.start + 1
        if c != CLOSE_BRACE:
            self._problem(rec.line, None, None, f"invalid JSON: unbalanced {chr(c)!r}")
        elif rec.buf is None or size > self.max_record_bytes:
            why = f"value longer than {self.max_record_bytes} bytes ({size} bytes)"
            self._problem(rec.line, None, None, why)
        else:
            self._out.append(Piece(rec.line, None, None, bytes(rec.buf[:size])))

    def _suffix_text(self, lo: int, hi: int) -> None:
        """Keep [lo, hi), root object text after its container, for the envelope."""
        if self._suffix is None or hi <= lo:
            return
        if len(self._prefix) + len(self._suffix) + hi - lo > ENVELOPE_MAX:
            self._prefix = self._suffix = None
            self.envelope_note = f"envelope longer than {ENVELOPE_MAX} bytes: dropped"
            return
        self._suffix += self._view[lo:hi]

    def _end_envelope(self, p: int, c: int) -> None:
        """End the root object (bracket c at p) whose container has ended: its envelope."""
        self._mode = _TOP
        if c != CLOSE_BRACE:
            self._problem(self._line_at(p), None, None, f"invalid JSON: unbalanced {chr(c)!r}")
        if self._suffix is None:
            self.envelope_text = None
            return
        self.envelope_text = join_envelope(self._prefix, self._suffix)
        self.envelope_note = None
        self._prefix = self._suffix = None

    def _gap_text(self, lo: int, hi: int, *, final: bool) -> int:
        """Take the text between top-level values; return a resync point, or -1.

        Its values are taken at once, so that text which is no value is found before the
        scan goes on: its quotes would make nonsense of the string state after it.
        """
        if hi > lo:
            if self._gap is None:
                s = first_nonws(self._view, lo, hi)
                if s >= 0:
                    gap = bytearray(self._view[s:hi])
                    self._gap = TopLevelText(gap, self._abs + s, self._line_at(s))
            else:
                self._gap.text += self._view[lo:hi]
        if self._gap is None:
            return -1
        r = self._gap_values(final)
        if r >= 0 or self._gap is None:
            return r
        if len(self._gap.text) > self.max_record_bytes + _LOOKBACK:
            why = f"value longer than {self.max_record_bytes} bytes"
            self._problem(self._gap.line, None, None, why)
            self._gap = None
            return hi
        return -1

    def _gap_values(self, final: bool) -> int:
        """Yield the top-level scalars of the gap text; return a resync point, or -1."""
        found, bad = self._gap.take(final, self.max_record_bytes)
        self.values += len(found)
        for line, data, why in found:
            self._out.append(Piece(line, None, None, data, why))
        if bad is not None:
            self._problem(bad[0], None, None, "invalid JSON: unexpected text between values")
            self._gap = None
            return max(0, bad[1] - self._abs)
        if not self._gap.text:
            self._gap = None
        return -1

    # -- container elements -----------------------------------------------------------------

    def _elements(self, lo: int, hi: int, commas: np.ndarray, *, close: bool) -> None:
        """Split [lo, hi) of the container array at its commas; close if hi is its `]`."""
        self._array.split(self._slice, lo, hi, commas, self._out, close=close)

    # -- end of document --------------------------------------------------------------------

    def _finish(self) -> None:
        """Report what the end of the document left incomplete, as one problem piece."""
        if self._skip:
            return
        mode = self._mode
        if mode == _TOP:
            if self._gap is not None and self._gap_values(final=True) < 0 and self._gap:
                why = "invalid JSON: the document ends inside a string"
                self._problem(self._gap.line, None, None, why)
            return
        if mode in (_ARRAY, _ITEMS):
            rec = self._array.rec
            inner = rec is not None and self._depth > (1 if mode == _ARRAY else 2)
            where = "an object" if inner and rec.first == OPEN_BRACE else "an array"
            line = rec.line if rec is not None else max(1, self.lines)
            index, container = self._array.index, self._array.key
        else:
            rec = self._rec
            where = "an object"
            line, index, container = self._object_line, None, None
        if self._in_string:
            where = "a string"
        # The incomplete record's bytes (when held) let the caller salvage whole lines from it.
        data = bytes(rec.buf).rstrip() if rec is not None and rec.buf is not None else None
        why = f"invalid JSON: the document ends inside {where}"
        self._out.append(Piece(line, index, container, data, why))


def iter_records(blocks: Iterable[bytes | memoryview], *, max_record_bytes: int) -> RecordStream:
    """Return a RecordStream over blocks: iterate it for the Pieces, read its counters after."""
    return RecordStream(blocks, max_record_bytes=max_record_bytes)


__all__ = ["ENVELOPE_MAX", "SLICE_BYTES", "Piece", "RecordStream", "iter_records"]
