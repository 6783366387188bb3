"""Loading the same logs again costs nothing: a file read before is skipped by its SHA-256."""

from __future__ import annotations

import gzip
import json
import shutil

from click.testing import CliRunner

from kforensics import load
from kforensics.case import connect
from kforensics.cli import main
from tests.conftest import event, jsonl


def sources(case) -> list[tuple]:
    with connect(case) as con:
        return con.execute(
            "SELECT load_id, regexp_extract(path, '[^/]*$'), format, compression, lines_read, "
            "events_loaded, duplicates, already_loaded FROM sources ORDER BY load_id, path"
        ).fetchall()


def count(case) -> int:
    with connect(case) as con:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]


def test_a_second_load_of_the_same_files_skips_them_before_parsing(tmp_path, case_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "audit.log").write_bytes(jsonl(event("a1"), event("a2")))
    (logs / "old.log.gz").write_bytes(gzip.compress(jsonl(event("g1"))))
    load(case_path, [logs], progress=False)
    shutil.copy(logs / "audit.log", logs / "copy.log")  # another name, the same bytes
    result = load(case_path, [logs], progress=False)
    assert (result.events_loaded, result.duplicates, len(result.skipped)) == (0, 0, 3)
    assert result.anything_read is True
    assert count(case_path) == 3
    assert sources(case_path)[2:] == [
        (2, "audit.log", "skipped", "none", 0, 0, 0, 1),
        (2, "copy.log", "skipped", "none", 0, 0, 0, 1),
        (2, "old.log.gz", "skipped", "gzip", 0, 0, 0, 1),
    ]


def test_the_summary_says_which_files_were_skipped(tmp_path, case_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("a1")))
    args = ["load", str(log), "--case", str(case_path), "--no-progress"]
    assert CliRunner().invoke(main, args).exit_code == 0
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert (
        "skipped, already in the case (the same bytes: size and SHA-256):\n"
        "  audit.log: loaded by load 1\n"
    ) in out.output
    out = CliRunner().invoke(main, [*args, "--json"])
    assert '"skipped_as_loaded": 1' in out.output


def test_same_size_other_bytes_and_a_grown_log_are_loaded(tmp_path, case_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("a1")))
    load(case_path, [log], progress=False)
    same_size = tmp_path / "other.log"
    same_size.write_bytes(jsonl(event("b1")))  # as long, other bytes: hashed, then loaded
    assert same_size.stat().st_size == log.stat().st_size
    with open(log, "ab") as f:  # a live log grew: its first line is a repeat, the rest new
        f.write(jsonl(event("a2")))
    result = load(case_path, [log, same_size], progress=False)
    assert (result.events_loaded, result.duplicates, result.skipped) == (2, 1, [])
    assert count(case_path) == 3


def test_two_copies_in_one_load_read_the_bytes_once(tmp_path, case_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(jsonl(event("a1"), event("a2")))
    shutil.copy(logs / "a.log", logs / "b.log")
    result = load(case_path, [logs], progress=False)
    assert [
        (s.path.rsplit("/", 1)[1], s.events_loaded, s.already_loaded) for s in result.sources
    ] == [
        ("a.log", 2, None),
        ("b.log", 0, result.load_id),
    ]


def test_the_case_in_the_folder_it_loads_is_not_a_log(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "audit.log").write_bytes(jsonl(event("a1")))
    case = logs / "case.duckdb"
    load(case, [logs], progress=False)
    (logs / "more.log").write_bytes(jsonl(event("m1")))
    result = load(case, [logs], progress=False)
    assert sorted(s.path.rsplit("/", 1)[1] for s in result.sources) == ["audit.log", "more.log"]
    assert (result.events_loaded, result.rejected, count(case)) == (1, 0, 2)


def test_a_repeat_whose_earlier_copy_is_gone_is_kept_and_said(tmp_path, case_path):
    first = tmp_path / "first.log"
    first.write_bytes(jsonl(event("a1")))
    load(case_path, [first], progress=False)
    spaced = tmp_path / "spaced.log"  # the same event, other whitespace: other bytes
    spaced.write_bytes(
        json.dumps(event("a1"), indent=None, separators=(", ", ": ")).encode() + b"\n"
    )
    result = load(case_path, [spaced], progress=False)
    assert (result.duplicates, result.unconfirmed_repeats) == (1, 0)  # compared as JSON
    again = tmp_path / "again.log"
    again.write_bytes(spaced.read_bytes().replace(b", ", b" , "))
    first.unlink()  # the earlier copies' bytes can no longer be compared
    spaced.unlink()
    args = ["load", str(again), "--case", str(case_path), "--no-progress"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert count(case_path) == 2
    assert "kept 1 events that may repeat earlier ones" in out.output.replace("\n", " ")
