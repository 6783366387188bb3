"""Progress: a bar on a terminal or in a live notebook for big inputs; none in batch runs."""

from __future__ import annotations

import gzip
import os
import sys
import types

import pytest
from click.testing import CliRunner

from kforensics import load
from kforensics.cli import main
from kforensics.errors import ReportError
from kforensics.progress import (
    BATCH_ENV,
    MIN_BYTES_FOR_BAR,
    ByteProgress,
    batch_environment,
    batch_run,
    in_notebook,
    progress_wanted,
)
from kforensics.reporting.run import run_report
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


class _Shell:
    """Stands for IPython's shell in a kernel: only its class name is looked at."""


def _kernel_shell(monkeypatch, name: str) -> None:
    shell = type(name, (_Shell,), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_a_bar_in_a_live_notebook_but_never_in_a_batch_run(monkeypatch):
    big = 10 * MIN_BYTES_FOR_BAR
    for name in ("CI", BATCH_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "IPython", None)  # a script: IPython never imported
    assert not in_notebook() and not progress_wanted(big)
    _kernel_shell(monkeypatch, "TerminalInteractiveShell")  # ipython in a terminal, stderr piped
    assert not in_notebook() and not progress_wanted(big)
    _kernel_shell(monkeypatch, "ZMQInteractiveShell")  # a Jupyter kernel, stderr no terminal
    assert in_notebook() and progress_wanted(big)
    assert not progress_wanted(MIN_BYTES_FOR_BAR - 1)
    monkeypatch.setenv(BATCH_ENV, "0")
    assert progress_wanted(big)
    monkeypatch.setenv(BATCH_ENV, "1")  # a papermill kernel of kforensics report
    assert not progress_wanted(big)
    monkeypatch.delenv(BATCH_ENV)
    monkeypatch.setenv("CI", "true")
    assert not progress_wanted(big)


def test_batch_run_reads_ci_and_the_batch_marker():
    assert [batch_run(env) for env in ({}, {"CI": ""}, {BATCH_ENV: "0"}, {BATCH_ENV: ""})] == [
        False,
        False,
        False,
        False,
    ]
    assert [batch_run(env) for env in ({"CI": "true"}, {BATCH_ENV: "1"}, {BATCH_ENV: "yes"})] == [
        True,
        True,
        True,
    ]


def test_batch_environment_marks_children_and_restores(monkeypatch):
    monkeypatch.delenv(BATCH_ENV, raising=False)
    with batch_environment():
        assert os.environ[BATCH_ENV] == "1"
    assert BATCH_ENV not in os.environ
    monkeypatch.setenv(BATCH_ENV, "0")
    with pytest.raises(RuntimeError), batch_environment():
        raise RuntimeError("a failed run")
    assert os.environ[BATCH_ENV] == "0"


def test_kforensics_report_runs_its_kernel_as_a_batch_run(tmp_path, monkeypatch):
    import papermill

    seen = []

    def execute_notebook(*args, **kwargs):
        seen.append(os.environ.get(BATCH_ENV))  # the kernel inherits this environment
        raise OSError("no kernel in this test")

    monkeypatch.delenv(BATCH_ENV, raising=False)
    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    case = tmp_path / "c.duckdb"
    load(case, [_log(tmp_path)])
    with pytest.raises(ReportError, match="could not run: OSError: no kernel in this test"):
        run_report("01_triage", case, {}, tmp_path / "out")
    assert seen == ["1"] and BATCH_ENV not in os.environ


def _log(folder):
    log = folder / "audit.log"
    log.write_bytes(jsonl(event("p")))
    return log


# In a real kernel: the bar is rich's live display in an ipywidgets Output, shown and closed.
BAR_IN_KERNEL = f"""
from kforensics.progress import ByteProgress, progress_wanted
print("wanted", progress_wanted({MIN_BYTES_FOR_BAR}))
with ByteProgress({MIN_BYTES_FOR_BAR}) as bar:
    bar.advance({MIN_BYTES_FOR_BAR // 2})
"""


def _run_in_kernel(code: str, env: dict[str, str]) -> list[dict]:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        kc.execute(code)
        messages = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                if any(m["msg_type"] == "execute_input" for m in messages):
                    return messages
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
@pytest.mark.parametrize(("marker", "bar"), [(None, True), ("1", False)], ids=["live", "batch"])
def test_a_kernel_shows_the_bar_as_a_widget_unless_batch(marker, bar):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", BATCH_ENV)}
    if marker:
        env[BATCH_ENV] = marker
    messages = _run_in_kernel(BAR_IN_KERNEL, env)
    printed = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    assert f"wanted {bar}" in printed
    opened = {
        m["content"]["comm_id"]: m["content"]["data"]["state"]["_model_name"]
        for m in messages
        if m["msg_type"] == "comm_open"
    }
    closed = [
        opened.get(m["content"]["comm_id"]) for m in messages if m["msg_type"] == "comm_close"
    ]
    views = [
        m for m in messages
        if m["msg_type"] == "display_data"
        and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]  # fmt: skip
    if bar:  # an Output (and its Layout) shown, then closed: the bar goes when the load ends
        assert (sorted(opened.values()), len(views), closed) == (
            ["LayoutModel", "OutputModel"],
            1,
            ["OutputModel"],
        )
    else:
        assert (opened, views) == ({}, [])
