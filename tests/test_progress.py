"""Progress: a bar on a terminal for big inputs, nothing under pipes, CI or papermill."""

from __future__ import annotations

import gzip

from click.testing import CliRunner

from kforensics import load
from kforensics.cli import main
from kforensics.progress import MIN_BYTES_FOR_BAR, ByteProgress, progress_wanted
from tests.conftest import event, jsonl


def test_no_bar_when_not_on_a_terminal_or_in_ci(monkeypatch):
    assert not progress_wanted(10 * MIN_BYTES_FOR_BAR)  # pytest's stderr is not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    monkeypatch.setenv("CI", "true")
    assert not progress_wanted(10 * MIN_BYTES_FOR_BAR)
    monkeypatch.delenv("CI")
    assert progress_wanted(10 * MIN_BYTES_FOR_BAR)
    assert not progress_wanted(MIN_BYTES_FOR_BAR - 1)


def test_bar_counts_every_input_byte(tmp_path, monkeypatch):
    log = tmp_path / "audit.log.gz"
    log.write_bytes(gzip.compress(jsonl(*(event(f"p{i}") for i in range(100)))))
    seen: list[int] = []
    original = ByteProgress.advance

    def advance(self, n):
        seen.append(n)
        original(self, n)

    monkeypatch.setattr(ByteProgress, "advance", advance)
    load(tmp_path / "c.duckdb", [log], progress=True)
    assert sum(seen) == log.stat().st_size  # compressed bytes: the bar's total is file sizes


def test_cli_output_has_no_bar_under_a_pipe(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("p")))
    out = CliRunner().invoke(main, ["load", str(log), "--case", str(tmp_path / "c.duckdb")])
    assert out.exit_code == 0
    assert "loading" not in out.output
