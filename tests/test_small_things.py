"""Small things a user meets: the messages of detect, sql, load and report, each exactly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import kforensics as kf
from kforensics import load
from kforensics.cli import main
from kforensics.detection.rule import load_rules
from kforensics.reporting.run import notebooks_dir
from tests.conftest import event, jsonl, privileged_pod

PRIV = privileged_pod()


@pytest.fixture
def small_case(tmp_path: Path) -> Path:
    (tmp_path / "audit.log").write_bytes(jsonl(PRIV, event("g1")))
    case = tmp_path / "case.duckdb"
    load(case, [tmp_path / "audit.log"], progress=False)
    return case


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- detect: exceptions for no rule ---------------------------------------------------------


def test_an_exception_for_an_unknown_rule_id_is_an_error_naming_file_and_id(small_case, tmp_path):
    exceptions = tmp_path / "exceptions.yaml"
    exceptions.write_text("k8s-privileged-pdo:\n  - actor: alice\n")
    out = invoke("detect", "--case", small_case, "--exceptions", exceptions)
    assert out.exit_code == 1
    assert out.output == (
        f"Error: {exceptions}: k8s-privileged-pdo: no rule has this id (did you mean "
        "k8s-privileged-pod? `kforensics rules` lists the known ids)\n"
    )
    with pytest.raises(kf.ExceptionsError, match="k8s-privileged-pdo: no rule has this id"):
        kf.detect(small_case, exceptions=exceptions)
    assert kf.open_case(small_case).findings().empty  # nothing ran, nothing was stored


def test_an_exception_for_a_rule_not_run_now_is_fine(small_case, tmp_path):
    exceptions = tmp_path / "exceptions.yaml"
    experimental = next(r.id for r in load_rules(statuses=None) if r.status == "experimental")
    exceptions.write_text(f"{experimental}:\n  - actor: alice\nk8s-privileged-pod:\n  - name: q\n")
    out = invoke("detect", "--case", small_case, "--exceptions", exceptions)
    assert out.exit_code == 0, out.output
    assert len(kf.detect(small_case, exceptions=exceptions, store=False)) >= 1


# --- sql: one statement -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Error: the query is empty: give one SQL statement"),
        ("  -- only a comment", "Error: the query is empty: give one SQL statement"),
        ("SELECT 1; SELECT 2",
         "Error: the query has 2 statements; kforensics sql runs one statement at a time"),
        ("SELEC 1", 'Error: Parser Error: syntax error at or near "SELEC"'),
    ],
)  # fmt: skip
def test_sql_says_what_is_wrong_with_the_query(small_case, query, message):
    out = invoke("sql", "--case", small_case, query)
    assert out.exit_code == (1 if "Parser" in message else 2)
    assert out.output.splitlines()[-1] == message
    assert "Traceback" not in out.output


def test_sql_runs_one_statement_of_any_read_only_kind(small_case):
    out = invoke("sql", "--case", small_case, "--format", "csv", "SELECT count(*) AS n FROM events")
    assert out.output == "n\n2\n"  # CliRunner shows the CSV's \r\n as \n
    out = invoke("sql", "--case", small_case, "--format", "csv", "DESCRIBE loads")
    assert out.exit_code == 0 and out.output.splitlines()[1] == "load_id,INTEGER,NO,PRI,,"


# --- load: nothing to load ------------------------------------------------------------------


def test_load_of_a_folder_without_files_says_so_and_creates_no_case(tmp_path):
    folder = tmp_path / "logs"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden.log").write_bytes(jsonl(event()))
    case = tmp_path / "case.duckdb"
    out = invoke("load", folder, "--case", case)
    assert out.exit_code == 2
    assert out.output.splitlines()[-1] == (
        f"Error: no files found in {folder} (hidden files and folders are skipped)"
    )
    out = invoke("load", f"{folder}/*.log", "--case", case)
    assert out.exit_code == 2
    assert out.output.splitlines()[-1] == f"Error: {folder}/*.log: no file matches this pattern"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]  # no case, no .wal


# --- report: parameters before a kernel, checkpoint copies ----------------------------------


@pytest.mark.parametrize("name", ["since", "until"])
def test_report_checks_a_time_parameter_before_a_kernel_starts(
    small_case, tmp_path, monkeypatch, name
):
    import papermill

    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    out = invoke("report", "01_triage", "--case", small_case, "--out", tmp_path / "r",
                 "-p", name, "yesterday")  # fmt: skip
    assert out.exit_code == 1
    assert out.output == (
        f"Error: {name}: not an ISO 8601 time: 'yesterday' (for example 2026-03-14T10:00, "
        "UTC if no zone; empty: no bound)\n"
    )
    assert not (tmp_path / "r").exists()


def test_report_list_ignores_checkpoint_copies(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    source = notebooks_dir() / "03_workload.ipynb"
    shutil.copy(source, folder / "03_workload.ipynb")
    shutil.copy(source, folder / "03_workload-checkpoint.ipynb")  # a copy dragged out of it
    shutil.copy(source, folder / ".ipynb_checkpoints" / "03_workload-checkpoint.ipynb")
    monkeypatch.setenv("KFORENSICS_NOTEBOOKS", str(folder))
    out = invoke("report", "--list")
    assert out.exit_code == 0, out.output
    assert [line for line in out.output.splitlines() if not line.startswith(" ")] == ["03_workload"]
    gone = invoke("report", "03_workload-checkpoint", "--case", tmp_path / "c", "--out", tmp_path)
    assert gone.output.startswith("Error: no notebook '03_workload-checkpoint' (known in ")


def test_the_command_line_starts_without_the_heavy_imports():
    # jsonschema (the manifest validation) costs 1.3 s at import: only the commands that
    # rebuild the cluster may pay for it, not `kforensics --help` or a `sql` query
    probe = (
        "import sys, kforensics.cli; print(sorted(m for m in ('jsonschema', 'papermill', "
        "'altair', 'kforensics.netpol.inventory') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"
