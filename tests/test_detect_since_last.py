"""`detect --since-last`: the events loaded since the last run, merged into its findings, find
what a full run over all the events finds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from kforensics import connect, load
from kforensics.cli import main
from kforensics.detection.rule import load_rules
from kforensics.detection.run import Finding, detect, stored_findings
from kforensics.detection.selftest import expand
from kforensics.detection.since_last import SinceLastError, local_rule
from kforensics.sample.background import write_native_lines
from tests.conftest import jsonl

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "native" / "audit.log"


def everything(findings: list[Finding]) -> list[dict]:
    """Return the findings as their JSON with their ids, in finding id order."""
    return sorted(({"id": f.finding_id} | f.to_json() for f in findings), key=lambda f: f["id"])


def split(lines: list[bytes], folder: Path) -> tuple[Path, Path]:
    """Write lines alternately to a.log and b.log: each request's stages and every burst and
    sequence of the incident fall across both, and b holds events older than a's last."""
    a, b = folder / "a.log", folder / "b.log"
    a.write_bytes(b"".join(lines[0::2]))
    b.write_bytes(b"".join(lines[1::2]))
    return a, b


def incremental_and_full(tmp_path: Path, lines: list[bytes], rules) -> tuple[list, list, list]:
    """Return the findings of: A then B with --since-last, as stored, and a full run over A+B."""
    a, b = split(lines, tmp_path)
    case = tmp_path / "inc.duckdb"
    load(case, [a], progress=False)
    said = []
    detect(case, rules, since_last=True, report=said.append)  # no run yet: a full run
    load(case, [b], progress=False)
    merged = detect(case, rules, since_last=True, report=said.append)
    assert said[0] == "--since-last: no earlier run recorded the loads it covered: a full run"
    assert "; loads since: 2; " in said[1]
    with connect(case) as con:
        stored = stored_findings(con)
    fresh = tmp_path / "full.duckdb"
    load(fresh, [a], progress=False)
    load(fresh, [b], progress=False)
    return merged, stored, detect(fresh, rules, store=False)


@pytest.mark.parametrize("statuses", [("stable", "test"), ("stable",)])
def test_since_last_over_the_sample_incident_finds_what_a_full_run_finds(tmp_path, statuses):
    rules = load_rules(statuses=statuses)
    merged, stored, full = incremental_and_full(
        tmp_path, SAMPLE.read_bytes().splitlines(keepends=True), rules
    )
    assert len(full) > 20  # the incident's findings, from both halves
    assert everything(merged) == everything(full)
    # stored findings carry no sensitive marks of their own order: compare the same fields
    assert everything(stored) == everything(full)


@pytest.mark.slow
def test_since_last_over_generated_events_finds_what_a_full_run_finds(tmp_path):
    # 20,000 background events and the incident: identity histories, bursts and first uses
    # that span both loads
    write_native_lines(tmp_path / "bg.log", 20_000, seed=3)
    lines = (tmp_path / "bg.log").read_bytes().splitlines(keepends=True)
    lines += SAMPLE.read_bytes().splitlines(keepends=True)
    merged, _, full = incremental_and_full(tmp_path, lines, load_rules())
    assert len(full) > 20
    assert everything(merged) == everything(full)


def test_a_finding_of_both_loads_gathers_their_evidence(tmp_path):
    (rule,) = [r for r in load_rules() if r.id == "k8s-pod-exec"]
    lines = [x for x in SAMPLE.read_bytes().splitlines(keepends=True) if b'"exec"' in x]
    merged, _, full = incremental_and_full(tmp_path, lines, [rule])
    with connect(tmp_path / "inc.duckdb") as con:
        files = con.execute(
            "SELECT list_sort(list_distinct(list_transform(evidence, lambda e: e.source_file))) "
            "FROM findings ORDER BY count DESC LIMIT 1"
        ).fetchone()[0]
    assert files == [str(tmp_path / "a.log"), str(tmp_path / "b.log")]
    assert everything(merged) == everything(full)


def test_since_last_refuses_other_rules_than_the_last_run(tmp_path, case_path):
    load(case_path, [SAMPLE], progress=False)
    rules = load_rules()
    detect(case_path, rules[:10])
    with pytest.raises(SinceLastError, match="the last detect ran other rules or exceptions"):
        detect(case_path, rules, since_last=True)
    detect(case_path, rules, since=datetime(2026, 3, 14, 10, tzinfo=UTC))
    with pytest.raises(SinceLastError, match="over a --since/--until window"):
        detect(case_path, rules, since_last=True)
    with pytest.raises(SinceLastError, match="no --since/--until"):
        detect(case_path, rules, since_last=True, until=datetime(2026, 3, 14, 10, tzinfo=UTC))


def test_the_cli_says_what_since_last_did(tmp_path, case_path):
    a, b = split(SAMPLE.read_bytes().splitlines(keepends=True), tmp_path)
    load(case_path, [a], progress=False)
    cli = CliRunner()
    first = cli.invoke(main, ["detect", "--case", str(case_path), "--since-last"])
    assert first.exit_code == 0, first.output
    load(case_path, [b], progress=False)
    second = cli.invoke(main, ["detect", "--case", str(case_path), "--since-last"])
    assert second.exit_code == 0, second.output
    assert "--since-last: going on from the run of " in second.stderr
    assert "; loads since: 2; " in second.stderr
    bad = cli.invoke(main, ["detect", "--case", str(case_path), "--since-last", "--since", "x"])
    assert bad.exit_code != 0


def windowed_rules() -> list:
    """Return the rules that see the whole case under --since-last and test on events alone."""
    con = duckdb.connect()
    return [
        r for r in load_rules(statuses=None)
        if not local_rule(con, r.sql) and not r.tests.get("given")
    ]  # fmt: skip


@pytest.mark.parametrize("rule", windowed_rules(), ids=lambda r: r.id)
def test_windowed_rules_see_the_history_loaded_before(tmp_path, rule):
    # the rule's own match events split across two loads: a burst, a history or a sequence
    # that only the two together complete
    events = [e for n, item in enumerate(rule.tests["match"]) for e in expand(item, f"m{n}")]
    merged, _, full = incremental_and_full(tmp_path, jsonl(*events).splitlines(True), [rule])
    assert full
    assert everything(merged) == everything(full)


@pytest.mark.parametrize(
    ("sql", "local"),
    [
        ("SELECT event_id FROM ev WHERE verb = 'create' AND has(images, 'x')", True),
        ("SELECT DISTINCT event_id, object_name AS name FROM ev WHERE succeeded", True),
        (
            "SELECT event_id FROM ev WHERE list_bool_or(list_transform(images, "
            "lambda i: i LIKE 'x%'))",
            True,
        ),
        ("SELECT event_id FROM ev WHERE count(*) OVER (PARTITION BY actor) > 3", False),
        ("SELECT event_id FROM ev WHERE actor IN (SELECT actor FROM ev WHERE code = 403)", False),
        ("SELECT any_value(event_id) AS event_id FROM ev GROUP BY actor", False),
        ("SELECT min(event_id) AS event_id FROM ev", False),
        ("SELECT event_id FROM ev WHERE EXISTS (SELECT 1 FROM unnest(images))", False),
        ("WITH x AS (SELECT * FROM ev) SELECT event_id FROM x", False),
        ("SELECT e.event_id FROM ev e JOIN remediations r ON r.name = e.name", False),
        ("SELECT event_id FROM ev LIMIT 5", False),
        ("SELECT event_id FROM ev UNION SELECT event_id FROM ev", False),
        ("SELECT event_id FROM events", False),
        ("SELECT event_id FROM main.ev", False),
        ("SELECT event_id FROM ev QUALIFY row_number() OVER () = 1", False),
    ],
)
def test_local_rules_judge_one_event_alone(sql, local):
    assert local_rule(duckdb.connect(), sql) is local
