"""Sensitive workloads on the sample incident: declared, first-time pairs, raised levels, the
triage section, fences written by remediate, and the CLI around them."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kforensics.api import detect
from kforensics.case import connect
from kforensics.cli import main
from kforensics.detection.rule import RuleError, load_rules, parse_rule
from kforensics.detection.run import stored_findings
from kforensics.netpol.inventory import Inventory
from kforensics.reporting.sensitive import sensitive_html
from kforensics.sensitive.declare import load_file, load_text
from kforensics.sensitive.resolve import resolve, target_rows
from kforensics.sensitive.store import stored
from kforensics.sensitive.view import sensitive_view

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
DECLARATION = SAMPLES / "sensitive.yaml"
BEFORE_INCIDENT = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
FIRST = "k8s-sensitive-workload-first-access"
SA = "system:serviceaccount:shop:storefront"


def _lines(finding) -> list[str]:
    return [f"{Path(e['source_file']).name}:{e['source_line']}" for e in finding.evidence]


@pytest.fixture(scope="module")
def detected(sample_cases, tmp_path_factory) -> Path:
    """The sample case detected with its declaration and the baseline before 10:00."""
    case = sample_cases.copy("native", tmp_path_factory.mktemp("sensitive"))
    detect(case, load_rules(), sensitive=DECLARATION, baseline_until=BEFORE_INCIDENT)
    return case


@pytest.fixture(scope="module")
def findings(detected):
    con = connect(detected)
    try:
        return stored_findings(con)
    finally:
        con.close()


def test_first_time_pairs_are_the_attackers_reaches_into_the_declared_workloads(findings):
    first = [
        (f.actor, f.namespace, f.resource, f.name, f.level, _lines(f))
        for f in findings
        if f.rule_id == FIRST
    ]
    assert first == [
        # exec twice into a payments-api pod, then its database credentials (the list and get)
        (SA, "payments", "deployments", "payments-api", "high",
         ["audit.log:1120", "audit.log:1137", "audit.log:1167", "audit.log:1171"]),
        (SA, "kube-system", "secrets", "etcd-backup-s3", "high",
         ["audit.log:1167", "audit.log:1187"]),
        (SA, "payments", "secrets", "stripe-api-key", "high", ["audit.log:1167", "audit.log:1179"]),
    ]  # fmt: skip


def test_alices_log_reads_are_in_her_baseline_so_no_finding(findings):
    assert not [f for f in findings if f.rule_id == FIRST and f.actor == "alice@example.com"]


def test_exec_into_the_sensitive_pod_ranks_above_the_same_exec_elsewhere(findings):
    execs = {f.name: f for f in findings if f.rule_id == "k8s-pod-exec"}
    payments = execs["payments-api-5f6c8d-7hjkq"]
    shop = execs["storefront-7d4b9c-q9w2m"]
    assert (payments.level, payments.raised_from, payments.sensitive) == (
        "high", "medium", ["payments/Deployment/payments-api"]
    )  # fmt: skip
    assert (shop.level, shop.raised_from, shop.sensitive) == ("medium", None, [])
    assert findings.index(payments) < findings.index(shop)
    # at one level, the findings on sensitive workloads come first
    high = [f for f in findings if f.level == "high"]
    marked = [bool(f.sensitive) for f in high]
    assert marked == sorted(marked, reverse=True)
    assert high[0].sensitive and not high[-1].sensitive


def test_secret_reads_of_declared_secrets_are_raised_from_low(findings):
    gets = {f.name: (f.level, f.raised_from) for f in findings if f.rule_id == "k8s-secret-get"}
    assert gets == {
        "payments-db-credentials": ("medium", "low"),
        "stripe-api-key": ("medium", "low"),
        "etcd-backup-s3": ("medium", "low"),
        "bootstrap-token-9xk2lm": ("low", None),
    }


def test_the_case_stores_the_declaration_workloads_and_candidates(detected):
    con = connect(detected)
    try:
        kept = stored(con)
        targets = con.execute(
            "SELECT workload, resource, name, name_regex, priority FROM sensitive_targets "
            "WHERE workload IS NOT NULL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert kept.declaration == load_file(DECLARATION)
    assert kept.source == str(DECLARATION)
    assert kept.baseline_until == BEFORE_INCIDENT
    assert [(w.key, w.why) for w in kept.workloads] == [
        ("payments/Deployment/payments-api", [
            "its pods' labels match app=payments-api in payments",
            "its pods hold secret payments/payments-db-credentials, declared sensitive",
        ]),
        ("kube-system/Secret/etcd-backup-s3",
         ["secret declared sensitive (no recorded workload holds it)"]),
        ("payments/Secret/stripe-api-key",
         ["secret declared sensitive (no recorded workload holds it)"]),
    ]  # fmt: skip
    assert [(c.workload, c.reasons) for c in kept.candidates] == [
        ("kube-system/Pod/node-debugger", (
            "mounts a host path", "runs privileged", "uses the host PID", "uses the host network",
            "runs in kube-system",
        )),
    ]  # fmt: skip
    api = "payments/Deployment/payments-api"
    assert targets == [
        ("kube-system/Secret/etcd-backup-s3", "secrets", "etcd-backup-s3", None, 0),
        (api, "deployments", "payments-api", None, 0),
        (api, "pods", "payments-api-5f6c8d-7hjkq", None, 0),
        (api, "pods", "payments-api-5f6c8d-m4xzt", None, 0),
        (api, "pods", None, r"payments\-api-[a-z0-9]{1,10}-[a-z0-9]{5}", 1),
        (api, "replicasets", None, r"payments\-api-[a-z0-9]{1,10}", 1),
        (api, "secrets", "payments-db-credentials", None, 0),
        (api, "services", "payments-api", None, 0),
        ("payments/Secret/stripe-api-key", "secrets", "stripe-api-key", None, 0),
    ]


def test_without_a_baseline_every_pair_is_new_at_its_first_request(sample_cases, tmp_path):
    case = sample_cases.copy("native", tmp_path)
    rules = [r for r in load_rules() if r.id == FIRST]
    found = detect(case, rules, sensitive=DECLARATION)
    assert [(f.actor, f.resource, f.name, _lines(f)) for f in found] == [
        # helm lists the payments secrets at install: the first request in the case
        ("system:serviceaccount:ci:deployer", "deployments", "payments-api",
         ["audit-2026-03-14T09-30-00.000.log.gz:114"]),
        ("system:serviceaccount:ci:deployer", "secrets", "stripe-api-key",
         ["audit-2026-03-14T09-30-00.000.log.gz:114"]),
        # alice's three log reads: all of the new pair's requests are its evidence
        ("alice@example.com", "deployments", "payments-api",
         ["audit-2026-03-14T09-30-00.000.log.gz:222", "audit.log:122", "audit.log:672"]),
        (SA, "deployments", "payments-api",
         ["audit.log:1120", "audit.log:1137", "audit.log:1167", "audit.log:1171"]),
        (SA, "secrets", "etcd-backup-s3", ["audit.log:1167", "audit.log:1187"]),
        (SA, "secrets", "stripe-api-key", ["audit.log:1167", "audit.log:1179"]),
    ]  # fmt: skip


def test_a_later_detect_without_the_file_uses_what_the_case_stored(detected, tmp_path):
    case = Path(shutil.copy(detected, tmp_path / "again.duckdb"))
    rules = [r for r in load_rules() if r.id == FIRST]
    found = detect(case, rules, baseline_until=BEFORE_INCIDENT)
    assert [(f.resource, f.name, f.count) for f in found] == [
        ("deployments", "payments-api", 4),
        ("secrets", "etcd-backup-s3", 2),
        ("secrets", "stripe-api-key", 2),
    ]


def test_detect_finds_sensitive_yaml_beside_the_case(sample_cases, tmp_path):
    case = sample_cases.copy("native", tmp_path)
    shutil.copy(DECLARATION, tmp_path / "sensitive.yaml")
    result = CliRunner().invoke(
        main, ["detect", "--case", str(case), "--baseline-until", "2026-03-14T10:00:00Z",
               "--format", "jsonl"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [yaml.safe_load(line) for line in result.stdout.splitlines()]
    first = [(r["resource"], r["name"], r["sensitive"]) for r in rows if r["rule_id"] == FIRST]
    assert first[0] == (
        "deployments", "payments-api",
        ["kube-system/Secret/etcd-backup-s3", "payments/Deployment/payments-api",
         "payments/Secret/stripe-api-key"],
    )  # fmt: skip
    assert len(first) == 3


def test_a_bad_declaration_is_named_with_its_line_before_anything_runs(sample_cases, tmp_path):
    case = sample_cases.copy("native", tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("selectors:\n  - pci: true\n")
    for args in (["detect", "--case", str(case)], ["report", "01_triage", "--case", str(case),
                                                    "--out", str(tmp_path / "r")]):  # fmt: skip
        result = CliRunner().invoke(main, [*args, "--sensitive", str(bad)])
        assert result.exit_code == 1
        assert result.output == (
            f"Error: {bad}: line 2: selectors entry 1: the value of pci must be text: quote it "
            "('true' reads as bool)\n"
        )
    assert not (tmp_path / "r").exists()


def test_the_triage_section_shows_pairs_candidates_and_the_fence(detected):
    con = connect(detected)
    try:
        view = sensitive_view(con, detected)
    finally:
        con.close()
    assert [(r["workload"], r["identity"], r["access"], r["first_time"]) for r in view.touched] == [
        ("kube-system/Secret/etcd-backup-s3", SA, "read", True),
        ("payments/Deployment/payments-api", "alice@example.com", "logs", False),
        ("payments/Deployment/payments-api", SA, "exec", True),
        ("payments/Deployment/payments-api", SA, "read", True),
        ("payments/Secret/stripe-api-key", SA, "read", True),
    ]
    page = sensitive_html(view)
    assert page.count("FIRST TIME") == 8  # four pairs, in both tables
    assert page.count("in baseline") == 1
    assert "<h3>Candidates to confirm</h3>" in page
    assert "<pre>workloads:\n- kube-system/Pod/node-debugger\n</pre>" in page
    assert page.count("<h4>") == 3  # a fence per workload (the two secrets say why none)
    assert "kforensics-fence-payments-api" in page
    assert view.baseline == "this case's requests before 2026-03-14T10:00:00+00:00"


def test_remediate_writes_the_fences_beside_the_containment(detected, tmp_path):
    case = Path(shutil.copy(detected, tmp_path / "c.duckdb"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["remediate", "--case", str(case), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == [
        str(out / "fences" / "fences.yaml"), str(out / "fences" / "FENCES.md")
    ]  # fmt: skip
    policies = list(yaml.safe_load_all((out / "fences" / "fences.yaml").read_text()))
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies] == [
        ("payments", "kforensics-fence-payments-api")
    ]
    froms = policies[0]["spec"]["ingress"][0]["from"]
    assert [f["namespaceSelector"]["matchLabels"] for f in froms] == [
        {"kubernetes.io/metadata.name": "monitoring"},
        {"kubernetes.io/metadata.name": "payments"},
    ]  # not shop, which the attacker relabelled trust=high at 10:49
    md = (out / "fences" / "FENCES.md").read_text()
    assert md.startswith("# Fences around the sensitive workloads\n")
    assert "- unknown: an audit log records no packets" in md


def test_sensitive_propose_prints_the_candidates_as_yaml(detected):
    result = CliRunner().invoke(main, ["sensitive", "--case", str(detected), "--propose"])
    assert result.exit_code == 0
    assert result.output == "workloads:\n- kube-system/Pod/node-debugger\n"


def test_sensitive_lists_first_time_pairs(detected):
    result = CliRunner().invoke(main, ["sensitive", "--case", str(detected)])
    assert result.exit_code == 0, result.output
    assert result.output.count("FIRST TIME") == 4
    assert result.output.splitlines()[0] == (
        f"declared in {DECLARATION} (stored by detect at "
        + result.output.split("stored by detect at ")[1].split(")")[0]
        + "); baseline: this case's requests before 2026-03-14T10:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{level: medium}", "sensitive.level medium must be above the rule's level medium"),
        ("{level: low}", "sensitive.level low must be above the rule's level medium"),
        ("{level: severe}", "sensitive takes {level: one of info, low, medium, high, critical}"),
        ("high", "sensitive takes {level: one of info, low, medium, high, critical}"),
        ("{level: high, also: 1}", "sensitive takes {level: one of info, low, medium, high, "
         "critical}"),
    ],
)  # fmt: skip
def test_a_bad_sensitive_level_in_a_rule_is_refused(tmp_path, value, message):
    source = Path(__file__).parent.parent / "kforensics/detection/rules/k8s-pod-exec.yaml"
    text = source.read_text().replace("sensitive: {level: high}", f"sensitive: {value}")
    path = tmp_path / "k8s-pod-exec.yaml"
    path.write_text(text)
    with pytest.raises(RuleError) as err:
        parse_rule(path)
    assert str(err.value) == f"{path}: {message}"


def test_the_first_access_rules_given_targets_are_what_detect_resolves():
    rule = next(r for r in load_rules() if r.id == FIRST)
    decl = load_text(
        "workloads: [payments/StatefulSet/payments-db]\n"
        "secrets: [payments/payments-db-credentials]\n"
    )
    inv = Inventory(at=None)
    rows = target_rows(resolve(decl, inv), inv, decl.namespaces)
    given = [
        {"workload": None, "resource": None, "name": None, "name_regex": None, "priority": 0, **r}
        for r in rule.tests["given"]["sensitive_targets"]
    ]
    assert len(rows) == len(given) == 3
    assert {frozenset(r.items()) for r in rows} == {frozenset(r.items()) for r in given}
