"""A load is atomic: killed with SIGKILL mid-load, the case is exactly as it was before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from kforensics import connect, load
from tests.conftest import event, jsonl


def big_log(path, n: int) -> None:
    template = orjson.dumps(event("AUDIT-ID", requestObject={"spec": {"x": "y" * 400}}))
    head, tail = template.split(b"AUDIT-ID")
    with open(path, "wb") as fh:
        for start in range(0, n, 50_000):
            fh.write(b"".join(b"%s%d%s\n" % (head, i, tail) for i in range(start, start + 50_000)))


@pytest.mark.slow
def test_sigkill_mid_load_leaves_the_case_as_it_was(tmp_path, case_path):
    small = tmp_path / "small.log"
    small.write_bytes(jsonl(*(event(f"s{i}") for i in range(5))))
    load(case_path, [small])
    big = tmp_path / "big.log"
    big_log(big, 400_000)
    size_before = case_path.stat().st_size
    proc = subprocess.Popen(
        [sys.executable, "-c", "from kforensics.cli import main; main()",
         "load", str(big), "--case", str(case_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    # Kill once the load has written events into the case file, before it can commit.
    while case_path.stat().st_size <= size_before and proc.poll() is None:
        assert time.monotonic() < deadline, "the load never started writing"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the load finished before it could be killed"

    with connect(case_path) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (5,)
        assert con.execute("SELECT count(*) FROM loads").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM sources").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
    again = load(case_path, [small])  # read by load 1, which committed: skipped
    assert (again.load_id, again.events_loaded, again.skipped[0].already_loaded) == (2, 0, 1)
