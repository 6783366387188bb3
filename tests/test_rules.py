"""Every rule: valid metadata, SQL that compiles, and its own match / no-match events."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kforensics.detection.macros import SHARED_FILE, builtin_shared, expand, load_shared
from kforensics.detection.rule import builtin_dir, load_rules, parse_rule
from kforensics.detection.selftest import check_rule
from kforensics.errors import RuleError
from kforensics.levels import LEVELS, rank

RULES = load_rules(statuses=None)


def test_there_are_rules_and_ids_are_file_names():
    files = [p for p in builtin_dir().glob("*.yaml") if not p.name.startswith("_")]
    assert len(RULES) == len(files) == 68
    assert all(r.id == r.path.stem for r in RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule(rule):
    assert parse_rule(rule.path) == rule
    assert "{{" not in rule.sql
    assert check_rule(rule) == []


def test_self_test_reports_events_that_do_not_behave():
    rule = next(r for r in RULES if r.id == "k8s-pod-exec")
    swapped = dataclasses.replace(
        rule, tests={"match": rule.tests["no_match"][:1], "no_match": rule.tests["match"][:1]}
    )
    assert check_rule(swapped) == [
        "k8s-pod-exec: match event 1 did not fire",
        "k8s-pod-exec: no_match event 1 fired",
    ]


def test_every_shared_list_and_macro_is_used_by_a_rule():
    texts = "\n".join(r.path.read_text() for r in RULES)
    shared = builtin_shared()
    used_in_macros = "\n".join(m.sql for m in shared.macros.values())
    unused = [n for n in [*shared.lists, *shared.macros] if n not in texts + used_in_macros]
    assert unused == []


def test_a_list_becomes_escaped_literals_and_a_macro_its_sql(tmp_path):
    (tmp_path / SHARED_FILE).write_text(
        "lists:\n  odd: [\"it's\", 'a\\b', x]\n"
        "macros:\n"
        '  is_odd: "name IN ({{ odd }})"\n'
        '  either:\n    params: [a]\n    columns: [b]\n    sql: "({{ a }} OR {{ b }})"\n'
    )
    shared = load_shared(tmp_path / SHARED_FILE)
    where = tmp_path / "r.yaml"
    assert expand("SELECT 1 WHERE {{odd}}", shared, where) == "SELECT 1 WHERE 'it''s', 'a\\b', 'x'"
    assert (
        expand("SELECT 1 WHERE {{ either(is_odd, hit.flag) }}", shared, where)
        == "SELECT 1 WHERE (name IN ('it''s', 'a\\b', 'x') OR hit.flag)"
    )


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT {{ nope }}", "unknown list or macro 'nope'"),
        ("SELECT {{ workload_resources(x) }}", "is a list, not a macro to call"),
        ("SELECT {{ only_images }}", "macro 'only_images' takes 1 argument(s) (images), given 0"),
        ("SELECT {{ only_images('x') }}", "macro 'only_images': unknown list or macro \"'x'\""),
        ("SELECT {{ by user }}", "not of the form"),
    ],
)
def test_a_bad_reference_names_the_rule_file(sql, message):
    with pytest.raises(RuleError, match="^/r/k8s-x.yaml: ") as exc:
        expand(sql, builtin_shared(), Path("/r/k8s-x.yaml"))
    assert message in str(exc.value)


def test_a_macro_that_refers_to_itself_is_refused(tmp_path):
    (tmp_path / SHARED_FILE).write_text("macros:\n  a: '{{ b }}'\n  b: 'NOT {{ a }}'\n")
    with pytest.raises(RuleError, match="macro 'a' refers to itself: a -> b"):
        expand("SELECT {{ a }}", load_shared(tmp_path / SHARED_FILE), tmp_path / "r.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lists:\n  x: []\n", "list 'x' must be a non-empty list of strings"),
        ("lists:\n  x: [1]\n", "list 'x' must be a non-empty list of strings"),
        ("lists:\n  Bad-Name: [a]\n", "'Bad-Name' is not a name"),
        ("macros:\n  m: {params: [a], sql: ''}\n", "macro 'm' must be SQL text"),
        ("lists:\n  m: [a]\nmacros:\n  m: x\n", "both a list and a macro: m"),
        ("rules: []\n", "expected a mapping with `lists` and/or `macros`"),
    ],
)
def test_a_bad_shared_file_is_refused(tmp_path, text, message):
    (tmp_path / SHARED_FILE).write_text(text)
    with pytest.raises(RuleError, match=str(tmp_path / SHARED_FILE)) as exc:
        load_shared(tmp_path / SHARED_FILE)
    assert message in str(exc.value)


USER_RULE = """\
id: k8s-team-debug-pod
title: Debug pod with an agent image
description: A pod whose every container runs a team-approved debug image.
level: low
status: stable
attack: {techniques: [T1610], tactics: [execution]}
sql: |
  SELECT event_id FROM ev
  WHERE resource IN ({{ workload_resources }}) AND {{ only_images(team_debug_images) }}
tests:
  match:
    - verb: create
      objectRef: {resource: pods, namespace: dev, name: dbg, apiVersion: v1}
      requestObject: {spec: {containers: [{name: d, image: "nicolaka/netshoot:v0.12"}]}}
  no_match:
    - verb: create
      objectRef: {resource: pods, namespace: dev, name: web, apiVersion: v1}
      requestObject: {spec: {containers: [{name: d, image: "nginx:1.25"}]}}
"""


def test_a_user_folder_uses_shared_and_its_own_lists(tmp_path):
    (tmp_path / SHARED_FILE).write_text("lists:\n  team_debug_images: [nicolaka/netshoot]\n")
    (tmp_path / "k8s-team-debug-pod.yaml").write_text(USER_RULE)
    rules = load_rules([tmp_path], builtin=False)
    assert [r.id for r in rules] == ["k8s-team-debug-pod"]
    assert "'nicolaka/netshoot'" in rules[0].sql and "'replicationcontrollers'" in rules[0].sql
    assert check_rule(rules[0]) == []
    # without the folder's own list, the reference is unknown, and the error says where
    (tmp_path / SHARED_FILE).unlink()
    with pytest.raises(
        RuleError,
        match="k8s-team-debug-pod.yaml: macro 'only_images': unknown list or macro 'team_",
    ):
        load_rules([tmp_path], builtin=False)


def test_a_user_list_replaces_a_shared_one_for_built_in_rules_too(tmp_path):
    (tmp_path / SHARED_FILE).write_text("lists:\n  privileged_images: [example/agent]\n")
    (rule,) = [r for r in load_rules([tmp_path], statuses=None) if r.id == "k8s-privileged-pod"]
    assert "'example/agent'" in rule.sql and "falcosecurity" not in rule.sql


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT event_id FROM ev; DROP TABLE events", "sql must be one SELECT statement"),
        ("DELETE FROM events", "sql must be one SELECT statement"),
        ("SELEC event_id FROM ev", "sql does not parse: Parser Error"),
    ],
)
def test_rule_sql_is_one_select_after_expansion(tmp_path, sql, message):
    text = USER_RULE.replace(
        "  SELECT event_id FROM ev\n"
        "  WHERE resource IN ({{ workload_resources }}) AND {{ only_images(team_debug_images) }}\n",
        f"  {sql}\n",
    )
    path = tmp_path / "k8s-team-debug-pod.yaml"
    path.write_text(text)
    with pytest.raises(RuleError, match=f"^{path}: ") as exc:
        parse_rule(path)
    assert message in str(exc.value)


def test_items_sharing_an_audit_id_are_refused():
    rule = next(r for r in RULES if r.id == "k8s-pod-exec")
    same = {**rule.tests["match"][0], "auditID": "a-1"}
    clash = dataclasses.replace(rule, tests={"match": [same], "no_match": [same]})
    with pytest.raises(ValueError, match="k8s-pod-exec.yaml: two test items give events the same"):
        check_rule(clash)


def test_the_readme_example_rule_holds(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("```yaml\nid: k8s-secrets-list-refused-burst\n") + len("```yaml\n")
    text = readme[start : readme.index("```", start)]
    (tmp_path / "k8s-secrets-list-refused-burst.yaml").write_text(text)
    (rule,) = load_rules([tmp_path], builtin=False, statuses=None)
    assert check_rule(rule) == []


def test_levels_come_from_kforensics_levels(tmp_path):
    assert {r.level for r in RULES} <= set(LEVELS)
    assert all(r.severity == rank(r.level) for r in RULES)
    path = tmp_path / "k8s-team-debug-pod.yaml"
    path.write_text(USER_RULE.replace("level: low", "level: severe"))
    with pytest.raises(RuleError) as exc:
        parse_rule(path)
    assert str(exc.value) == f"{path}: level must be one of info, low, medium, high, critical"


GIVEN_ROWS = """\
  given:
    remediations:
      - {action: cordon-node, name: n1}
      - action: quarantine-pod
        namespace: dev
        name: dbg
        labels: {app: dbg, kforensics.io/quarantine: "true"}
        object: {note: "it's", n: [1, null]}
        evidence: [a.log:3]
        effective_from_offset_seconds: null
"""


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "  given:\n    remediations: []\n    findings: []\n",
            "tests.given takes remediations and sensitive_targets (lists of rows of those tables)",
        ),
        ("  given: {remediations: []}\n", "tests.given.remediations must be a non-empty list"),
        (
            "  given:\n    remediations:\n      - {action: cordon-node, node: n1}\n",
            "tests.given.remediations row 1: unknown columns node (use remediation_id, step,",
        ),
        (
            "  given:\n    remediations:\n      - {action: cordon-node, effective_from: 2026}\n",
            "row 1: unknown columns effective_from (use ",
        ),
        ("  given:\n    remediations:\n      - {action: uncordon}\n", "row 1: action must be"),
        ("  given:\n    remediations:\n      - [cordon-node]\n", "row 1: a row is a mapping"),
        (
            "  given:\n    remediations:\n      - {action: policy, name: 7}\n",
            "row 1: name must be text or null",
        ),
        (
            "  given:\n    remediations:\n      - {action: policy, labels: {a: 1}}\n",
            "row 1: labels must map strings to strings",
        ),
        (
            "  given:\n    remediations:\n      - {action: policy, evidence: a.log:1}\n",
            "row 1: evidence must be a list of strings",
        ),
        (
            "  given:\n    remediations:\n      - {action: policy}\n"
            "      - {action: policy, effective_from_offset_seconds: x}\n",
            "row 2: effective_from_offset_seconds must be a number of seconds (±1e9) or null",
        ),
        (
            "  given:\n    remediations:\n      - {action: policy, object: {at: 2026-03-14}}\n",
            "row 1: object must be plain JSON",
        ),
        (
            "  given: {sensitive_targets: []}\n",
            "tests.given.sensitive_targets must be a non-empty list of rows",
        ),
        (
            "  given: {sensitive_targets: [{workload: a/Pod/b, name: b}]}\n",
            "tests.given.sensitive_targets row 1: text columns, namespace required",
        ),
        (
            "  given: {sensitive_targets: [{namespace: a, pods: [b]}]}\n",
            "tests.given.sensitive_targets row 1: a mapping of workload, namespace, resource,",
        ),
        (
            "  given: {sensitive_targets: [{namespace: a, priority: true}]}\n",
            "tests.given.sensitive_targets row 1: priority is 0, 1 or 2",
        ),
        (
            "  given: {baseline_until_offset_seconds: soon}\n",
            "tests.given.baseline_until_offset_seconds must be seconds (±1e9)",
        ),
    ],
)
def test_a_bad_given_is_refused_naming_the_file(tmp_path, given, message):
    path = tmp_path / "k8s-team-debug-pod.yaml"
    path.write_text(USER_RULE.replace("tests:\n", "tests:\n" + given))
    with pytest.raises(RuleError, match=f"^{path}: ") as exc:
        parse_rule(path)
    assert message in str(exc.value)


def test_tests_take_no_other_key(tmp_path):
    path = tmp_path / "k8s-team-debug-pod.yaml"
    path.write_text(USER_RULE.replace("tests:\n", "tests:\n  setup: []\n"))
    with pytest.raises(RuleError) as exc:
        parse_rule(path)
    assert str(exc.value) == (
        f"{path}: tests needs non-empty match and no_match lists of events (and may have given)"
    )


def test_given_rows_are_kept_with_the_tests_and_inserted(tmp_path):
    (tmp_path / SHARED_FILE).write_text("lists:\n  team_debug_images: [nicolaka/netshoot]\n")
    # the rule fires only when both rows are in the case, as written
    sql = (
        "  SELECT event_id FROM ev WHERE resource IN ({{ workload_resources }})\n"
        "    AND {{ only_images(team_debug_images) }} AND (SELECT count(*) FROM remediations\n"
        "    WHERE step = 'step-2' AND remediation_id = 'given-2' AND effective_from IS NULL\n"
        "      AND labels = MAP {'app': 'dbg', 'kforensics.io/quarantine': 'true'}\n"
        "      AND object->>'$.note' = 'it''s' AND evidence = ['a.log:3']\n"
        "      AND finding_ids = []) = 1\n"
        "    AND (SELECT count(*) FROM remediations WHERE name = 'n1'\n"
        "      AND effective_from = TIMESTAMPTZ '2026-03-14 10:00:00+00') = 1\n"
    )
    text = USER_RULE.replace("tests:\n", "tests:\n" + GIVEN_ROWS)
    start = text.index("  SELECT event_id")
    text = text[:start] + sql + text[text.index("tests:\n") :]
    (tmp_path / "k8s-team-debug-pod.yaml").write_text(text)
    (rule,) = load_rules([tmp_path], builtin=False)
    assert rule.tests["given"]["remediations"][0] == {"action": "cordon-node", "name": "n1"}
    assert check_rule(rule) == []
    broken = dataclasses.replace(rule, tests={k: rule.tests[k] for k in ("match", "no_match")})
    assert check_rule(broken) == ["k8s-team-debug-pod: match event 1 did not fire"]


def test_the_watch_rules_fire_only_with_their_given_rows():
    watch = [r for r in RULES if r.id.startswith("k8s-containment-")]
    assert len(watch) == 7
    for rule in watch:
        bare = dataclasses.replace(rule, tests={k: rule.tests[k] for k in ("match", "no_match")})
        problems = check_rule(bare)
        assert problems == [
            f"{rule.id}: match event {n} did not fire"
            for n in range(1, len(rule.tests["match"]) + 1)
        ]
