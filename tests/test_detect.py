"""The detection engine as a user sees it: findings, evidence, exceptions, windows, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kforensics import connect, load
from kforensics.cli import main
from kforensics.detection.rule import RuleError, load_rules, parse_rule
from kforensics.detection.run import ExceptionsError, detect, load_exceptions
from kforensics.detection.selftest import expand
from tests.conftest import jsonl

PRIV = {
    "verb": "create",
    "objectRef": {"resource": "pods", "namespace": "shop", "name": "p", "apiVersion": "v1"},
    "responseStatus": {"code": 201},
    "requestObject": {"kind": "Pod", "spec": {"containers": [
        {"name": "c", "image": "docker.io/library/nginx:1.25",
         "securityContext": {"privileged": True}}]}},
}  # fmt: skip


@pytest.fixture
def priv_rule():
    return [r for r in load_rules(statuses=None) if r.id == "k8s-privileged-pod"]


def case_with(tmp_path: Path, case_path: Path, *items: dict) -> Path:
    events = [e for n, item in enumerate(items) for e in expand(item, f"t{n}")]
    (tmp_path / "audit.log").write_bytes(jsonl(*events))
    load(case_path, [tmp_path / "audit.log"])
    return tmp_path / "audit.log"


def test_findings_group_a_subject_and_cite_every_event(tmp_path, case_path, priv_rule, con):
    log = case_with(tmp_path, case_path, PRIV, {**PRIV, "x-offset-seconds": 60},
                    {**PRIV, "objectRef": {**PRIV["objectRef"], "name": "q"}})  # fmt: skip
    findings = detect(case_path, priv_rule)
    assert [(f.name, f.count) for f in findings] == [("p", 2), ("q", 1)]
    first = findings[0].to_json()
    assert list(first) == ["rule_id", "title", "level", "attack", "tactics", "first_seen",
                           "last_seen", "actor", "impersonated", "source_ips", "namespace",
                           "resource", "name", "count", "evidence", "quality", "sensitive",
                           "raised_from"]  # fmt: skip
    assert first["impersonated"] is None and first["quality"] == []
    assert first["first_seen"] == "2026-03-14T10:00:00Z"
    assert first["last_seen"] == "2026-03-14T10:01:00Z"
    assert first["evidence"] == [
        {"event_id": e["event_id"], "audit_id": a, "source_file": str(log), "source_line": ln}
        for e, a, ln in zip(first["evidence"], ["t0-0-0", "t1-0-0"], [1, 2], strict=True)
    ]
    runs = con().execute("SELECT rules, exceptions, since, findings FROM detect_runs").fetchall()
    assert runs == [(["k8s-privileged-pod"], 0, None, 2)]
    stored = con().execute("SELECT rule_id, name, count, len(evidence) FROM findings ORDER BY 2")
    assert stored.fetchall() == [
        ("k8s-privileged-pod", "p", 2, 2),
        ("k8s-privileged-pod", "q", 1, 1),
    ]


def test_exceptions_drop_matching_hits_only(tmp_path, case_path, priv_rule):
    case_with(
        tmp_path, case_path, PRIV, {**PRIV, "objectRef": {**PRIV["objectRef"], "namespace": "ci"}}
    )
    path = tmp_path / "exceptions.yaml"
    path.write_text(
        "k8s-privileged-pod:\n"
        "  - namespace: ci\n"
        "    reason: CI runners build images with privileged docker-in-docker\n"
        "  - image: [docker.io/library/nginx]\n"
        "    actor: 'bob*'\n"
    )
    excs = load_exceptions(path)
    findings = detect(case_path, priv_rule, exceptions=excs, store=False)
    assert [f.namespace for f in findings] == ["shop"]  # bob's image exception does not apply
    path.write_text("k8s-privileged-pod:\n  - image: 'docker.io/library/nginx'\n")
    assert detect(case_path, priv_rule, exceptions=load_exceptions(path), store=False) == []


def test_exceptions_never_drop_a_hit_that_lacks_the_field(tmp_path, case_path, priv_rule):
    unknown = {**PRIV, "user": {}}  # no username: the actor is unknown
    proxied = {
        **PRIV,
        "objectRef": {**PRIV["objectRef"], "name": "r"},
        "impersonatedUser": {"username": "u-7f3k2", "groups": ["system:authenticated"]},
    }
    case_with(tmp_path, case_path, unknown, proxied)  # fmt: skip
    path = tmp_path / "exceptions.yaml"
    path.write_text("k8s-privileged-pod:\n  - actor: 'system:*'\n  - impersonated: 'bob'\n")
    findings = detect(case_path, priv_rule, exceptions=load_exceptions(path), store=False)
    assert [(f.actor, f.impersonated) for f in findings] == [
        (None, None),
        ("alice@example.com", "u-7f3k2"),
    ]
    path.write_text("k8s-privileged-pod:\n  - impersonated: 'u-*'\n    reason: the proxy\n")
    findings = detect(case_path, priv_rule, exceptions=load_exceptions(path), store=False)
    assert [(f.actor, f.name) for f in findings] == [(None, "p")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("k8s-privileged-pod: {namespace: x}", "expected a list of entries"),
        ("k8s-privileged-pod:\n  - color: red", "unknown field 'color'"),
        ("k8s-privileged-pod:\n  - reason: only a reason", "no field to match"),
        ("[not, a, mapping]", "expected a mapping"),
    ],
)
def test_bad_exceptions_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "exc.yaml"
    path.write_text(text)
    with pytest.raises(ExceptionsError, match=message):
        load_exceptions(path)


def test_since_and_until_bound_the_window(tmp_path, case_path, priv_rule):
    from datetime import UTC, datetime

    case_with(tmp_path, case_path, PRIV, {**PRIV, "x-offset-seconds": 3600})
    late = detect(case_path, priv_rule, since=datetime(2026, 3, 14, 10, 30, tzinfo=UTC))
    early = detect(case_path, priv_rule, until=datetime(2026, 3, 14, 10, 30, tzinfo=UTC))
    assert [(f.count, f.first_seen.hour) for f in late] == [(1, 11)]
    assert [(f.count, f.first_seen.hour) for f in early] == [(1, 10)]


def test_user_rules_extend_and_replace_builtin_ones(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    builtin = parse_rule(load_rules(statuses=None)[0].path)
    text = builtin.path.read_text().replace(f"level: {builtin.level}", "level: critical")
    (folder / f"{builtin.id}.yaml").write_text(text)
    rules = {r.id: r for r in load_rules([folder], statuses=None)}
    assert rules[builtin.id].level == "critical"
    assert rules[builtin.id].path.parent == folder


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("level: high", "level: severe"), "level must be one of"),
        (lambda t: t.replace("id: k8s-privileged-pod", "id: other"), "differs from the file name"),
        (lambda t: t.replace("T1610", "T16"), "not ATT&CK technique IDs: T16"),
        (lambda t: t.replace("execution", "hacking"), "not ATT&CK tactics: hacking"),
        (lambda t: t.replace("no_match:", "nomatch:"), "tests needs"),
    ],
)
def test_invalid_rules_are_refused_naming_the_file(tmp_path, edit, message):
    src = next(r for r in load_rules(statuses=None) if r.id == "k8s-privileged-pod").path
    bad = tmp_path / "k8s-privileged-pod.yaml"
    bad.write_text(edit(src.read_text()))
    with pytest.raises(RuleError, match=message) as info:
        parse_rule(bad)
    assert str(bad) in str(info.value)


def test_cli_detect_jsonl_and_table_never_interpret_log_text(tmp_path, case_path):
    evil = {**PRIV, "user": {"username": "[link=http://x]mallory[/link]\x1b[31m", "groups": []}}
    case_with(tmp_path, case_path, evil)
    runner = CliRunner()
    out = runner.invoke(main, ["detect", "--case", str(case_path), "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(x) for x in out.output.splitlines()]
    assert [x["actor"] for x in lines if x["rule_id"] == "k8s-privileged-pod"] == [
        "[link=http://x]mallory[/link]\x1b[31m"
    ]
    out = runner.invoke(main, ["detect", "--case", str(case_path)])
    assert out.exit_code == 0, out.output
    assert "[link=http://x]mallory[/link]\\x1b[31m" in out.output
    assert "\x1b" not in out.output


def test_cli_detect_reports_a_broken_rule_folder_without_a_traceback(tmp_path, case_path):
    case_with(tmp_path, case_path, PRIV)
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "mine.yaml").write_text("id: mine\n")
    out = CliRunner().invoke(main, ["detect", "--case", str(case_path), "--rules", str(folder)])
    assert out.exit_code == 1
    assert "mine.yaml: missing" in out.output and "Traceback" not in out.output


def test_detect_on_a_case_from_before_findings_existed(tmp_path, case_path, priv_rule):
    case_with(tmp_path, case_path, PRIV)
    with connect(case_path, read_only=False) as c:
        c.execute("DROP TABLE findings")
    assert len(detect(case_path, priv_rule)) == 1


def test_rules_check_fails_a_rule_whose_own_events_disagree(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    rule = {
        "id": "my-hostpid", "title": "t", "description": "d", "level": "high", "status": "test",
        "attack": {"techniques": ["T1611"], "tactics": ["privilege-escalation"]},
        # Wrong on purpose: demands hostPID, but its match event is only privileged.
        "sql": "SELECT event_id FROM ev WHERE privileged AND host_pid",
        "tests": {"match": [PRIV], "no_match": [{"verb": "get"}]},
    }  # fmt: skip
    (folder / "my-hostpid.yaml").write_text(yaml.safe_dump(rule))
    args = ["rules", "--rules", str(folder), "--no-builtin", "--check"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 1
    assert "FAIL my-hostpid: match event 1 did not fire" in out.output
    rule["sql"] = "SELECT event_id FROM ev WHERE privileged"
    (folder / "my-hostpid.yaml").write_text(yaml.safe_dump(rule))
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "1 of 1 rules pass their own tests" in out.output


def test_cli_min_level_filters_what_is_printed_not_what_is_stored(tmp_path, case_path, con):
    exec_ = {"verb": "create", "objectRef": {"resource": "pods", "namespace": "shop",
             "name": "p", "subresource": "exec", "apiVersion": "v1"},
             "requestURI": "/api/v1/namespaces/shop/pods/p/exec?command=id",
             "responseStatus": {"code": 101}}  # fmt: skip
    case_with(tmp_path, case_path, PRIV, exec_)
    args = ["detect", "--case", str(case_path), "--format", "jsonl", "--min-level", "high"]
    out = CliRunner().invoke(main, args)
    printed = [json.loads(x)["level"] for x in out.stdout.splitlines()]
    assert printed and set(printed) == {"high"}
    assert out.stderr == "stored 2 findings; showing 1 at or above high\n"  # stdout stays JSON
    table = CliRunner().invoke(main, ["detect", "--case", str(case_path), "--min-level", "high"])
    assert table.output.splitlines()[0].strip() == (
        f"stored 2 findings; showing 1 at or above high (from {len(load_rules())} rules)"
    )
    stored = {r[0] for r in con().execute("SELECT level FROM findings").fetchall()}
    assert {"high", "medium"} <= stored
