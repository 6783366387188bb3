"""NetworkPolicy remedies: hostile names, egress blocks, policyTypes, crafted restores."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from kforensics import load
from kforensics.cli import main
from kforensics.contain.remediate import remediate_case
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden" / "sample-remediation"


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
    rules, out, result = _policy_log(tmp_path, "kube-dns-deny-all", "kube-system")
    assert "k8s-object-body-names-another-object" in rules
    assert result.errors == []
    (restore,) = [a for a in result.plan.actions if a.kind == "restore"]
    assert restore.objects == [] and restore.notes == [
        "shop/allow-dns: its recorded state is not a policy the API server accepts (its body "
        f"logged at {tmp_path / 'audit.log'}:1 names kube-system/kube-dns-deny-all); restore it "
        "from version control"
    ]
    written = [
        o for p in result.paths if p.suffix == ".yaml" for o in yaml.safe_load_all(p.read_text())
    ]
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
    rules, out, result = _policy_log(tmp_path, "allow-dns", "")
    assert "k8s-object-body-names-another-object" not in rules
    (restore,) = [a for a in result.plan.actions if a.kind == "restore"]
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in restore.objects] == [
        ("shop", "allow-dns")
    ]
    assert result.errors == []
