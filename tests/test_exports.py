"""Exports as a user reads them back: CSV, JSON lines and Parquet files with the real types."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import load
from kforensics.cli import main
from kforensics.investigate.export import ExportError, export, guard, unguard
from tests.conftest import event, jsonl, privileged_pod

FORMULA = "=cmd|' /C calc'!A0"
AGENT = 'kubectl "quoted",\r\nsecond line \u00fc\u2028\u202e end'
QUERY = (
    "SELECT ts, username, user_agent, [username, NULL] AS pair, "
    "{'verb': verb, 'line': source_line} AS what, NULL::VARCHAR AS nothing, "
    "annotations, code FROM events ORDER BY source_line"
)
TS = datetime(2026, 3, 14, 10, 0, 0, 1, tzinfo=UTC)


@pytest.fixture
def hostile_case(tmp_path: Path) -> Path:
    """A case of two events: one whose user and agent are hostile text, one plain."""
    log = tmp_path / "audit.log"
    log.write_bytes(
        jsonl(
            event(
                "h1",
                user={"username": FORMULA, "groups": [], "extra": {"agent": [AGENT]}},
                userAgent=AGENT,
            ),
            event("h2", requestReceivedTimestamp="2026-03-14T10:00:05Z"),
        )
    )
    case = tmp_path / "case.duckdb"
    load(case, [log], progress=False)
    return case


def sql(case: Path, *args: str):
    return CliRunner().invoke(main, ["sql", "--case", str(case), QUERY, *args])


ANNOTATIONS = {
    "authorization.k8s.io/decision": "allow",
    "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "dev/shop"',
}


def test_parquet_keeps_lists_structs_timestamps_and_nulls(hostile_case, tmp_path):
    out = sql(hostile_case, "--output", str(tmp_path / "rows.parquet"))
    assert out.exit_code == 0, out.output
    assert out.output == f"wrote 2 rows to {tmp_path / 'rows.parquet'}\n"
    table = pq.read_table(tmp_path / "rows.parquet")
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("pair").type == pa.list_(pa.string())
    assert table.to_pylist()[0] == {
        "ts": TS,
        "username": FORMULA,
        "user_agent": AGENT,
        "pair": [FORMULA, None],
        "what": {"verb": "get", "line": 1},
        "nothing": None,
        "annotations": list(ANNOTATIONS.items()),  # a MAP is a parquet map: (key, value) pairs
        "code": 200,
    }


def test_jsonl_has_arrays_objects_iso_times_and_nulls(hostile_case, tmp_path):
    out = sql(hostile_case, "--format", "jsonl")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()  # no value ends a line early: U+2028 and CR are escaped
    assert len(lines) == 2
    assert json.loads(lines[0]) == {
        "ts": "2026-03-14T10:00:00.000001Z",
        "username": FORMULA,  # JSON is not a spreadsheet: no guard
        "user_agent": AGENT,
        "pair": [FORMULA, None],
        "what": {"verb": "get", "line": 1},
        "nothing": None,
        "annotations": ANNOTATIONS,
        "code": 200,
    }
    assert json.loads(lines[1])["ts"] == "2026-03-14T10:00:05Z"
    assert "\\u2028\\u202e" in lines[0]
    written = sql(hostile_case, "-o", str(tmp_path / "rows.jsonl"))
    assert written.exit_code == 0, written.output
    assert (tmp_path / "rows.jsonl").read_text(encoding="utf-8") == out.output


def test_csv_holds_json_text_iso_times_and_guards_formulas(hostile_case, tmp_path):
    out = sql(hostile_case, "-o", str(tmp_path / "rows.csv"))
    assert out.exit_code == 0, out.output
    with open(tmp_path / "rows.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "ts", "username", "user_agent", "pair", "what", "nothing", "annotations", "code",
    ]  # fmt: skip
    assert rows[1] == [
        "2026-03-14T10:00:00.000001Z",
        "'" + FORMULA,  # a spreadsheet shows it as text, never runs it
        AGENT,  # line breaks and quotes inside one RFC 4180 quoted cell
        "[\"=cmd|' /C calc'!A0\",null]",
        '{"verb":"get","line":1}',
        "",
        '{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":'
        '"RBAC: allowed by RoleBinding \\"dev/shop\\""}',
        "200",
    ]
    assert rows[2][:2] == ["2026-03-14T10:00:05Z", "alice"] and len(rows) == 3
    assert unguard(rows[1][1]) == FORMULA
    assert json.loads(rows[1][3]) == [FORMULA, None]


def test_a_json_column_is_its_value_not_a_string(hostile_case):
    out = CliRunner().invoke(
        main, ["sql", "--case", str(hostile_case), "--format", "jsonl",
               "SELECT audit_id, user_extra FROM events WHERE audit_id = 'h1'"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"audit_id": "h1", "user_extra": {"agent": [AGENT]}}


def test_detect_parquet_round_trips_the_finding_ids(hostile_case, tmp_path):
    priv = privileged_pod()
    (tmp_path / "more.log").write_bytes(jsonl(priv))
    load(hostile_case, [tmp_path / "more.log"], progress=False)
    target = tmp_path / "findings.parquet"
    out = CliRunner().invoke(main, ["detect", "--case", str(hostile_case), "-o", str(target)])
    assert out.exit_code == 0, out.output
    lines = CliRunner().invoke(main, ["detect", "--case", str(hostile_case), "--format", "jsonl"])
    ids = [json.loads(line)["finding_id"] for line in lines.stdout.splitlines()]
    table = pq.read_table(target)
    assert ids and table.column("finding_id").to_pylist() == ids
    n = len(ids)
    assert out.output == f"stored {n} findings; wrote {n} at or above info to {target}\n"
    assert table.schema.field("first_seen").type == pa.timestamp("us", tz="UTC")
    privileged = [r for r in table.to_pylist() if r["rule_id"] == "k8s-privileged-pod"]
    assert [(r["attack"], r["evidence"][0]["audit_id"]) for r in privileged] == [
        (["T1610", "T1611"], "p1")
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "parquet"], "Error: parquet is binary: give a file to write it to "
         "(--output FILE)"),
        (["--format", "table", "-o", "{tmp}/x.csv"],
         "Error: --output writes csv, jsonl or parquet; a table is only printed"),
        (["-o", "{tmp}/x.txt"], "Error: Invalid value for --format: {tmp}/x.txt: say the format "
         "(csv, jsonl, parquet); the suffix does not name one"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["sql", "detect"])
def test_exports_refuse_what_they_cannot_write(hostile_case, tmp_path, command, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    query = [QUERY] if command == "sql" else []
    out = CliRunner().invoke(main, [command, "--case", str(hostile_case), *query, *args])
    assert out.exit_code == 2
    assert out.output.splitlines()[-1] == message.replace("{tmp}", str(tmp_path))
    assert list(tmp_path.glob("x.*")) == []


def test_export_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ExportError, match="parquet is binary"):
        export([{"a": 1}], io.StringIO(), "parquet")
    with pytest.raises(ExportError, match="two columns are named a: name them apart"):
        export(pa.table([[1], [2]], names=["a", "a"]), tmp_path / "x.csv")
    with pytest.raises(ExportError, match="cannot export a str"):
        export("SELECT 1", tmp_path / "x.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_the_guard_is_undone_exactly():
    cases = {"=1+1": "'=1+1", "+x": "'+x", "-n": "'-n", "@a": "'@a", "\tx": "'\tx",
             "'quoted": "''quoted", "plain": "plain", "": ""}  # fmt: skip
    assert {text: guard(text) for text in cases} == cases
    assert all(unguard(guard(text)) == text for text in cases)


TEXT = st.text(max_size=30)
ROW = st.tuples(st.none() | TEXT, st.none() | st.lists(st.none() | TEXT, max_size=4))
SCHEMA = pa.schema([("text", pa.string()), ("items", pa.list_(pa.string()))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, min_size=1, max_size=5))
def test_text_and_lists_round_trip_through_csv_and_jsonl(rows):
    table = pa.Table.from_pylist([{"text": t, "items": i} for t, i in rows], schema=SCHEMA)
    out = io.StringIO(newline="")
    assert export(table, out, "jsonl") == len(rows)
    lines = out.getvalue().splitlines()
    assert [tuple(json.loads(line).values()) for line in lines] == rows
    out = io.StringIO(newline="")
    export(table, out, "csv")
    back = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert back[0] == ["text", "items"]
    # CSV has one empty cell for NULL and for empty text; the rest comes back exactly
    assert [(unguard(t), json.loads(i) if i else None) for t, i in back[1:]] == [
        (t or "", i) for t, i in rows
    ]


def test_the_api_exports_investigations_queries_and_frames(hostile_case, tmp_path):
    import kforensics as kf

    case = kf.open_case(hostile_case)
    assert case.export("top_identities", tmp_path / "top.parquet") == 2
    top = pq.read_table(tmp_path / "top.parquet").to_pylist()
    assert sorted((r["identity"], r["requests"]) for r in top) == [(FORMULA, 1), ("alice", 1)]
    query = "SELECT audit_id, ts FROM events WHERE username = $who"
    assert case.export(query, tmp_path / "mine.jsonl", who="alice") == 1
    assert (
        tmp_path / "mine.jsonl"
    ).read_text() == '{"audit_id":"h2","ts":"2026-03-14T10:00:05Z"}\n'
    frame = case.sql("SELECT audit_id, [username] AS who, ts FROM events ORDER BY audit_id")
    assert frame.export(tmp_path / "frame.csv") == 2
    assert (tmp_path / "frame.csv").read_text(encoding="utf-8").splitlines() == [
        "audit_id,who,ts",
        'h1,"[""=cmd|\' /C calc\'!A0""]",2026-03-14T10:00:00.000001Z',
        'h2,"[""alice""]",2026-03-14T10:00:05Z',
    ]
    assert kf.export([{"n": 1, "tags": ["a"]}], tmp_path / "rows.jsonl") == 1
    assert (tmp_path / "rows.jsonl").read_text() == '{"n":1,"tags":["a"]}\n'
    with pytest.raises(kf.QueryError, match="Case.export: 'DROP TABLE events' is no inv"):
        case.export("DROP TABLE events", tmp_path / "x.csv")


def test_a_frame_keeps_the_types_of_its_query_and_queries_export_too(hostile_case, tmp_path):
    import kforensics as kf

    frame = kf.open_case(hostile_case).sql(
        "SELECT audit_id, impersonated_user, quality FROM events"
    )
    assert frame.export(tmp_path / "f.parquet") == 2  # an all-NULL text column stays text
    schema = pq.read_table(tmp_path / "f.parquet").schema
    assert (schema.field("impersonated_user").type, schema.field("quality").type) == (
        pa.string(), pa.list_(pa.string())
    )  # fmt: skip
    out = CliRunner().invoke(
        main, ["queries", "top_identities", "--case", str(hostile_case), "-o",
               str(tmp_path / "top.jsonl")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.output == f"wrote 2 rows to {tmp_path / 'top.jsonl'}\n"
    rows = [json.loads(line) for line in (tmp_path / "top.jsonl").read_text().splitlines()]
    assert sorted(r["identity"] for r in rows) == [FORMULA, "alice"]
