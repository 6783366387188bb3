"""Loading native audit logs: the canonical rows, accounting, duplicates and collisions."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime

import orjson
import pytest
from click.testing import CliRunner

from kforensics import load
from kforensics.case import connect
from kforensics.cli import main
from kforensics.ingest.original import originals
from tests.conftest import event, jsonl


def test_native_event_maps_onto_canonical_columns(tmp_path, case_path, con):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("a1", impersonatedUser={"username": "system:admin"})))
    load(case_path, [log])
    row = (
        con()
        .execute(
            "SELECT audit_id, stage, level, ts, stage_ts, verb, username, user_groups, "
            "impersonated_user, source_ips, user_agent, resource, subresource, namespace, name, "
            "api_group, api_version, request_uri, code, decision, reason, source_format, "
            "source_file, source_line, source_index FROM events"
        )
        .fetchone()
    )
    assert row == (
        "a1", "ResponseComplete", "Metadata",
        datetime(2026, 3, 14, 10, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 14, 10, 0, 0, 2001, tzinfo=UTC),
        "get", "alice", ["dev", "system:authenticated"], "system:admin", ["203.0.113.10"],
        "kubectl/v1.29.2", "pods", None, "shop", "web-1", None, "v1",
        "/api/v1/namespaces/shop/pods/web-1", 200, "allow",
        'RBAC: allowed by RoleBinding "dev/shop"',
        "native", str(log), 1, None,
    )  # fmt: skip


def test_native_line_stays_in_its_source_and_is_found_again_byte_for_byte(tmp_path, case_path, con):
    pod = {"kind": "Pod", "spec": {"hostPID": True, "containers": [{"name": "c"}]}}
    log = tmp_path / "audit.log"
    line = jsonl(event("a1", requestObject=pod, futureField={"x": [1, 2]})).rstrip(b"\n")
    log.write_bytes(b"\n" + jsonl(event("a0")) + line + b"\r\n")
    load(case_path, [log])
    rows = (
        con()
        .execute(
            "SELECT event_id, raw, raw_offset, digest, request_object->>'$.spec.hostPID' "
            "FROM events ORDER BY source_line"
        )
        .fetchall()
    )
    first, second = rows
    assert second[1:4] == (None, 1 + len(jsonl(event("a0"))), hashlib.sha256(line).digest())
    assert second[0] == hashlib.sha256(line).hexdigest()[:32]
    assert second[4] == "true"
    with connect(case_path) as c:
        found = originals(c, [first[0], second[0]])
    assert found == {first[0]: jsonl(event("a0")).rstrip(b"\n"), second[0]: line}
    log.write_bytes(b"\n" + jsonl(event("a0")) + line.replace(b"hostPID", b"hostPId") + b"\n")
    with connect(case_path) as c:
        assert originals(c, [second[0]]) == {second[0]: None}  # changed: not the original


def test_v1beta1_and_missing_api_version_load(tmp_path, case_path, con):
    old = event("b1", apiVersion="audit.k8s.io/v1beta1", timestamp="2018-10-25T13:58:49Z")
    del old["requestReceivedTimestamp"]
    bare = event("b2")
    del bare["apiVersion"], bare["kind"]
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(old, bare))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (2, 0)
    rows = con().execute("SELECT audit_id, ts FROM events ORDER BY audit_id").fetchall()
    assert rows == [
        ("b1", datetime(2018, 10, 25, 13, 58, 49, tzinfo=UTC)),
        ("b2", datetime(2026, 3, 14, 10, 0, 0, 1, tzinfo=UTC)),
    ]


def test_gzip_is_detected_by_content_not_extension(tmp_path, case_path, con):
    log = tmp_path / "audit.log.1"  # rotated and compressed, no .gz suffix
    log.write_bytes(gzip.compress(jsonl(event("g1"), event("g2"))))
    result = load(case_path, [log])
    assert result.events_loaded == 2
    assert con().execute("SELECT compression, lines_read FROM sources").fetchone() == ("gzip", 2)


def test_folders_are_recursive_and_globs_expand(tmp_path, case_path):
    (tmp_path / "logs" / "node-a").mkdir(parents=True)
    (tmp_path / "logs" / "node-a" / "audit.log").write_bytes(jsonl(event("f1")))
    (tmp_path / "logs" / "audit-1.log").write_bytes(jsonl(event("f2")))
    (tmp_path / "logs" / ".hidden").write_bytes(b"not a log\n")
    assert load(case_path, [tmp_path / "logs"]).events_loaded == 2
    other = tmp_path / "other.duckdb"
    assert load(other, [str(tmp_path / "logs" / "*.log")]).events_loaded == 1


def test_overlapping_rotated_files_count_each_event_once(tmp_path, case_path, con):
    events = [event(f"r{i}") for i in range(10)]
    older, newer = tmp_path / "audit-2026-03-14T09-00-00.log.gz", tmp_path / "audit.log"
    older.write_bytes(gzip.compress(jsonl(*events[:6])))
    newer.write_bytes(jsonl(*events[4:]))  # r4 and r5 are in both files
    result = load(case_path, [older, newer])
    assert [(s.events_loaded, s.duplicates) for s in result.sources] == [(6, 0), (4, 2)]
    assert con().execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (
        10,
        10,
    )
    kept = con().execute("SELECT source_file FROM events WHERE audit_id = 'r4'").fetchone()
    assert kept == (str(older),)


def test_reloading_adds_nothing(tmp_path, case_path, con):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(*(event(f"i{i}") for i in range(5))))
    first = load(case_path, [log])
    crlf = tmp_path / "audit-crlf.log"  # the same events, other line ends: read, all repeats
    crlf.write_bytes(log.read_bytes().replace(b"\n", b"\r\n"))
    again = load(case_path, [crlf])
    same = load(case_path, [log])  # the very same file: skipped unread
    assert (first.events_loaded, first.duplicates) == (5, 0)
    assert (again.events_loaded, again.duplicates) == (0, 5)
    assert (same.events_loaded, same.duplicates, same.sources[0].already_loaded) == (0, 0, 1)
    c = con()
    assert c.execute("SELECT count(*) FROM events").fetchone() == (5,)
    assert c.execute(
        "SELECT load_id, events_loaded, duplicates, already_loaded FROM sources ORDER BY 1"
    ).fetchall() == [
        (1, 5, 0, None),
        (2, 0, 5, None),
        (3, 0, 0, 1),
    ]


def test_same_line_twice_in_one_file_is_one_event(tmp_path, case_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("d1"), event("d1"), event("d2")))
    result = load(case_path, [log])
    assert (result.events_loaded, result.duplicates) == (2, 1)


def test_colliding_audit_ids_are_both_kept_and_reported(tmp_path, case_path, con):
    honest = event("shared-id")
    spoofed = event("shared-id", user={"username": "mallory"}, verb="delete")
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(honest, spoofed))
    result = load(case_path, [log])
    assert (result.events_loaded, result.duplicates, result.collisions) == (2, 0, 1)
    row = con().execute("SELECT audit_id, events, usernames FROM audit_id_collisions").fetchone()
    assert row[:2] == ("shared-id", 2) and sorted(row[2]) == ["alice", "mallory"]


def test_requests_view_has_one_row_per_audit_id_at_its_final_stage(tmp_path, case_path, con):
    log = tmp_path / "audit.log"
    log.write_bytes(
        jsonl(
            event("q1", stage="RequestReceived", responseStatus=None),
            event("q1", stage="ResponseStarted", responseStatus={"code": 101}),
            event("q1", stage="ResponseComplete", responseStatus={"code": 101}),
            event("q2", stage="RequestReceived", responseStatus=None),
        )
    )
    load(case_path, [log])
    c = con()
    assert c.execute("SELECT count(*) FROM events").fetchone() == (4,)
    assert c.execute("SELECT audit_id, stage FROM requests ORDER BY 1").fetchall() == [
        ("q1", "ResponseComplete"),
        ("q2", "RequestReceived"),
    ]


def test_eventlist_document_cites_the_line_each_event_starts_on(tmp_path, case_path, con):
    doc = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
           "items": [event("e1"), event("e2"), event("e3")]}  # fmt: skip
    path = tmp_path / "webhook.json"
    path.write_text(json.dumps(doc, indent=2))
    text = path.read_text().splitlines()
    expected = [i + 1 for i, ln in enumerate(text) if ln == "    {"]
    result = load(case_path, [path])
    assert result.events_loaded == 3
    rows = (
        con()
        .execute(
            "SELECT source_line, source_index, source_format FROM events ORDER BY source_index"
        )
        .fetchall()
    )
    assert rows == [(expected[0], 0, "eventlist"), (expected[1], 1, "eventlist"),
                    (expected[2], 2, "eventlist")]  # fmt: skip


def test_eventlist_on_one_line_and_json_array(tmp_path, case_path, con):
    lst = {"kind": "EventList", "items": [event("l1"), event("l2")]}
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(lst) + b"\n" + jsonl(event("l3")))
    (tmp_path / "b.json").write_bytes(orjson.dumps([event("l4"), event("l5")]))
    result = load(case_path, [tmp_path / "a.jsonl", tmp_path / "b.json"])
    assert [(s.lines_read, s.records, s.events_loaded) for s in result.sources] == [
        (2, 3, 3),
        (1, 2, 2),
    ]
    lines = con().execute("SELECT audit_id, source_line FROM events ORDER BY 1").fetchall()
    assert lines == [("l1", 1), ("l2", 1), ("l3", 2), ("l4", 1), ("l5", 1)]


def test_eventlist_items_duplicate_the_same_events_logged_as_lines(tmp_path, case_path):
    events = [event("x1", userAgent="<b>&amp;"), event("x2")]
    (tmp_path / "audit.log").write_bytes(jsonl(*events))
    (tmp_path / "hook.json").write_text(
        json.dumps({"kind": "EventList", "items": events}, indent=1)
    )
    result = load(case_path, [tmp_path / "audit.log", tmp_path / "hook.json"])
    assert (result.events_loaded, result.duplicates) == (2, 2)


def test_cli_prints_a_summary_and_json(tmp_path, case_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("c1"), event("c2")) + b"garbage\n")
    runner = CliRunner()
    out = runner.invoke(main, ["load", str(log), "--case", str(case_path)])
    assert out.exit_code == 0, out.output
    assert "rejected" in out.output and "invalid JSON" in out.output
    copy = tmp_path / "copy.log"
    copy.write_bytes(log.read_bytes())
    out = runner.invoke(main, ["load", str(copy), "--case", str(case_path), "--json"])
    summary = json.loads(out.output)
    assert summary["skipped_as_loaded"] == 1  # the same bytes: not read again
    copy.write_bytes(b"\n" + log.read_bytes())
    out = runner.invoke(main, ["load", str(copy), "--case", str(case_path), "--json"])
    summary = json.loads(out.output)
    assert (summary["events_loaded"], summary["duplicates"], summary["rejected"]) == (0, 2, 1)
    assert summary["sources"][0]["lines_read"] == 4


def test_cli_exits_nonzero_only_when_nothing_could_be_read(tmp_path, case_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\nworld\n")
    out = CliRunner().invoke(main, ["load", str(bad), "--case", str(case_path)])
    assert out.exit_code == 1
    assert "no audit event could be read" in out.output


@pytest.mark.parametrize("arg", ["missing.log", "nothing-*.log"])
def test_cli_names_a_path_that_does_not_exist(tmp_path, case_path, arg):
    out = CliRunner().invoke(main, ["load", str(tmp_path / arg), "--case", str(case_path)])
    assert out.exit_code == 2
    assert arg in out.output and "Traceback" not in out.output
