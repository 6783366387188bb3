"""Evidence from any source: requests that reuse an audit ID, impersonation, flagged events.

Each case is a handful of named events through the real loader; the rules, the investigation
tables and the executed notebooks must all see the same requests and name the same identities.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import papermill
import pytest
from click.testing import CliRunner

from kforensics import load
from kforensics.cli import main
from kforensics.detection.ev import prepare
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from kforensics.ingest.mapping import QUALITY_FLAGS
from kforensics.investigate import queries as inv
from kforensics.reporting.run import notebooks_dir
from tests.conftest import event, jsonl

SA = "system:serviceaccount:shop:web"
AS_SA = {"username": SA, "groups": ["system:serviceaccounts", "system:authenticated"]}
T5 = "2026-03-14T10:00:05.000001Z"
FORBID = {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}


def rules(*ids: str) -> list:
    return [r for r in load_rules(statuses=None) if r.id in ids]


def without(ev: dict, *keys: str) -> dict:
    return {k: v for k, v in ev.items() if k not in keys}


def exec_(audit_id: str, **over) -> dict:
    """`kubectl exec web-1 -c web -- id` by alice, accepted (101)."""
    fields = {
        "verb": "create",
        "level": "Request",
        "requestURI": "/api/v1/namespaces/shop/pods/web-1/exec?command=id&container=web",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-1",
                      "subresource": "exec", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 101},
    }  # fmt: skip
    return event(audit_id, **{**fields, **over})


def privileged_pod(audit_id: str, **over) -> dict:
    """A pod `debug` with a privileged container, created by alice."""
    fields = {
        "verb": "create",
        "level": "Request",
        "requestURI": "/api/v1/namespaces/shop/pods",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "debug", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {"kind": "Pod", "metadata": {"name": "debug"}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]}},
    }  # fmt: skip
    return event(audit_id, **{**fields, **over})


def write(tmp_path: Path, case_path: Path, *events: dict) -> Path:
    log = tmp_path / "node-1" / "audit.log"
    log.parent.mkdir()
    log.write_bytes(jsonl(*events))
    result = load(case_path, [log])
    assert result.rejected == 0, result.reject_reasons
    return log


def run_notebook(name: str, case: Path, work: Path, **params) -> str:
    """Execute a notebook on the case (static mode); return the HTML of its outputs."""
    target = work / f"{name}.ipynb"
    papermill.execute_notebook(
        str(notebooks_dir() / f"{name}.ipynb"),
        str(target),
        parameters={"case": str(case), "remediation_out": str(work / f"rem-{name}"), **params},
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=120,
        cwd=str(work),
    )
    nb = json.loads(target.read_text(encoding="utf-8"))
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    texts = [o.get("data", {}).get("text/html", "") for o in outputs]
    return "".join(t if isinstance(t, str) else "".join(t) for t in texts)


def cols(table, *names: str) -> list[tuple]:
    return [tuple(r[n] for n in names) for r in table.to_pylist()]


# --- (a) one audit ID, two requests ---------------------------------------------------------

# alice's client sends its own Audit-ID header, the same for an exec and for a get after it.
REUSED = [
    exec_("reused", stage="ResponseStarted"),
    exec_("reused", stageTimestamp="2026-03-14T10:00:09.000001Z"),
    without(
        event("reused", stage="RequestReceived", requestReceivedTimestamp=T5, stageTimestamp=T5),
        "responseStatus",
    ),
    event("reused", requestReceivedTimestamp=T5, stageTimestamp=T5),
]


def test_requests_reusing_an_audit_id_are_each_evidence_everywhere(tmp_path, case_path, con):
    log = write(tmp_path, case_path, *REUSED)
    (found,) = detect(case_path, rules("k8s-pod-exec"))
    assert [(e["audit_id"], e["source_file"], e["source_line"]) for e in found.evidence] == [
        ("reused", str(log), 2)
    ]
    c = con()
    # the exec's final stage is line 2, the get's line 4
    assert c.execute("SELECT verb, source_line FROM requests ORDER BY 2").fetchall() == [
        ("create", 2),
        ("get", 4),
    ]
    prepare(c)
    assert c.execute("SELECT verb, source_line FROM ev ORDER BY 2").fetchall() == [
        ("create", 2),
        ("get", 4),
    ]
    exec_row = ("alice", None, "web-1", "exec", "web", "id", 101, f"{log}:2")
    names = ("identity", "impersonated_by", "pod", "subresource", "container", "command", "code",
             "evidence")  # fmt: skip
    assert cols(inv.exec_sessions(c, "alice"), *names) == [exec_row]
    assert cols(inv.workload_exec(c, "shop", "web-1"), *names) == [exec_row]
    assert cols(inv.identity_timeline(c, "alice"), "relation", "verb", "resource", "evidence") == [
        ("own", "create", "pods/exec", f"{log}:2"),
        ("own", "get", "pods", f"{log}:4"),
    ]
    by_verb = ("identity", "impersonated_by", "verb", "resource", "requests")
    assert cols(inv.who_did_what(c), *by_verb) == [
        ("alice", None, "create", "pods/exec", 1),
        ("alice", None, "get", "pods", 1),
    ]
    assert cols(inv.workload_activity(c, "shop"), *by_verb) == cols(inv.who_did_what(c), *by_verb)
    assert cols(inv.resources_touched(c, "alice"), "resource", "verb", "requests") == [
        ("pods", "get", 1),
        ("pods/exec", "create", 1),
    ]
    assert cols(inv.top_identities(c), "identity", "requests") == [("alice", 2)]
    assert cols(inv.volume_over_time(c, identity="alice"), "outcome", "requests") == [
        ("1xx", 1),  # the exec (101)
        ("2xx", 1),
    ]
    identity = run_notebook("02_identity", case_path, tmp_path, identity="alice")
    workload = run_notebook("03_workload", case_path, tmp_path, namespace="shop")
    for html in (identity, workload):
        assert f"<td>{log}:2</td>" in html  # the exec, by the path given to load
    assert f"<td>{log}:4</td>" in identity  # and the get after it


# --- (b) impersonation ----------------------------------------------------------------------

IMPERSONATED = [
    # alice: kubectl --as=system:serviceaccount:shop:web exec web-1 -- id
    exec_("i1", impersonatedUser=AS_SA),
    # alice --as the service account: list secrets in kube-system, refused to the service account
    event(
        "i2",
        impersonatedUser=AS_SA,
        verb="list",
        requestURI="/api/v1/namespaces/kube-system/secrets",
        objectRef={"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"},
        responseStatus={"metadata": {}, "code": 403},
        annotations=FORBID,
        requestReceivedTimestamp=T5,
        stageTimestamp=T5,
    ),
    # the service account's own request
    event("i3", user=AS_SA, requestReceivedTimestamp="2026-03-14T10:00:07Z"),
]


def test_impersonated_requests_name_both_identities(tmp_path, case_path, con):
    log = write(tmp_path, case_path, *IMPERSONATED)
    out = CliRunner().invoke(main, ["detect", "--case", str(case_path), "--format", "jsonl"])
    lines = [json.loads(x) for x in out.output.splitlines()]
    mine = [x for x in lines if x["rule_id"] in ("k8s-pod-exec", "k8s-unauthorized-or-forbidden")]
    assert [(x["actor"], x["impersonated"]) for x in mine] == [("alice", SA), ("alice", SA)]
    out = CliRunner().invoke(main, ["detect", "--case", str(case_path)])
    assert out.exit_code == 0
    rows = out.output.splitlines()
    (n,) = [i for i, line in enumerate(rows) if "k8s-pod-exec" in line]
    assert "│ alice as " in rows[n] and f"│ {SA} " in rows[n + 1]  # the cell wraps at the space
    found = detect(case_path, rules("k8s-pod-exec", "k8s-unauthorized-or-forbidden"))
    assert [(f.rule_id, f.actor, f.impersonated, f.who) for f in found] == [
        ("k8s-pod-exec", "alice", SA, f"alice as {SA}"),
        ("k8s-unauthorized-or-forbidden", "alice", SA, f"alice as {SA}"),
    ]
    stored = con().execute("SELECT rule_id, actor, impersonated FROM findings ORDER BY 1")
    assert stored.fetchall() == [
        ("k8s-pod-exec", "alice", SA),
        ("k8s-unauthorized-or-forbidden", "alice", SA),
    ]
    c = con()
    # the refusal is the service account's, sent by alice
    assert cols(inv.denials(c), "identity", "impersonated_by", "resource", "code", "requests") == [
        (SA, "alice", "secrets", 403, 1)
    ]
    top = cols(inv.top_identities(c), "identity", "impersonated_by", "requests", "denials")
    assert top == [(SA, "alice", 2, 1), (SA, None, 1, 0)]
    exec_row = [(SA, "alice", "web-1", f"{log}:1")]
    assert cols(inv.exec_sessions(c, SA), "identity", "impersonated_by", "pod", "evidence") == (
        exec_row
    )
    assert cols(
        inv.exec_sessions(c, "alice"), "identity", "impersonated_by", "pod", "evidence"
    ) == (exec_row)
    assert cols(inv.identity_timeline(c, SA), "relation", "verb", "evidence") == [
        ("by alice, as this identity", "create", f"{log}:1"),
        ("by alice, as this identity", "list", f"{log}:2"),
        ("own", "get", f"{log}:3"),
    ]
    assert cols(inv.identity_timeline(c, "alice"), "relation") == [(f"own, as {SA}",)] * 2
    for who in (SA, "alice"):
        assert cols(inv.findings_for(c, identity=who), "rule_id", "actor", "impersonated") == [
            ("k8s-pod-exec", "alice", SA),
            ("k8s-unauthorized-or-forbidden", "alice", SA),
        ]
    html = run_notebook("02_identity", case_path, tmp_path, identity=SA)
    assert "<td>by alice, as this identity</td>" in html and f"<td>{log}:1</td>" in html


# --- (c) events that lack an audit ID, a stage, a time or a user ----------------------------

FLAGGED = [
    # an exec copied without auditID and stage
    without(exec_("none"), "auditID", "stage"),
    # a privileged pod, undated
    without(privileged_pod("u1"), "requestReceivedTimestamp", "stageTimestamp"),
    # an unknown identity making a pod privileged (an update: system components are left out)
    without(privileged_pod("n1", verb="update"), "user"),
]


def test_flagged_events_reach_the_rules_and_the_findings_say_so(tmp_path, case_path, con):
    log = write(tmp_path, case_path, *FLAGGED)
    out = CliRunner().invoke(main, ["detect", "--case", str(case_path)])
    assert out.exit_code == 0 and "undated" in out.output
    found = detect(case_path, rules("k8s-pod-exec", "k8s-privileged-pod"))
    got = [(f.rule_id, f.actor, f.first_seen, f.quality, [e["source_line"] for e in f.evidence])
           for f in found]  # fmt: skip
    t0 = datetime(2026, 3, 14, 10, 0, 0, 1, tzinfo=UTC)
    assert got == [
        ("k8s-privileged-pod", None, t0, ["no-user"], [3]),
        ("k8s-privileged-pod", "alice", None, ["no-timestamp"], [2]),  # undated last
        ("k8s-pod-exec", "alice", t0, ["no-audit-id", "no-stage"], [1]),
    ]
    assert found[2].evidence[0]["audit_id"] is None
    assert found[1].to_json()["first_seen"] is None and found[1].to_json()["last_seen"] is None
    # an undated event could be from any time: every window keeps it
    later = detect(case_path, rules("k8s-pod-exec", "k8s-privileged-pod"),
                   since=datetime(2030, 1, 1, tzinfo=UTC), store=False)  # fmt: skip
    assert [(f.rule_id, f.quality) for f in later] == [("k8s-privileged-pod", ["no-timestamp"])]
    stored = con().execute("SELECT rule_id, first_seen, quality FROM findings ORDER BY 3")
    assert stored.fetchall() == [
        ("k8s-pod-exec", t0, ["no-audit-id", "no-stage"]),
        ("k8s-privileged-pod", None, ["no-timestamp"]),
        ("k8s-privileged-pod", t0, ["no-user"]),
    ]
    summary = cols(inv.quality_summary(con()), "flag", "meaning", "events", "findings")
    assert summary[0] == ("any flag", "the event lacks at least one of the fields below", 3, 3)
    assert {flag: (e, f) for flag, _, e, f in summary[1:]} == {
        "no-audit-id": (1, 1), "no-timestamp": (1, 1), "no-stage": (1, 1), "no-verb": (0, 0),
        "no-user": (1, 1), "no-request-uri": (0, 0), "no-level": (0, 0),
    }  # fmt: skip
    assert [m for _, m, _, _ in summary[1:]] == list(QUALITY_FLAGS.values())
    html = run_notebook("01_triage", case_path, tmp_path)
    assert re.search(r"<td>no-timestamp</td><td>[^<]*</td><td>1</td><td>1</td>", html)
    assert re.search(r"<td>any flag</td><td>[^<]*</td><td>3</td><td>3</td>", html)
    assert f"{log}:1" in html


def test_the_load_summary_counts_events_per_flag_with_its_meaning(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(*FLAGGED))
    out = CliRunner().invoke(main, ["load", str(log), "--case", str(tmp_path / "c.duckdb")])
    assert out.exit_code == 0, out.output
    lines = [x.strip() for x in out.output.splitlines()]
    flagged = lines[lines.index(next(x for x in lines if x.startswith("kept with flags"))) + 1 :]
    assert flagged[:4] == [
        f"1  no-audit-id: {QUALITY_FLAGS['no-audit-id']}",
        f"1  no-timestamp: {QUALITY_FLAGS['no-timestamp']}",
        f"1  no-stage: {QUALITY_FLAGS['no-stage']}",
        f"1  no-user: {QUALITY_FLAGS['no-user']}",
    ]


# --- (d) a test suite that reuses one audit ID ----------------------------------------------


def test_unrelated_events_sharing_an_audit_id_each_fire_their_rule(tmp_path, case_path, con):
    # Detection-content suites copy one template: same audit ID, same stage, same time.
    log = write(tmp_path, case_path, privileged_pod("test-0001"),
                exec_("test-0001", user={"username": "carol", "groups": []}))  # fmt: skip
    found = detect(case_path, rules("k8s-pod-exec", "k8s-privileged-pod"))
    assert con().execute("SELECT count(*) FROM requests").fetchone() == (2,)
    assert con().execute("SELECT events FROM audit_id_collisions").fetchall() == [(2,)]
    assert sorted((f.rule_id, f.actor, f.evidence[0]["source_line"]) for f in found) == [
        ("k8s-pod-exec", "carol", 2),
        ("k8s-privileged-pod", "alice", 1),
    ]
    assert {e["source_file"] for f in found for e in f.evidence} == {str(log)}


# --- (e) --as-group=system:masters ----------------------------------------------------------


@pytest.mark.parametrize(
    "impersonated, expected",
    [
        ({"username": "bob", "groups": ["system:masters"]}, [("alice", "bob")]),  # --as too
        ({"groups": ["system:masters", "system:authenticated"]}, [("alice", None)]),  # group only
        ({"username": "bob", "groups": ["dev", "system:authenticated"]}, []),
    ],
)
def test_impersonating_system_masters_is_privileged(tmp_path, case_path, impersonated, expected):
    write(tmp_path, case_path, event("g1", impersonatedUser=impersonated))
    found = detect(case_path, rules("k8s-impersonation-privileged"), store=False)
    assert [(f.actor, f.impersonated) for f in found] == expected
