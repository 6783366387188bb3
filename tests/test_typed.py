"""The typed fast path maps a line exactly as the full mapping does, or leaves it to it.

`typed.typed_select` trusts DuckDB's typed parse of a string or object only where its value
could not be another JSON type's text, or `json_type` says it had the type the parse assumed.
Each test loads the same lines twice, once as a load does and once with every line sent to the
full mapping (`TYPED_MAX_BYTES = -1`), and compares every column of every event and every
reject.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import load
from kforensics.case import connect
from kforensics.ingest import typed, windows
from tests.conftest import event, jsonl

COLUMNS = "* EXCLUDE (load_id)"


def contents(case: Path) -> tuple[list, list, list]:
    """Return the case's events, rejects and per-file accounting, in line order."""
    with connect(case) as con:
        events = con.execute(f"SELECT {COLUMNS} FROM events ORDER BY source_line").fetchall()
        rejects = con.execute(
            "SELECT source_line, reason, raw FROM rejects ORDER BY source_line"
        ).fetchall()
        sources = con.execute(
            "SELECT lines_read, events_loaded, duplicates, rejected FROM sources"
        ).fetchall()
    return events, rejects, sources


def both_ways(folder: Path, data: bytes) -> tuple[tuple, tuple, int | None]:
    """Return the case contents loaded with the fast path, without it, and the events it left.

    The last is the number of events the full mapping wrote in the first load (None: the fast
    path left no line to it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "audit.log"
    log.write_bytes(data)
    fast, full = folder / "fast.duckdb", folder / "full.duckdb"
    for case in (fast, full):
        case.unlink(missing_ok=True)
    counts: list[int] = []
    real = windows._untyped

    def counting(*args):
        counts.append(real(*args))
        return counts[-1]

    with mock.patch.object(windows, "_untyped", counting):
        load(fast, [log], progress=False)
    with mock.patch.object(typed, "TYPED_MAX_BYTES", -1):
        load(full, [log], progress=False)
    return contents(fast), contents(full), sum(counts) if counts else None


def test_well_typed_events_take_the_fast_path_and_map_as_the_full_mapping(tmp_path):
    lines = jsonl(*(event(f"a{i}", verb=["get", "list", "watch"][i % 3]) for i in range(30)))
    fast, full, passed_on = both_ways(tmp_path, lines)
    assert fast == full
    assert passed_on is None  # not one line needed the full mapping
    assert len(fast[0]) == 30 and fast[1] == []


# Each of these parses with DuckDB's typed reader into a value the full mapping refuses or
# reads otherwise: the fast path must leave the line to the full mapping.
ILL_TYPED = {
    "verb as a number": event("b1", verb=5),
    "username as an object": event("b2", user={"username": {"x": 1}, "groups": []}),
    "groups with a number": event("b3", user={"username": "u", "groups": ["a", 7]}),
    "sourceIPs as a string": event("b4", sourceIPs="203.0.113.10"),
    "code as a string": event("b5", responseStatus={"code": "200"}),
    "code as a float": event("b6", responseStatus={"code": 200.5}),
    "code past INTEGER": event("b7", responseStatus={"code": 2**40}),
    "annotation value as a number": event("b8", annotations={"a": 1}),
    "annotations as a list": event("b9", annotations=["a"]),
    "timestamp not a time": event("b10", requestReceivedTimestamp="yesterday"),
    "objectRef as a string": event("b11", objectRef="pods/x"),
    "stage as a bool": event("b12", stage=True),
    "impersonated groups as a string": event(
        "b13", impersonatedUser={"username": "admin", "groups": "system:masters"}
    ),
}


def test_ill_typed_fields_map_as_the_full_mapping_says(tmp_path):
    data = jsonl(event("ok1"), *ILL_TYPED.values(), event("ok2"))
    # repeated annotation keys: the typed MAP cast is NULL, the full mapping says why
    data += b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"dup","annotations":'
    data += b'{"k":"1","k":"2"},"stage":"ResponseComplete","verb":"get"}\n'
    fast, full, passed_on = both_ways(tmp_path, data)
    assert fast == full
    assert passed_on is not None
    assert len(fast[0]) + len(fast[1]) == len(ILL_TYPED) + 3


# Strings that read like what the typed parse makes of other JSON values: their lines are
# suspect, `json_type` finds them well typed, and the fast path keeps them.
LOOK_ALIKES = [
    event("5", verb="5", objectRef={"resource": "pods", "namespace": "2024", "name": "true"}),
    event("12345678-1234-1234-1234-123456789e12", userAgent="[bot]", stage="{x}"),
    event("c3", user={"username": "-1.5e+3", "groups": ["1", "false", "{}"]}),
    event("c4", annotations={"n": "null", "i": "inf"}, sourceIPs=["1e400"]),
    event("c5", impersonatedUser={}, objectRef={}),
]


def test_strings_that_read_like_other_types_stay_on_the_fast_path(tmp_path):
    fast, full, passed_on = both_ways(tmp_path, jsonl(*LOOK_ALIKES))
    assert fast == full
    assert passed_on is None
    rows = {r[2]: r for r in fast[0]}  # by audit_id
    assert rows["5"][7] == "5" and rows["c3"][8] == "-1.5e+3"
    assert len(fast[0]) == 5 and fast[1] == []


# Numbers as JSON may write them that Python's json does not: DuckDB prints each its own way.
RAW_NUMBERS = [b"1e400", b"-1E400", b"1.5e-400", b"-0", b"1E5", b"2e-7", b"123456789012345678901"]


@pytest.mark.parametrize("number", RAW_NUMBERS)
@pytest.mark.parametrize("field", ["verb", "user.username", "objectRef.name", "auditID"])
def test_a_number_where_a_string_belongs_is_never_taken_for_one(tmp_path, field, number):
    text = jsonl(event("n1", verb="__v__", user={"username": "__u__"}))
    placeholder = {"verb": b'"__v__"', "user.username": b'"__u__"'}.get(field)
    if placeholder is None:
        ev = event("n1")
        ev["objectRef"]["name"] = "__n__" if field == "objectRef.name" else ev["objectRef"]["name"]
        if field == "auditID":
            ev["auditID"] = "__a__"
        text, placeholder = jsonl(ev), b'"__n__"' if field == "objectRef.name" else b'"__a__"'
    data = text.replace(placeholder, number)
    fast, full, passed_on = both_ways(tmp_path, data)
    assert fast == full
    assert passed_on is not None  # the fast path left the line to the full mapping
    assert (len(fast[0]), len(fast[1])) == (0, 1)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2026-03-14T10:00:00Z", "2026-03-14T10:00:00.123456789+02:00", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    ("verb",), ("stage",), ("level",), ("auditID",), ("requestURI",), ("userAgent",),
    ("user", "username"), ("user", "groups"), ("user", "extra"), ("user",),
    ("impersonatedUser",), ("impersonatedUser", "groups"), ("sourceIPs",),
    ("objectRef",), ("objectRef", "namespace"), ("objectRef", "name"),
    ("responseStatus", "code"), ("responseStatus",), ("annotations",),
    ("requestReceivedTimestamp",), ("stageTimestamp",), ("timestamp",),
    ("requestObject",), ("responseObject",), ("kind",), ("apiVersion",),
]  # fmt: skip


def _set(ev: dict, path: tuple[str, ...], value: object) -> dict:
    """Return ev with the field at path set to value (a missing parent becomes an object)."""
    target = ev
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return ev


@st.composite
def mutated_events(draw: st.DrawFn) -> dict:
    """Return a valid event with up to three mapped fields replaced by any JSON value."""
    ev = event(draw(st.text(min_size=1, max_size=8)))
    for path in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        _set(ev, path, draw(JSON_VALUES))
    return ev


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(mutated_events(), min_size=1, max_size=6))
def test_fuzz_the_fast_path_maps_any_field_types_as_the_full_mapping(tmp_path, events):
    # json, not orjson: integers past 64 bits are JSON too
    data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events).encode()
    fast, full, _ = both_ways(tmp_path / "fuzz", data)
    assert fast == full
    assert len(fast[0]) + len(fast[1]) + sum(s[2] for s in fast[2]) == len(events)
