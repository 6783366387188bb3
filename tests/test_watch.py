"""The containment watch rules end to end: a newer log loaded into a case with remediations."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import connect, load
from kforensics.case import create_schema
from kforensics.detection.ev import prepare
from kforensics.detection.rule import REMEDIATION_ACTIONS, load_rules, parse_rule
from kforensics.detection.run import detect, run_rules
from kforensics.detection.selftest import expand, insert_remediations
from kforensics.errors import RuleError
from tests.conftest import jsonl

WATCH = [r for r in load_rules() if r.id.startswith("k8s-containment-")]
POD = "storefront-7d4b9c-x2k8p"
SA = "system:serviceaccount:shop:storefront"
SA_USER = {"username": SA, "groups": ["system:serviceaccounts", "system:authenticated"]}
MALLORY = {"username": "mallory@example.com", "groups": ["system:authenticated"]}
ALICE = {"username": "alice@example.com", "groups": ["oidc:sre", "system:authenticated"]}
QUARANTINED = {"app": "storefront", "kforensics.io/quarantine": "true"}
PLAN = [
    {"action": "quarantine-pod", "namespace": "shop", "name": POD, "labels": QUARANTINED,
     "effective_from_offset_seconds": 100},
    {"action": "policy", "namespace": "shop", "name": "kforensics-quarantine",
     "effective_from_offset_seconds": 100},
    {"action": "contain-identity", "identity": SA, "effective_from_offset_seconds": 100},
    {"action": "cordon-node", "name": "ip-10-0-1-12", "effective_from_offset_seconds": 100},
]  # fmt: skip


def pod_ref(**over) -> dict:
    return {"resource": "pods", "namespace": "shop", "name": POD, "apiVersion": "v1", **over}


def policy_ref(**over) -> dict:
    return {"resource": "networkpolicies", "namespace": "shop", "apiGroup": "networking.k8s.io",
            "apiVersion": "v1", **over}  # fmt: skip


# the log after the plan (made at 10:01:40): one line per item, in this order
LOG = [
    # 1: the attack, before the plan
    {"user": SA_USER, "verb": "list", "objectRef": {"resource": "secrets", "namespace": "payments",
     "apiVersion": "v1"}, "x-offset-seconds": 50},
    # 2, 3: the responder labels the pod and applies the quarantine policy
    {"user": ALICE, "verb": "patch", "objectRef": pod_ref(),
     "requestObject": {"metadata": {"labels": {"kforensics.io/quarantine": "true"}}},
     "x-offset-seconds": 110},
    {"user": ALICE, "verb": "create", "objectRef": policy_ref(), "responseStatus": {"code": 201},
     "requestObject": {"kind": "NetworkPolicy", "metadata": {"name": "kforensics-quarantine",
                       "namespace": "shop"}, "spec": {"podSelector": {}}},
     "x-offset-seconds": 120},
    # 4: the quarantine label removed
    {"user": MALLORY, "verb": "patch", "objectRef": pod_ref(),
     "requestObject": {"metadata": {"labels": {"kforensics.io/quarantine": None}}},
     "x-offset-seconds": 200},
    # 5: the quarantine policy deleted
    {"user": MALLORY, "verb": "delete", "objectRef": policy_ref(name="kforensics-quarantine"),
     "x-offset-seconds": 210},
    # 6: the contained service account at work again
    {"user": SA_USER, "verb": "get", "objectRef": {"resource": "secrets", "namespace": "payments",
     "name": "db", "apiVersion": "v1"}, "x-offset-seconds": 220},
    # 7: the node uncordoned
    {"user": MALLORY, "verb": "patch", "objectRef": {"resource": "nodes", "name": "ip-10-0-1-12",
     "apiVersion": "v1"}, "requestObject": {"spec": {"unschedulable": None}},
     "x-offset-seconds": 230},
    # 8: an undated request of the service account: its order is unknown
    {"user": SA_USER, "verb": "get", "objectRef": {"resource": "pods", "namespace": "shop",
     "apiVersion": "v1"}, "requestReceivedTimestamp": None, "stageTimestamp": None},
]  # fmt: skip


def write_log(path: Path, items: list[dict]) -> Path:
    events = [e for n, item in enumerate(items) for e in expand(item, f"w{n}")]
    path.write_bytes(jsonl(*events))
    return path


def remediated_case(case_path: Path, log: Path, rows: list[dict]) -> None:
    load(case_path, [log])
    con = connect(case_path, read_only=False)
    try:
        assert insert_remediations(con, rows) == len(rows)
    finally:
        con.close()


def test_each_undoing_is_a_finding_citing_its_line(tmp_path, case_path, con):
    log = write_log(tmp_path / "audit.log", LOG)
    remediated_case(case_path, log, PLAN)
    findings = detect(case_path, WATCH)
    assert [(f.rule_id, f.level, f.actor, f.namespace, f.name) for f in findings] == [
        ("k8s-containment-quarantine-label-removed", "high", "mallory@example.com", "shop", POD),
        ("k8s-containment-policy-changed", "high", "mallory@example.com", "shop",
         "kforensics-quarantine"),
        ("k8s-containment-identity-used-again", "high", SA, "payments", "db"),
        ("k8s-containment-cordoned-node-bypassed", "high", "mallory@example.com", None,
         "ip-10-0-1-12"),
    ]  # fmt: skip
    assert [[(e["source_file"], e["source_line"], e["audit_id"]) for e in f.evidence]
            for f in findings] == [
        [(str(log), 4, "w3-0-0")], [(str(log), 5, "w4-0-0")], [(str(log), 6, "w5-0-0")],
        [(str(log), 7, "w6-0-0")],
    ]  # fmt: skip
    stored = con().execute("SELECT rule_id, evidence[1].source_line FROM findings ORDER BY 2")
    assert stored.fetchall() == [
        ("k8s-containment-quarantine-label-removed", 4),
        ("k8s-containment-policy-changed", 5),
        ("k8s-containment-identity-used-again", 6),
        ("k8s-containment-cordoned-node-bypassed", 7),
    ]


def test_without_remediations_the_watch_rules_are_silent(tmp_path, case_path):
    remediated_case(case_path, write_log(tmp_path / "audit.log", LOG), [])
    assert detect(case_path, WATCH, store=False) == []


def test_a_plan_made_later_sees_only_what_came_after_it(tmp_path, case_path):
    later = [{**row, "effective_from_offset_seconds": 215} for row in PLAN]
    remediated_case(case_path, write_log(tmp_path / "audit.log", LOG), later)
    found = detect(case_path, WATCH, store=False)
    assert [(f.rule_id, f.evidence[0]["source_line"]) for f in found] == [
        ("k8s-containment-identity-used-again", 6),
        ("k8s-containment-cordoned-node-bypassed", 7),
    ]


def test_rows_without_labels_object_or_time_judge_what_they_can(tmp_path, case_path):
    rows = [
        # no recorded labels: a deletion is still one, a relabel cannot be told
        {"action": "quarantine-pod", "namespace": "shop", "name": POD},
        # no time: the plan was made from a case without a dated event, nothing is after it
        {"action": "contain-identity", "identity": SA, "effective_from_offset_seconds": None},
        # no recorded IPs: the node is not judged; no pod UIDs: no token matches
        {"action": "rotate-node-credentials", "identity": "system:node:ip-10-0-1-12"},
        {"action": "rotate-token", "identity": SA, "object": {"pod_uids": "not-a-list"}},
    ]
    items = [
        {"user": MALLORY, "verb": "patch", "objectRef": pod_ref(),
         "requestObject": {"metadata": {"labels": {"app": "cart"}}}, "x-offset-seconds": 200},
        {"user": MALLORY, "verb": "delete", "objectRef": pod_ref(), "x-offset-seconds": 210},
        {"user": SA_USER, "verb": "get", "objectRef": pod_ref(), "x-offset-seconds": 220},
        {"user": {"username": "system:node:ip-10-0-1-12", "groups": ["system:nodes"]},
         "sourceIPs": ["198.51.100.7"], "verb": "get", "objectRef": pod_ref(),
         "x-offset-seconds": 230},
    ]  # fmt: skip
    remediated_case(case_path, write_log(tmp_path / "audit.log", items), rows)
    found = detect(case_path, WATCH, store=False)
    assert [(f.rule_id, [e["source_line"] for e in f.evidence]) for f in found] == [
        ("k8s-containment-quarantine-label-removed", [2]),
    ]


LABELS = "k8s-containment-quarantine-label-removed"
HOSTILE = [
    # label keys and values that would break a JSON path or SQL text: a relabel all the same
    ({"verb": "patch", "objectRef": pod_ref(),
      "requestObject": {"metadata": {"labels": {"a'b\"c": "x'); DROP TABLE events; --"}}}},
     [LABELS]),
    ({"verb": "patch", "objectRef": pod_ref(),
      "requestObject": [{"op": "add", "path": "/metadata/labels/~2~1\"", "value": {"k": [1]}},
                        {"op": 7, "path": None}, "not an op"]},
     [LABELS]),
    # bodies of the wrong shape where objects or lists are expected: nothing known changes
    ({"verb": "patch", "objectRef": pod_ref(), "requestObject": {"metadata": ["labels"]}}, []),
    ({"verb": "create", "objectRef": policy_ref(),
      "requestObject": {"metadata": {"name": "x"}, "spec": {"podSelector": {"matchExpressions":
                        "app", "matchLabels": {"": None}}, "policyTypes": "Egress", "egress": 5}}},
     []),
    ({"verb": "create", "objectRef": {"resource": "rolebindings", "namespace": "shop",
      "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"},
      "requestObject": {"metadata": {"name": "x"}, "subjects": [None, 5, {"kind": ["User"]}]}},
     []),
    ({"verb": "patch", "objectRef": {"resource": "nodes", "name": "ip-10-0-1-12",
      "apiVersion": "v1"},
      "requestObject": {"spec": {"taints": [None, {"$patch": ["delete"]}],
                                 "unschedulable": True}}},
     []),
    ({"verb": "create", "objectRef": pod_ref(subresource="binding"),
      "requestObject": {"target": ["ip-10-0-1-12"]}}, []),
    # a pod UID that is not a list: the contained identity is seen, no token is matched
    ({"user": {**SA_USER, "extra": {"authentication.kubernetes.io/pod-uid": {"a": 1}}},
      "verb": "get", "objectRef": pod_ref()},
     ["k8s-containment-identity-used-again"]),
]  # fmt: skip
HOSTILE_PLAN = [*PLAN, {"action": "rotate-token", "identity": SA,
                        "object": {"pod_uids": ["u1"]}}]  # fmt: skip


@pytest.mark.parametrize(("item", "expected"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_events_are_read_as_data(tmp_path, case_path, con, item, expected):
    item = {"user": MALLORY, **item, "x-offset-seconds": 200}
    remediated_case(case_path, write_log(tmp_path / "audit.log", [item]), HOSTILE_PLAN)
    assert [f.rule_id for f in detect(case_path, WATCH, store=False)] == expected
    assert con().execute("SELECT count(*) FROM events").fetchone() == (1,)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(
        ["true", "", "ip-10-0-1-12", "kforensics.io/quarantine", "app", "storefront", "In",
         "Exists", "remove", "replace", "/metadata/labels", "/spec/unschedulable", "$patch",
         "delete", "User", SA, "'", "~1"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(
        ["metadata", "labels", "spec", "podSelector", "matchLabels", "matchExpressions", "key",
         "operator", "values", "op", "path", "value", "from", "taints", "unschedulable",
         "subjects", "kind", "name", "namespace", "target", "egress", "ingress", "policyTypes",
         "kforensics.io/quarantine", "app", "$patch"]), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
FUZZ_REFS = [
    pod_ref(), policy_ref(), {"resource": "nodes", "name": "ip-10-0-1-12"},
    pod_ref(subresource="binding"),
    {"resource": "clusterrolebindings", "apiGroup": "rbac.authorization.k8s.io"},
]  # fmt: skip


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(
    bodies=st.lists(
        st.tuples(st.sampled_from(FUZZ_REFS), st.sampled_from(["create", "update", "patch"]),
                  JSONISH, JSONISH),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_any_body_leaves_the_watch_rules_running(bodies):
    items = [
        {"user": MALLORY, "verb": verb, "objectRef": {"apiVersion": "v1", **ref},
         "requestObject": req, "responseObject": resp, "x-offset-seconds": 200 + n}
        for n, (ref, verb, req, resp) in enumerate(bodies)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        case_path = Path(tmp) / "case.duckdb"
        load(case_path, [write_log(Path(tmp) / "audit.log", items)], progress=False)
        case = connect(case_path, read_only=False)
        try:
            insert_remediations(case, HOSTILE_PLAN)
            prepare(case)
            findings = run_rules(case, WATCH)  # a RuleSQLError would fail the test
            lines = {e["source_line"] for f in findings for e in f.evidence}
            assert lines <= set(range(1, len(items) + 1))
        finally:
            case.close()


GIVEN_RULE = {
    "id": "k8s-given-fuzz", "title": "t", "description": "d", "level": "low", "status": "test",
    "attack": {"techniques": ["T1610"], "tactics": ["execution"]},
    "sql": "SELECT event_id FROM ev",
    "tests": {"match": [{"verb": "get"}], "no_match": [{"verb": "get"}]},
}  # fmt: skip
CELLS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.lists(
    st.text(max_size=4) | st.integers(), max_size=3) | st.dictionaries(
    st.text(max_size=4), st.text(max_size=4) | st.integers() | st.dates(), max_size=3)  # fmt: skip
TEXT = st.text(max_size=8)
FITTING = {  # a value of the column's type, so that many rows get as far as the insert
    **dict.fromkeys(["remediation_id", "step"], TEXT),
    **dict.fromkeys(["kind", "namespace", "name", "identity"], st.none() | TEXT),
    **dict.fromkeys(["finding_ids", "evidence"], st.lists(TEXT, max_size=2)),
    "labels": st.none() | st.dictionaries(TEXT, TEXT, max_size=3),
    "object": st.none() | st.dictionaries(TEXT, st.none() | TEXT | st.integers(), max_size=3),
    **dict.fromkeys(["effective_from_offset_seconds", "generated_at_offset_seconds"],
                    st.none() | st.integers(-10**9, 10**9) | st.floats(-1e9, 1e9)),
}  # fmt: skip
FIT_ROW = st.fixed_dictionaries({"action": st.sampled_from(REMEDIATION_ACTIONS)}, optional=FITTING)
ANY_ROW = st.fixed_dictionaries(
    {"action": st.sampled_from(REMEDIATION_ACTIONS) | CELLS},
    optional={col: CELLS for col in [*FITTING, "effective_from", "node"]},
)
ROWS = st.lists(FIT_ROW, min_size=1, max_size=3) | st.lists(ANY_ROW | CELLS, max_size=3)


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(rows=ROWS)
def test_any_given_is_refused_by_name_or_inserted(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k8s-given-fuzz.yaml"
        doc = {**GIVEN_RULE, "tests": {**GIVEN_RULE["tests"], "given": {"remediations": rows}}}
        path.write_text(yaml.safe_dump(doc))
        try:
            rule = parse_rule(path)
        except RuleError as exc:
            assert str(exc).startswith(f"{path}: tests")
            return
        con = duckdb.connect()
        try:
            create_schema(con)
            assert insert_remediations(con, rule.tests["given"]["remediations"]) == len(rows)
            assert con.execute("SELECT count(*) FROM remediations").fetchone() == (len(rows),)
        finally:
            con.close()
