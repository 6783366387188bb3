"""End to end: contain the sample incident, then a later log undoes it, and detect says so."""

from __future__ import annotations

import os

import orjson
import pytest

from kforensics import load
from kforensics.contain.remediate import remediate_case
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect, load_exceptions
from tests.conftest import ROOT, SAMPLES

ATTACKER = {
    "username": "system:serviceaccount:shop:storefront",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"],
}
ALICE = {"username": "alice@example.com", "groups": ["oidc:sre", "system:authenticated"]}
POD = {"resource": "pods", "namespace": "shop", "name": "storefront-7d4b9c-x2k8p",
       "apiVersion": "v1"}  # fmt: skip
BINDING = {"resource": "clusterrolebindings", "name": "storefront-admin",
           "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"}  # fmt: skip
BINDING_BODY = {
    "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
    "metadata": {"name": "storefront-admin"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "cluster-admin"},
    "subjects": [{"kind": "ServiceAccount", "name": "storefront", "namespace": "shop"}],
}  # fmt: skip


def _event(n: int, minute: int, user: dict, verb: str, ref: dict, uri: str, **more) -> dict:
    t = f"2026-03-14T13:{minute:02d}:00.000000Z"
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": f"later-{n}", "stage": "ResponseComplete", "requestURI": uri, "verb": verb,
        "user": user, "sourceIPs": ["203.0.113.10" if user is ALICE else "10.244.1.23"],
        "userAgent": "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819", "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": t, "stageTimestamp": t.replace(".000000Z", ".004000Z"),
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": ""},
        **more,
    }  # fmt: skip


def _later_log() -> list[dict]:
    """The responder applies the plan; then the attacker undoes two parts of it."""
    pod_uri = "/api/v1/namespaces/shop/pods/storefront-7d4b9c-x2k8p"
    crb_uri = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    label = {"metadata": {"labels": {"kforensics.io/quarantine": "true"}}}
    unlabel = {"metadata": {"labels": {"kforensics.io/quarantine": None}}}
    return [
        # 1-2: alice applies the plan (not findings)
        _event(1, 0, ALICE, "patch", POD, pod_uri, requestObject=label),
        _event(2, 1, ALICE, "delete", BINDING, f"{crb_uri}/storefront-admin"),
        # 3: the attacker removes the quarantine label
        _event(3, 10, ATTACKER, "patch", POD, pod_uri, requestObject=unlabel),
        # 4: and recreates its binding
        _event(4, 11, ATTACKER, "create", BINDING, crb_uri, requestObject=BINDING_BODY,
               responseObject=BINDING_BODY, responseStatus={"metadata": {}, "code": 201}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    case = tmp_path_factory.mktemp("case") / "case.duckdb"
    exceptions = load_exceptions(SAMPLES / "known_false_positives.yaml")
    cwd = os.getcwd()
    os.chdir(ROOT)  # evidence cites the path as given to load
    try:
        load(case, [SAMPLES.relative_to(ROOT) / "native"], progress=False)
        detect(case, load_rules(), exceptions=exceptions)
        contained = remediate_case(case, tmp_path_factory.mktemp("plan"))
        before = detect(case, load_rules(), exceptions=exceptions)
        later = tmp_path_factory.mktemp("later") / "audit-later.log"
        later.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in _later_log()))
        load(case, [later], progress=False)
        after = detect(case, load_rules(), exceptions=exceptions)
    finally:
        os.chdir(cwd)
    return contained, before, after, str(later)


def _containment(findings) -> list[tuple[str, str | None, list[int]]]:
    return sorted(
        (f.rule_id, f.name, sorted(e["source_line"] for e in f.evidence))
        for f in findings
        if f.rule_id.startswith("k8s-containment-")
    )


def test_nothing_is_undone_right_after_the_plan(watched):
    contained, before, _, _ = watched
    assert contained.remediation_id and contained.errors == []
    assert _containment(before) == []


def test_removing_the_quarantine_label_and_recreating_the_binding_are_both_found(watched):
    _, _, after, later = watched
    assert _containment(after) == [
        # the attacker's service account was contained: both of its requests are found
        ("k8s-containment-identity-used-again", None, [3, 4]),
        ("k8s-containment-quarantine-label-removed", "storefront-7d4b9c-x2k8p", [3]),
        ("k8s-containment-revoked-binding-recreated", "storefront-admin", [4]),
    ]
    # the responder's own label and delete (lines 1 and 2) are never evidence
    cited = {
        (e["source_file"], e["source_line"])
        for f in after
        if f.rule_id.startswith("k8s-containment-")
        for e in f.evidence
    }
    assert cited == {(later, 3), (later, 4)}
    assert {f.level for f in after if f.rule_id.startswith("k8s-containment-")} == {"high"}
