"""`detect --since-last` keeps `ev` in the case (`detection.ev_store`) and derives only the
requests its new loads touch: the rows it keeps are always those a build over the whole case
gives, and the findings those of a full run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import connect, load
from kforensics.dataset.export import export_case
from kforensics.detection import ev_store, run
from kforensics.detection.ev import ev_select, prepare
from kforensics.detection.ev_store import ROWS, STATE, covered
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from kforensics.detection.since_last import SinceLastError
from tests.test_detect_since_last import SAMPLE, everything

LINES = SAMPLE.read_bytes().splitlines(keepends=True)


def kept_and_built(case: Path, rules) -> tuple[int, int, int]:
    """Return the rows kept, and those only in the kept rows or only in a fresh build of ev."""
    with connect(case) as con:
        prepare(con, sql=[r.sql for r in rules])
        kept = con.execute(f"SELECT count(*) FROM main.{ROWS}").fetchone()[0]  # noqa: S608
        only_kept, only_built = (
            con.execute(f"SELECT count(*) FROM ({q})").fetchone()[0]  # noqa: S608
            for q in (
                f"SELECT * FROM main.{ROWS} EXCEPT ALL SELECT * FROM ev",
                f"SELECT * FROM ev EXCEPT ALL SELECT * FROM main.{ROWS}",
            )
        )
    return kept, only_kept, only_built


def loaded_in_parts(folder: Path, parts: list[list[bytes]], rules) -> tuple[Path, list]:
    """Load each part in turn into a case, detecting with --since-last after each; return the
    case and the last run's findings."""
    case = folder / "inc.duckdb"
    for n, part in enumerate(parts):
        path = folder / f"part-{n}.log"
        path.write_bytes(b"".join(part))
        load(case, [path], progress=False)
        findings = detect(case, rules, since_last=True)
    return case, findings


def full_run(folder: Path, parts: list[list[bytes]], rules) -> list:
    """Return the findings of a full run over the parts, loaded as loaded_in_parts loads them."""
    case = folder / "full.duckdb"
    for n in range(len(parts)):
        load(case, [folder / f"part-{n}.log"], progress=False)
    return detect(case, rules, store=False)


def test_rows_kept_over_three_loads_are_those_a_build_gives(tmp_path):
    rules = load_rules()
    # every third line: each request's stages and the incident's bursts fall across the loads
    parts = [LINES[0::3], LINES[1::3], LINES[2::3]]
    case, findings = loaded_in_parts(tmp_path, parts, rules)
    assert kept_and_built(case, rules) == (1_189, 0, 0)
    with connect(case) as con:
        assert con.execute(f"SELECT loads FROM {STATE}").fetchall() == [([1, 2, 3],)]  # noqa: S608
    full = full_run(tmp_path, parts, rules)
    assert len(full) == 33  # those of `kforensics detect` over audit.log
    assert everything(findings) == everything(full)


def test_kept_rows_are_read_not_derived_again(tmp_path):
    rules = load_rules()
    case, _ = loaded_in_parts(tmp_path, [LINES[:2000]], rules)
    # a kept row marked: a request the next load does not touch keeps its row as kept
    marked = mark_a_kept_row(case)
    (tmp_path / "more.log").write_bytes(b"".join(LINES[2000:]))
    load(case, [tmp_path / "more.log"], progress=False)
    detect(case, rules, since_last=True)
    with connect(case) as con:
        agent = con.execute(
            f"SELECT user_agent FROM main.{ROWS} WHERE event_id = $e",
            {"e": marked},  # noqa: S608
        ).fetchall()
    assert agent == [("kept-row",)]
    assert marked_rows(case) == 1


def test_rows_other_rules_derived_are_derived_again(tmp_path, case_path):
    load(case_path, [SAMPLE], progress=False)
    few, every = load_rules()[:5], load_rules()
    detect(case_path, few, since_last=True)  # keeps ev with the columns five rules name
    with connect(case_path) as con:
        narrow = len(con.execute(f"SELECT * FROM main.{ROWS} LIMIT 0").description)  # noqa: S608
    detect(case_path, every)  # a full run of every rule: --since-last goes on from it
    detect(case_path, every, since_last=True)
    with connect(case_path) as con:
        wide = len(con.execute(f"SELECT * FROM main.{ROWS} LIMIT 0").description)  # noqa: S608
    assert (narrow, wide) == (48, 51)
    assert kept_and_built(case_path, every) == (1_189, 0, 0)


def mark_a_kept_row(case: Path) -> str:
    """Set the user agent of one kept row to 'kept-row'; return its event id."""
    with connect(case, read_only=False) as con:
        return con.execute(
            f"UPDATE main.{ROWS} SET user_agent = 'kept-row' "  # noqa: S608
            f"WHERE event_id = (SELECT min(event_id) FROM main.{ROWS}) RETURNING event_id"
        ).fetchone()[0]


def marked_rows(case: Path) -> int:
    """Return how many kept rows have the user agent mark_a_kept_row sets."""
    with connect(case) as con:
        return con.execute(
            f"SELECT count(*) FROM main.{ROWS} WHERE user_agent = 'kept-row'"  # noqa: S608
        ).fetchone()[0]


@pytest.mark.parametrize("version", ["kforensics", "duckdb"])
def test_rows_of_another_duckdb_or_kforensics_are_not_used(case_path, monkeypatch, version):
    load(case_path, [SAMPLE], progress=False)
    rules = load_rules()
    sql = [r.sql for r in rules]
    detect(case_path, rules, since_last=True)
    mark_a_kept_row(case_path)
    with connect(case_path) as con:
        assert covered(con, ev_select(con, sql)) == [1]
    if version == "duckdb":
        monkeypatch.setattr(ev_store.duckdb, "__version__", "0.0.1")
    else:
        monkeypatch.setattr(ev_store, "__version__", "0.0.1")
    with connect(case_path) as con:
        assert covered(con, ev_select(con, sql)) is None
    detect(case_path, rules, since_last=True)  # derives every row again, and keeps them
    assert marked_rows(case_path) == 0
    assert kept_and_built(case_path, rules) == (1_189, 0, 0)


def test_a_full_detect_keeps_nothing_and_an_export_holds_no_kept_rows(tmp_path, case_path):
    load(case_path, [SAMPLE], progress=False)
    detect(case_path, load_rules())
    with connect(case_path) as con:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert ROWS not in tables
    detect(case_path, load_rules(), since_last=True)
    export_case(case_path, tmp_path / "ds")
    assert not (tmp_path / "ds" / ROWS).exists()
    assert not (tmp_path / "ds" / STATE).exists()
    assert (tmp_path / "ds" / "findings").exists()


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), loads=st.integers(2, 4))
def test_any_split_into_loads_finds_what_a_full_run_finds(tmp_path_factory, seed, loads):
    folder = tmp_path_factory.mktemp("split")
    which = random.Random(seed).choices(range(loads), k=len(LINES))
    parts = [[line for line, w in zip(LINES, which, strict=True) if w == n] for n in range(loads)]
    rules = load_rules()
    case, findings = loaded_in_parts(folder, parts, rules)
    _, only_kept, only_built = kept_and_built(case, rules)
    assert (only_kept, only_built) == (0, 0)
    assert everything(findings) == everything(full_run(folder, parts, rules))


def test_a_refused_since_last_keeps_nothing(case_path):
    load(case_path, [SAMPLE], progress=False)
    rules = load_rules()
    detect(case_path, rules[:10])
    with pytest.raises(SinceLastError, match="the last detect ran other rules or exceptions"):
        detect(case_path, rules, since_last=True)
    with connect(case_path) as con:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert ROWS not in tables
    assert STATE not in tables


def test_a_load_between_keeping_and_reading_is_kept_too(tmp_path, monkeypatch):
    rules = load_rules()
    parts = [LINES[0::2], LINES[1::2]]
    (tmp_path / "part-1.log").write_bytes(b"".join(parts[1]))
    case, _ = loaded_in_parts(tmp_path, parts[:1], rules)
    keep = run._keep_ev
    calls = []

    def keep_then_load(*args) -> None:
        keep(*args)
        calls.append(1)
        if len(calls) == 1:  # a load that commits just after the rows were kept
            load(case, [tmp_path / "part-1.log"], progress=False)

    monkeypatch.setattr(run, "_keep_ev", keep_then_load)
    findings = detect(case, rules, since_last=True)
    assert len(calls) == 2
    assert kept_and_built(case, rules) == (1_189, 0, 0)
    assert everything(findings) == everything(full_run(tmp_path, parts, rules))
