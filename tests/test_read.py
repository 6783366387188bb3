"""The reader cuts a block into pieces of at most MAX_BLOCK_LINES lines, finding newlines once."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kforensics.ingest import read


def cut(data: bytes, max_lines: int, step: int) -> list[tuple[int, bytes, list[int]]]:
    return [
        (at, bytes(piece), nl.tolist())
        for at, piece, nl in read._pieces(memoryview(data), max_lines, step)
    ]


def test_a_block_of_newlines_is_cut_after_every_max_lines_th():
    assert cut(b"\n" * 7, 3, 2) == [
        (0, b"\n\n\n", [0, 1, 2]),
        (3, b"\n\n\n", [0, 1, 2]),
        (6, b"\n", [0]),
    ]


def test_the_last_piece_may_lack_its_newline():
    assert cut(b"ab\ncd\nef", 2, 4) == [(0, b"ab\ncd\n", [2, 5]), (6, b"ef", [])]


def test_a_block_that_ends_on_a_cut_has_no_empty_piece():
    assert cut(b"a\nb\n", 2, 1) == [(0, b"a\nb\n", [1, 3])]


def test_an_empty_block_has_no_piece():
    assert cut(b"", 3, 4) == []


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\n")),
    st.integers(1, 20),
    st.integers(1, 64),
)
def test_pieces_make_the_block_and_their_newlines_are_its_own(data, max_lines, step):
    pieces = cut(data, max_lines, step)
    assert b"".join(p for _, p, _ in pieces) == data
    at = 0
    for i, (start, piece, nl) in enumerate(pieces):
        assert start == at
        assert nl == np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10).tolist()
        if i < len(pieces) - 1:  # all but the last end after their max_lines-th newline
            assert len(nl) == max_lines and nl[-1] == len(piece) - 1
        else:
            assert len(nl) <= max_lines
        at += len(piece)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=1))
def test_split_lines_with_the_newlines_found_equals_finding_them_itself(lines):
    data = b"\n".join(lines) + b"\n"
    [(_, piece, nl)] = read._pieces(memoryview(data), 1 << 20)
    given_nl = read.split_lines(piece, 1, 0, nl)
    found = read.split_lines(piece, 1, 0)
    assert given_nl.text.to_pylist() == found.text.to_pylist()
    assert given_nl.numbers.tolist() == found.numbers.tolist()
    assert given_nl.digests.to_pylist() == found.digests.to_pylist()
