"""The containment of the sample incident: every step, golden files, the record, the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from kforensics import load
from kforensics.case import connect
from kforensics.cli import main
from kforensics.contain.remediate import remediate_case
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect, load_exceptions
from tests.conftest import ROOT, SAMPLES

GOLDEN = ROOT / "tests" / "golden" / "sample-containment"
ATTACKER = "system:serviceaccount:shop:storefront"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    case = tmp_path_factory.mktemp("case") / "case.duckdb"
    cwd = os.getcwd()
    os.chdir(ROOT)  # evidence cites the path as given to load: relative, the same on any machine
    try:
        load(case, [SAMPLES.relative_to(ROOT) / "native"], progress=False)
    finally:
        os.chdir(cwd)
    detect(case, load_rules(), exceptions=load_exceptions(SAMPLES / "known_false_positives.yaml"))
    out = tmp_path_factory.mktemp("out")
    return case, out, remediate_case(case, out)


def _steps(result) -> list[tuple[str, str, str]]:
    return [(a.step, a.kind, a.name) for a in result.plan.actions]


def test_sample_plan_matches_the_reviewed_golden_files(sample):
    _, out, result = sample
    produced = sorted(p.name for p in result.paths if p.name != "REPORT.md")
    if os.environ.get("KFORENSICS_UPDATE_GOLDEN"):  # then review the diff before committing
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        for name in produced:
            shutil.copy(out / name, GOLDEN / name)
    assert produced == sorted(p.name for p in GOLDEN.iterdir())
    for name in produced:
        assert (out / name).read_text() == (GOLDEN / name).read_text(), name


def test_sample_plan_runs_in_the_order_a_responder_works(sample):
    _, _, result = sample
    assert result.plan.identities == [ATTACKER]
    assert _steps(result) == [
        ("contain", "quarantine", "quarantine-kube-system"),
        ("contain", "quarantine", "quarantine-payments"),
        ("contain", "quarantine", "quarantine-shop"),
        ("contain", "restore", "restore-payments-default-deny"),
        ("contain", "pin-namespaces", "pin-payments-allow-from-trusted"),
        ("contain", "egress-block", "egress-shop-storefront"),
        ("contain", "fix-quarantine-defeats", "fix-quarantine-defeats"),
        ("cut-access", "revoke-binding", "revoke-storefront-admin"),
        ("cut-access", "revoke-binding", "revoke-storefront-ops"),
        ("cut-access", "contain-identity", f"contain-{ATTACKER}"),
        ("evict", "delete-workload", "delete-pod-node-debugger"),
        ("evict", "cordon-node", "cordon-ip-10-0-1-12"),
        ("rotate", "rotate-secret", "rotate-payments-payments-db-credentials"),
        ("rotate", "rotate-secret", "rotate-payments-stripe-api-key"),
        ("rotate", "rotate-secret", "rotate-kube-system-etcd-backup-s3"),
        ("rotate", "rotate-bootstrap-token", "rotate-kube-system-bootstrap-token-9xk2lm"),
        ("rotate", "rotate-secret", "rotate-monitoring-sh.helm.release.v1.prometheus.v1"),
        ("rotate", "rotate-secret", "rotate-payments-sh.helm.release.v1.payments.v1"),
        ("rotate", "rotate-secret", "rotate-shop-sh.helm.release.v1.storefront.v1"),
        ("rotate", "rotate-token", "rotate-token-shop-storefront-7d4b9c-x2k8p"),
        ("rotate", "rotate-token", "rotate-token-shop-storefront-7d4b9c-q9w2m"),
        ("rotate", "rotate-token", "rotate-token-payments-payments-api-5f6c8d-7hjkq"),
        ("rotate", "rotate-cloud-credentials", "rotate-cloud-payments-payments-api-5f6c8d-7hjkq"),
        ("rotate", "rotate-node-credentials", "rotate-node-ip-10-0-1-12"),
        ("watch", "watch", "watch"),
    ]


def test_every_pod_the_attacker_used_or_entered_is_quarantined(sample):
    _, _, result = sample
    quarantined = sorted(p for a in result.plan.actions for p in a.quarantine)
    assert quarantined == [
        ("payments", "payments-api-5f6c8d-7hjkq"),  # exec'd into, its token read
        ("shop", "storefront-7d4b9c-q9w2m"),  # exec'd into
        ("shop", "storefront-7d4b9c-x2k8p"),  # its token made the requests
    ]
    (kube_system,) = [a for a in result.plan.actions if a.name == "quarantine-kube-system"]
    assert kube_system.objects == []
    assert kube_system.notes == [
        f"pod kube-system/node-debugger (created, exec'd into by {ATTACKER}) uses the host "
        "network: no NetworkPolicy contains it; it is evicted and its node cordoned (step evict)"
    ]


def test_access_eviction_and_rotation_commands(sample):
    _, _, result = sample
    commands = {s: [c for a in acts for c in a.commands] for s, acts in result.plan.by_step()}
    assert commands["cut-access"] == [
        "kubectl delete clusterrolebinding storefront-admin --ignore-not-found",
        "kubectl delete clusterrolebinding storefront-ops --ignore-not-found",
    ]
    assert commands["evict"] == [
        "kubectl delete pod node-debugger --ignore-not-found --namespace kube-system",
        "kubectl cordon ip-10-0-1-12",
        "# once its evidence is captured: kubectl drain ip-10-0-1-12 --ignore-daemonsets "
        "--delete-emptydir-data",
    ]
    assert commands["rotate"] == [
        "kubectl delete secret bootstrap-token-9xk2lm --ignore-not-found --namespace kube-system",
        "# once its evidence is captured: kubectl delete pod storefront-7d4b9c-x2k8p "
        "--ignore-not-found --namespace shop",
        "# once its evidence is captured: kubectl delete pod storefront-7d4b9c-q9w2m "
        "--ignore-not-found --namespace shop",
        "# once its evidence is captured: kubectl delete pod payments-api-5f6c8d-7hjkq "
        "--ignore-not-found --namespace payments",
    ]


def test_each_step_cites_its_own_evidence(sample):
    _, _, result = sample
    by_name = {a.name: a for a in result.plan.actions}
    assert by_name["revoke-storefront-admin"].cited() == ["data/samples/native/audit.log:1239"]
    assert by_name["rotate-payments-stripe-api-key"].cited() == [
        "data/samples/native/audit.log:1179"
    ]
    assert by_name["delete-pod-node-debugger"].cited() == ["data/samples/native/audit.log:1285"]
    # helm owns the binding the attacker used: the next upgrade brings it back
    assert by_name["revoke-storefront-ops"].notes == [
        "ClusterRoleBinding storefront-ops is managed by Helm release storefront: the next "
        "`helm upgrade` (or a CI deploy) puts the chart's version back: change the chart's "
        "templates or values"
    ]
    # the attacker's service account did nothing before the incident: it needs no access
    (note,) = by_name[f"contain-{ATTACKER}"].notes
    assert note.startswith(f"'{ATTACKER}' made no successful API request before 2026-03-14T10:28")


def test_the_plan_is_recorded_for_the_watch(sample):
    case, _, result = sample
    with connect(case) as con:
        rows = con.execute(
            "SELECT DISTINCT remediation_id, action, kind, namespace, name, identity "
            "FROM remediations ORDER BY ALL"
        ).fetchall()
        effective = con.execute("SELECT DISTINCT effective_from FROM remediations").fetchall()
        last = con.execute("SELECT max(ts) FROM events").fetchall()
    rid = result.remediation_id
    assert effective == last
    assert rows == [
        (rid, "contain-identity", None, None, None, ATTACKER),
        (rid, "cordon-node", "Node", None, "ip-10-0-1-12", None),
        (rid, "delete-workload", "Pod", "kube-system", "node-debugger", None),
        (rid, "policy", "NetworkPolicy", "payments", "allow-from-trusted", None),
        (rid, "policy", "NetworkPolicy", "payments", "default-deny", None),
        (rid, "policy", "NetworkPolicy", "payments", "kforensics-quarantine", None),
        (rid, "policy", "NetworkPolicy", "shop", "allow-dns", None),
        (rid, "policy", "NetworkPolicy", "shop", "kforensics-quarantine", None),
        (rid, "quarantine-pod", "Pod", "payments", "payments-api-5f6c8d-7hjkq", None),
        (rid, "quarantine-pod", "Pod", "shop", "storefront-7d4b9c-q9w2m", None),
        (rid, "quarantine-pod", "Pod", "shop", "storefront-7d4b9c-x2k8p", None),
        (rid, "revoke-binding", "ClusterRoleBinding", None, "storefront-admin", ATTACKER),
        (rid, "revoke-binding", "ClusterRoleBinding", None, "storefront-ops", ATTACKER),
        (rid, "rotate-bootstrap-token", "Secret", "kube-system", "bootstrap-token-9xk2lm",
         "system:bootstrap:9xk2lm"),
        (rid, "rotate-node-credentials", "Node", None, "ip-10-0-1-12", "system:node:ip-10-0-1-12"),
        (rid, "rotate-secret", "Secret", "kube-system", "etcd-backup-s3", None),
        (rid, "rotate-secret", "Secret", "monitoring", "sh.helm.release.v1.prometheus.v1", None),
        (rid, "rotate-secret", "Secret", "payments", "payments-db-credentials", None),
        (rid, "rotate-secret", "Secret", "payments", "sh.helm.release.v1.payments.v1", None),
        (rid, "rotate-secret", "Secret", "payments", "stripe-api-key", None),
        (rid, "rotate-secret", "Secret", "shop", "sh.helm.release.v1.storefront.v1", None),
        (rid, "rotate-token", "ServiceAccount", "payments", "payments-api",
         "system:serviceaccount:payments:payments-api"),
        (rid, "rotate-token", "ServiceAccount", "shop", "storefront", ATTACKER),
    ]  # fmt: skip


def test_apply_sh_is_valid_shell_and_runs_steps_by_name(sample, tmp_path):
    _, out, _ = sample
    script = out / "apply.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    # a fake kubectl on PATH records what each step would run
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text('#!/bin/sh\necho "kubectl $*" >> "$KLOG"\n')
    (bin_dir / "kubectl").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KLOG": str(tmp_path / "k")}
    run = subprocess.run(["sh", str(script), "cut-access"], env=env, capture_output=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "k").read_text().splitlines() == [
        "kubectl delete clusterrolebinding storefront-admin --ignore-not-found",
        "kubectl delete clusterrolebinding storefront-ops --ignore-not-found",
    ]
    bad = subprocess.run(["sh", str(script), "nuke"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr == "unknown step: nuke (steps: contain cut-access evict rotate)\n"


def test_report_md_walks_the_steps(sample):
    _, out, result = sample
    report = (out / "REPORT.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings == [
        "## 1. Contain the network (contain)",
        "## 2. Cut the access (cut-access)",
        "## 3. Evict what the attacker placed (evict)",
        "## 4. Rotate what it could have taken (rotate)",
        "## 5. Watch for the containment being undone (watch)",
        "## Recorded for the watch",
        "## Validation",
        "## Simulation of the NetworkPolicies",
        "## What the log could not tell",
    ]
    assert f"remediation {result.remediation_id}: 25 row(s)" in report
    assert "- contained identities: system:serviceaccount:shop:storefront\n" in report


def test_every_written_object_is_valid_and_cites_its_evidence(sample):
    _, out, result = sample
    assert result.errors == [] and not (out / "invalid").exists()
    for path in result.paths:
        if path.suffix != ".yaml":
            continue
        for obj in yaml.safe_load_all(path.read_text()):
            meta = obj["metadata"]
            if "kforensics.io/remedy" in meta["labels"]:
                assert meta["annotations"]["kforensics.io/evidence"].startswith(
                    "data/samples/native/audit.log:"
                )


def test_cli_remediate_and_the_old_name_write_the_same_plan(sample, tmp_path):
    case, _, _ = sample
    outs = []
    for command in ("remediate", "netpol"):
        out = tmp_path / command
        run = CliRunner().invoke(
            main, [command, "--case", str(case), "--out", str(out), "--no-record"]
        )
        assert run.exit_code == 0, run.output
        assert run.output.splitlines()[:2] == [
            "contain:",
            "  quarantine               quarantine-kube-system",
        ]
        assert str(out / "REPORT.md") in run.output
        outs.append(sorted(p.name for p in out.iterdir()))
    assert outs[0] == outs[1]
    with connect(case) as con:  # --no-record: only the fixture's own run is recorded
        assert con.execute(
            "SELECT count(DISTINCT remediation_id) FROM remediations"
        ).fetchall() == [(1,)]


def test_remediation_html_summarises_and_escapes(sample):
    from dataclasses import replace

    from kforensics.contain.summary import remediation_html

    _, _, result = sample
    evil = replace(result.plan.actions[0], rationale="<script>alert(1)</script>")
    shown = replace(result, plan=replace(result.plan, actions=[evil]))
    page = remediation_html(shown)
    assert "<h4>Containment plan (1 actions)</h4>" in page
    assert f"<h4>Files written ({len(result.paths)})</h4>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert f"remediation {result.remediation_id}: watched by kforensics detect" in page


def test_footprint_investigations_show_what_the_attacker_touched(sample):
    from kforensics.investigate.canned import run_query

    case, _, _ = sample
    with connect(case) as con:
        pods = run_query(con, "footprint_pods", {"identity": ATTACKER}).to_pylist()
        creds = run_query(con, "footprint_credentials", {"identity": ATTACKER}).to_pylist()
        objects = run_query(con, "footprint_objects", {"identity": ATTACKER}).to_pylist()
    assert [(p["namespace"], p["pod"], p["how"], p["requests"]) for p in pods] == [
        ("shop", "storefront-7d4b9c-x2k8p", ["its token used"], 48),
        ("shop", "storefront-7d4b9c-q9w2m", ["exec"], 1),
        ("payments", "payments-api-5f6c8d-7hjkq", ["exec"], 2),
        ("kube-system", "node-debugger", ["created", "exec"], 2),
    ]
    assert [(c["what"], c["namespace"], c["name"], c["command"]) for c in creds] == [
        ("exec-read", "payments", "payments-api-5f6c8d-7hjkq",
         "cat /var/run/secrets/kubernetes.io/serviceaccount/token"),
        ("exec-read", "payments", "payments-api-5f6c8d-7hjkq",
         "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        ("secret", None, None, None),
        ("secret", "payments", "payments-db-credentials", None),
        ("secret", "payments", "stripe-api-key", None),
        ("secret", "kube-system", "etcd-backup-s3", None),
        ("secret", "kube-system", "bootstrap-token-9xk2lm", None),
        ("exec-read", "kube-system", "node-debugger",
         "chroot /host sh -c cat /etc/kubernetes/kubelet.conf; crictl ps"),
    ]  # fmt: skip
    assert [(o["resource"], o["namespace"], o["name"], o["verbs"]) for o in objects] == [
        ("selfsubjectrulesreviews", None, None, ["create"]),
        ("selfsubjectaccessreviews", None, None, ["create"]),
        ("clusterrolebindings", None, "storefront-admin", ["create"]),
        ("pods", "kube-system", "node-debugger", ["create"]),
        ("networkpolicies", "payments", "default-deny", ["delete"]),
        ("namespaces", "shop", "shop", ["patch"]),
        ("events", "shop", None, ["deletecollection"]),
        ("events", "kube-system", None, ["deletecollection"]),
    ]


def test_a_plan_that_cannot_be_recorded_is_written_and_exits_1(sample, tmp_path):
    import duckdb

    case, _, _ = sample
    out = tmp_path / "busy"
    with duckdb.connect(str(case), read_only=True):  # a notebook holding the case
        run = CliRunner().invoke(main, ["remediate", "--case", str(case), "--out", str(out)])
    assert run.exit_code == 1
    assert "not recorded, so not watched: " in run.output
    assert "the case is open read-only elsewhere in this process (a notebook kernel?)" in run.output
    assert "NOT RECORDED: " in (out / "REPORT.md").read_text()
    assert (out / "apply.sh").exists()
