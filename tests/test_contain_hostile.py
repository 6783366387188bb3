"""Hostile log values against the containment plan: REPORT.md, apply.sh, the YAML, the rows.

Every name in an audit log is the attacker's. Cases are built with the real loader from native
events in which an attacker identity execs into pods, binds itself to cluster-admin, starts a
privileged hostNetwork pod on a node, reads secrets and deletes a NetworkPolicy; the names carry
Markdown, HTML, shell syntax, control characters, flags and credentials. The plan must show them
inert, never run them, never aim at another object, never write a credential, never crash.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

import kforensics
from kforensics.case import connect
from kforensics.cli import main
from kforensics.contain.remediate import Remediation, remediate_case
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from tests.conftest import event, jsonl

EVIL = "system:serviceaccount:shop:evil"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJldmlsIn0.c2lnbmF0dXJlAAAA"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----"
HOSTILE = [
    "](http://x)", "[a](http://x)", "![i](http://x/i.png)", "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>", "a`b`c", "$(reboot)", "x;reboot", "a|b", "a\nb", "a\rb",
    "gnp\u202eexe", "# heading", "|a|b|", "```", "~~~", "--all", "-A", "--selector=x",
    "node one", f"token={JWT}", "password=hunter2", "token: abc123def", PEM, "'", "\\",
]  # fmt: skip
_EVIL_USER = {"username": EVIL, "groups": ["system:serviceaccounts",
              "system:serviceaccounts:shop", "system:authenticated"]}  # fmt: skip
_ALICE = {"username": "alice@example.com", "groups": ["system:authenticated"]}
_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# What a written file or row may not hold: a JWT, a PEM block, the NetworkPolicy's password,
# a password=/token: value other than the redaction mark (escaped in Markdown: \[REDACTED\])
LEAK = re.compile(
    r"eyJ[A-Za-z0-9_-]{5,}|-----BEGIN|hunter2|abc123def"
    r"|(?<![\w-])(?i:password|token)\s*[:=]\s*(?!\\?\[REDACTED)[^\s'\"]"
)
_ALLOWED_H2 = {"Recorded for the watch", "Validation", "Simulation of the NetworkPolicies",
               "What the log could not tell"}  # fmt: skip
_H2_STEP = re.compile(r"\d+\. [A-Z][a-z ]+ \((contain|cut-access|evict|rotate|watch)\)")
# Samples that would be Markdown structure if not escaped; shown, each must read as itself
MARKDOWN = [s for s in HOSTILE if any(c in s for c in "[]<>`|#~") and "\n" not in s]
_APPLY = re.compile(r'kubectl apply -f "\$here/[0-9]{2}-[a-z0-9-]+\.yaml"')


def _ref(resource: str, ns: str | None, name: str | None, sub: str | None = None) -> dict:
    ref = {"resource": resource, "apiVersion": "v1"}
    if resource in ("clusterrolebindings", "networkpolicies"):
        ref["apiGroup"] = {"clusterrolebindings": "rbac.authorization.k8s.io",
                           "networkpolicies": "networking.k8s.io"}[resource]  # fmt: skip
    return {**ref, **{k: v for k, v in (("namespace", ns), ("name", name),
                                         ("subresource", sub)) if v is not None}}  # fmt: skip


def _pod(name: str, ip: str, node: str = "node-1", hostile: bool = False) -> dict:
    container = {"name": "c", "image": "alpine"}
    if hostile:
        container["securityContext"] = {"privileged": True}
    spec = {"serviceAccountName": "default", "nodeName": node, "containers": [container]}
    if hostile:
        spec["hostNetwork"] = True
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": spec, "status": {"podIP": ip, "hostIP": "10.0.0.1"}}  # fmt: skip


def policy(cidr: str = "10.1.0.0/16") -> dict:
    """Return the NetworkPolicy alice creates, with credentials in its annotations."""
    return {
        "kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
        "metadata": {"name": "allow-web", "namespace": "shop",
                     "annotations": {"note": "password=hunter2", "jwt": JWT}},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}]}]},
    }  # fmt: skip


def attack(pods: list[str], binding: str, secrets: list[str], node: str, *,
           netpol: dict | None = None, audit: str = "id") -> list[dict]:  # fmt: skip
    """Return the log: alice's policy and pods, then evil's exec, binding, pod, reads, delete."""
    out: list[dict] = []

    def add(user, verb, ref, code=200, uri=None, body=None):
        n = len(out) + 1
        path = ("/apis/" + ref["apiGroup"] + "/v1") if "apiGroup" in ref else "/api/v1"
        if "namespace" in ref:
            path += f"/namespaces/{ref['namespace']}"
        path += f"/{ref['resource']}" + (f"/{ref['name']}" if verb != "create" else "")
        ev = event(
            f"{audit}-{n}", user=user, verb=verb, objectRef=ref, level="RequestResponse",
            requestURI=uri or path, responseStatus={"metadata": {}, "code": code},
            requestReceivedTimestamp=f"2026-03-14T10:{n // 60:02d}:{n % 60:02d}.000001Z",
            stageTimestamp=f"2026-03-14T10:{n // 60:02d}:{n % 60:02d}.000901Z",
        )  # fmt: skip
        if body is not None:
            ev["requestObject"] = ev["responseObject"] = body
        out.append(ev)

    np_ref = _ref("networkpolicies", "shop", "allow-web")
    add(_ALICE, "create", np_ref, 201, body=netpol or policy())
    for i, p in enumerate(pods):
        add(_ALICE, "create", _ref("pods", "shop", p), 201, body=_pod(p, f"10.244.0.{10 + i}"))
    for p in pods:
        uri = f"/api/v1/namespaces/shop/pods/{p}/exec?command=cat&command={_TOKEN_PATH}"
        add(_EVIL_USER, "create", _ref("pods", "shop", p, "exec"), 101, uri=uri)
    crb = {"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
           "metadata": {"name": binding},
           "subjects": [{"kind": "ServiceAccount", "name": "evil", "namespace": "shop"}],
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": "cluster-admin"}}  # fmt: skip
    add(_EVIL_USER, "create", _ref("clusterrolebindings", None, binding), 201, body=crb)
    pwn = _pod("pwn", "10.0.0.1", node=node, hostile=True)
    add(_EVIL_USER, "create", _ref("pods", "shop", "pwn"), 201, body=pwn)
    for s in secrets:
        add(_EVIL_USER, "get", _ref("secrets", "shop", s))
    add(_EVIL_USER, "delete", _ref("networkpolicies", "shop", "allow-web"))
    return out


@cache
def rules() -> list:
    """Return the built-in rules, read once (reading them takes a second)."""
    return load_rules()


def contain(folder: Path, events: list[dict]) -> tuple[Path, Path, Remediation]:
    """Return the case, the out folder and the plan of a log, through load, detect, remediate."""
    log, case = folder / "audit.log", folder / "case.duckdb"
    log.write_bytes(jsonl(*events))
    kforensics.load(case, [log], progress=False)
    detect(case, rules())
    return case, folder / "out", remediate_case(case, folder / "out")


def refs(events: list[dict]) -> set[tuple[str, str]]:
    """Return the (namespace, name) of every objectRef in the log."""
    return {(e["objectRef"].get("namespace", ""), e["objectRef"].get("name", "")) for e in events}


# --- the checks, (a) to (d); (e) is that remediate_case returned ---------------------------


def check_report(text: str, result: Remediation) -> None:
    """No link, image, HTML or table; only the plan's own headings; fences in pairs."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    tokens = md.parse(text)
    flat = [t for tok in tokens for t in [tok, *(tok.children or [])]]
    kinds = {t.type for t in flat}
    assert not kinds & {"link_open", "image", "html_inline", "html_block", "table_open", "s_open"}
    html = md.render(text)
    assert not re.search(r"<(a|img|table|script)\b", html)
    headings = [(t.tag, tokens[i + 1].content) for i, t in enumerate(tokens)
                if t.type == "heading_open"]  # fmt: skip
    assert headings[0] == ("h1", "Containment plan")
    assert [h for h in headings if h[0] == "h1"] == [headings[0]]
    assert all(_H2_STEP.fullmatch(c) or c in _ALLOWED_H2 for tag, c in headings if tag == "h2")
    h3 = [c for tag, c in headings if tag == "h3"]
    assert len(h3) == len(result.plan.actions)
    assert all(":" in c for c in h3)
    assert {t for t, _ in headings} <= {"h1", "h2", "h3"}
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) * 2 == sum(1 for line in text.splitlines() if line.startswith("```"))
    for f in fences:
        assert f.info in ("sh", "text")
        if f.info == "sh":
            assert all(line.startswith(("kubectl ", "# ")) for line in f.content.splitlines())
    assert "\u202e" not in text and "\r" not in text


def check_script(path: Path, names: set[tuple[str, str]], nodes: set[str]) -> None:
    """sh -n passes; each line in a step is an echo, a comment or a kubectl of quoted words
    naming an object of the log (or kforensics' own)."""
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0
    text = path.read_text()
    assert "invalid/" not in text
    inside = False
    for line in text.splitlines():
        if re.fullmatch(r"step_[a-z_]+\(\) \{", line):
            inside = True
            continue
        if line == "}":
            inside = False
        if not inside or not line.strip():
            continue
        line = line.strip()
        if line.startswith("#") or _APPLY.fullmatch(line):
            continue
        words = shlex.split(line)
        assert words[0] in ("kubectl", "echo"), line
        assert shlex.join(words) == line, line  # nothing outside a quoted word
        if words[0] == "echo":
            assert re.fullmatch(r"== [a-z-]+: [A-Z][a-z ]+", words[1]), line
            continue
        assert not any(w.startswith("-") for w in words[2:4] if w not in ("--namespace",))
        ns = words[words.index("--namespace") + 1] if "--namespace" in words else ""
        if words[1] == "label":  # kubectl label pod --namespace NS NAME LABEL=true --overwrite
            assert (ns, words[5]) in names, line
        elif words[1] == "delete":
            assert (ns, words[3]) in names, line
        else:  # cordon/drain NODE: the node a logged pod named
            assert words[1] in ("cordon", "drain") and words[2] in nodes, line


def check_yaml(out: Path, names: set[tuple[str, str]]) -> None:
    """Every file parses; each object is one of the log's or kforensics' own."""
    for path in sorted(out.rglob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            assert key in names or meta["name"].startswith("kforensics-"), (path, key)
            if meta.get("namespace"):
                assert meta["namespace"] in {ns for ns, _ in names}


def check_no_credentials(case: Path, out: Path) -> None:
    """No written file and no remediations row holds a credential-looking value."""
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        found = LEAK.search(path.read_text())
        assert found is None, (path.name, found and found.group())
    with connect(case) as con:
        rows = con.execute("SELECT * FROM remediations").fetchall()
    assert rows
    found = LEAK.search(json.dumps([list(r) for r in rows], default=str))
    assert found is None, found and found.group()


def check_all(case: Path, out: Path, result: Remediation, events: list[dict]) -> None:
    names = refs(events)
    nodes = {(e.get("responseObject") or {}).get("spec", {}).get("nodeName") for e in events}
    check_report((out / "REPORT.md").read_text(), result)
    check_script(out / "apply.sh", names, nodes)
    check_yaml(out, names)
    check_no_credentials(case, out)


# --- the hostile case -----------------------------------------------------------------------

HOSTILE_PODS = ["web-1", *HOSTILE]
HOSTILE_SECRETS = ["db-creds", f"token={JWT}", *HOSTILE]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    events = attack(HOSTILE_PODS, "--all", HOSTILE_SECRETS, "--all", audit="[x](http://e)<b>")
    case, out, result = contain(tmp_path_factory.mktemp("hostile"), events)
    return case, out, result, events


def test_hostile_case_passes_every_check(hostile):
    check_all(*hostile)


def test_hostile_case_still_contains_the_one_valid_pod_and_the_policy(hostile):
    _, out, result, _ = hostile
    steps = [(a.step, a.kind, a.name) for a in result.plan.actions]
    assert ("contain", "quarantine", "quarantine-shop") in steps
    assert ("contain", "restore", "restore-shop-allow-web") in steps
    assert ("evict", "delete-workload", "delete-pod-pwn") in steps
    script = (out / "apply.sh").read_text()
    assert "    kubectl label pod --namespace shop web-1 kforensics.io/quarantine=true " \
           "--overwrite\n" in script  # fmt: skip
    assert "    kubectl delete pod pwn --ignore-not-found --namespace shop\n" in script
    restored = yaml.safe_load((out / "02-contain-restore-shop-allow-web.yaml").read_text())
    meta = restored["metadata"]
    assert (meta["namespace"], meta["name"]) == ("shop", "allow-web")
    assert sorted(meta["annotations"]) == [  # the logged ones (credentials) dropped
        "kforensics.io/evidence",
        "kforensics.io/findings",
        "kforensics.io/rationale",
    ]


def test_a_binding_or_node_named_like_a_flag_is_noted_never_passed_to_kubectl(hostile):
    _, out, result, _ = hostile
    script = (out / "apply.sh").read_text()
    assert "--all" not in script and "cordon" not in script and "clusterrolebinding" not in script
    by_name = {a.name: a for a in result.plan.actions}
    assert by_name["revoke---all"].commands == []
    assert "ClusterRoleBinding --all: not a name safe to paste; delete by hand" in (
        by_name["revoke---all"].notes
    )
    assert by_name["cordon---all"].commands == []
    assert by_name["cordon---all"].notes == [
        "node --all: not a name safe to paste; cordon it by hand"
    ]


def test_pods_the_api_server_would_refuse_are_noted_not_labelled(hostile):
    _, out, result, _ = hostile
    quarantine = next(a for a in result.plan.actions if a.kind == "quarantine")
    assert quarantine.quarantine == [("shop", "web-1")]
    assert "pod '$(reboot)' in 'shop': not a valid name, not labelled" in quarantine.notes
    assert "pod 'a\\nb' in 'shop': not a valid name, not labelled" in quarantine.notes
    report = (out / "REPORT.md").read_text()
    assert "- note: pod '\\<img src=x onerror=alert(1)\\>' in 'shop': not a valid name" in report
    assert "- note: pod 'a\\\\nb' in 'shop': not a valid name, not labelled" in report


def test_a_secret_named_like_a_credential_is_rotated_without_showing_it(hostile):
    case, out, _, _ = hostile
    report = (out / "REPORT.md").read_text()
    assert "### rotate-secret: rotate-shop-token=\\[REDACTED\\]\n" in report
    # (the redaction of token=... takes the colon after the name with it)
    assert "Secret shop/token=\\[REDACTED\\] get by system:serviceaccount:shop:evil." in report
    with connect(case) as con:
        names = {r[0] for r in con.execute(
            "SELECT name FROM remediations WHERE action = 'rotate-secret'").fetchall()}  # fmt: skip
    assert {"db-creds", "token=[REDACTED]", "password=[REDACTED]", "$(reboot)"} <= names


def test_the_credential_annotations_of_a_restored_policy_are_dropped_and_named(hostile):
    _, out, result, _ = hostile
    restore = next(a for a in result.plan.actions if a.kind == "restore")
    assert restore.notes == [
        "NetworkPolicy shop/allow-web: annotation note dropped (it looks like a credential)",
        "NetworkPolicy shop/allow-web: annotation jwt dropped (it looks like a credential)",
    ]


def test_every_markdown_sample_renders_as_its_literal_text(hostile):
    _, out, _, _ = hostile
    html = MarkdownIt("commonmark", {"html": True}).render((out / "REPORT.md").read_text())
    for sample in MARKDOWN:
        shown = sample.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert f"<li>note: pod '{shown}' in 'shop': not a valid name, not labelled</li>" in html
        assert f"<p>Secret shop/{shown}: get by {EVIL}." in html


# --- fuzz: any names at all ----------------------------------------------------------------

_DNS = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True)
_NAME = st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=40), _DNS)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(pods=st.lists(_NAME, min_size=1, max_size=2, unique=True), binding=_NAME, secret=_NAME,
       node=st.one_of(_NAME, st.just("node one")), audit=_NAME)  # fmt: skip
# found by CI: an audit ID that is a PEM block, cut to 64 characters in the evidence annotation
@example(pods=["web"], binding="b", secret="s", node="node one", audit=PEM)
def test_any_names_give_a_plan_that_passes_every_check(pods, binding, secret, node, audit):
    events = attack(pods, binding, [secret], node, audit=audit)
    with tempfile.TemporaryDirectory() as folder:
        check_all(*contain(Path(folder), events), events)


# --- an object that fails validation: kept in invalid/, not applied, exit 1 ----------------


def test_cli_keeps_a_restore_that_fails_validation_apart_and_exits_1(tmp_path):
    # 10.1.0.1/16 has bits set past its prefix: older API servers stored it, today's refuse it
    events = attack(["web-1"], "evil-admin", ["db-creds"], "node-1", netpol=policy("10.1.0.1/16"))
    log, case, out = tmp_path / "audit.log", tmp_path / "case.duckdb", tmp_path / "out"
    log.write_bytes(jsonl(*events))
    kforensics.load(case, [log], progress=False)
    detect(case, rules())
    result = CliRunner().invoke(main, ["remediate", "--case", str(case), "--out", str(out)])
    assert result.exit_code == 1, result.output
    restore = "02-contain-restore-shop-allow-web.yaml"
    assert (
        f"invalid (kept in {out / 'invalid'}, not applied): NetworkPolicy shop/allow-web: "
        'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.1.0.1/16": must not have '
        "bits set beyond the prefix length"
    ) in result.stderr
    assert not (out / restore).exists()
    kept = yaml.safe_load((out / "invalid" / restore).read_text())
    assert kept["spec"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "10.1.0.1/16"}}]}]
    script = (out / "apply.sh").read_text()
    assert "restore" not in script and "invalid" not in script
    assert f"- NOT WRITTEN: invalid/{restore} (see Validation)" in (out / "REPORT.md").read_text()
    check_script(out / "apply.sh", refs(events), {"node-1"})
