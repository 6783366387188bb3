"""Remediation of the sample incident: golden YAML, valid objects, a simulation that checks out."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from click.testing import CliRunner

from kforensics import load
from kforensics.cli import main
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect, load_exceptions
from kforensics.netpol.remediation import remediate_case
from tests.conftest import ROOT, SAMPLES

GOLDEN = ROOT / "tests" / "golden" / "sample-remediation"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    case = tmp_path_factory.mktemp("case") / "case.duckdb"
    cwd = os.getcwd()
    os.chdir(ROOT)  # evidence cites the path as given to load: relative, the same on any machine
    try:
        load(case, [SAMPLES.relative_to(ROOT) / "native"])
    finally:
        os.chdir(cwd)
    detect(case, load_rules(), exceptions=load_exceptions(SAMPLES / "known_false_positives.yaml"))
    out = tmp_path_factory.mktemp("out")
    return case, out, remediate_case(case, out)


def test_sample_remediation_matches_the_reviewed_golden_yaml(sample):
    _, out, (paths, *_rest) = sample
    produced = sorted(p.name for p in paths if p.suffix == ".yaml")
    if os.environ.get("KFORENSICS_UPDATE_GOLDEN"):  # then review the diff before committing
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        for name in produced:
            shutil.copy(out / name, GOLDEN / name)
    assert produced == sorted(p.name for p in GOLDEN.glob("*.yaml"))
    for name in produced:
        assert (out / name).read_text() == (GOLDEN / name).read_text(), name


def test_every_object_is_valid_and_cites_its_evidence(sample):
    _, out, (paths, remedies, _sim, errors) = sample
    assert errors == []
    kinds = {r.kind for r in remedies}
    assert {"quarantine", "restore", "pin-namespaces", "egress-block"} <= kinds
    for path in paths:
        if path.suffix != ".yaml":
            continue
        for obj in yaml.safe_load_all(path.read_text()):
            meta = obj["metadata"]
            if "kforensics.io/remedy" not in meta["labels"]:
                continue
            evidence = meta["annotations"]["kforensics.io/evidence"]
            assert evidence.startswith("data/samples/native/audit.log:")
            assert meta["annotations"]["kforensics.io/rationale"]


def test_restored_policy_is_the_one_the_attacker_deleted(sample):
    _, out, _ = sample
    (restored,) = yaml.safe_load_all((out / "02-restore-payments-default-deny.yaml").read_text())
    assert restored["metadata"]["name"] == "default-deny"
    assert restored["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert "uid" not in restored["metadata"] and "resourceVersion" not in restored["metadata"]


def test_trusted_namespaces_are_pinned_to_those_trusted_before_the_relabel(sample):
    _, out, _ = sample
    (pinned,) = yaml.safe_load_all((out / "03-pin-payments-allow-from-trusted.yaml").read_text())
    peer = pinned["spec"]["ingress"][0]["from"][0]
    assert peer == {"namespaceSelector": {"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "In",
        "values": ["monitoring", "payments"]}]}}  # fmt: skip


def test_quarantine_is_checked_and_its_defeat_is_fixed(sample):
    _, out, (_paths, remedies, sim, _errors) = sample
    (q,) = [r for r in remedies if r.kind == "quarantine"]
    assert q.quarantine == [("shop", "storefront-7d4b9c-x2k8p")]
    assert q.commands == [
        "kubectl label pod --namespace shop storefront-7d4b9c-x2k8p "
        "kforensics.io/quarantine=true --overwrite"
    ]
    # shop/allow-dns selects every pod in shop and allows DNS egress: the quarantine is
    # additive-defeated, said so, and fixed by narrowing allow-dns.
    assert any("defeated by NetworkPolicy shop/allow-dns" in p for p in sim.problems)
    assert [f["metadata"]["name"] for f in sim.fixes] == ["allow-dns"]
    assert not any("still has" in p for p in sim.problems)
    # The storefront pods are already egress-isolated by shop's policies: no policy that could
    # only allow more.
    (egress,) = [r for r in remedies if r.kind == "egress-block"]
    assert egress.objects == [] and "already egress-isolated" in egress.notes[0]
    report = (out / "REPORT.md").read_text()
    assert "payments/payments-api-5f6c8d[ReplicaSet] => 0.0.0.0-255.255.255.255[External]" in report


def test_cli_netpol_writes_and_prints_the_files(sample, tmp_path):
    case, _, _ = sample
    out = CliRunner().invoke(main, ["netpol", "--case", str(case), "--out", str(tmp_path / "np")])
    assert out.exit_code == 0, out.output
    assert str(tmp_path / "np" / "REPORT.md") in out.output
    assert (tmp_path / "np" / "apply.sh").read_text().startswith("#!/bin/sh")


def test_cli_connlist_prints_netpol_analyzer_format(tmp_path):
    objs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "n",
         "labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "n",
         "labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "deny", "namespace": "n"},
         "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]}},
    ]  # fmt: skip
    (tmp_path / "objs.yaml").write_text(yaml.safe_dump_all(objs))
    out = CliRunner().invoke(main, ["netpol", "connlist", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        "0.0.0.0-255.255.255.255[External] => n/a[Pod] : All Connections",
        "n/a[Pod] => 0.0.0.0-255.255.255.255[External] : All Connections",
        "n/b[Pod] => 0.0.0.0-255.255.255.255[External] : All Connections",
        "n/b[Pod] => n/a[Pod] : All Connections",
    ]


def test_hostile_names_never_reach_objects_or_commands(tmp_path):
    from datetime import UTC, datetime

    from kforensics.detection.run import Finding
    from kforensics.netpol.inventory import Inventory
    from kforensics.netpol.plan import plan

    evil_ns = "shop;rm -rf /"
    inv = Inventory(at=None)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p$(reboot)", "namespace": "shop", "labels": {"app": "x"}},
           "spec": {"serviceAccountName": "sa"}, "status": {"podIP": "10.0.0.9"}}  # fmt: skip
    inv.objects[("Pod", "shop", "p$(reboot)")] = pod
    t = datetime(2026, 1, 1, tzinfo=UTC)
    findings = [
        Finding("f1", "k8s-pod-exec", "t", "high", [], [], t, t,
                "system:serviceaccount:shop:sa", ["10.0.0.9"], "shop", "pods", "x", 1,
                [{"event_id": "e", "audit_id": "a\\nb", "source_file": "f", "source_line": 1}]),
        Finding("f2", "k8s-pod-exec", "t", "high", [], [], t, t,
                f"system:serviceaccount:{evil_ns}:sa", [], evil_ns, "pods", "x", 1, []),
    ]  # fmt: skip
    remedies = plan(findings, lambda _t: inv)
    assert all(r.objects[0]["metadata"]["namespace"] == "shop" for r in remedies if r.objects)
    commands = [c for r in remedies for c in r.commands]
    assert commands == []  # the pod's name is not a valid name: labelled by hand, said so
    assert any("not a valid name" in n for r in remedies for n in r.notes)


def test_egress_block_for_pods_not_yet_isolated_keeps_dns_and_cuts_metadata():
    from datetime import UTC, datetime

    from kforensics.detection.run import Finding
    from kforensics.netpol.inventory import Inventory
    from kforensics.netpol.plan import plan
    from kforensics.netpol.remediation import simulate, validate

    inv = Inventory(at=None)
    for name, ip in (("web-1", "10.244.1.5"), ("web-2", "10.244.2.6")):
        inv.objects[("Pod", "app", name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "app",
                         "labels": {"app": "web", "pod-template-hash": name}},
            "spec": {"serviceAccountName": "web", "containers": [{"name": "c", "image": "x"}]},
            "status": {"podIP": ip},
        }  # fmt: skip
    inv.objects[("Namespace", "", "app")] = {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "app"}}  # fmt: skip
    t = datetime(2026, 1, 1, tzinfo=UTC)
    evidence = [{"event_id": "e", "audit_id": "a", "source_file": "f.log", "source_line": 7}]
    finding = Finding("f", "k8s-exec-cloud-metadata", "t", "high", [], [], t, t,
                      "system:serviceaccount:app:web", ["198.51.100.77", "10.244.1.5"],
                      "app", "pods", "web-1", 1, evidence)  # fmt: skip
    remedies = plan([finding], lambda _t: inv)
    (egress,) = [r for r in remedies if r.kind == "egress-block"]
    (policy,) = egress.objects
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app": "web"}
    rules = policy["spec"]["egress"]
    assert rules[0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert rules[2]["to"][0]["ipBlock"] == {
        "cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "198.51.100.77/32"]
    }  # fmt: skip
    assert "API server address unknown" in egress.notes[0]
    sim = simulate(inv, remedies)
    assert validate(remedies, sim) == []
    after = {(c.src, c.dst): str(c.after) for c in sim.changes}
    web = "app/web-2[Pod]"  # web-1 is quarantined and stands alone
    assert after[(web, "169.254.169.254-169.254.169.254[External]")] == "No Connections"
    assert after[(web, "198.51.100.77-198.51.100.77[External]")] == "No Connections"
    quarantined = "app/web-1[Pod]"
    assert not any(quarantined in (s, d) and a != "No Connections" for (s, d), a in after.items())


def _finding(namespace: str, actor: str | None = None, ips: tuple[str, ...] = ()):
    from datetime import UTC, datetime

    from kforensics.detection.run import Finding

    t = datetime(2026, 1, 1, tzinfo=UTC)
    evidence = [{"event_id": "e", "audit_id": "a", "source_file": "f.log", "source_line": 3}]
    return Finding("f", "k8s-pod-exec", "t", "high", [], [], t, t, actor, list(ips),
                   namespace, "pods", "x", 1, evidence)  # fmt: skip


def _inventory(*objects: dict):
    from kforensics.netpol.inventory import Inventory

    inv = Inventory(at=None)
    for obj in objects:
        meta = obj["metadata"]
        inv.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
    return inv


def _netpol(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "app"}, "spec": spec}  # fmt: skip


APP_NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}


def test_default_deny_reads_policy_types_as_the_api_server_defaults_them():
    from kforensics.netpol.plan import default_deny

    # No policyTypes and egress rules: the server stores [Ingress, Egress], so this policy
    # already isolates every pod both ways (the old copy read [Ingress] and proposed a deny).
    both = _netpol("allow-some", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}],
                                  "egress": [{"to": [{"namespaceSelector": {}}]}]})  # fmt: skip
    assert default_deny([_finding("app")], _inventory(APP_NS, both), []) == []
    # Without egress rules it isolates ingress only: a default-deny is still proposed.
    ingress_only = _netpol("allow-some", {"podSelector": {}, "egress": []})
    (remedy,) = default_deny([_finding("app")], _inventory(APP_NS, ingress_only), [])
    assert remedy.name == "default-deny-app"


def test_a_policy_allows_only_in_the_directions_it_is_typed_for():
    from kforensics.netpol.plan import plan
    from kforensics.netpol.remediation import simulate

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-1", "namespace": "app", "labels": {"app": "web"}},
           "spec": {"serviceAccountName": "web", "containers": [{"name": "c", "image": "x"}]},
           "status": {"podIP": "10.244.1.5"}}  # fmt: skip
    # Typed Egress only, with no egress rules: its ingress rule is ignored, it allows nothing,
    # so it cannot defeat the quarantine.
    ignored = _netpol("egress-only", {"podSelector": {}, "policyTypes": ["Egress"],
                                      "ingress": [{}]})  # fmt: skip
    allows = _netpol("allow-in", {"podSelector": {}, "ingress": [{}]})
    finding = _finding("app", "system:serviceaccount:app:web", ("10.244.1.5",))
    for policies, defeated in (([ignored], []), ([ignored, allows], ["allow-in"])):
        inv = _inventory(APP_NS, pod, *policies)
        remedies = plan([finding], lambda _t, inv=inv: inv)
        sim = simulate(inv, [r for r in remedies if r.kind == "quarantine"])
        assert [f["metadata"]["name"] for f in sim.fixes] == defeated


def test_remediation_html_summarises_and_escapes(sample):
    from dataclasses import replace

    from kforensics.netpol.summary import remediation_html

    files, remedies, sim, errors = sample[2]
    evil = replace(remedies[0], rationale="<script>alert(1)</script>")
    page = remediation_html(files, [evil], sim, ["bad <b>"])
    assert "<h4>Remedies (1)</h4>" in page
    assert f"<h4>Simulation: {len(sim.changes)} connections change</h4>" in page
    assert f"<h4>Files written ({len(files)})</h4>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "<td>bad &lt;b&gt;</td>" in page


def _policy_log(tmp_path, body_name: str, body_namespace: str):
    """A log: alice creates shop/allow-dns (with the body given), an attacker deletes it."""
    from tests.conftest import event, jsonl

    ref = {"resource": "networkpolicies", "namespace": "shop", "name": "allow-dns",
           "apiGroup": "networking.k8s.io", "apiVersion": "v1"}  # fmt: skip
    uri = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": body_name, "namespace": body_namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}  # fmt: skip
    created = event("c1", verb="create", level="RequestResponse", objectRef=ref,
                    requestURI=uri, requestObject=body, responseObject=body,
                    responseStatus={"metadata": {}, "code": 201})  # fmt: skip
    deleted = event("d1", verb="delete", objectRef=ref, requestURI=f"{uri}/allow-dns",
                    user={"username": "system:serviceaccount:shop:storefront"},
                    requestReceivedTimestamp="2026-03-14T11:00:00.000001Z",
                    stageTimestamp="2026-03-14T11:00:00.002001Z")  # fmt: skip
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(created, deleted))
    case = tmp_path / "case.duckdb"
    load(case, [log], progress=False)
    findings = detect(case, load_rules())
    out = tmp_path / "out"
    return {f.rule_id for f in findings}, out, remediate_case(case, out)


def test_a_body_naming_another_policy_is_a_finding_never_a_restore(tmp_path):
    rules, out, (paths, remedies, _sim, errors) = _policy_log(
        tmp_path, "kube-dns-deny-all", "kube-system"
    )
    assert "k8s-object-body-names-another-object" in rules
    assert errors == []
    (restore,) = [r for r in remedies if r.kind == "restore"]
    assert restore.objects == [] and restore.notes == [
        "shop/allow-dns: its recorded state is not a policy the API server accepts (its body "
        f"logged at {tmp_path / 'audit.log'}:1 names kube-system/kube-dns-deny-all); restore it "
        "from version control"
    ]
    written = [o for p in paths if p.suffix == ".yaml" for o in yaml.safe_load_all(p.read_text())]
    assert not [o for o in written if o["metadata"]["namespace"] == "kube-system"]
    report = (out / "REPORT.md").read_text()
    assert "kube-dns-deny-all" not in (out / "apply.sh").read_text()
    log = str(tmp_path / "audit.log").replace("_", "\\_")  # REPORT.md escapes Markdown
    assert (
        f"- NetworkPolicy shop/allow-dns: the body logged at {log}:1 names "
        "kube-system/kube-dns-deny-all; not used (finding k8s-object-body-names-another-object)\n"
    ) in report
    assert "- note: shop/allow-dns: its recorded state is not a policy the API server" in report


def test_the_same_policy_logged_truthfully_is_restored_under_its_request_name(tmp_path):
    rules, out, (paths, remedies, _sim, errors) = _policy_log(tmp_path, "allow-dns", "")
    assert "k8s-object-body-names-another-object" not in rules
    (restore,) = [r for r in remedies if r.kind == "restore"]
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in restore.objects] == [
        ("shop", "allow-dns")
    ]
    assert errors == []
