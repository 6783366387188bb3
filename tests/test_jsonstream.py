"""The streaming JSON splitter: records found whatever the block boundaries, memory bounded."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kforensics.ingest.jsonstream import Piece, RecordStream, iter_records

EVENTS = [
    {"kind": "Event", "auditID": "a1", "verb": "get", "user": {"groups": ["dev", "ops"]}},
    {"kind": "Event", "auditID": "a2", "objectRef": {"name": "x{y}[z],"}},
    {"kind": "Event", "auditID": "a3", "annotations": {"why": 'a " b \\ c \\" d'}},
]
EVENT_LIST = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": EVENTS}
PRETTY = json.dumps(EVENT_LIST, indent=2).encode()


def blocks_of(doc: bytes, size: int) -> list[bytes]:
    return [doc[i : i + size] for i in range(0, len(doc), size)]


def split(doc: bytes | str, size: int | None = None, limit: int = 1 << 20) -> RecordStream:
    """Return the stream after reading doc in blocks of size (one block when None)."""
    if isinstance(doc, str):
        doc = doc.encode()
    stream = iter_records([doc] if size is None else blocks_of(doc, size), max_record_bytes=limit)
    stream.pieces = list(stream)
    return stream


def records(doc: bytes | str, size: int | None = None, limit: int = 1 << 20) -> list[tuple]:
    """Return (line, index, container, problem or data) per piece."""
    pieces = split(doc, size, limit).pieces
    return [(p.line, p.index, p.container, p.problem or p.data) for p in pieces]


def element_text(event: dict) -> bytes:
    """Return an event as json.dumps(indent=2) prints it inside the items array."""
    return json.dumps(event, indent=2).replace("\n", "\n    ").encode()


def test_pretty_event_list_is_split_the_same_whatever_the_block_size():
    whole = split(PRETTY)
    assert [(p.line, p.index, p.container, p.problem) for p in whole.pieces] == [
        (6, 0, "items", None),
        (17, 1, "items", None),
        (24, 2, "items", None),
    ]
    assert [p.data for p in whole.pieces] == [element_text(e) for e in EVENTS]
    assert [json.loads(p.data) for p in whole.pieces] == EVENTS
    assert whole.pieces[0].kind == "container"
    assert (whole.lines, whole.values, whole.bytes) == (32, 1, len(PRETTY))
    assert json.loads(whole.envelope_text) == {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
    }
    for size in range(1, 65):
        stream = split(PRETTY, size)
        assert stream.pieces == whole.pieces, size
        assert (stream.lines, stream.values, stream.envelope_text) == (
            32,
            1,
            whole.envelope_text,
        ), size


def test_memoryview_blocks_and_a_caller_block_bigger_than_a_slice(monkeypatch):
    monkeypatch.setattr("kforensics.ingest.jsonstream.SLICE_BYTES", 7)
    view = memoryview(PRETTY)
    stream = iter_records([view[:100], view[100:]], max_record_bytes=1000)
    assert [p.data for p in stream] == [element_text(e) for e in EVENTS]


def test_root_array():
    assert records('[{"a": 1},\n "two", 3, [4, {"b": [5]}], true, null]') == [
        (1, 0, None, b'{"a": 1}'),
        (2, 1, None, b'"two"'),
        (2, 2, None, b"3"),
        (2, 3, None, b'[4, {"b": [5]}]'),
        (2, 4, None, b"true"),
        (2, 5, None, b"null"),
    ]
    assert split("[1]").pieces[0].kind == "array"


def test_aks_records_and_odd_key_case():
    doc = '{"records": [{"category": "kube-audit"}, {"category": "kube-audit-admin"}]}'
    assert records(doc) == [
        (1, 0, "records", b'{"category": "kube-audit"}'),
        (1, 1, "records", b'{"category": "kube-audit-admin"}'),
    ]
    assert records('{"Records":[{"x":1}]}') == [(1, 0, "records", b'{"x":1}')]
    assert records('{ "ITEMS" : [1] }') == [(1, 0, "items", b"1")]


def test_eks_events_with_a_next_token():
    doc = '{"events": [{"message": "{\\"kind\\":\\"Event\\"}"}], "nextForwardToken": "f/1"}'
    stream = split(doc)
    assert [(p.line, p.index, p.container, p.data) for p in stream.pieces] == [
        (1, 0, "events", b'{"message": "{\\"kind\\":\\"Event\\"}"}')
    ]
    assert stream.envelope_text == b'{"nextForwardToken": "f/1"}'


def test_items_after_other_keys_and_nested_items_are_not_containers():
    doc = (
        '{"kind": "EventList", "metadata": {"items": [9]}, "records": "no",\n'
        ' "items": [{"spec": {"items": [1, 2]}}, {"events": [3]}], "after": [7]}'
    )
    stream = split(doc)
    assert [(p.line, p.index, p.container, p.data) for p in stream.pieces] == [
        (2, 0, "items", b'{"spec": {"items": [1, 2]}}'),
        (2, 1, "items", b'{"events": [3]}'),
    ]
    assert json.loads(stream.envelope_text) == {
        "kind": "EventList",
        "metadata": {"items": [9]},
        "records": "no",
        "after": [7],
    }


def test_other_root_objects_and_scalars_are_one_record_each():
    doc = '{"kind": "Event", "items": {"not": "an array"}}\n"text" -1.5e3 false\n{"a": [[]]}'
    stream = split(doc)
    assert [(p.line, p.index, p.container, p.data) for p in stream.pieces] == [
        (1, None, None, b'{"kind": "Event", "items": {"not": "an array"}}'),
        (2, None, None, b'"text"'),
        (2, None, None, b"-1.5e3"),
        (2, None, None, b"false"),
        (3, None, None, b'{"a": [[]]}'),
    ]
    assert stream.pieces[0].kind == "value"
    assert (stream.values, stream.lines) == (5, 3)


TRICKY = [
    "{[}]",
    '\\"',
    "\\\\",
    '\\\\\\"',
    "\\\\\\\\",
    "\\",
    '"',
    "a\\\\",
    '",]}',
]


@pytest.mark.parametrize("size", range(1, 17))
def test_strings_with_brackets_and_backslash_runs_at_every_boundary(size):
    doc = json.dumps({"items": [{"s": s} for s in TRICKY] + TRICKY}).encode()
    pieces = split(doc, size).pieces
    assert [json.loads(p.data) for p in pieces] == [{"s": s} for s in TRICKY] + TRICKY


def test_escaped_quote_as_the_last_byte_of_a_block():
    doc = b'["ab\\"], [", "c\\\\", "d\\\\\\"]"]'
    cut = doc.index(b'\\"') + 2  # the first block ends with the escaped quote
    expected = [b'"ab\\"], ["', b'"c\\\\"', b'"d\\\\\\"]"']
    assert [p.data for p in iter_records([doc[:cut], doc[cut:]], max_record_bytes=99)] == expected
    # a backslash run cut in two, odd and even
    for cut in range(len(doc)):
        assert [p.data for p in iter_records([doc[:cut], doc[cut:]], max_record_bytes=99)] == (
            expected
        ), cut


def test_concatenated_pretty_objects_as_jq_prints_them():
    doc = "\n".join(json.dumps(e, indent=2) for e in EVENTS) + "\n"
    starts = (1, 12, 19)
    expected = [
        (line, None, None, json.dumps(e, indent=2).encode())
        for line, e in zip(starts, EVENTS, strict=True)
    ]
    assert records(doc) == expected
    for size in (1, 2, 3, 5, 8, 13):
        assert records(doc, size) == expected
    assert split(doc).values == 3
    assert records('{"a":1}{"b":2}[3]') == [
        (1, None, None, b'{"a":1}'),
        (1, None, None, b'{"b":2}'),
        (1, 0, None, b"3"),
    ]


def test_bom_trailing_whitespace_and_crlf():
    doc = b'\xef\xbb\xbf[\r\n  {"a": 1},\r\n  {"b": 2}\r\n]\r\n  \t \r\n'
    expected = [(2, 0, None, b'{"a": 1}'), (3, 1, None, b'{"b": 2}')]
    for size in (None, 1, 2, 4):
        stream = split(doc, size)
        assert [(p.line, p.index, p.container, p.data) for p in stream.pieces] == expected
        assert (stream.lines, stream.values, stream.bytes) == (5, 1, len(doc))
    assert records(b"\xef\xbb\xbf") == []
    assert records(b"\xef\xbb\xbf42") == [(1, None, None, b"42")]


def test_line_count_with_and_without_a_last_newline():
    assert split("[1]").lines == 1
    assert split("[1]\n").lines == 1
    assert split("[1]\n\n").lines == 2
    assert split("").lines == 0
    assert split("").values == 0


def test_truncated_document_reports_the_rest_once_at_the_line_it_began():
    doc = json.dumps(EVENT_LIST, indent=2).encode()
    cut = doc.index(b'"a3"')
    for size in (None, 1, 7, 64):
        assert records(doc[:cut], size) == [
            (6, 0, "items", element_text(EVENTS[0])),
            (17, 1, "items", element_text(EVENTS[1])),
            (24, 2, "items", "invalid JSON: the document ends inside an object"),
        ]
    assert records(doc[: cut + 2], None)[-1] == (
        24,
        2,
        "items",
        "invalid JSON: the document ends inside a string",
    )
    assert records("[1, 2") == [
        (1, 0, None, b"1"),
        (1, 1, None, "invalid JSON: the document ends inside an array"),
    ]
    assert records('[{"a": [1]}\n') == [
        (1, 0, None, "invalid JSON: the document ends inside an array"),
    ]
    assert records('{"kind": "Event",\n "x": 1') == [
        (1, None, None, "invalid JSON: the document ends inside an object"),
    ]
    assert records('[1]\n"abc') == [
        (1, 0, None, b"1"),
        (2, None, None, "invalid JSON: the document ends inside a string"),
    ]


def test_element_over_the_limit_is_reported_and_the_next_ones_kept():
    doc = '[\n{"a": "' + "x" * 100 + '"},\n{"b": 2},\n"' + "y" * 200 + '", 3]'
    for size in (None, 1, 16, 64):
        assert records(doc, size, limit=50) == [
            (2, 0, None, "element longer than 50 bytes (109 bytes)"),
            (3, 1, None, b'{"b": 2}'),
            (4, 2, None, "element longer than 50 bytes (202 bytes)"),
            (4, 3, None, b"3"),
        ]
    assert records('[{"a": 1}  ,  {"b": 22}    ]', 1, limit=8) == [
        (1, 0, None, b'{"a": 1}'),
        (1, 1, None, "element longer than 8 bytes (9 bytes)"),
    ]
    assert records('{"big": "%s"}\n{"a": 1}' % ("z" * 70_000), 4096, limit=100) == [
        (1, None, None, "value longer than 100 bytes (70011 bytes)"),
        (2, None, None, b'{"a": 1}'),
    ]


def test_huge_element_is_not_held_in_memory():
    chunk = b"x" * (64 << 10)
    total = 50 << 20

    def blocks():
        yield b'{"kind": "EventList", "items": [{"a": 1}, {"big": "'
        for _ in range(total // len(chunk)):
            yield chunk
        yield b'"}, {"b": 2}]}'

    tracemalloc.start()
    try:
        stream = iter_records(blocks(), max_record_bytes=1000)
        pieces = list(stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(p.index, p.data or p.problem) for p in pieces] == [
        (0, b'{"a": 1}'),
        (1, f"element longer than 1000 bytes ({total + 11} bytes)"),
        (2, b'{"b": 2}'),
    ]
    assert peak < 5 << 20, peak


def test_many_records_stream_in_bounded_memory():
    doc = json.dumps({"kind": "EventList", "items": EVENTS * 10_000}, indent=2).encode()
    blocks = blocks_of(doc, 128 << 10)
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_records(blocks, max_record_bytes=1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 30_000
    assert peak < 3 << 20, peak  # the document is 4 MB


def test_tiny_records_are_scanned_in_parts_with_the_same_result(monkeypatch):
    doc = b"[" + b",".join(b"%d" % (i % 10) for i in range(1000)) + b"]\n" + b"{}" * 100
    whole = records(doc)
    monkeypatch.setattr("kforensics.ingest.jsonstream._MAX_PIECES", 3)
    monkeypatch.setattr("kforensics.ingest.jsonstream.SLICE_BYTES", 100)
    assert records(doc) == whole
    assert len(whole) == 1100
    assert whole[999] == (1, 999, None, b"9")
    assert whole[1099] == (2, None, None, b"{}")


def test_empty_arrays_are_counted_not_reported():
    stream = split('[]\n{"items": [ ]}\n{"Events":[\n]}\n[[]]')
    assert [(p.line, p.index, p.data) for p in stream.pieces] == [(5, 0, b"[]")]
    assert stream.empty_containers == [(1, None), (2, "items"), (3, "events")]
    assert stream.values == 4


def test_invalid_structure_is_reported():
    assert records("[1,,2,]") == [
        (1, 0, None, b"1"),
        (1, 1, None, "invalid JSON: empty element"),
        (1, 2, None, b"2"),
        (1, 3, None, "invalid JSON: empty element"),
    ]
    assert records("[1]]\n[2]") == [
        (1, 0, None, b"1"),
        (1, None, None, "invalid JSON: unbalanced ']'"),
        (2, 0, None, b"2"),
    ]
    assert records('[1}\n{"a": 1]') == [
        (1, 0, None, b"1"),
        (1, None, None, "invalid JSON: unbalanced '}'"),
        (2, None, None, "invalid JSON: unbalanced ']'"),
    ]
    assert records('{"a": 1},\n{"b": 2}') == [
        (1, None, None, b'{"a": 1}'),
        (1, None, None, "invalid JSON: unexpected text between values"),
        (2, None, None, b'{"b": 2}'),
    ]


def test_text_between_values_resynchronises_at_the_next_line_starting_a_value():
    doc = '{"a": 1}\nnot json "at all [ {\n  {"skipped": 1}\n[2]\n{"c": 3}\n'
    for size in (None, 1, 3):
        stream = split(doc, size)
        assert [(p.line, p.index, p.data or p.problem) for p in stream.pieces] == [
            (1, None, b'{"a": 1}'),
            (2, None, "invalid JSON: unexpected text between values"),
            (4, 0, b"2"),
            (5, None, b'{"c": 3}'),
        ]
        assert (stream.lines, stream.values) == (5, 3)
    assert records("nul") == [(1, None, None, "invalid JSON: unexpected text between values")]


def test_envelope_too_long_is_dropped_and_noted():
    doc = '{"metadata": "%s", "items": [1]}' % ("m" * 70_000)
    stream = split(doc, 1000, limit=10)
    assert [p.data for p in stream.pieces] == [b"1"]
    assert stream.envelope_text is None
    assert stream.envelope_note == "envelope longer than 65536 bytes: dropped"


def test_stream_is_an_iterator_read_once_and_limit_must_be_positive():
    stream = iter_records(iter([b"[1, ", b"2]"]), max_record_bytes=10)
    assert next(stream) == Piece(1, 0, None, b"1")
    assert (stream.bytes, stream.values) == (4, 1)  # counters fill in as blocks are read
    assert list(stream) == [Piece(1, 1, None, b"2")]
    assert list(stream) == []
    with pytest.raises(ValueError):
        iter_records([b"[1]"], max_record_bytes=0)


KEYS = ["items", "Records", '"', "\\"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(alphabet=st.sampled_from('"\\{}[],: \n\t/ab\u00e9\u2028\U0001f600')),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    elements=st.lists(json_values, max_size=6),
    wrap=st.sampled_from(["array", "items", "Records", "events-after"]),
    indent=st.sampled_from([None, 0, 1, 2, "\t"]),
    ascii_only=st.booleans(),
    sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8),
)
def test_pieces_parse_to_the_original_elements(elements, wrap, indent, ascii_only, sizes):
    if wrap == "array":
        value = elements
    elif wrap == "events-after":
        value = {"kind": "x", "nested": {"items": [1]}, "events": elements}
    else:
        value = {wrap: elements, "nextForwardToken": "t"}
    doc = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    blocks, i, k = [], 0, 0
    while i < len(doc):
        blocks.append(doc[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    stream = iter_records(blocks, max_record_bytes=1 << 20)
    pieces = list(stream)
    assert [p.problem for p in pieces] == [None] * len(elements)
    assert [json.loads(p.data) for p in pieces] == elements
    assert [p.index for p in pieces] == list(range(len(elements)))
    assert (stream.lines, stream.values) == (doc.count(b"\n") + 1, 1)
    # Only commas and whitespace lie between elements: each is found right after the last.
    key = {"array": None, "items": "items", "Records": "records", "events-after": "events"}[wrap]
    at = doc.index(b"[", 0 if key is None else doc.lower().index(b'"%s"' % key.encode()))
    opened = (doc.count(b"\n", 0, at) + 1, key)
    at += 1
    for p in pieces:
        at = doc.index(p.data, at)
        assert p.line == doc.count(b"\n", 0, at) + 1
        at += len(p.data)
    assert stream.empty_containers == ([] if elements else [opened])


FRAGMENTS = [
    *'[]{}",:\n a1',
    "\\",
    "\\\\",
    '\\"',
    "\r\n",
    "true",
    '"items"',
    '"x"',
    '{"items": [',
    '{"Events":[',
    "\n{",
    "\n[",
    "\xef\xbb\xbf",
]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), max_size=40),
    size=st.integers(min_value=1, max_value=9),
    limit=st.sampled_from([4, 1 << 20]),
)
def test_any_text_gives_the_same_pieces_whatever_the_blocks(parts, size, limit):
    doc = "".join(parts).encode()
    whole, cut = split(doc, None, limit), split(doc, size, limit)
    assert cut.pieces == whole.pieces
    assert (cut.lines, cut.values, cut.bytes, cut.empty_containers, cut.envelope_text) == (
        whole.lines,
        whole.values,
        whole.bytes,
        whole.empty_containers,
        whole.envelope_text,
    )
    assert whole.lines == doc.count(b"\n") + (
        not doc.endswith(b"\n") and doc not in (b"", b"\xef\xbb\xbf")
    )
