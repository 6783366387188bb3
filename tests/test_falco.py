"""Falco's own k8s-audit test suite, replayed: each expected detection fires the equivalent rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kforensics import load
from kforensics.detection.rule import load_rules
from kforensics.detection.run import Exception_, detect
from tests.conftest import SHARED, corpus

RULES = load_rules(statuses=None)
BY_FALCO: dict[str, list[str]] = {}
for _rule in RULES:
    for _name in _rule.falco:
        BY_FALCO.setdefault(_name, []).append(_rule.id)

# Falco's override files (EXPECTATIONS.json meta.override_files), as kforensics exceptions:
# {override: [(Falco rules it tunes, exception fields)]}.
OVERRIDES = {
    "K8SAuditAllowNamespaceFoo": [(["Create Disallowed Namespace"], {"name": "foo"})],
    "K8SAuditAllowUserSomeUser": [(["Disallowed K8s User"], {"actor": "some-user"})],
    "K8SAuditAllowNginxContainer": [(["Create Disallowed Pod"], {"image": "nginx"})],
    "K8SAuditEngineV4AllowNginxContainer": [(["Create Disallowed Pod"], {"image": "nginx"})],
    "K8SAuditAllowOnlyApacheContainer": [(["Create Disallowed Pod"], {"image": "apache"})],
    "K8SAuditEngineV4AllowOnlyApacheContainer": [(["Create Disallowed Pod"], {"image": "apache"})],
    "K8SAuditTrustNginxContainer": [
        (["Create Privileged Pod", "Create Sensitive Mount Pod", "Create HostNetwork Pod"],
         {"image": "nginx"}),
    ],
}  # fmt: skip
# Rule sets that only select which Falco rules load; their detections map to ours unchanged.
SELECTORS = {"K8SAuditRules", "K8SAuditEngineV4K8SAuditRules", "K8SAuditDisallowKactivity"}
# Falco-internal: a test of Falco's JSON-pointer syntax, not a detection.
NOT_DETECTIONS = {"json_pointer_example"}


def exceptions_for(rules_files: list[str]) -> list[Exception_]:
    out = []
    for name in rules_files:
        if name in SELECTORS or name == "K8SAuditSingleRuleWithJsonPointer":
            continue
        for falco_rules, fields in OVERRIDES[name]:
            for falco in falco_rules:
                for rule_id in BY_FALCO.get(falco, []):
                    items = tuple((k, (v,)) for k, v in fields.items())
                    out.append(Exception_(rule_id, items, f"Falco override {name}"))
    return out


def cases() -> list:
    path = SHARED / "falco-k8s-audit" / "EXPECTATIONS.json"
    if not path.exists():
        return [pytest.param(None, id="corpus-absent")]
    tests = json.loads(path.read_text())["tests"]
    return [pytest.param(t, id=f"{t['test']}") for t in tests]


@pytest.mark.parametrize("case", cases())
def test_falco_expectation(case, tmp_path: Path):
    traces = corpus("falco-k8s-audit") / "trace_files"
    trace = traces / case["file"].rsplit("/", 1)[-1]
    db = tmp_path / "case.duckdb"
    load(db, [trace])
    findings = detect(db, RULES, exceptions=exceptions_for(case["rules_files"]), store=False)
    fired = {f.rule_id: 0 for f in findings}
    for f in findings:
        fired[f.rule_id] += f.count
    for expected in case["expect"]:
        if expected["rule"] in NOT_DETECTIONS:
            continue
        ours = BY_FALCO.get(expected["rule"])
        assert ours, f"no kforensics rule is equivalent to Falco's {expected['rule']!r}"
        assert sum(fired.get(r, 0) for r in ours) == expected["count"], (expected, fired)
    if case["expect_no_detection"]:
        loud = [(f.rule_id, f.level) for f in findings if f.level in ("medium", "high", "critical")]
        assert loud == []


def test_every_falco_k8s_audit_rule_has_an_equivalent():
    falco_rules = {
        "Disallowed K8s User", "Create Disallowed Pod", "Create Privileged Pod",
        "Create Sensitive Mount Pod", "Create HostNetwork Pod", "Create HostPid Pod",
        "Create HostIPC Pod", "Create NodePort Service",
        "Create/Modify Configmap With Private Credentials", "Anonymous Request Allowed",
        "Attach/Exec Pod", "port-forward", "EphemeralContainers Created",
        "Create Disallowed Namespace", "Pod Created in Kube Namespace",
        "Service Account Created in Kube Namespace", "System ClusterRole Modified/Deleted",
        "Attach to cluster-admin Role", "ClusterRole With Wildcard Created",
        "ClusterRole With Write Privileges Created", "ClusterRole With Pod Exec Created",
        "K8s Deployment Created", "K8s Deployment Deleted", "K8s Service Created",
        "K8s Service Deleted", "K8s ConfigMap Created", "K8s ConfigMap Deleted",
        "K8s Namespace Created", "K8s Namespace Deleted", "K8s Serviceaccount Created",
        "K8s Serviceaccount Deleted", "K8s Role Created", "K8s Role Deleted",
        "K8s ClusterRole Created", "K8s ClusterRole Deleted", "K8s RoleBinding Created",
        "K8s RoleBinding Deleted", "K8s ClusterRoleBinding Created",
        "K8s ClusterRoleBinding Deleted", "K8s Secret Created", "K8s Secret Deleted",
        "K8s Secret Get Successfully", "K8s Secret Get Unsuccessfully Tried",
        "Full K8s Administrative Access", "Ingress Object without TLS Certificate Created",
        "Untrusted Node Successfully Joined the Cluster",
        "Untrusted Node Unsuccessfully Tried to Join the Cluster",
    }  # fmt: skip
    assert sorted(falco_rules - set(BY_FALCO)) == []
