"""The public API (`import kforensics as kf`): Case on the sample case, escaping, no lock held."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import altair as alt
import pytest

import kforensics as kf
from kforensics.investigate import queries as inv
from tests.conftest import SAMPLES, event, jsonl

SA = "system:serviceaccount:shop:storefront"
LOG = str(SAMPLES / "native" / "audit.log")
WINDOW = ("2026-03-14T10:20:00", "2026-03-14T10:40:00")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    case = tmp_path_factory.mktemp("api") / "case.duckdb"
    kf.load(case, [SAMPLES / "native"])
    found = kf.detect(case, exceptions=SAMPLES / "known_false_positives.yaml")
    assert len(found) == 74
    return case


def test_public_names():
    assert {
        "LEVELS", "CaseError", "ExceptionsError", "InputError", "KforensicsError",
        "LabelGapError", "ManifestError", "QueryError", "ReportError", "RuleError",
        "RuleSQLError", "__version__", "Case", "LoadResult", "connect", "detect", "load",
        "open_case", "remediate", "report",
    } <= set(kf.__all__)  # fmt: skip
    assert all(getattr(kf, name) is not None for name in kf.__all__)
    import kforensics.detection.rule
    from kforensics.api import Case
    from kforensics.contain.remediate import remediate_case

    assert (kf.Case, kf.remediate) == (Case, remediate_case)
    # importing the subpackages never hides the functions (they are named apart)
    from kforensics.api import detect
    from kforensics.reporting.run import run_report

    assert (kf.detect, kf.report) == (detect, run_report)
    assert kforensics.detection.rule.load_rules.__module__ == "kforensics.detection.rule"
    with pytest.raises(kf.ReportError, match="no notebook 'nope'"):
        kf.report("nope", "case.duckdb", {}, "out")
    assert kf.LEVELS == ("info", "low", "medium", "high", "critical")
    assert kf.__version__ == "0.1.0"
    assert issubclass(kf.QueryError, kf.KforensicsError)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = kf.nope


def test_import_is_cheap():
    # duckdb, pandas and altair are imported when first needed, not by `import kforensics`
    code = "import sys, kforensics; print(sorted(m for m in ('duckdb', 'pandas', 'altair') if m in sys.modules))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_open_case_refuses_a_missing_case_and_a_bad_window(tmp_path, sample):
    with pytest.raises(kf.CaseError, match="no such case file"):
        kf.open_case(tmp_path / "none.duckdb")
    with pytest.raises(kf.QueryError, match="since: not an ISO 8601 time: 'yesterday'"):
        kf.open_case(sample, since="yesterday")


def test_findings_most_severe_first_with_evidence(sample):
    case = kf.open_case(sample)
    high = case.findings(min_level="high")
    assert len(high) == 11
    assert set(high["level"]) == {"high"}
    assert list(high["rule_id"][:3]) == [
        "k8s-exec-reads-sa-token", "k8s-exec-cloud-metadata", "k8s-many-secrets-read",
    ]  # fmt: skip
    assert list(high["count"]) == [1, 1, 6, 1, 1, 3, 1, 1, 1, 1, 1]
    first = high["evidence"][0][0]
    assert (first["source_file"], first["source_line"]) == (LOG, 1120)
    assert isinstance(high["evidence"][0], list)
    assert (len(case.findings()), len(case.findings("medium"))) == (74, 20)
    assert len(case.findings(identity=SA, namespace="payments")) == 9
    assert len(case.window(*WINDOW).findings()) == 16
    assert len(case.findings(since=WINDOW[0], until=WINDOW[1])) == 16
    with pytest.raises(kf.QueryError, match="min_level 'severe' is not a level: info, low"):
        case.findings("severe")


def test_stored_findings_are_the_detect_findings(sample):
    found = kf.open_case(sample).stored_findings()
    assert len(found) == 74
    assert (found[0].level, found[0].rule_id) == ("high", "k8s-exec-reads-sa-token")


def test_sql_binds_values(sample):
    case = kf.open_case(sample)
    query = (
        "SELECT verb, count(*) AS n FROM requests WHERE namespace = $ns "
        "GROUP BY ALL ORDER BY n DESC, verb LIMIT 3"
    )
    assert case.sql(query, ns="shop").to_dict("records") == [
        {"verb": "get", "n": 86}, {"verb": "create", "n": 59}, {"verb": "list", "n": 32},
    ]  # fmt: skip
    assert len(case.sql(query, ns="shop' OR '1'='1")) == 0
    with_cte = "WITH r AS (SELECT * FROM requests) SELECT count(*) AS n FROM r WHERE verb = $v"
    assert case.sql(with_cte, v="delete").to_dict("records") == [{"n": 1}]
    with pytest.raises(kf.QueryError, match="Values were not provided"):
        case.sql("SELECT $x AS x")


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE events",
        "SELECT 1; SELECT 2",
        "SELECT 1; DROP TABLE events",
        "INSERT INTO loads SELECT * FROM loads",
        "DELETE FROM events",
        "CREATE TABLE x AS SELECT 1",
        "COPY events TO '/tmp/kforensics-copy.csv'",
        "ATTACH ':memory:' AS other",
        "PRAGMA show_tables",
    ],
)
def test_sql_refuses_anything_but_one_select(sample, sql):
    with pytest.raises(kf.QueryError) as err:
        kf.open_case(sample).sql(sql)
    assert str(err.value) == "Case.sql: the query must be one SELECT statement"


def test_sql_that_does_not_parse(sample):
    with pytest.raises(kf.QueryError, match="^Case.sql: the query does not parse: Parser Error"):
        kf.open_case(sample).sql("SELEC 1")


def test_query_is_the_named_investigation_with_the_window(sample):
    case = kf.open_case(sample)
    rows = case.query("exec_sessions", identity=SA)
    assert list(rows["command"]) == [
        "env",
        "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
        "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "chroot /host sh -c cat /etc/kubernetes/kubelet.conf; crictl ps",
    ]
    assert list(rows["evidence"]) == [f"{LOG}:{n}" for n in (1101, 1120, 1137, 1312)]
    windowed = case.window(*WINDOW).query("exec_sessions", identity=SA)
    assert list(windowed["evidence"]) == [f"{LOG}:{n}" for n in (1101, 1120, 1137)]
    # a window given to the call wins over the case's
    assert len(case.window(*WINDOW).query("exec_sessions", identity=SA, until=None)) == 4
    with kf.connect(sample) as con:
        assert case.table("denials", limit=5) == inv.denials(con, limit=5)
    with pytest.raises(kf.QueryError, match="no investigation 'nope'"):
        case.query("nope")


def test_queries_lists_name_description_params(sample):
    listed = kf.open_case(sample).queries()
    first = listed[listed["name"] == "identity_timeline"].to_dict("records")[0]
    assert first["params"] == ["identity", "since", "until", "limit", "namespace"]
    assert first["description"].startswith("The identity's requests, and those others made")
    assert len(listed) == 28


def test_chart_by_name(sample):
    case = kf.open_case(sample)
    chart = case.chart("attack_matrix")
    assert isinstance(chart, alt.TopLevelMixin)
    assert isinstance(case.window(*WINDOW).chart("timeline", identity=SA), alt.TopLevelMixin)
    with pytest.raises(kf.QueryError, match="no chart 'pie'; known: timeline, outcomes_over_time"):
        case.chart("pie")


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "kubectl\u202egpj.exe",
    "curl\x1b[31m red",
    "$x^2$",
]


def test_notebook_html_shows_log_text_literally(tmp_path, case_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(*(event(f"h{i}", userAgent=ua) for i, ua in enumerate(HOSTILE))))
    kf.load(case_path, [log])
    rows = kf.open_case(case_path).sql(
        "SELECT user_agent, [user_agent] AS listed, {'ua': user_agent} AS obj FROM requests "
        "ORDER BY audit_id"
    )
    assert list(rows["user_agent"]) == HOSTILE  # the data is as logged
    html = rows._repr_html_()
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<td>['&lt;script&gt;alert(1)&lt;/script&gt;']</td>" in html  # a list cell
    assert "<td>{'ua': '&lt;script&gt;alert(1)&lt;/script&gt;'}</td>" in html  # a dict cell
    assert "\u202e" not in html and "kubectl\\u202egpj.exe" in html
    assert "\x1b" not in html and "curl\\x1b[31m red" in html
    assert "tex2jax_ignore" in html  # MathJax leaves `$x^2$` alone
    # what a notebook derives from a Frame is still a Frame
    assert "&lt;img" in rows[rows["user_agent"] != ""].head(2)._repr_html_()


def test_a_case_held_open_keeps_no_lock(tmp_path, case_path):
    first = tmp_path / "first.log"
    first.write_bytes(jsonl(event("l1")))
    kf.load(case_path, [first])
    case = kf.open_case(case_path)
    assert case.sql("SELECT count(*) AS n FROM events").to_dict("records") == [{"n": 1}]
    second = tmp_path / "second.log"
    second.write_bytes(jsonl(event("l2"), event("l3")))
    done = subprocess.run(
        [sys.executable, "-c", "from kforensics.cli import main; main()",
         "load", str(second), "--case", str(case_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert case.sql("SELECT count(*) AS n FROM events").to_dict("records") == [{"n": 3}]
