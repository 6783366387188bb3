"""The findings stay what they were: golden finding ids of the sample incident and of 200k events.

The golden files (tests/golden/finding-ids-*.txt) were recorded before detect was made faster
(issue 13) and are meant to be read: one finding a line, `finding_id rule_id level count`, sorted.
A change to a rule that rightly changes its findings rewrites them with
`KF_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_finding_ids.py -n 0`; review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kforensics import load
from kforensics.detection import run
from kforensics.detection.rule import load_rules
from kforensics.detection.run import Finding, detect
from kforensics.sample.background import write_native_lines

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SAMPLE = ROOT / "data" / "samples" / "native"
STATUSES = {"default": ("stable", "test"), "stable": ("stable",)}


def lines(findings: list[Finding]) -> list[str]:
    """Return one line a finding, `finding_id rule_id level count`, sorted."""
    return sorted(f"{f.finding_id} {f.rule_id} {f.level} {f.count}" for f in findings)


def check(name: str, case: Path, rules: str) -> None:
    """Compare the findings of the rules over case with the golden file of that name."""
    got = lines(detect(case, load_rules(statuses=STATUSES[rules]), store=False))
    path = GOLDEN / f"finding-ids-{name}-{rules}.txt"
    if os.environ.get("KF_UPDATE_GOLDEN") == "1":
        path.write_text("".join(x + "\n" for x in got))
    assert got == path.read_text().splitlines()


@pytest.mark.parametrize("rules", ["default", "stable"])
def test_sample_incident_finding_ids_are_golden(sample_cases, rules):
    check("sample", sample_cases.loaded("native")[0], rules)


@pytest.fixture(scope="module")
def case_200k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A case of 200,000 generated background events (seed 1) plus the sample incident."""
    folder = tmp_path_factory.mktemp("gen200k")
    write_native_lines(folder / "audit-200000-1.log", 200_000, seed=1)
    case = folder / "case.duckdb"
    load(case, [folder / "audit-200000-1.log", SAMPLE], progress=False)
    return case


@pytest.mark.slow
@pytest.mark.parametrize("rules", ["default", "stable"])
def test_generated_200k_finding_ids_are_golden(case_200k, rules):
    check("gen200k", case_200k, rules)


def test_golden_files_are_not_empty():
    # the 200k case has findings of many rules: an empty golden file would prove nothing
    counts = {p.name: len(p.read_text().splitlines()) for p in GOLDEN.glob("finding-ids-*.txt")}
    assert sorted(counts) == [
        "finding-ids-gen200k-default.txt",
        "finding-ids-gen200k-stable.txt",
        "finding-ids-sample-default.txt",
        "finding-ids-sample-stable.txt",
    ]
    assert all(n > 0 for n in counts.values())


def test_ev_built_in_a_work_file_finds_the_same(sample_cases, monkeypatch):
    # a case of WORK_FILE_FROM events or more builds ev in a compressed file, not in memory
    monkeypatch.setattr(run, "WORK_FILE_FROM", 0)
    check("sample", sample_cases.loaded("native")[0], "default")
