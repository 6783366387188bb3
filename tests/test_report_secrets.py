"""Planted secrets never reach a report, an executed notebook, or the findings output."""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner

from kforensics import load
from kforensics.cli import main
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from kforensics.detection.selftest import expand
from kforensics.reporting.run import run_report
from tests.conftest import jsonl

PLANTED = {
    "data": "cGxhbnRlZC1kYi1wYXNzd29yZA",  # base64 of a password, as Secrets hold it
    "string": "planted-string-data-value",
    "token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.cGxhbnRlZHNpZ25hdHVyZQ",
    "bearer": "planted-bearer-0123456789",
    "kubeconfig": base64.b64encode(b"planted-client-key").decode(),
}
ACTOR = {"user": {"username": "system:serviceaccount:shop:storefront",
                  "groups": ["system:serviceaccounts"]}, "sourceIPs": ["10.244.1.23"]}  # fmt: skip
EVENTS = [
    {**ACTOR, "verb": "create", "x-offset-seconds": 1,
     "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
     "responseStatus": {"code": 201},
     "requestObject": {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "db"},
                       "data": {"password": PLANTED["data"]},
                       "stringData": {"extra": PLANTED["string"]}}},
    {**ACTOR, "verb": "create", "x-offset-seconds": 2,
     "objectRef": {"resource": "serviceaccounts", "namespace": "shop", "name": "storefront",
                   "subresource": "token", "apiVersion": "v1"},
     "responseStatus": {"code": 201},
     "responseObject": {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                        "status": {"token": PLANTED["token"]}}},
    {**ACTOR, "verb": "create", "x-offset-seconds": 3,
     "objectRef": {"resource": "pods", "namespace": "shop", "name": "web",
                   "subresource": "exec", "apiVersion": "v1"},
     "requestURI": "/api/v1/namespaces/shop/pods/web/exec?command=curl&command=-H&command="
                   f"Authorization%3A%20Bearer%20{PLANTED['bearer']}&command=https%3A%2F%2Fx",
     "responseStatus": {"code": 101}},
    {**ACTOR, "verb": "create", "x-offset-seconds": 4,
     "objectRef": {"resource": "configmaps", "namespace": "shop", "name": "kubeconfig",
                   "apiVersion": "v1"},
     "responseStatus": {"code": 201},
     "requestObject": {"kind": "ConfigMap", "apiVersion": "v1", "data": {"config":
         "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n"
         f"    client-key-data: {PLANTED['kubeconfig']}\n"}}},
]  # fmt: skip


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    events = [e for n, item in enumerate(EVENTS) for e in expand(item, f"s{n}")]
    (root / "audit.log").write_bytes(jsonl(*events))
    db = root / "case.duckdb"
    load(db, [root / "audit.log"])
    detect(db, load_rules())
    return db


def leaked(text: str) -> list[str]:
    return [name for name, value in PLANTED.items() if value in text]


@pytest.mark.parametrize(
    "notebook, params",
    [("01_triage", {}), ("02_identity", {"identity": ACTOR["user"]["username"]}),
     ("03_workload", {"namespace": "shop"})],
)  # fmt: skip
def test_no_planted_secret_reaches_a_report(case, tmp_path, notebook, params):
    result = run_report(notebook, case, params, tmp_path)
    assert leaked(result.html.read_text()) == []
    assert leaked(result.ipynb.read_text()) == []


def test_no_planted_secret_reaches_findings_output(case):
    out = CliRunner().invoke(main, ["detect", "--case", str(case), "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    assert out.output.strip()  # the exec and the token request are findings
    assert leaked(out.output) == []
