"""Pieces of a document (what jsonstream yields), and container arrays split into them.

A container array is a root array, or the items/records/events array of a root object; its
elements are the records. Elements lying wholly in a slice are cut out at once between its
commas; one spanning slices is gathered in a PartialRecord.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kforensics.ingest.jsonscan import PartialRecord, Slice, first_nonws, trimmed_spans


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


class ContainerArray:
    """A container array being split: its key, where it opened, the element in progress."""

    __slots__ = ("key", "line", "limit", "index", "rec", "empties")

    def __init__(
        self, key: str | None, line: int, limit: int, empties: list[tuple[int, str | None]]
    ) -> None:
        self.key = key  # "items", "records", "events"; None for a root array
        self.line = line
        self.limit = limit  # most bytes an element may have
        self.index = 0  # of the element in progress
        self.rec: PartialRecord | None = None
        self.empties = empties  # (line, key) of each array found empty is added here

    def split(
        self, sl: Slice, lo: int, hi: int, commas: np.ndarray, out: list[Piece], *, close: bool
    ) -> None:
        """Split [lo, hi) of the slice at the array's commas; close if hi is its `]`."""
        i, j = commas.searchsorted((lo, hi)).tolist()
        if i == j:
            self._slot_text(sl, lo, hi)
        else:
            cs = commas[i:j]
            first, last = int(cs[0]), int(cs[-1])
            self._slot_text(sl, lo, first)
            self._end_slot(sl, first, out, close=False)
            if j - i > 1:
                self._whole_elements(sl, cs[:-1] + 1, cs[1:] - 1, out)
            self._slot_text(sl, last + 1, hi)
        if close:
            self._end_slot(sl, hi, out, close=True)

    def _slot_text(self, sl: Slice, lo: int, hi: int) -> None:
        """Take [lo, hi) of the element slot in progress (its leading whitespace skipped)."""
        if hi <= lo:
            return
        if self.rec is None:
            s = first_nonws(sl.view, lo, hi)
            if s < 0:
                return
            self.rec = PartialRecord(sl.start + s, sl.line_at(s), int(sl.a[s]), bytearray())
            lo = s
        self.rec.append(sl.view, sl.start, lo, hi, self.limit)

    def _end_slot(self, sl: Slice, p: int, out: list[Piece], *, close: bool) -> None:
        """Yield the element whose slot ends at the delimiter p."""
        rec, self.rec = self.rec, None
        if rec is None:
            if close and self.index == 0:
                self.empties.append((self.line, self.key))
            else:
                why = "invalid JSON: empty element"
                out.append(Piece(sl.line_at(p), self.index, self.key, None, why))
                self.index += 1
            return
        size = rec.last - rec.start + 1
        if rec.buf is None:
            why = f"element longer than {self.limit} bytes ({size} bytes)"
            out.append(Piece(rec.line, self.index, self.key, None, why))
        else:
            out.append(Piece(rec.line, self.index, self.key, bytes(rec.buf[:size])))
        self.index += 1

    def _whole_elements(
        self, sl: Slice, lefts: np.ndarray, rights: np.ndarray, out: list[Piece]
    ) -> None:
        """Yield the elements lying wholly in this slice, between [lefts, rights] inclusive."""
        # Each left is just after a comma and each right just before one: indexes stay in a.
        s, e = trimmed_spans(sl.a, sl.view, lefts, rights)
        lines = np.searchsorted(sl.nl, s) + (sl.newlines + 1)
        view, limit = sl.view, self.limit
        index, container = self.index, self.key
        for st, en, line in zip(s.tolist(), e.tolist(), lines.tolist(), strict=True):
            if en < st:
                out.append(Piece(line, index, container, None, "invalid JSON: empty element"))
            elif en - st >= limit:
                why = f"element longer than {limit} bytes ({en - st + 1} bytes)"
                out.append(Piece(line, index, container, None, why))
            else:
                out.append(Piece(line, index, container, bytes(view[st : en + 1])))
            index += 1
        self.index = index
