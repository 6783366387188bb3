"""Split a JSON document into its records as it streams by, in bounded memory.

Audit logs often come as one JSON document per file, many GB and pretty-printed: an EventList
(`{"kind": "EventList", "items": [...]}`), an Azure export (`{"records": [...]}`), an EKS page
(`{"events": [...], "nextForwardToken": ...}`), a bare array, or objects one after another as
`jq` prints them. `RecordStream` reads such a document block by block, each block once, and
yields each record's bytes exactly as they appear in the document, never holding more than the
current block and the record in progress. The caller parses the records (orjson, DuckDB) and
judges them: only the structure is read here, not validated.

The structure is found with numpy over each block, as simdjson does: quotes, backslashes,
brackets, commas and newlines are located at once; a quote is escaped when the backslash run
before it is odd; a byte is inside a string when the unescaped quotes before it are odd; bracket
depth is a cumulative sum outside strings. Python code runs per record and per top-level value,
never per byte or per token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

# numpy temporaries are a few times the slice; caller blocks of 32 MiB are cut to this size.
SLICE_BYTES = 1 << 20
ENVELOPE_MAX = 64 << 10
# Enough text before an array's `[` to see the key that names it (`, "items": [`).
_LOOKBACK = 512
# Most delimiters (so pieces) one scan handles: a slice of tiny records is scanned in parts.
_MAX_PIECES = 1 << 16
# Whitespace steps taken for all elements at once before looking for the rest one by one.
_WS_STEPS = 16

_IS_WS = np.zeros(256, dtype=bool)
_IS_WS[[0x09, 0x0A, 0x0D, 0x20]] = True

_WS = b" \t\r\n"
_KEYS = (b'"items"', b'"records"', b'"events"')
# A string's body up to its closing quote or the end of the text so far; it can resume at
# any position it reached, as it never stops inside an escape.
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)
_BARE = re.compile(rb'[^ \t\r\n"{}\[\],]+')
_SCALAR = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
_SPACE = re.compile(rb"[ \t\r\n]*")
_RESYNC = re.compile(rb"\n[\[{]")
_BOM = b"\xef\xbb\xbf"

# Where the scan is: between top-level values, in a root array, in a root object (its container
# key not seen yet), in the container array of a root object, or in that object after the array.
_TOP, _ARRAY, _OBJECT, _ITEMS, _AFTER = range(5)

_QUOTE, _BACKSLASH, _COMMA, _NEWLINE = 0x22, 0x5C, 0x2C, 0x0A
_OPEN_BRACE, _CLOSE_BRACE, _OPEN_BRACKET, _CLOSE_BRACKET = 0x7B, 0x7D, 0x5B, 0x5D


@dataclass(slots=True)
class Piece:
    """One record of the document, or a problem where a record should have been.

    `line` is the 1-based line where the record's text starts; `index` its position in its
    container array (None for a top-level value); `container` the root object key holding that
    array, lower-cased ("items", "records", "events"; None for a root array or a top-level
    value); `data` the record's bytes exactly as in the document, or None when `problem` says
    why there are none.
    """

    line: int
    index: int | None
    container: str | None
    data: bytes | None
    problem: str | None = None

    @property
    def kind(self) -> str:
        """Return "value" (a top-level value), "array" (root array) or "container" (items...)."""
        if self.index is None:
            return "value"
        return "array" if self.container is None else "container"


class _Record:
    """The record in progress: where it starts, its last non-blank byte, its bytes so far."""

    __slots__ = ("start", "last", "line", "first", "buf", "trimmed")

    def __init__(self, start: int, line: int, first: int, buf: bytearray) -> None:
        self.start = start
        self.last = start
        self.line = line
        self.first = first
        # None once the record is known to be too long: from then on only its end is tracked.
        self.buf: bytearray | None = buf
        # Trailing whitespace past the limit was left out: any more content makes it too long.
        self.trimmed = False


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
        self._rec: _Record | None = None
        self._gap: bytearray | None = None
        self._gap_abs = 0
        self._gap_line = 0
        self._gap_resume = 0
        self._container: str | None = None
        self._index = 0
        self._open_line = 0
        self._object_line = 0
        self._prefix: bytes | None = None
        self._suffix: bytearray | None = None

    def __iter__(self) -> Iterator[Piece]:
        """Return the stream itself: it is an iterator, its blocks are read once."""
        return self

    def __next__(self) -> Piece:
        """Return the next piece of the document, in document order."""
        return next(self._pieces)

    def _run(self) -> Iterator[Piece]:
        for view in self._views():
            for start in range(0, len(view), SLICE_BYTES):
                yield from self._feed(view[start : start + SLICE_BYTES])
        self._finish()
        yield from self._out
        self._out = []

    def _views(self) -> Iterator[memoryview]:
        """Return the blocks as byte views, without the BOM and counted."""
        blocks = iter(self._blocks)
        head = b""  # the first bytes, until there are enough to tell a BOM
        for block in blocks:
            view = memoryview(block).cast("B")
            self.bytes += len(view)
            if len(head) + len(view) < len(_BOM):
                head += bytes(view)
                continue
            need = len(_BOM) - len(head)
            head += bytes(view[:need])
            if head != _BOM:
                yield memoryview(head)
            yield view[need:]
            break
        else:
            if head:
                yield memoryview(head)
            return
        for block in blocks:
            view = memoryview(block).cast("B")
            self.bytes += len(view)
            yield view

    # -- scanning ---------------------------------------------------------------------------

    def _feed(self, view: memoryview) -> Iterator[Piece]:
        """Return the pieces completed by one slice of the document."""
        while len(view):
            if self._skip:
                r = self._resync_point(view)
                part = np.frombuffer(view[:r], dtype=np.uint8)
                self._consume(view, r, int(np.count_nonzero(part == _NEWLINE)))
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
        if self._after_newline and view[0] in (_OPEN_BRACE, _OPEN_BRACKET):
            return 0
        found = _RESYNC.search(view)
        return found.start() + 1 if found else len(view)

    def _consume(self, view: memoryview, r: int, newlines: int) -> None:
        """Move past view[:r], which holds that many newlines."""
        self._abs += r
        self._newlines += newlines
        if r:
            self._after_newline = view[r - 1] == _NEWLINE
            self._tail = (self._tail + bytes(view[max(0, r - _LOOKBACK) : r]))[-_LOOKBACK:]
        self.lines = self._newlines + (not self._after_newline)

    def _stop(self, r: int) -> int:
        """Return r after consuming the slice up to it and skipping to the next resync point."""
        self._consume(self._view, r, int(np.searchsorted(self._nl, r)))
        self._skip = True
        return r

    def _structure(self, a: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return newline positions, structural positions, their bytes and the depth after each.

        Structural bytes are brackets and commas outside strings. Also returned: whether a
        string and an odd backslash run are still open at the end, for the next slice.
        """
        low = a | 0x20  # `[` and `]` become `{` and `}`
        hit = (a == _QUOTE) | (a == _BACKSLASH) | (a == _COMMA) | (a == _NEWLINE)
        hit |= (low == _OPEN_BRACE) | (low == _CLOSE_BRACE)
        pos = np.flatnonzero(hit)
        ch = a[pos]
        is_nl = ch == _NEWLINE
        is_quote = ch == _QUOTE
        is_bs = ch == _BACKSLASH
        real_quote = is_quote
        odd_out = False
        if self._odd_backslashes or is_bs.any():
            escaped, odd_out = _escaped(pos[is_bs], self._odd_backslashes, len(a))
            # Escaped bytes are few: look them up among the hits rather than the reverse.
            k = np.searchsorted(pos, escaped)
            k = k[k < len(pos)]
            k = k[pos[k] == escaped[: len(k)]]
            if len(k):
                real_quote = is_quote.copy()
                real_quote[k] = False
        parity = np.cumsum(real_quote, dtype=np.int64)
        if self._in_string:
            parity += 1
        in_string = bool(parity[-1] & 1) if len(parity) else self._in_string
        structural = ((parity & 1) == 0) & ~(is_quote | is_bs | is_nl)
        sp = pos[structural]
        sc = ch[structural]
        sl = sc | 0x20
        after = np.cumsum((sl == _OPEN_BRACE).astype(np.int64) - (sl == _CLOSE_BRACE))
        after += self._depth
        return pos[is_nl], sp, sc, after, in_string, odd_out

    def _scan(self, view: memoryview) -> int:
        """Return how much of view was consumed: all of it, unless a resync is needed."""
        a = np.frombuffer(view, dtype=np.uint8)
        n = len(a)
        nl, sp, sc, after, in_string, odd_out = self._structure(a)
        is_comma = sc == _COMMA
        # Events that change what the commas mean: top-level value bounds, and arrays opening
        # or closing right under the root (a root object's container).
        ctrl = (
            (after <= 0)
            | (((sc | 0x20) == _OPEN_BRACE) & (after == 1))
            | ((sc == _OPEN_BRACKET) & (after == 2))
            | ((sc == _CLOSE_BRACKET) & (after == 1))
        )
        # Pieces wait in a list until the slice is done: tiny records would make it huge.
        many = ctrl | (is_comma & (after <= 2))
        if np.count_nonzero(many) > _MAX_PIECES:
            return self._scan(view[: int(sp[np.flatnonzero(many)[_MAX_PIECES - 1]]) + 1])
        self._a, self._view, self._nl = a, view, nl
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
                what = "unexpected text between values" if c == _COMMA else f"unbalanced {chr(c)!r}"
                self._problem(self._line_at(p), None, None, f"invalid JSON: {what}")
                return self._stop(p + 1)
            if mode == _ARRAY:
                if d == 0:
                    self._elements(cur, p, self._commas1, close=True)
                    self._close_root(p, c, _CLOSE_BRACKET)
                    cur = p + 1
            elif mode == _OBJECT:
                if d == 2 and c == _OPEN_BRACKET:
                    self._append(cur, p, self._object_limit)
                    cur = p
                    if self._container_opens(p):
                        cur = p + 1
                elif d == 0:
                    self._append(cur, p + 1, self._object_limit)
                    self._end_object(c)
                    cur = p + 1
            elif mode == _ITEMS:
                if d == 1 and c == _CLOSE_BRACKET:
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
            self._append(cur, n, self._object_limit)
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
        if c == _OPEN_BRACKET:
            self._mode = _ARRAY
            self._container = None
            self._index = 0
            self._open_line = line
        else:
            self._mode = _OBJECT
            self._object_line = line
            self._rec = _Record(self._abs + p, line, c, bytearray(b"{"))

    def _close_root(self, p: int, c: int, expected: int | None) -> None:
        """Close the root container at p; a mismatched bracket is reported after its records."""
        self._mode = _TOP
        if c != expected:
            self._problem(self._line_at(p), None, None, f"invalid JSON: unbalanced {chr(c)!r}")

    def _container_opens(self, p: int) -> bool:
        """Return whether the array opening at p is the root object's items/records/events."""
        look = self._lookback(p)
        found = _container_key(look)
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
        self._container = key
        self._index = 0
        self._open_line = self._line_at(p)
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
        if c != _CLOSE_BRACE:
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
        if c != _CLOSE_BRACE:
            self._problem(self._line_at(p), None, None, f"invalid JSON: unbalanced {chr(c)!r}")
        if self._suffix is None:
            self.envelope_text = None
            return
        head = self._prefix.rstrip(_WS)
        rest = bytes(self._suffix).lstrip(_WS)
        # The container key went with its value: mend the commas around the hole it left.
        if rest.startswith(b","):
            if head.endswith((b",", b"{")):
                rest = rest[1:].lstrip(_WS)
        elif head.endswith(b","):
            head = head[:-1]
        self.envelope_text = head + rest
        self.envelope_note = None
        self._prefix = self._suffix = None

    def _gap_text(self, lo: int, hi: int, *, final: bool) -> int:
        """Take the text between top-level values; return a resync point, or -1.

        Its values are taken at once, so that text which is no value is found before the
        scan goes on: its quotes would make nonsense of the string state after it.
        """
        if hi > lo:
            if self._gap is None:
                s = _first_nonws(self._view, lo, hi)
                if s >= 0:
                    self._gap = bytearray(self._view[s:hi])
                    self._gap_abs = self._abs + s
                    self._gap_line = self._line_at(s)
                    self._gap_resume = 0
            else:
                self._gap += self._view[lo:hi]
        if self._gap is None:
            return -1
        r = self._gap_values(final)
        if r >= 0 or self._gap is None:
            return r
        if len(self._gap) > self.max_record_bytes + _LOOKBACK:
            why = f"value longer than {self.max_record_bytes} bytes"
            self._problem(self._gap_line, None, None, why)
            self._gap = None
            return hi
        return -1

    def _gap_values(self, final: bool) -> int:
        """Yield the top-level scalars of the gap text; return a resync point, or -1."""
        g = self._gap
        n = len(g)
        pos = 0
        line = self._gap_line
        resume, self._gap_resume = self._gap_resume, 0
        while True:
            blank = _SPACE.match(g, pos).end()
            line += g.count(b"\n", pos, blank)
            pos = blank
            if pos == n:
                self._gap = None
                return -1
            if g[pos] == _QUOTE:
                end = _STRING_BODY.match(g, max(pos + 1, resume)).end()
                if end == n or g[end] != _QUOTE:
                    self._gap_resume = end - pos
                    break
                end += 1
                ok = True
            else:
                end = max(pos + 1, _BARE.match(g, pos).end())
                if end == n and not final:
                    break
                ok = _SCALAR.fullmatch(g, pos, end) is not None
            resume = 0
            if not ok:
                self._problem(line, None, None, "invalid JSON: unexpected text between values")
                self._gap = None
                return max(0, self._gap_abs + pos - self._abs)
            self.values += 1
            if end - pos > self.max_record_bytes:
                why = f"value longer than {self.max_record_bytes} bytes ({end - pos} bytes)"
                self._problem(line, None, None, why)
            else:
                self._out.append(Piece(line, None, None, bytes(g[pos:end])))
            line += g.count(b"\n", pos, end)  # raw newlines are invalid in strings, yet lines
            pos = end
        del g[:pos]
        self._gap_abs += pos
        self._gap_line = line
        return -1

    # -- container elements -----------------------------------------------------------------

    def _elements(self, lo: int, hi: int, commas: np.ndarray, *, close: bool) -> None:
        """Split [lo, hi) of the container array at its commas; close if hi is its `]`."""
        i, j = commas.searchsorted((lo, hi)).tolist()
        if i == j:
            self._slot_text(lo, hi)
        else:
            cs = commas[i:j]
            first, last = int(cs[0]), int(cs[-1])
            self._slot_text(lo, first)
            self._end_slot(first, close=False)
            if j - i > 1:
                self._whole_elements(cs[:-1] + 1, cs[1:] - 1)
            self._slot_text(last + 1, hi)
        if close:
            self._end_slot(hi, close=True)

    def _slot_text(self, lo: int, hi: int) -> None:
        """Take [lo, hi) of the element slot in progress (its leading whitespace skipped)."""
        if hi <= lo:
            return
        if self._rec is None:
            s = _first_nonws(self._view, lo, hi)
            if s < 0:
                return
            self._rec = _Record(self._abs + s, self._line_at(s), int(self._a[s]), bytearray())
            lo = s
        self._append(lo, hi, self.max_record_bytes)

    def _end_slot(self, p: int, *, close: bool) -> None:
        """Yield the element whose slot ends at the delimiter p."""
        rec, self._rec = self._rec, None
        if rec is None:
            if close and self._index == 0:
                self.empty_containers.append((self._open_line, self._container))
            else:
                why = "invalid JSON: empty element"
                self._problem(self._line_at(p), self._index, self._container, why)
                self._index += 1
            return
        size = rec.last - rec.start + 1
        if rec.buf is None:
            why = f"element longer than {self.max_record_bytes} bytes ({size} bytes)"
            self._problem(rec.line, self._index, self._container, why)
        else:
            self._out.append(Piece(rec.line, self._index, self._container, bytes(rec.buf[:size])))
        self._index += 1

    def _whole_elements(self, lefts: np.ndarray, rights: np.ndarray) -> None:
        """Yield the elements lying wholly in this slice, between [lefts, rights] inclusive."""
        a = self._a
        # Each left is just after a comma and each right just before one: indexes stay in a.
        s = lefts.copy()
        for _ in range(_WS_STEPS):
            step = (s <= rights) & _IS_WS[a[s]]
            if not step.any():
                break
            s += step
        else:
            for k in np.flatnonzero((s <= rights) & _IS_WS[a[s]]).tolist():
                f = _first_nonws(self._view, int(s[k]), int(rights[k]) + 1)
                s[k] = f if f >= 0 else rights[k] + 1
        e = rights.copy()
        for _ in range(_WS_STEPS):
            step = (e >= s) & _IS_WS[a[e]]
            if not step.any():
                break
            e -= step
        else:
            for k in np.flatnonzero((e >= s) & _IS_WS[a[e]]).tolist():
                f = _last_nonws(self._view, int(s[k]), int(e[k]) + 1)
                e[k] = f if f >= 0 else s[k] - 1
        lines = np.searchsorted(self._nl, s) + (self._newlines + 1)
        view, out, limit = self._view, self._out, self.max_record_bytes
        index, container = self._index, self._container
        for st, en, line in zip(s.tolist(), e.tolist(), lines.tolist(), strict=True):
            if en < st:
                out.append(Piece(line, index, container, None, "invalid JSON: empty element"))
            elif en - st >= limit:
                why = f"element longer than {limit} bytes ({en - st + 1} bytes)"
                out.append(Piece(line, index, container, None, why))
            else:
                out.append(Piece(line, index, container, bytes(view[st : en + 1])))
            index += 1
        self._index = index

    def _append(self, lo: int, hi: int, limit: int) -> None:
        """Add [lo, hi) to the record in progress, keeping at most limit bytes of it."""
        if hi <= lo:
            return
        rec = self._rec
        last = _last_nonws(self._view, lo, hi)
        if last >= 0:
            rec.last = self._abs + last
        buf = rec.buf
        if buf is None:
            return
        if rec.last - rec.start + 1 > limit:
            rec.buf = None
            return
        if rec.trimmed:
            return
        if len(buf) + hi - lo <= limit:
            buf += self._view[lo:hi]
            return
        # Only whitespace lies past the limit, and any further content would not fit anyway.
        keep = rec.last - (self._abs + lo) + 1
        if keep > 0:
            buf += self._view[lo : lo + keep]
        rec.trimmed = True

    # -- end of document --------------------------------------------------------------------

    def _finish(self) -> None:
        """Report what the end of the document left incomplete, as one problem piece."""
        if self._skip:
            return
        mode = self._mode
        if mode == _TOP:
            if self._gap is not None and self._gap_values(final=True) < 0 and self._gap:
                why = "invalid JSON: the document ends inside a string"
                self._problem(self._gap_line, None, None, why)
            return
        if mode in (_ARRAY, _ITEMS):
            rec = self._rec
            inner = rec is not None and self._depth > (1 if mode == _ARRAY else 2)
            where = "an object" if inner and rec.first == _OPEN_BRACE else "an array"
            line = rec.line if rec is not None else max(1, self.lines)
            index, container = self._index, self._container
        else:
            where = "an object"
            line, index, container = self._object_line, None, None
        if self._in_string:
            where = "a string"
        # The incomplete record's bytes (when held) let the caller salvage whole lines from it.
        rec = self._rec
        data = bytes(rec.buf).rstrip() if rec is not None and rec.buf is not None else None
        why = f"invalid JSON: the document ends inside {where}"
        self._out.append(Piece(line, index, container, data, why))


def iter_records(blocks: Iterable[bytes | memoryview], *, max_record_bytes: int) -> RecordStream:
    """Return a RecordStream over blocks: iterate it for the Pieces, read its counters after."""
    return RecordStream(blocks, max_record_bytes=max_record_bytes)


def _escaped(backslashes: np.ndarray, odd_before: bool, n: int) -> tuple[np.ndarray, bool]:
    """Return the sorted positions escaped by a backslash run, and whether position n is."""
    if len(backslashes) == 0:
        return (np.zeros(1, dtype=np.int64) if odd_before else np.empty(0, np.int64)), False
    breaks = np.flatnonzero(np.diff(backslashes) != 1)
    starts = np.concatenate((backslashes[:1], backslashes[breaks + 1]))
    ends = np.concatenate((backslashes[breaks], backslashes[-1:]))
    odd = ((ends - starts) & 1) == 0
    escaped_first = False
    if odd_before:
        # The run left open by the previous slice goes on, or escapes this slice's first byte.
        if starts[0] == 0:
            odd[0] = not odd[0]
        else:
            escaped_first = True
    escaped = ends[odd] + 1
    if escaped_first:
        escaped = np.concatenate((np.zeros(1, dtype=escaped.dtype), escaped))
    return escaped, bool(odd[-1]) and int(ends[-1]) == n - 1


def _first_nonws(view: memoryview, lo: int, hi: int) -> int:
    """Return the position of the first non-whitespace byte in view[lo:hi], or -1."""
    step = 64
    while lo < hi:
        end = min(hi, lo + step)
        rest = len(bytes(view[lo:end]).lstrip(_WS))
        if rest:
            return end - rest
        lo, step = end, step * 4
    return -1


def _last_nonws(view: memoryview, lo: int, hi: int) -> int:
    """Return the position of the last non-whitespace byte in view[lo:hi], or -1."""
    step = 64
    while lo < hi:
        start = max(lo, hi - step)
        kept = len(bytes(view[start:hi]).rstrip(_WS))
        if kept:
            return start + kept - 1
        hi, step = start, step * 4
    return -1


def _container_key(look: bytes) -> tuple[str, int] | None:
    """Return the container key that `look` (the text before a `[`) ends with, and its offset.

    The offset is just past the `{` or `,` before the key: where the envelope's text stops.
    """
    text = look.rstrip(_WS)
    if not text.endswith(b":"):
        return None
    text = text[:-1].rstrip(_WS)
    for key in _KEYS:
        if text[-len(key) :].lower() == key:
            head = text[: -len(key)].rstrip(_WS)
            if head.endswith((b"{", b",")):
                return key[1:-1].decode(), len(head)
    return None
