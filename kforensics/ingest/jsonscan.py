"""The byte-level scan of JSON text, slice by slice: no Python code runs per byte.

The structure is found with numpy over each slice, as simdjson does: quotes, backslashes,
brackets, commas and newlines are located at once; a quote is escaped when the backslash run
before it is odd; a byte is inside a string when the unescaped quotes before it are odd; bracket
depth is a cumulative sum outside strings. What a slice leaves open (a string, a backslash run,
the depth) is handed to the next one. Also here: the document's blocks as byte views without
their BOM (byte_views), the slice being scanned (Slice), whitespace trimmed off spans, and a
record that spans slices, gathered up to a limit (PartialRecord).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

QUOTE, BACKSLASH, COMMA, NEWLINE = 0x22, 0x5C, 0x2C, 0x0A
OPEN_BRACE, CLOSE_BRACE, OPEN_BRACKET, CLOSE_BRACKET = 0x7B, 0x7D, 0x5B, 0x5D
# JSON's whitespace, as bytes to strip and as a lookup table by byte value.
WS = b" \t\r\n"
_IS_WS = np.zeros(256, dtype=bool)
_IS_WS[[0x09, 0x0A, 0x0D, 0x20]] = True
# Whitespace steps taken for all elements at once before looking for the rest one by one.
_WS_STEPS = 16
_BOM = b"\xef\xbb\xbf"


def byte_views(
    blocks: Iterable[bytes | memoryview], count: Callable[[int], None]
) -> Iterator[memoryview]:
    """Return the blocks as byte views without the BOM; `count` is told each block's size."""
    blocks = iter(blocks)
    head = b""  # the first bytes, until there are enough to tell a BOM
    for block in blocks:
        view = memoryview(block).cast("B")
        count(len(view))
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
        count(len(view))
        yield view


@dataclass(slots=True)
class Slice:
    """The slice being scanned: its bytes (as a view and as numpy), where it starts, its lines."""

    view: memoryview
    a: np.ndarray
    start: int  # document offset of view[0]
    nl: np.ndarray  # positions of its newlines
    newlines: int  # newlines before it

    def line_at(self, p: int) -> int:
        """Return the line of position p of the slice."""
        return self.newlines + int(self.nl.searchsorted(p)) + 1


def structure(
    a: np.ndarray, *, in_string: bool, depth: int, odd_backslashes: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool, bool]:
    """Return newline positions, structural positions, their bytes and the depth after each.

    Structural bytes are brackets and commas outside strings. `in_string`, `depth` and
    `odd_backslashes` are what the previous slice left open; also returned: whether a string
    and an odd backslash run are still open at the end, for the next slice.
    """
    low = a | 0x20  # `[` and `]` become `{` and `}`
    hit = (a == QUOTE) | (a == BACKSLASH) | (a == COMMA) | (a == NEWLINE)
    hit |= (low == OPEN_BRACE) | (low == CLOSE_BRACE)
    pos = np.flatnonzero(hit)
    ch = a[pos]
    is_nl = ch == NEWLINE
    is_quote = ch == QUOTE
    is_bs = ch == BACKSLASH
    real_quote = is_quote
    odd_out = False
    if odd_backslashes or is_bs.any():
        escaped, odd_out = _escaped(pos[is_bs], odd_backslashes, len(a))
        # Escaped bytes are few: look them up among the hits rather than the reverse.
        k = np.searchsorted(pos, escaped)
        k = k[k < len(pos)]
        k = k[pos[k] == escaped[: len(k)]]
        if len(k):
            real_quote = is_quote.copy()
            real_quote[k] = False
    parity = np.cumsum(real_quote, dtype=np.int64)
    if in_string:
        parity += 1
    string_open = bool(parity[-1] & 1) if len(parity) else in_string
    structural = ((parity & 1) == 0) & ~(is_quote | is_bs | is_nl)
    sp = pos[structural]
    sc = ch[structural]
    sl = sc | 0x20
    after = np.cumsum((sl == OPEN_BRACE).astype(np.int64) - (sl == CLOSE_BRACE))
    after += depth
    return pos[is_nl], sp, sc, after, string_open, odd_out


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


def trimmed_spans(
    a: np.ndarray, view: memoryview, lefts: np.ndarray, rights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the first and last non-whitespace positions of each span [lefts, rights].

    A span of whitespace alone comes back with its last position before its first. Each left
    must be just after a delimiter and each right just before one, so indexes stay in `a`.
    """
    s = lefts.copy()
    for _ in range(_WS_STEPS):
        step = (s <= rights) & _IS_WS[a[s]]
        if not step.any():
            break
        s += step
    else:
        for k in np.flatnonzero((s <= rights) & _IS_WS[a[s]]).tolist():
            f = first_nonws(view, int(s[k]), int(rights[k]) + 1)
            s[k] = f if f >= 0 else rights[k] + 1
    e = rights.copy()
    for _ in range(_WS_STEPS):
        step = (e >= s) & _IS_WS[a[e]]
        if not step.any():
            break
        e -= step
    else:
        for k in np.flatnonzero((e >= s) & _IS_WS[a[e]]).tolist():
            f = last_nonws(view, int(s[k]), int(e[k]) + 1)
            e[k] = f if f >= 0 else s[k] - 1
    return s, e


def first_nonws(view: memoryview, lo: int, hi: int) -> int:
    """Return the position of the first non-whitespace byte in view[lo:hi], or -1."""
    step = 64
    while lo < hi:
        end = min(hi, lo + step)
        rest = len(bytes(view[lo:end]).lstrip(WS))
        if rest:
            return end - rest
        lo, step = end, step * 4
    return -1


def last_nonws(view: memoryview, lo: int, hi: int) -> int:
    """Return the position of the last non-whitespace byte in view[lo:hi], or -1."""
    step = 64
    while lo < hi:
        start = max(lo, hi - step)
        kept = len(bytes(view[start:hi]).rstrip(WS))
        if kept:
            return start + kept - 1
        hi, step = start, step * 4
    return -1


class PartialRecord:
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

    def append(self, view: memoryview, offset: int, lo: int, hi: int, limit: int) -> None:
        """Add view[lo:hi] (the view starts at document `offset`), keeping at most limit bytes."""
        if hi <= lo:
            return
        last = last_nonws(view, lo, hi)
        if last >= 0:
            self.last = offset + last
        buf = self.buf
        if buf is None:
            return
        if self.last - self.start + 1 > limit:
            self.buf = None
            return
        if self.trimmed:
            return
        if len(buf) + hi - lo <= limit:
            buf += view[lo:hi]
            return
        # Only whitespace lies past the limit, and any further content would not fit anyway.
        keep = self.last - (offset + lo) + 1
        if keep > 0:
            buf += view[lo : lo + keep]
        self.trimmed = True
