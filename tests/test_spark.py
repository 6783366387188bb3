"""The Spark engine: the same findings as DuckDB, from the same rules, over an exported dataset."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from kforensics import load
from kforensics.cli import main
from kforensics.dataset.export import export_case
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from kforensics.errors import SparkError
from kforensics.sample.generate import write_native_lines
from kforensics.spark import session as session_module
from kforensics.spark.session import spark_session
from kforensics.spark.translate import Untranslatable, to_spark
from tests.conftest import SAMPLES, needs_spark

EXCEPTED_FINDINGS = 36  # findings of the sample with the exceptions below
WINDOW_FINDINGS = 32  # findings of the sample between 09:30 and 11:00

# Rules the Spark engine leaves to DuckDB, and why (the first words of the reason).
DUCKDB_ONLY = {
    "k8s-containment-cordoned-node-bypassed": "reads remediations, which the Spark engine",
    "k8s-containment-identity-used-again": "reads remediations, which the Spark engine",
    "k8s-containment-policy-changed": "reads remediations, which the Spark engine",
    "k8s-containment-policy-selects-quarantined-pod": "reads remediations, which the Spark",
    "k8s-containment-quarantine-label-removed": "reads remediations, which the Spark engine",
    "k8s-containment-revoked-binding-recreated": "reads remediations, which the Spark engine",
    "k8s-containment-rotated-credential-used": "reads remediations, which the Spark engine",
    "k8s-cronjob-or-job-changed": "reads a JSON path with [*]: a list in DuckDB",
    "k8s-csr-created-or-approved": "reads a JSON path with [*]: a list in DuckDB",
    "k8s-deployment-sidecar-patch": "reads a JSON path with [*]: a list in DuckDB",
    "k8s-namespace-relabel-netpol-selector": "uses json_group_object: no JSON aggregate",
    "k8s-new-source-ip-for-identity": "sqlglot: Argument 'count' is not supported",
    "k8s-new-user-agent-for-identity": "sqlglot: Argument 'count' is not supported",
    "k8s-rbac-escalation-then-workload": "uses json_each: a table function",
    "k8s-sensitive-workload-first-access": "reads sensitive_access, which the Spark engine",
}


@pytest.mark.parametrize(
    "duckdb, spark",
    [
        ("SELECT event_id FROM ev WHERE has(user_groups, 'a')",
         "SELECT event_id FROM ev WHERE COALESCE(ARRAY_CONTAINS(user_groups, 'a'), FALSE)"),
        ("SELECT event_id FROM ev WHERE has_any(user_groups, ['a', 'b'])",
         "SELECT event_id FROM ev WHERE COALESCE(ARRAYS_OVERLAP(user_groups, ARRAY('a', 'b')), "
         "FALSE)"),
        ("SELECT event_id FROM ev WHERE has_all(user_groups, ['a'])",
         "SELECT event_id FROM ev WHERE COALESCE(SIZE(ARRAY_EXCEPT(ARRAY('a'), user_groups)) = 0,"
         " FALSE)"),
        ("SELECT event_id, jstr(request_object, '$.spec.x') AS name FROM ev",
         "SELECT event_id, GET_JSON_OBJECT(request_object, '$.spec.x') AS name FROM ev"),
        ("SELECT count(DISTINCT name) OVER (PARTITION BY actor ORDER BY ts) AS n FROM ev",
         "SELECT SIZE(COLLECT_SET(name) OVER (PARTITION BY actor ORDER BY ts NULLS LAST)) AS n "
         "FROM ev"),
        ("SELECT event_id FROM ev WHERE len(images) > 1 AND len(name) > 1",
         "SELECT event_id FROM ev WHERE SIZE(images) > 1 AND LENGTH(name) > 1"),
    ],
)  # fmt: skip
def test_the_rules_macros_become_spark_sql(duckdb, spark):
    assert to_spark(duckdb) == spark


@pytest.mark.parametrize(
    "sql, why",
    [
        ("SELECT event_id FROM remediations", "reads remediations, which the Spark engine"),
        ("SELECT event_id FROM ev, json_each(request_object) j", "uses json_each"),
        ("SELECT event_id FROM ev WHERE json_type(request_object) = 'OBJECT'", "uses json_type"),
        ("SELECT event_id FROM ev WHERE", "sqlglot cannot read it"),
    ],
)
def test_what_spark_sql_lacks_keeps_a_rule_duckdb_only_with_the_reason(sql, why):
    with pytest.raises(Untranslatable, match=why):
        to_spark(sql)


def test_without_java_the_spark_engine_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(session_module.shutil, "which", lambda name: None)
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: the message is about pyspark")
    with pytest.raises(SparkError, match=r"cannot start: no Java found \(install a JRE: apt-get"):
        spark_session()


def test_without_pyspark_the_spark_engine_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyspark.sql", None)
    with pytest.raises(SparkError, match=r"needs pyspark: pip install 'kforensics\[spark\]'"):
        spark_session()


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory) -> tuple[Path, Path]:
    """The native sample incident: its case and its exported dataset."""
    folder = tmp_path_factory.mktemp("spark-sample")
    case = folder / "case.duckdb"
    load(case, [SAMPLES / "native"])
    export_case(case, folder / "ds")
    return case, folder / "ds"


def compare(case: Path, dataset: Path, spark) -> tuple[list[str], dict, dict]:
    """Return (rules run on Spark, DuckDB's findings of those rules, Spark's) as JSON by id."""
    from kforensics.spark.detect import detect_spark

    rules = load_rules()
    on_spark = detect_spark(spark, dataset, rules)
    duck = detect(case, rules, store=False)
    mine = {f.finding_id: f.to_json() for f in duck if f.rule_id in on_spark.rules_run}
    theirs = {f.finding_id: f.to_json() for f in on_spark.findings}
    return on_spark, mine, theirs


@needs_spark
def test_the_sample_incident_gives_the_same_findings_on_spark(spark, sample_dataset):
    on_spark, mine, theirs = compare(*sample_dataset, spark)
    assert sorted(on_spark.duckdb_only) == sorted(DUCKDB_ONLY)
    assert [k for k, v in on_spark.duckdb_only.items() if not v.startswith(DUCKDB_ONLY[k])] == []
    assert len(on_spark.rules_run) == 48
    assert len(theirs) == 75
    assert theirs == mine  # same ids, levels, evidence (in order), times, subjects


@needs_spark
def test_a_time_window_gives_the_same_findings_on_spark(spark, sample_dataset):
    from kforensics.spark.detect import detect_spark

    case, dataset = sample_dataset
    since, until = datetime(2026, 3, 14, 9, 30, tzinfo=UTC), datetime(2026, 3, 14, 11, tzinfo=UTC)
    rules = load_rules()
    on_spark = detect_spark(spark, dataset, rules, since=since, until=until)
    duck = detect(case, rules, since=since, until=until, store=False)
    mine = {f.finding_id: f.to_json() for f in duck if f.rule_id in on_spark.rules_run}
    theirs = {f.finding_id: f.to_json() for f in on_spark.findings}
    assert len(theirs) == WINDOW_FINDINGS
    assert theirs == mine
    result = CliRunner().invoke(
        main,
        ["detect", "--engine", "spark", "--parquet", str(dataset), "--format", "jsonl",
         "--since", "2026-03-14T09:30:00", "--until", "2026-03-14T11:00:00+00:00"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(line)["finding_id"] for line in result.stdout.splitlines()) == sorted(
        theirs
    )


@needs_spark
def test_exceptions_drop_the_same_hits_on_spark(spark, sample_dataset, tmp_path):
    from kforensics.detection.exceptions import load_exceptions
    from kforensics.spark.detect import detect_spark

    case, dataset = sample_dataset
    mine = tmp_path / "exceptions.yaml"
    # globs over lists (every image repository, any group), NULL fields, classes and escapes
    mine.write_text(
        "k8s-object-created:\n"
        "  - user_group: ['system:serviceaccounts:*']\n"
        "  - actor: ['[a-c]*@example.com']\n"
        "    verb: create\n"
        "k8s-privileged-pod:\n"
        "  - image: ['*']\n"
        "k8s-host-pid-pod:\n"
        "  - image: ['docker.io/library/[!x]*']\n"
        "k8s-secret-get:\n"
        "  - impersonated: '*'\n"
        "  - user_agent: ['kubectl/*', 'curl\\*']\n"
    )
    exceptions = load_exceptions(SAMPLES / "known_false_positives.yaml") + load_exceptions(mine)
    rules = load_rules()
    on_spark = detect_spark(spark, dataset, rules, exceptions=exceptions)
    duck = detect(case, rules, exceptions=exceptions, store=False)
    mine = {f.finding_id: f.to_json() for f in duck if f.rule_id in on_spark.rules_run}
    theirs = {f.finding_id: f.to_json() for f in on_spark.findings}
    assert len(theirs) == EXCEPTED_FINDINGS  # of the 75 without exceptions
    assert theirs == mine


@needs_spark
def test_a_generated_100k_log_gives_the_same_findings_on_spark(spark, tmp_path):
    log = tmp_path / "audit.log"
    write_native_lines(log, 100_000, seed=3)
    case = tmp_path / "case.duckdb"
    load(case, [log, SAMPLES / "native"])
    export_case(case, tmp_path / "ds")
    _, mine, theirs = compare(case, tmp_path / "ds", spark)
    assert len(theirs) == len(mine) == 75  # the background is benign: none of its own
    assert theirs == mine
    # and Spark read every request of it, as DuckDB's `requests` holds them
    from kforensics.case import connect

    with connect(case) as con:
        requests = con.execute("SELECT count(*), count(DISTINCT username) FROM requests").fetchall()
    on_spark = spark.sql("SELECT count(*), count(DISTINCT username) FROM ev").collect()
    assert [tuple(on_spark[0])] == requests
    assert requests[0][0] == 51_408  # the generator logs most requests in two stages


@needs_spark
def test_the_cli_writes_parquet_and_json_lines(sample_dataset):
    _, dataset = sample_dataset
    result = CliRunner().invoke(
        main, ["detect", "--engine", "spark", "--parquet", str(dataset), "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 75
    assert "ran 48 rules on Spark (15 are DuckDB-only); wrote" in result.stderr
    written = dataset / "spark-findings" / "findings.jsonl"
    assert [json.loads(line) for line in written.read_text().splitlines()] == lines
    assert (dataset / "spark-findings" / "findings.parquet").stat().st_size > 0


def test_the_spark_engine_takes_a_dataset_not_a_case(tmp_path):
    result = CliRunner().invoke(
        main, ["detect", "--engine", "spark", "--case", str(tmp_path / "c.duckdb")]
    )
    assert result.exit_code == 2
    assert "--engine spark takes --parquet DIR (a dataset of `kforensics export`), not --case" in (
        result.output
    )


def spark_rules() -> list:
    return [r for r in load_rules(statuses=None) if r.id not in DUCKDB_ONLY]


@needs_spark
@pytest.mark.parametrize("rule", spark_rules(), ids=lambda r: r.id)
def test_every_rule_run_on_spark_passes_its_own_events_there(spark, rule):
    from kforensics.spark.selftest import check_rule_on_spark

    assert check_rule_on_spark(spark, rule) == []
