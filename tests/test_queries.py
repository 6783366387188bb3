"""Named investigations (investigations/*.sql): parsing, bound parameters, errors, the CLI."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

import kforensics as kf
from kforensics.cli import main
from kforensics.detection.ev import prepare
from kforensics.investigate import canned
from kforensics.investigate import queries as inv
from tests.conftest import SAMPLES, event, jsonl

SA = "system:serviceaccount:shop:storefront"
NAMES = [
    "attack_counts", "denials", "exec_sessions", "finding_evidence", "findings", "findings_for",
    "findings_points", "findings_summary", "footprint_credentials", "footprint_objects",
    "footprint_pods", "identity_sources", "identity_timeline", "new_in_window",
    "permission_changes", "policy_and_label_changes", "quality_summary", "resources_touched",
    "secrets_known", "secrets_read", "storyline", "suspect_levels", "time_stretches",
    "top_identities", "volume_over_time", "who_did_what", "workload_activity", "workload_exec",
]  # fmt: skip
REQUIRED = {"identity": SA, "namespace": "shop"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    case = tmp_path_factory.mktemp("queries") / "case.duckdb"
    kf.load(case, [SAMPLES / "native"])
    kf.detect(case, exceptions=SAMPLES / "known_false_positives.yaml")
    return case


def test_every_file_is_an_investigation():
    assert [q.name for q in canned.queries()] == NAMES
    for query in canned.queries():
        assert query.description.endswith(".") and not query.description.startswith("Return")
        assert [p.name for p in query.params][-2:] != ["until", "since"]


@pytest.mark.parametrize("name", NAMES)
def test_every_investigation_runs_on_the_sample_case(sample, name):
    query = canned.get(name)
    params = {p.name: REQUIRED[p.name] for p in query.params if p.required}
    with kf.connect(sample) as con:
        table = canned.run_query(con, name, params)
        windowed = canned.run_query(
            con, name, params | {"since": "2026-03-14T10:20:00", "until": "2026-03-14T10:40"}
        )
    assert table.num_columns > 0
    assert windowed.num_rows <= max(table.num_rows, 8)  # quality_summary: a row per flag


def test_exact_rows_through_the_runner_and_the_wrappers(sample):
    with kf.connect(sample) as con:
        top = canned.run_query(con, "top_identities", {"limit": "2"}).to_pylist()
        assert [(r["identity"], r["requests"], r["denials"]) for r in top] == [
            ("system:node:ip-10-0-1-11", 340, 0),
            ("system:kube-scheduler", 293, 0),
        ]
        assert inv.top_identities(con, limit=2).to_pylist() == top
        secrets = canned.run_query(con, "secrets_read", {"namespace": "payments"}).to_pylist()
        assert [(r["identity"], r["verb"], r["secret"], r["requests"]) for r in secrets] == [
            ("system:serviceaccount:ci:deployer", "list", "(list)", 1),
            (SA, "list", "(all namespaces)", 1),
            (SA, "get", "db-password", 1),
            (SA, "get", "payments-db-credentials", 1),
            (SA, "get", "stripe-api-key", 1),
        ]
        volume = inv.volume_over_time(con, "2026-03-14T10:00", "2026-03-14T11:00", buckets=12)
        assert set(volume.column("bucket_seconds").to_pylist()) == {300}


HOSTILE = ["x' OR '1'='1", "'; DROP TABLE events; --", "$identity", "@MINE", "\u202e%00"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_bound_never_formatted(sample, value):
    with kf.connect(sample) as con:
        for name in ("identity_timeline", "exec_sessions", "permission_changes"):
            assert canned.run_query(con, name, {"identity": value}).num_rows == 0
        assert canned.run_query(con, "workload_activity", {"namespace": value}).num_rows == 0
        assert con.sql("SELECT count(*) FROM events").fetchall()[0][0] > 0


def test_a_hostile_identity_finds_its_own_requests(tmp_path, case_path):
    who = "o'brien\"; DROP TABLE events; -- @MINE $identity"
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("h1", user={"username": who}), event("h2")))
    kf.load(case_path, [log])
    rows = kf.open_case(case_path).query("identity_timeline", identity=who)
    assert list(rows["identity"]) == [who]
    assert list(rows["relation"]) == ["own"]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, "no investigation 'nope'; `kforensics queries` lists them: attack_counts, "),
        ("identity_timeline", {}, "identity_timeline needs the parameter 'identity': the "),
        ("identity_timeline", {"identity": None}, "identity_timeline needs the parameter "),
        ("identity_timeline", {"identity": "a", "color": "red"},
         "identity_timeline takes no parameter 'color'; it takes: identity, since, until, limit"),
        ("denials", {"limit": "ten"}, "denials: limit must be an integer, not 'ten'"),
        ("denials", {"limit": True}, "denials: limit must be an integer, not True"),
        ("denials", {"since": "monday"}, "denials: since must be an ISO 8601 time, not 'monday'"),
        ("secrets_read", {"namespace": 7}, "secrets_read: namespace must be text, not 7"),
    ],
)  # fmt: skip
def test_unknown_queries_and_bad_parameters_are_query_errors(sample, name, params, message):
    with kf.connect(sample) as con, pytest.raises(kf.QueryError) as err:
        canned.run_query(con, name, params)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SELECT 1", "needs one `-- description:` line"),
        ("-- description: x.\nSELECT 1; SELECT 2", "the SQL must be one SELECT statement"),
        ("-- description: x.\nDELETE FROM events", "the SQL must be one SELECT statement"),
        ("-- description: x.\nSELECT $who", "$who is not a declared param"),
        ("-- description: x.\n-- param who text: w\nSELECT 1", "param who is declared but not"),
        ("-- description: x.\n-- param who: w\nSELECT $who", "not `NAME TYPE[?][ = DEFAULT]"),
        ("-- description: x.\n-- param who list: w\nSELECT $who", "not `NAME TYPE[?]"),
        ("-- description: x.\nSELECT @NOPE", "unknown fragment @NOPE"),
    ],
)
def test_a_bad_query_file_is_refused_at_load(text, problem):
    with pytest.raises(ValueError) as err:
        canned.parse("bad", text)
    assert str(err.value).startswith(problem)


def test_a_query_file_with_types_defaults_and_redaction():
    query = canned.parse(
        "q",
        "-- description: Rows.\n-- more notes\n-- param who text?: someone\n"
        "-- param since time?: from\n-- param until time?: to\n"
        "-- param n int = 5: how many\n-- redact: a, b\n"
        "SELECT $who AS a, $n AS b, @W(ts) AS w FROM requests -- $n again in a comment\n",
    )
    assert [(p.name, p.type, p.required, p.default) for p in query.params] == [
        ("who", "text", False, None),
        ("since", "time", False, None),
        ("until", "time", False, None),
        ("n", "int", False, 5),
    ]
    assert query.redact == ("a", "b")
    bound = query.bind({"who": "", "n": "7", "since": "2026-03-14T10:00"})
    assert bound == {
        "who": None,
        "since": datetime(2026, 3, 14, 10, tzinfo=UTC),
        "until": None,
        "n": 7,
    }
    assert "$since::TIMESTAMPTZ" in query.sql


def test_exec_commands_decode_the_same_for_rules_and_investigations(tmp_path, case_path):
    uri = "/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command=id+%3B+ls"
    uri += "&command=%ff"
    exec_ = {"resource": "pods", "namespace": "shop", "name": "web-1", "subresource": "exec"}
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("x1", verb="create", requestURI=uri, objectRef=exec_)))
    kf.load(case_path, [log])
    with kf.connect(case_path) as con:
        rows = inv.exec_sessions(con, "alice").to_pylist()
        prepare(con)
        rule_view = con.execute("SELECT exec_command FROM ev").fetchall()[0][0]
    # an escape that is not UTF-8 (%ff) stays as logged
    assert rule_view == rows[0]["command"] == "sh -c id ; ls %ff"


def test_cli_lists_and_runs_investigations(sample):
    runner = CliRunner()
    listed = runner.invoke(main, ["queries"])
    assert listed.exit_code == 0
    assert listed.output.splitlines()[:5] == [
        "attack_counts: Findings per (ATT&CK tactic, technique) pair carried by the same finding.",
        "    min_level (level, default info): the least severe level counted (the matrix chart "
        "leaves info out)",
        "    since (time, optional): window start, inclusive (ISO 8601, UTC if no zone; empty: "
        "the case's start)",
        "    until (time, optional): window end, exclusive (empty: the case's end)",
        "denials: 401/403 responses counted by identity, resource, namespace and code.",
    ]
    one = runner.invoke(main, ["queries", "denials"])
    assert one.output.splitlines()[-1] == "    limit (int, default 50): at most this many rows"
    ran = runner.invoke(
        main, ["queries", "secrets_read", "--case", str(sample), "-p", "namespace", "payments",
               "--format", "csv"],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert ran.output.splitlines()[:2] == [
        "identity,impersonated_by,verb,secret,requests,failed,first_seen,last_seen",
        "system:serviceaccount:ci:deployer,,list,(list),1,0,2026-03-14T08:03:47.858936Z,"
        "2026-03-14T08:03:47.858936Z",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["queries", "nope"], "Error: no investigation 'nope'; `kforensics queries` lists them"),
        (["queries", "identity_timeline", "--case", "{case}"],
         "Error: identity_timeline needs the parameter 'identity'"),
        (["queries", "denials", "--case", "{case}", "-p", "limit", "x"],
         "Error: denials: limit must be an integer, not 'x'"),
        (["queries", "denials", "--case", "{missing}"], "Error: {missing}: no such case file"),
        (["queries", "findings", "--case", "{case}", "-p", "min_level", "severe\u202e"],
         "Error: findings: min_level 'severe\\u202e' is not a level: info, low, medium, high, "
         "critical"),
    ],
)  # fmt: skip
def test_cli_errors_are_messages_not_tracebacks(sample, tmp_path, args, message):
    fill = {"case": str(sample), "missing": str(tmp_path / "none.duckdb")}
    result = CliRunner().invoke(main, [a.format(**fill) for a in args])
    assert result.exit_code == 1
    assert result.output.startswith(message.format(**fill))
    assert "Traceback" not in result.output


def test_the_python_functions_take_what_their_files_declare():
    # queries.py gives the files Python signatures: same names, same defaults, nothing more
    import inspect

    for query in canned.queries():
        function = getattr(inv, query.name, None)
        if function is None:  # an investigation reached only by name (case.query, the CLI)
            continue
        signature = inspect.signature(function).parameters
        declared = {p.name: "required" if p.required else p.default for p in query.params}
        taken = {n: "required" if a.default is inspect.Parameter.empty else a.default
                 for n, a in signature.items() if n != "con"}  # fmt: skip
        assert taken == declared, query.name
    assert {q.name for q in canned.queries()} - set(inv.__all__) == {
        "findings", "time_stretches", "footprint_pods", "footprint_objects",
        "footprint_credentials", "secrets_known", "storyline", "finding_evidence",
        "suspect_levels",
    }  # fmt: skip


def test_findings_at_or_above_a_level(sample):
    with kf.connect(sample) as con:
        every = canned.run_query(con, "findings", {}).column("level").to_pylist()
        high = canned.run_query(con, "findings", {"min_level": "high"}).column("level").to_pylist()
    assert (len(every), len(high)) == (74, 11)  # the sample, detected with its exceptions
    assert set(high) == {"high", "critical"} & set(every) and high == every[: len(high)]
