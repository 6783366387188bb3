"""Crafted input: bombs, read errors, files that change, limits. Loads go on; memory stays flat.

Memory is measured in a child process (its peak resident set), or as the Python heap's growth
between two input sizes; never by timing.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import connect, load
from kforensics.cli import main
from kforensics.ingest import read as reader
from kforensics.ingest import windows
from kforensics.ingest.original import originals, verify
from kforensics.ingest.rejects import REJECT_BATCH, Rejects
from tests.conftest import ROOT, event, jsonl

RSS_LIMIT = 1536 * 1024 * 1024  # 1.5 GiB

CHILD = """
import json, resource, sys
from kforensics import load
result = load(sys.argv[1], sys.argv[2:])
d = result.to_dict()
d["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(d))
"""


def load_in_child(case: Path, *paths: Path) -> dict:
    """Return the load summary of a load run in a fresh process, with its peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(case), *map(str, paths)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_gzip_of_200_million_blank_lines_is_counted_in_little_memory(tmp_path):
    bomb = tmp_path / "audit.log.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        for _ in range(12):
            f.write(b"\n" * (1 << 24))
        f.write(jsonl(event("after-the-blanks")))
    assert bomb.stat().st_size < 400_000
    got = load_in_child(tmp_path / "case.duckdb", bomb)
    s = got["sources"][0]
    assert (s["lines_read"], s["blank_lines"], s["events_loaded"]) == (201_326_593, 201_326_592, 1)
    assert got["peak_rss"] < RSS_LIMIT


@pytest.mark.slow
def test_rejects_do_not_pile_up_in_memory(tmp_path, case_path, monkeypatch):
    # Python's heap is counted (sys.getallocatedblocks, exact and cheap) each time a batch of
    # rejects is written: held rejects would add at least one block per reject per batch, so a
    # flat count over six batches bounds memory for any number of rejects.
    junk = tmp_path / "junk.log"
    n = 6 * REJECT_BATCH
    with open(junk, "wb") as f:
        f.writelines(b"junk %d\n" % i for i in range(n))
    blocks: list[tuple[int, int]] = []
    flush = Rejects.flush

    def counting(self: Rejects) -> None:
        blocks.append((len(self.pending), sys.getallocatedblocks()))
        flush(self)

    monkeypatch.setattr(Rejects, "flush", counting)
    result = load(case_path, [junk])
    assert (result.rejected, result.events_loaded) == (n, 0)
    assert [pending for pending, _ in blocks] == [REJECT_BATCH] * 6 + [0]
    counts = [count for pending, count in blocks if pending]
    # from the second batch on (the first warms caches), well under one block per reject
    assert max(counts[1:]) - counts[1] < REJECT_BATCH // 10


@pytest.mark.parametrize(
    "first, reason",
    [
        (b"{garbage", "invalid JSON: unexpected character, expected a string key: line 1 column 2"),
        (b'{"kind":"Event","apiVersion":"audit.k8s.', "invalid JSON: unexpected end of data"),
        (b'{"a": [1, {"b": 2', "invalid JSON: unexpected end of data: line 1 column 18"),
        (b'{"a": 1}{"b": ', "invalid JSON: unexpected content after document"),
        (b"{", "invalid JSON: unexpected end of data: line 1 column 2"),
        (b" [", "invalid JSON: unexpected end of data: line 1 column 2"),
        # gzip's magic, then no gzip header (RFC 1952): a line of text, not a corrupt stream
        (b"\x1f\x8b", "invalid UTF-8 at byte 1"),
        (b"\x1f\x8b\x09", "invalid UTF-8 at byte 1"),
    ],
)  # fmt: skip
def test_a_broken_first_line_costs_that_line_not_the_file(tmp_path, monkeypatch, first, reason):
    # Read as the start of a JSON document, the first line's open object would swallow every
    # line after it: a record past the size limit (16 MB; 4 KB here), one reject for the
    # whole file, every event lost.
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 4096)
    log = tmp_path / "audit.log"
    log.write_bytes(first + b"\n" + b"".join(jsonl(event(f"e{i}")) for i in range(40)))
    assert log.stat().st_size > 5 * 4096
    result = load(tmp_path / "case.duckdb", [log], progress=False)
    s = result.sources[0]
    assert (s.format, s.lines_read, s.events_loaded, s.rejected) == ("native", 41, 40, 1)
    assert [r for r, _ in result.reject_reasons][0].startswith(reason)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# A file that starts with a gzip member header is read as gzip, whatever follows it.
@given(
    first=st.binary(max_size=40).filter(lambda b: b"\n" not in b and not reader.is_gzip(b + b"\n"))
)
def test_no_first_line_makes_the_events_after_it_vanish(tmp_path, monkeypatch, first):
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 4096)
    run = tmp_path / hashlib.sha256(first).hexdigest()[:16]  # hypothesis may replay one input
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    log, case = run / "audit.log", run / "case.duckdb"
    log.write_bytes(first + b"\n" + b"".join(jsonl(event(f"e{i}")) for i in range(30)))
    result = load(case, [log], progress=False)
    s = result.sources[0]
    assert s.lines_read == 31
    with connect(case) as con:
        ids = {r[0] for r in con.execute("SELECT audit_id FROM events").fetchall()}
    assert {f"e{i}" for i in range(30)} <= ids


def test_a_document_whose_second_line_is_no_object_is_still_a_document(tmp_path):
    doc = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [event("a"), event("b")]}
    log = tmp_path / "list.json"
    log.write_text(json.dumps(doc, indent=2))
    result = load(tmp_path / "case.duckdb", [log], progress=False)
    assert (result.sources[0].format, result.events_loaded, result.rejected) == ("eventlist", 2, 0)


def test_json_lines_that_are_not_events_are_mapped_in_batches(tmp_path, monkeypatch):
    # Objects the typed path leaves (here: none is an event) go to the full mapping. Held all
    # at once, a 256 MB window of them (3M lines) peaked at 2.1 GB and 10M lines at 3.2 GB;
    # mapped UNTYPED_BATCH at a time, 10M such lines load at 1.4 GB (README, Performance).
    monkeypatch.setattr(windows, "UNTYPED_BATCH", 1000)
    held = []
    map_untyped = windows._map_untyped

    def counting(writer, rows, stats):
        held.append(len(rows["line"]))
        return map_untyped(writer, rows, stats)

    monkeypatch.setattr(windows, "_map_untyped", counting)
    log = tmp_path / "objects.log"
    with open(log, "wb") as f:
        f.writelines(b'{"kind": "Event", "n": %d}\n' % i for i in range(4500))
    result = load(tmp_path / "case.duckdb", [log], progress=False)
    assert (result.rejected, result.events_loaded) == (4500, 0)
    assert result.reject_reasons == [
        ("not an audit event: no auditID, no audit.k8s.io kind Event, and no verb with "
         "requestURI or objectRef (keys: kind, n)", 4500)
    ]  # fmt: skip
    assert held == [1000, 1000, 1000, 1000, 500]


@pytest.mark.slow
def test_big_eventlist_is_streamed_not_read_whole(tmp_path, monkeypatch):
    # The Python heap's peak (tracemalloc) stays flat from a 17 MB to a 70 MB document: reading
    # it whole would add at least the 53 MB between them. Blocks of 1 MiB instead of 32 let
    # small documents show it; the warm-up load leaves imports and caches out of the count.
    monkeypatch.setattr(reader, "BLOCK_SIZE", 1 << 20)
    ev = event("x", requestObject={"data": "z" * 60_000})
    peaks = {}
    for n in (1, 300, 1200):
        doc = tmp_path / f"hook-{n}.json"
        with open(doc, "w") as f:
            f.write('{\n  "kind": "EventList",\n  "apiVersion": "audit.k8s.io/v1",\n  "items": [\n')
            f.write(
                ",\n".join(json.dumps({**ev, "auditID": f"id-{i}"}, indent=4) for i in range(n))
            )
            f.write("\n  ]\n}\n")
        tracemalloc.start()
        try:
            result = load(tmp_path / f"case-{n}.duckdb", [doc])
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (result.events_loaded, result.rejected) == (n, 0)
    size = {n: (tmp_path / f"hook-{n}.json").stat().st_size for n in (300, 1200)}
    assert size[1200] - size[300] > 50_000_000
    assert peaks[1200] - peaks[300] < (size[1200] - size[300]) // 4
    assert peaks[1200] < size[1200] // 2


def test_a_line_at_the_size_limit_loads_and_one_byte_more_is_rejected(tmp_path):
    limit = reader.MAX_LINE_BYTES
    base = orjson.dumps(event("big", requestObject={"data": ""}))
    pad = limit - len(base)
    at = base.replace(b'"data":""', b'"data":"' + b"a" * pad + b'"')
    over = base.replace(b'"data":""', b'"data":"' + b"b" * (pad + 1) + b'"')
    assert (len(at), len(over)) == (limit, limit + 1)
    log = tmp_path / "audit.log"
    log.write_bytes(at + b"\r\n" + over.replace(b'"big"', b'"bi2"') + b"\n" + jsonl(event("ok")))
    got = load_in_child(tmp_path / "case.duckdb", log)
    s = got["sources"][0]
    assert (s["lines_read"], s["events_loaded"], s["rejected"]) == (3, 2, 1)
    assert got["reject_reasons"] == [
        {"reason": f"line longer than {limit} bytes ({limit + 1:,} bytes)", "count": 1}
    ]
    assert got["peak_rss"] < RSS_LIMIT


def test_invalid_utf8_inside_a_multi_line_document(tmp_path, case_path, con):
    text = json.dumps(
        {"kind": "EventList", "items": [event("a"), event("b"), event("c")]}, indent=2
    )
    data = text.encode().replace(b'"b"', b'"\xff\xfe"', 1)
    doc = tmp_path / "hook.json"
    doc.write_bytes(data)
    result = load(case_path, [doc])
    assert (result.events_loaded, result.rejected) == (2, 1)
    line, index, reason = (
        con().execute("SELECT source_line, source_index, reason FROM rejects").fetchone()
    )
    assert (index, reason.startswith("invalid UTF-8")) == (1, True)
    size = con().execute("SELECT raw_bytes FROM rejects").fetchone()[0]
    # The element as it stands in the document: "b" became two invalid bytes, one byte more.
    assert size == len(json.dumps(event("b"), indent=2).replace("\n", "\n    ")) + 1
    assert data.splitlines()[line - 1].strip() == b"{"


def test_a_real_read_error_is_reported_and_the_load_goes_on(tmp_path, case_path, con):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.log").write_bytes(jsonl(event("a")))
    os.symlink("/proc/self/mem", folder / "b.log")  # opens, then EIO on the first read
    (folder / "c.log").write_bytes(jsonl(event("c")))
    result = load(case_path, [folder])
    assert result.events_loaded == 2
    bad = next(s for s in result.sources if s.path.endswith("b.log"))
    assert (bad.rejected, bad.bytes) == (1, 0)
    reason = con().execute("SELECT reason FROM rejects").fetchone()[0]
    assert reason.startswith("read error after 0 bytes: Input/output error")


class FailingFile:
    """A file object that raises EIO once `after` bytes have been read."""

    def __init__(self, fh, after: int):
        self.fh, self.after, self.done = fh, after, 0

    def peek(self, n: int) -> bytes:
        return self.fh.peek(n)

    def readinto(self, b) -> int:
        if self.done >= self.after:
            raise OSError(errno.EIO, "Input/output error")
        n = self.fh.readinto(memoryview(b)[: self.after - self.done])
        self.done += n
        return n

    def read(self, n: int = -1) -> bytes:
        if self.done >= self.after:
            raise OSError(errno.EIO, "Input/output error")
        data = self.fh.read(min(n if n >= 0 else self.after, self.after - self.done))
        self.done += len(data)
        return data

    def close(self) -> None:
        self.fh.close()


def test_read_error_mid_file_keeps_what_was_read(tmp_path, case_path, con, monkeypatch):
    log = tmp_path / "audit.log"
    lines = jsonl(*(event(f"e{i}") for i in range(100)))
    log.write_bytes(lines)
    cut = lines.index(b'"e50"')  # inside line 51
    real_open = open
    monkeypatch.setattr(
        reader, "open", lambda p, mode="rb": FailingFile(real_open(p, mode), cut), raising=False
    )
    result = load(case_path, [log])
    s = result.sources[0]
    # The line cut by the error is part of "the rest of the file", one reject.
    assert (s.events_loaded, s.rejected, s.lines_read, s.bytes) == (50, 1, 51, cut)
    assert s.sha256 == hashlib.sha256(lines[:cut]).hexdigest()
    line, reason = con().execute("SELECT source_line, reason FROM rejects").fetchone()
    assert line == 51
    assert reason.startswith(f"read error after {cut:,} bytes: Input/output error")


def test_unlistable_folder_is_a_source_with_its_reason(tmp_path, case_path, con, monkeypatch):
    root = tmp_path / "logs"
    (root / "node-1").mkdir(parents=True)
    (root / "node-2").mkdir()
    (root / "node-1" / "audit.log").write_bytes(jsonl(event("n1")))
    (root / "node-2" / "audit.log").write_bytes(jsonl(event("n2")))
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).name == "node-2":  # as root, chmod cannot make a folder unreadable
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = load(case_path, [root])
    assert result.events_loaded == 1
    assert [(s.path, s.error) for s in result.sources] == [
        (str(root / "node-1" / "audit.log"), None),
        (str(root / "node-2"), "cannot list: Permission denied"),
    ]
    assert con().execute("SELECT path, error FROM sources WHERE error IS NOT NULL").fetchall() == [
        (str(root / "node-2"), "cannot list: Permission denied")
    ]
    out = CliRunner().invoke(main, ["load", str(root), "--case", str(tmp_path / "b.duckdb")])
    assert out.exit_code == 0
    assert f"not read (see the sources table):\n  {root / 'node-2'}: cannot list: Permission" in (
        out.output
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_a_source_with_its_reason(tmp_path, case_path):
    locked = tmp_path / "locked.log"
    locked.write_bytes(jsonl(event("x")))
    locked.chmod(0)
    (tmp_path / "ok.log").write_bytes(jsonl(event("y")))
    result = load(case_path, [tmp_path])
    errors = {Path(s.path).name: s.error for s in result.sources}
    assert errors == {"locked.log": "cannot open: Permission denied", "ok.log": None}


def test_a_file_appended_while_it_loads_is_read_once(tmp_path, case_path, con):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(*(event(f"s{i}") for i in range(50_000))))
    stop = threading.Event()

    def append() -> None:
        i = 0
        with open(log, "ab") as f:
            while not stop.is_set():
                f.write(jsonl(event(f"late-{i}")))
                f.flush()
                i += 1
                time.sleep(0.0005)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        result = load(case_path, [log])
    finally:
        stop.set()
        writer.join()
    s = result.sources[0]
    prefix = log.read_bytes()[: s.bytes]
    assert s.sha256 == hashlib.sha256(prefix).hexdigest()
    complete = prefix.count(b"\n")
    assert s.lines_read in (complete, complete + 1)  # the last line may be cut mid-write
    assert s.events_loaded + s.rejected == s.lines_read
    ids = [
        r[0] for r in con().execute("SELECT event_id FROM events ORDER BY source_line").fetchall()
    ]
    got = originals(con(), ids)
    assert [got[i] for i in ids] == prefix.splitlines()[: len(ids)]
    # the file grew after the load, as a live audit.log does: the loaded bytes still prove out
    proof = verify(case_path)
    [check] = proof.sources
    assert (proof.ok, check.problems, check.verified) == (True, [], len(ids))
    assert check.grown == log.stat().st_size - s.bytes


def test_deeply_nested_request_object_loads(tmp_path, case_path, con):
    deep = "[" * 5000 + "]" * 5000
    line = orjson.dumps(event("deep", requestObject={"x": 1})).replace(b'{"x":1}', deep.encode())
    log = tmp_path / "audit.log"
    log.write_bytes(line + b"\n" + jsonl(event("ok")))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (2, 0)


def test_summary_of_relative_and_absolute_paths_together(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("rel.log").write_bytes(jsonl(event("r")))
    (tmp_path / "abs.log").write_bytes(jsonl(event("a")))
    out = CliRunner().invoke(main, ["load", "rel.log", str(tmp_path / "abs.log"), "--case", "c.db"])
    assert out.exit_code == 0, out.output
    assert "rel.log" in out.output and "abs.log" in out.output


def test_file_that_cannot_be_opened_is_a_source_with_its_reason(tmp_path, case_path, monkeypatch):
    (tmp_path / "locked.log").write_bytes(jsonl(event("x")))
    (tmp_path / "ok.log").write_bytes(jsonl(event("y")))
    real_open = open

    def guarded(path, mode="rb"):
        if Path(path).name == "locked.log":  # as root, chmod cannot lock a file
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, mode)

    monkeypatch.setattr(reader, "open", guarded, raising=False)
    result = load(case_path, [tmp_path])
    assert [(Path(s.path).name, s.error, s.rejected) for s in result.sources] == [
        ("locked.log", "cannot open: Permission denied", 0),
        ("ok.log", None, 0),
    ]
    assert result.events_loaded == 1


@pytest.mark.parametrize("stray", [b"[", b"{", b"[\n{", b'{"kind": "EventList", "items": ['])
@pytest.mark.parametrize("end", [b"\n", b""])
def test_a_stray_opening_line_hides_no_event_after_it(tmp_path, case_path, con, stray, end):
    log = tmp_path / "audit.log"
    log.write_bytes(stray + b"\n" + jsonl(event("a")) + jsonl(event("b"))[:-1] + end)
    result = load(case_path, [log])
    assert result.events_loaded == 2
    assert result.sources[0].records == result.events_loaded + result.rejected
    ids = [r[0] for r in con().execute("SELECT audit_id FROM events ORDER BY 1").fetchall()]
    assert ids == ["a", "b"]
