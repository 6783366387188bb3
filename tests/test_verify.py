"""`kforensics verify` and `original`: a case proven byte for byte against its sources."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import orjson
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import load
from kforensics.case import connect
from kforensics.cli import main
from kforensics.ingest.original import originals, verify
from tests.conftest import event, jsonl


def logs(folder: Path) -> tuple[Path, Path, Path]:
    """Write a plain log, a gzipped one and an EventList document; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    plain, zipped, doc = folder / "audit.log", folder / "audit.log.1.gz", folder / "list.json"
    # CRLF, a blank line, spaces around tokens: the bytes are the file's, not a re-encoding
    plain.write_bytes(
        jsonl(event("p1")) + b"\r\n" + b'  {"kind": "Event", "auditID": "p2",  "verb": "get" }\n'
    )
    zipped.write_bytes(gzip.compress(jsonl(event("z1"), event("z2"), event("z3"))))
    doc.write_bytes(orjson.dumps({"kind": "EventList", "items": [event("d1"), event("d2")]}))
    return plain, zipped, doc


def ids_by_audit_id(case: Path) -> dict[str, str]:
    with connect(case) as con:
        return dict(con.execute("SELECT audit_id, event_id FROM events").fetchall())


def test_every_native_line_is_its_file_s_bytes_and_records_are_held(tmp_path, case_path):
    plain, zipped, doc = logs(tmp_path / "logs")
    load(case_path, [plain, zipped, doc], progress=False)
    ids = ids_by_audit_id(case_path)
    with connect(case_path) as con:
        got = originals(con, ids.values())
    text = {a: got[i] for a, i in ids.items()}
    assert text["p1"] == jsonl(event("p1")).rstrip(b"\n")
    assert text["p2"] == b'  {"kind": "Event", "auditID": "p2",  "verb": "get" }'
    assert [text[a] for a in ("z1", "z2", "z3")] == [
        orjson.dumps(event(a)) for a in ("z1", "z2", "z3")
    ]
    assert json.loads(text["d1"]) == event("d1")  # a record: its text is held in the case
    proof = verify(case_path, progress=False)
    assert (proof.ok, proof.events, proof.verified, proof.held) == (True, 7, 7, 2)
    assert [(s.path, s.events, s.verified, s.grown) for s in proof.sources] == [
        (str(plain), 2, 2, 0),
        (str(zipped), 3, 3, 0),
    ]


def test_cli_verify_prints_each_source_and_exits_0(tmp_path, case_path):
    plain, zipped, doc = logs(tmp_path / "logs")
    load(case_path, [plain, zipped, doc], progress=False)
    out = CliRunner().invoke(main, ["verify", "--case", str(case_path)])
    assert out.exit_code == 0, out.output
    assert "2 events are held in the case itself" in out.output
    assert out.output.endswith("proven: all 7 events against their sources\n")


def test_cli_original_prints_the_exact_bytes(tmp_path, case_path):
    plain, _, _ = logs(tmp_path / "logs")
    load(case_path, [plain], progress=False)
    ids = ids_by_audit_id(case_path)
    out = CliRunner().invoke(main, ["original", ids["p2"], ids["p1"], "--case", str(case_path)])
    assert out.exit_code == 0, out.output
    assert out.stdout_bytes == (
        b'  {"kind": "Event", "auditID": "p2",  "verb": "get" }\n' + jsonl(event("p1"))
    )
    out = CliRunner().invoke(main, ["original", "nope\x1b[2J", "--case", str(case_path)])
    assert out.exit_code == 1
    assert out.output == (
        "nope\\x1b[2J: not in the case, or its source is gone or changed "
        "(kforensics verify says which)\n"
    )


def test_a_changed_byte_is_caught_and_named(tmp_path, case_path):
    plain, zipped, _ = logs(tmp_path / "logs")
    load(case_path, [plain, zipped], progress=False)
    before = plain.read_bytes()
    assert len(before) == 717
    plain.write_bytes(before.replace(b'"verb": "get"', b'"verb": "GET"'))
    out = CliRunner().invoke(main, ["verify", "--case", str(case_path)])
    assert out.exit_code == 1
    assert f"{plain} (load 1): changed since the load (its first 717 bytes differ)\n" in out.output
    assert out.output.endswith(
        "NOT proven: 2 of 5 events could not be checked against their sources (see above)\n"
    )
    with connect(case_path) as con:
        assert originals(con, [ids_by_audit_id(case_path)["p2"]]).popitem()[1] is None


def test_a_moved_and_renamed_source_is_found_by_its_content(tmp_path, case_path):
    plain, _, _ = logs(tmp_path / "logs")
    load(case_path, [plain], progress=False)
    (tmp_path / "archive" / "node-a").mkdir(parents=True)
    (tmp_path / "archive" / "decoy.log").write_bytes(plain.read_bytes()[:-3] + b"xx\n")
    moved = tmp_path / "archive" / "node-a" / "audit.log.1"
    shutil.move(plain, moved)
    proof = verify(case_path, progress=False)
    assert proof.ok is False
    assert proof.sources[0].problems == ["not found (give the folder it is in now with --sources)"]
    out = CliRunner().invoke(
        main, ["verify", "--case", str(case_path), "--sources", str(tmp_path / "archive"),
               "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["ok"], report["verified"]) == (True, 2)
    assert report["sources"][0]["found_at"] == str(moved)


def test_a_live_log_that_grew_proves_its_loaded_bytes(tmp_path, case_path):
    plain, _, _ = logs(tmp_path / "logs")
    load(case_path, [plain], progress=False)
    with open(plain, "ab") as f:
        f.write(jsonl(event("later")))
    proof = verify(case_path, progress=False)
    assert proof.ok is True
    assert proof.sources[0].grown == len(jsonl(event("later")))


def test_a_rotated_path_loaded_twice_proves_each_load_against_its_own_file(tmp_path, case_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    log = folder / "audit.log"
    log.write_bytes(jsonl(event("day1")))
    load(case_path, [log], progress=False)
    shutil.move(log, folder / "audit.log.1")  # the kube-apiserver rotates; a new audit.log
    log.write_bytes(jsonl(event("day2"), event("day2b")))
    load(case_path, [log], progress=False)
    proof = verify(case_path, [folder], progress=False)
    assert proof.ok is True
    assert [(s.load_id, s.found_at, s.verified) for s in proof.sources] == [
        (1, str(folder / "audit.log.1"), 1),
        (2, str(log), 2),
    ]


def test_a_missing_source_fails_verify_but_the_case_still_answers(tmp_path, case_path):
    plain, _, _ = logs(tmp_path / "logs")
    load(case_path, [plain], progress=False)
    plain.unlink()
    out = CliRunner().invoke(main, ["verify", "--case", str(case_path), "--json"])
    assert out.exit_code == 1
    assert json.loads(out.output)["sources"][0]["problems"] == [
        "not found (give the folder it is in now with --sources)"
    ]
    with connect(case_path) as con:  # the columns stand on their own
        assert con.execute("SELECT count(*), min(verb) FROM events").fetchone() == (2, "get")


def test_a_hostile_source_name_is_shown_escaped(tmp_path, case_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    log = folder / "evil\x1b[31m\n.log"
    log.write_bytes(jsonl(event("e1")))
    load(case_path, [log], progress=False)
    log.unlink()
    out = CliRunner().invoke(main, ["verify", "--case", str(case_path)])
    assert out.exit_code == 1
    assert "\x1b" not in out.output
    assert "evil\\x1b[31m\\x0a.log (load 1): not found" in out.output


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzz_any_change_to_loaded_bytes_fails_verify_and_appends_do_not(tmp_path, data):
    folder = tmp_path / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    log = folder / "audit.log"
    original = jsonl(*(event(f"f{i}") for i in range(data.draw(st.integers(1, 4)))))
    log.write_bytes(original)
    case = folder / "case.duckdb"
    load(case, [log], progress=False)
    at = data.draw(st.integers(0, len(original) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[at]))
    tail = data.draw(st.binary(max_size=40))
    log.write_bytes(original[:at] + bytes([byte]) + original[at + 1 :] + tail)
    assert verify(case, progress=False).ok is False
    log.write_bytes(original + tail)
    proof = verify(case, progress=False)
    assert (proof.ok, proof.sources[0].grown) == (True, len(tail))
