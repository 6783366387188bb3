"""Bad input: every line ends up as an event, a duplicate, a blank or a reject with a reason."""

from __future__ import annotations

import gzip
import json
import os

import orjson
import pytest

from kforensics import load
from kforensics.case import connect
from kforensics.errors import CaseError, InputError, KforensicsError
from kforensics.ingest.original import originals
from tests.conftest import event, jsonl

GOOD = orjson.dumps(event("good-1"))


def accounted(con, result) -> None:
    """Assert the per-file invariant and that reject and event lines never overlap."""
    for s in result.sources:
        assert s.lines_read == s.events_loaded + s.duplicates + s.rejected + s.blank_lines, s
        assert s.records == s.events_loaded + s.duplicates + s.rejected, s
    c = con()
    ev = {r[0] for r in c.execute("SELECT source_line FROM events").fetchall()}
    rj = {r[0] for r in c.execute("SELECT source_line FROM rejects").fetchall()}
    assert not ev & rj


CASES = {
    "truncated JSON": (b'{"kind":"Event","auditID":"t1","stage":"Resp', "invalid JSON"),
    "not JSON": (b"I0314 10:00:00.000000 1 httplog.go:132] GET /healthz", "invalid JSON"),
    "code as a word": (
        orjson.dumps(event("w1", responseStatus={"code": "four-oh-four"})),
        'responseStatus.code is not an HTTP status code: "four-oh-four"',
    ),
    "sourceIPs as a string": (
        orjson.dumps(event("w2", sourceIPs="10.0.0.1")),
        "sourceIPs is not a list of strings",
    ),
    "groups as a number": (
        orjson.dumps(event("w3", user={"username": "u", "groups": 7})),
        "user.groups is not a list of strings",
    ),
    "timestamp garbage": (
        orjson.dumps(event("w4", requestReceivedTimestamp="yesterday")),
        "requestReceivedTimestamp is not an instant from 1970 to 9999: yesterday",
    ),
    "annotations not strings": (
        orjson.dumps(event("w6", annotations=["a"])),
        "annotations is not an object of strings",
    ),
    "NUL bytes": (GOOD[:20] + b"\x00\x00" + GOOD[20:], "NUL bytes"),
    "invalid UTF-8": (GOOD[:30] + b"\xff\xfe" + GOOD[30:], "invalid UTF-8"),
    "JSON scalar": (b"42", "not an audit event: a JSON number"),
    "JSON null": (b"null", "not an audit event: a JSON null"),
    "empty array": (b"[]", "empty JSON array"),
    "object of another kind": (b'{"kind": 0}', "not an audit event"),
    "two objects on a line": (GOOD + b" " + GOOD, "invalid JSON"),
    "code true": (
        orjson.dumps(event("w7", responseStatus={"code": True})),
        "responseStatus.code is not an HTTP status code: true",
    ),
    "code as a string of digits": (
        orjson.dumps(event("w8", responseStatus={"code": "201"})),
        'responseStatus.code is not an HTTP status code: "201"',
    ),
    "code with a fraction": (
        orjson.dumps(event("w9", responseStatus={"code": 201.7})),
        "responseStatus.code is not an HTTP status code: 201.7",
    ),
    "auditID a number": (orjson.dumps(event(12345)), "auditID is not a string: 12345"),
    "auditID an object": (
        orjson.dumps(event({"id": "x"})),
        'auditID is not a string: {"id":"x"}',
    ),
    "verb a number": (orjson.dumps(event("w10", verb=5)), "verb is not a string: 5"),
    "username an object": (
        orjson.dumps(event("w11", user={"username": {"name": "alice"}})),
        'user.username is not a string: {"name":"alice"}',
    ),
    "user a string": (orjson.dumps(event("w12", user="alice")), 'user is not an object: "alice"'),
    "objectRef a list": (
        orjson.dumps(event("w13", objectRef=["pods"])),
        'objectRef is not an object: ["pods"]',
    ),
    "impersonated groups not strings": (
        orjson.dumps(event("w14", impersonatedUser={"username": "bob", "groups": [1]})),
        "impersonatedUser.groups is not a list of strings: [1]",
    ),
    "timestamp infinity": (
        orjson.dumps(event("w15", requestReceivedTimestamp="infinity")),
        "requestReceivedTimestamp is not an instant from 1970 to 9999: infinity",
    ),
    "timestamp epoch": (
        orjson.dumps(event("w16", stageTimestamp="epoch")),
        "stageTimestamp is not an instant from 1970 to 9999: epoch",
    ),
    "timestamp a bare date": (
        orjson.dumps(event("w17", requestReceivedTimestamp="2026-03-14")),
        "requestReceivedTimestamp is not an instant from 1970 to 9999: 2026-03-14",
    ),
    "timestamp before 1970": (
        orjson.dumps(event("w18", requestReceivedTimestamp="1969-12-31T23:59:59.999999Z")),
        "requestReceivedTimestamp is not an instant from 1970 to 9999: 1969-12-31T23:59:59",
    ),
    "timestamp past 9999 in UTC": (
        orjson.dumps(event("w19", requestReceivedTimestamp="9999-12-31T23:30:00-01:00")),
        "requestReceivedTimestamp is not an instant from 1970 to 9999: 9999-12-31T23:30:00-01:00",
    ),
    "timestamp with hour 24": (
        orjson.dumps(event("w20", requestReceivedTimestamp="2026-03-14T24:00:00Z")),
        "requestReceivedTimestamp is not an instant from 1970 to 9999: 2026-03-14T24:00:00Z",
    ),
    "timestamp a number": (
        orjson.dumps(event("w21", requestReceivedTimestamp=1773482400)),
        "requestReceivedTimestamp is not a string: 1773482400",
    ),
    "timestamp on February 30": (
        orjson.dumps(event("w22", requestReceivedTimestamp="2026-02-30T00:00:00Z")),
        "requestReceivedTimestamp is not an instant from 1970 to 9999: 2026-02-30T00:00:00Z",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_bad_line_is_a_reject_with_file_line_and_reason(tmp_path, case_path, con, name):
    bad, reason = CASES[name]
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("before")) + bad + b"\n" + jsonl(event("after")))
    result = load(case_path, [log])
    accounted(con, result)
    assert (result.events_loaded, result.rejected) == (2, 1)
    row = con().execute("SELECT source_file, source_line, reason, raw FROM rejects").fetchone()
    assert row[:2] == (str(log), 2)
    assert reason in row[2]
    assert row[3] is not None


def test_crlf_bom_blank_and_whitespace_lines(tmp_path, case_path, con):
    log = tmp_path / "audit.log"
    body = b"\xef\xbb\xbf" + GOOD + b"\r\n\r\n   \n\t\r\n" + orjson.dumps(event("good-2")) + b"\r\n"
    log.write_bytes(body)
    result = load(case_path, [log])
    accounted(con, result)
    s = result.sources[0]
    assert (s.lines_read, s.events_loaded, s.blank_lines, s.rejected) == (5, 2, 3, 0)
    rows = con().execute("SELECT event_id, raw FROM events ORDER BY source_line").fetchall()
    with connect(case_path) as c:
        found = originals(c, [event_id for event_id, _ in rows])
    # the BOM line is read as a record (its text held, without the BOM), the other in place
    assert [(raw is None, found[i]) for i, raw in rows] == [
        (False, GOOD),
        (True, orjson.dumps(event("good-2"))),
    ]
    lines = con().execute("SELECT source_line FROM events ORDER BY 1").fetchall()
    assert lines == [(1,), (5,)]


def test_empty_file_reads_nothing(tmp_path, case_path):
    log = tmp_path / "empty.log"
    log.write_bytes(b"")
    result = load(case_path, [log])
    assert (result.sources[0].lines_read, result.anything_read) == (0, False)


def test_last_line_without_newline_is_read(tmp_path, case_path):
    log = tmp_path / "audit.log"
    log.write_bytes(GOOD + b"\n" + orjson.dumps(event("last")))
    assert load(case_path, [log]).events_loaded == 2


def test_twelve_megabyte_lines(tmp_path, case_path, con):
    big_event = orjson.dumps(event("big", requestObject={"data": {"blob": "x" * 12_000_000}}))
    big_garbage = b"y" * 12_000_000
    log = tmp_path / "audit.log"
    log.write_bytes(big_event + b"\n" + big_garbage + b"\n" + GOOD + b"\n")
    result = load(case_path, [log])
    accounted(con, result)
    assert (result.events_loaded, result.rejected) == (2, 1)
    raw, size = con().execute("SELECT raw, raw_bytes FROM rejects").fetchone()
    assert (len(raw), size) == (4096, 12_000_000)


def test_corrupt_gzip_keeps_what_was_readable_and_says_where_it_broke(tmp_path, case_path, con):
    events = [event(f"z{i}", requestURI=f"/api/v1/x{i}") for i in range(2000)]
    data = bytearray(gzip.compress(jsonl(*events)))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    log = tmp_path / "audit.log.2.gz"
    log.write_bytes(bytes(data))
    result = load(case_path, [log])
    accounted(con, result)
    s = result.sources[0]
    assert 0 < s.events_loaded < 2000
    reasons = [r[0] for r in con().execute("SELECT reason FROM rejects").fetchall()]
    assert any("corrupt gzip stream" in r for r in reasons)


def test_truncated_gzip(tmp_path, case_path, con):
    data = gzip.compress(jsonl(*(event(f"t{i}") for i in range(500))))
    log = tmp_path / "audit.log.gz"
    log.write_bytes(data[: len(data) - 100])
    result = load(case_path, [log])
    accounted(con, result)
    assert result.sources[0].events_loaded > 0
    assert result.rejected >= 1


def test_deep_nesting_is_loaded_or_rejected_never_a_crash(tmp_path, case_path, con):
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    nested = GOOD[:-1] + b',"requestObject":' + deep + b"}"
    log = tmp_path / "audit.log"
    log.write_bytes(nested + b"\n" + b"[" * 100000 + b"\n" + GOOD + b"\n")
    result = load(case_path, [log])
    accounted(con, result)
    assert result.sources[0].lines_read == 3


def test_duplicate_lines_are_counted_not_loaded_twice(tmp_path, case_path, con):
    log = tmp_path / "audit.log"
    log.write_bytes(GOOD + b"\n" + GOOD + b"\n" + GOOD + b"\n")
    result = load(case_path, [log])
    accounted(con, result)
    assert (result.events_loaded, result.duplicates) == (1, 2)


def test_mixed_bad_file_accounts_for_every_line(tmp_path, case_path, con):
    lines = [GOOD] + [bad for bad, _ in CASES.values()] + [b"", GOOD, b"   "]
    lines += [orjson.dumps(event(f"m{i}")) for i in range(50)]
    log = tmp_path / "audit.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    result = load(case_path, [log])
    accounted(con, result)
    s = result.sources[0]
    assert (s.lines_read, s.events_loaded, s.duplicates, s.rejected, s.blank_lines) == (
        len(lines), 51, 1, len(CASES), 2,
    )  # fmt: skip
    summary = json.dumps(result.to_dict())
    assert "invalid JSON" in summary


def test_line_over_the_size_limit_is_rejected_unread(tmp_path, case_path, con, monkeypatch):
    monkeypatch.setattr("kforensics.ingest.read.MAX_LINE_BYTES", 1000)
    monkeypatch.setattr("kforensics.ingest.read.BLOCK_SIZE", 256)
    huge = orjson.dumps(event("huge", requestObject={"x": "y" * 5000}))
    log = tmp_path / "audit.log"
    log.write_bytes(GOOD + b"\n" + huge + b"\n" + orjson.dumps(event("next")) + b"\n" + huge)
    result = load(case_path, [log])
    accounted(con, result)
    s = result.sources[0]
    assert (s.lines_read, s.events_loaded, s.rejected) == (4, 2, 2)
    rows = con().execute("SELECT source_line, reason FROM rejects ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == [2, 4]
    assert all(r[1].startswith("line longer than 1000 bytes") for r in rows)


def test_invalid_utf8_among_many_good_lines(tmp_path, case_path, con):
    lines = [orjson.dumps(event(f"u{i}", userAgent="kubectl/é")) for i in range(5000)]
    lines[2500] = lines[2500].replace("é".encode(), b"\xe9")  # Latin-1, not UTF-8
    log = tmp_path / "audit.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    result = load(case_path, [log])
    accounted(con, result)
    assert (result.events_loaded, result.rejected) == (4999, 1)
    assert con().execute("SELECT source_line, reason FROM rejects").fetchone() == (
        2501,
        "invalid UTF-8 at byte " + str(lines[2500].index(b"\xe9")),
    )


def _missing(tmp):
    return [tmp / "missing.log"], {}, f"{tmp}/missing.log: no such file or folder"


def _no_match(tmp):
    return [tmp / "none-*.log"], {}, f"{tmp}/none-*.log: no file matches this pattern"


def _device(tmp):
    return ["/dev/null"], {}, "/dev/null: not a regular file or folder"


def _bad_dump(tmp):
    (tmp / "dump.yaml").write_text("a: [\n")
    why = 'while parsing a flow node\ndid not find expected node content\n  in "<unicode string>"'
    message = f"{tmp}/dump.yaml: not a YAML or JSON manifest: {why}, line 2, column 1"
    return [], {"inventory": [tmp / "dump.yaml"]}, message


@pytest.mark.parametrize("given", [_missing, _no_match, _device, _bad_dump])
def test_a_path_load_cannot_use_is_an_input_error_and_no_case_is_made(tmp_path, case_path, given):
    paths, options, message = given(tmp_path)
    with pytest.raises(InputError) as caught:
        load(case_path, paths, **options)
    assert isinstance(caught.value, KforensicsError)
    assert str(caught.value) == message
    assert not case_path.exists()


def test_a_case_that_cannot_be_made_or_opened_is_a_case_error(tmp_path):
    (tmp_path / "audit.log").write_bytes(GOOD + b"\n")
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "notes.duckdb").write_text("not a case")
    with pytest.raises(CaseError) as caught:
        load(tmp_path / "a-file" / "case.duckdb", [tmp_path / "audit.log"])
    assert str(caught.value) == (
        f"{tmp_path}/a-file/case.duckdb: cannot create its folder {tmp_path}/a-file: File exists"
    )
    with pytest.raises(CaseError) as caught:
        load(tmp_path / "notes.duckdb", [tmp_path / "audit.log"])
    assert str(caught.value).startswith(f"{tmp_path}/notes.duckdb: cannot open the case: ")
    assert isinstance(caught.value, KforensicsError)


def test_a_file_name_that_is_not_utf8_loads_under_its_name_escaped(tmp_path, case_path, con):
    folder = os.fsencode(tmp_path / "logs")
    os.mkdir(folder)
    with open(folder + b"/audit-\xff.log", "wb") as f:
        f.write(GOOD + b"\n")
    result = load(case_path, [tmp_path / "logs"])
    assert [(s.path, s.events_loaded) for s in result.sources] == [
        (f"{tmp_path}/logs/audit-\\xff.log", 1)
    ]
    assert con().execute("SELECT DISTINCT source_file FROM events").fetchall() == [
        (f"{tmp_path}/logs/audit-\\xff.log",)
    ]
