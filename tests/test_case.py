"""Case files of another schema version are refused, saying how to carry on."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from kforensics import case as case_module
from kforensics import load
from kforensics.case import SCHEMA_VERSION, connect
from kforensics.cli import main
from kforensics.errors import CaseError, InputError
from tests.conftest import event, jsonl


def old_case(tmp_path: Path, version: int | None, *names: str) -> Path:
    """Return a case loaded from one log per name, then marked with another schema version."""
    case = tmp_path / "incident.duckdb"
    logs = []
    for n, name in enumerate(names):
        log = tmp_path / name
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(jsonl(event(f"a{n}")))
        logs.append(log)
    load(case, logs)
    with duckdb.connect(str(case)) as con:
        if version is None:
            con.execute("DROP TABLE schema_version")  # the first schema had no such table
        else:
            con.execute("UPDATE schema_version SET version = $v", {"v": version})
    return case


def test_current_version_opens(tmp_path):
    case = old_case(tmp_path, SCHEMA_VERSION, "audit.log")
    with connect(case) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(1,)]


def test_older_case_names_the_load_command_for_a_new_case(tmp_path):
    case = old_case(tmp_path, 1, "node a/audit.log", "audit.log")
    with pytest.raises(CaseError) as caught:
        connect(case)
    assert str(caught.value) == (
        f"{case}: the case has schema version 1; this kforensics (0.1.0) reads version 7, "
        "whose tables mean other things. Load its sources again into a new case: "
        f"kforensics load {tmp_path}/audit.log '{tmp_path}/node a/audit.log' "
        f"--case {tmp_path}/incident-v7.duckdb"
    )


def test_a_version_5_case_is_loaded_again(tmp_path):
    # version 6 keeps a native line's bytes in its source: a version 5 case's events are not
    # what this one reads, so it is refused with the command that rebuilds it
    case = old_case(tmp_path, 5, "audit.log")
    for read_only in (True, False):
        with pytest.raises(CaseError, match=r"schema version 5; this kforensics \(0\.1\.0\) reads"):
            connect(case, read_only=read_only)


@pytest.fixture
def additive() -> int:
    """Return the older version the current schema only adds to (7 adds loads.cluster)."""
    assert case_module.ADDITIVE_FROM == {SCHEMA_VERSION - 1}
    return SCHEMA_VERSION - 1


def test_an_additive_version_gains_the_remediations_table_when_opened_for_writing(
    tmp_path, additive
):
    case = old_case(tmp_path, additive, "audit.log")
    with duckdb.connect(str(case)) as con:
        con.execute("DROP TABLE remediations")  # as if the older version had no such table
    with connect(case) as con:  # read-only: read as it is
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(6,)]
    with connect(case, read_only=False) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(7,)]
        assert con.execute("SELECT count(*) FROM remediations").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(1,)]


def test_an_additive_version_read_only_runs_the_watch_rules_on_no_remediations(tmp_path, additive):
    from kforensics.detection.rule import load_rules
    from kforensics.detection.run import detect

    case = old_case(tmp_path, additive, "audit.log")
    with duckdb.connect(str(case)) as con:
        con.execute("DROP TABLE remediations")
    findings = detect(case, load_rules(), store=False)  # read-only: the case keeps its version
    assert [f for f in findings if f.rule_id.startswith("k8s-containment-")] == []
    with connect(case) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(6,)]


def test_a_version_6_case_gains_the_cluster_of_its_loads_when_opened_for_writing(tmp_path):
    case = old_case(tmp_path, 6, "audit.log")
    with duckdb.connect(str(case)) as con:
        con.execute("ALTER TABLE loads DROP COLUMN cluster")  # as version 6 wrote it
    load(case, [tmp_path / "audit.log"], cluster="prod-eu-1")  # skipped: read already
    with connect(case) as con:
        assert con.execute("SELECT load_id, cluster FROM loads ORDER BY 1").fetchall() == [
            (1, None),
            (2, "prod-eu-1"),
        ]
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(7,)]


@pytest.mark.parametrize(
    "name", ["", "a/b", "../x", "x=y", "-x", ".hidden", "a b", "a" * 101, "é", "a\nb"]
)
def test_a_cluster_name_that_cannot_name_a_folder_is_refused(tmp_path, name):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("a")))
    with pytest.raises(InputError, match=r"--cluster .*: a cluster name is 1 to 100 letters"):
        load(tmp_path / "c.duckdb", [log], cluster=name)
    assert not (tmp_path / "c.duckdb").exists()


def test_case_without_a_version_table_is_version_1(tmp_path):
    case = old_case(tmp_path, None, "audit.log")
    with pytest.raises(CaseError, match=r"schema version 1; this kforensics"):
        connect(case)


def test_reload_hint_is_bounded_and_one_line(tmp_path):
    names = [f"logs/{n:02d}.log" for n in range(12)] + ["logs/evil\n$(reboot).log"]
    case = old_case(tmp_path, 1, *names)
    with pytest.raises(CaseError) as caught:
        connect(case, read_only=False)  # loading into it is refused the same way
    message = str(caught.value)
    assert "\n" not in message
    assert message.count(".log") == 10
    assert message.endswith(
        f"{tmp_path}/logs/09.log --case {tmp_path}/incident-v7.duckdb   # and 3 more: "
        f"duckdb -readonly {tmp_path}/incident.duckdb "
        "'SELECT DISTINCT path FROM sources ORDER BY path'"
    )


def test_hostile_source_path_is_quoted_and_escaped(tmp_path):
    case = old_case(tmp_path, 1, "evil\n$(reboot).log")
    with pytest.raises(CaseError) as caught:
        connect(case)
    assert f"kforensics load '{tmp_path}/evil\\x0a$(reboot).log' --case" in str(caught.value)


def test_newer_case_asks_for_an_upgrade(tmp_path):
    case = old_case(tmp_path, SCHEMA_VERSION + 1, "audit.log")
    with pytest.raises(CaseError) as caught:
        connect(case)
    assert str(caught.value) == (
        f"{case}: the case was written by a newer kforensics (schema version 8); this one "
        "(0.1.0) reads version 7. Upgrade kforensics (pip install --upgrade kforensics) to open it."
    )


@pytest.mark.parametrize(
    "command",
    [
        ["sql", "SELECT 1"],
        ["detect"],
        ["netpol", "--out", "{tmp}/out"],
        ["load", "{tmp}/audit.log"],
    ],
    ids=["sql", "detect", "netpol", "load"],
)
def test_cli_shows_the_refusal_without_a_traceback(tmp_path, command):
    case = old_case(tmp_path, 1, "audit.log")
    args = [a.format(tmp=tmp_path) for a in command]
    result = CliRunner().invoke(main, [*args, "--case", str(case)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {case}: the case has schema version 1;")
    assert result.output.endswith(f"--case {tmp_path}/incident-v7.duckdb\n")


def test_a_case_path_that_is_not_utf8_is_refused_by_name(tmp_path):
    case = Path(os.fsdecode(bytes(tmp_path) + b"/case-\xff.duckdb"))
    for read_only in (True, False):
        with pytest.raises(CaseError) as caught:
            connect(case, read_only=read_only)
        assert str(caught.value) == (
            f"{tmp_path}/case-\\xff.duckdb: the case path is not UTF-8, which DuckDB cannot open: "
            "choose another name"
        )


def test_an_additive_version_gains_the_notes_table_and_reads_as_having_none(tmp_path, additive):
    case = old_case(tmp_path, additive, "audit.log")
    with duckdb.connect(str(case)) as con:
        con.execute("DROP TABLE notes")
    with connect(case) as con:  # read-only: read as it is, an empty notes table beside it
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(6,)]
        assert con.execute("SELECT count(*) FROM notes").fetchall() == [(0,)]
    with connect(case, read_only=False) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(7,)]
        assert con.execute("SELECT count(*) FROM notes").fetchall() == [(0,)]


def test_a_reading_connection_is_bounded_and_spills_outside_the_case_folder(tmp_path):
    case = old_case(tmp_path, SCHEMA_VERSION, "audit.log")
    with connect(case) as con:
        limit, spill = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall()[0]
    assert limit == "953.6 MiB"  # case.READ_MEMORY_LIMIT, 1GB, as DuckDB prints it
    assert Path(spill).name.startswith("kforensics-spill-")
    assert Path(spill).parent != tmp_path
