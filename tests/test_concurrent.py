"""The case while notebooks are open: loads, detections and replacements beside readers.

DuckDB lets one process write a file or several read it, never both. Notebooks open a
connection per query (kforensics.api.Case), writers wait their turn (kforensics.case.connect),
detect holds the write lock only to store, and `load --replace` renames a new case over the old.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import kforensics as kf
from kforensics.case import connect
from kforensics.errors import CaseError
from tests.conftest import event, jsonl

KF = [str(Path(sys.executable).parent / "kforensics")]

# A kernel as an analyst runs it: a cell every few tenths of a second, each a few queries.
READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import kforensics as kf
    case, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    seen, errors, runs = [], [], 0
    while not stop.exists():
        try:
            c = kf.open_case(case)
            events = int(c.sql("SELECT count(*) AS n FROM events")["n"][0])
            findings = len(c.findings())
            c.query("top_identities")
            c.chart("timeline")
            seen.append([events, findings])
            runs += 1
            Path(f"{out}.ready").touch()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.15)
    out.write_text(json.dumps({"seen": seen, "errors": errors, "runs": runs}))
    """
)


def _extra_log(path: Path, n: int = 40) -> Path:
    events = [
        event(f"later-{i}", requestReceivedTimestamp=f"2026-03-14T11:00:{i:02d}.000001Z",
              stageTimestamp=f"2026-03-14T11:00:{i:02d}.002001Z")
        for i in range(n)
    ]  # fmt: skip
    path.write_bytes(jsonl(*events))
    return path


def _kf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*KF, *args], capture_output=True, text=True, timeout=300)


def test_load_and_detect_succeed_while_three_kernels_read(sample_cases, tmp_path):
    case = sample_cases.copy("native", tmp_path)
    before = int(kf.open_case(case).sql("SELECT count(*) AS n FROM events")["n"][0])
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(case), str(stop), str(tmp_path / f"r{n}")]
        )
        for n in range(3)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f"{tmp_path / f'r{n}'}.ready").exists() for n in range(3)):
            assert time.monotonic() < deadline, "the readers did not start"
            time.sleep(0.1)  # the three have read before the writers start
        loaded = _kf("load", str(_extra_log(tmp_path / "later.log")), "--case", str(case))
        detected = _kf("detect", "--case", str(case), "--min-level", "critical")
        time.sleep(2)  # each reader runs again after the detect
    finally:
        stop.touch()
        for r in readers:
            r.wait(timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert detected.returncode == 0, detected.stderr
    stored = len(kf.open_case(case).findings())
    assert stored > 0
    for n in range(3):
        report = json.loads((tmp_path / f"r{n}").read_text())
        assert report["errors"] == []
        assert report["seen"][0] == [before, 0]  # the copy has no findings yet
        assert report["seen"][-1] == [before + 40, stored]


def test_a_writer_waits_for_a_query_in_progress_and_says_so(sample_cases, tmp_path):
    case = sample_cases.copy("native", tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kforensics.case import connect\n"
         "con = connect(sys.argv[1]); print('open', flush=True); time.sleep(5); con.close()",
         str(case)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline() == "open\n"
    started = time.monotonic()
    loaded = _kf("load", str(_extra_log(tmp_path / "later.log")), "--case", str(case))
    holder.wait(timeout=30)
    assert loaded.returncode == 0, loaded.stderr
    assert time.monotonic() - started >= 1.5
    assert f"{case}: waiting for other processes reading the case...\n" in loaded.stderr


def test_a_writer_that_waited_long_enough_names_the_case(sample_cases, tmp_path):
    case = sample_cases.copy("native", tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kforensics.case import connect\n"
         "con = connect(sys.argv[1]); print('open', flush=True); time.sleep(5)", str(case)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "open\n"
        with pytest.raises(CaseError) as caught:
            connect(case, read_only=False, wait=0.3)
    finally:
        holder.kill()
        holder.wait()
    assert str(caught.value) == (
        f"{case}: the case is open in another process (waited 0 s); DuckDB allows one writer "
        "and no readers beside it. Retry when it is done, or close the other process."
    )


def test_load_replace_switches_an_open_notebook_to_the_new_case_and_says_so(tmp_path):
    case = tmp_path / "demo.duckdb"
    first = _kf("load", str(_extra_log(tmp_path / "first.log", 5)), "--case", str(case))
    assert first.returncode == 0, first.stderr
    notebook = kf.open_case(case)  # what a kernel holds: no connection between calls
    assert int(notebook.sql("SELECT count(*) AS n FROM events")["n"][0]) == 5
    again = _kf(
        "load", str(_extra_log(tmp_path / "second.log", 7)), "--case", str(case), "--replace"
    )
    assert again.returncode == 0, again.stderr
    assert again.stderr.endswith(
        f"replaced the earlier case {case}; notebooks reading it see this one from their next "
        "query\n"
    )
    rows = notebook.sql("SELECT count(*) AS n, min(path) AS path FROM sources")
    assert (int(rows["n"][0]), rows["path"][0]) == (1, str(tmp_path / "second.log"))
    assert int(notebook.sql("SELECT count(*) AS n FROM events")["n"][0]) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.duckdb", "first.log", "second.log"]


def test_load_replace_that_reads_nothing_keeps_the_earlier_case(tmp_path):
    case = tmp_path / "demo.duckdb"
    assert (
        _kf("load", str(_extra_log(tmp_path / "first.log", 5)), "--case", str(case)).returncode == 0
    )
    junk = tmp_path / "junk.log"
    junk.write_text("not json\n")
    again = _kf("load", str(junk), "--case", str(case), "--replace")
    assert again.returncode == 1
    assert f"the earlier case {case} is kept as it was\n" in again.stderr
    assert int(kf.open_case(case).sql("SELECT count(*) AS n FROM events")["n"][0]) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.duckdb", "first.log", "junk.log"]
