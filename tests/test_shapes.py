"""Cloud export shapes (EKS, GKE, AKS) map onto the same canonical rows as native events."""

from __future__ import annotations

import json

import orjson
import pytest

from kforensics import load
from kforensics.ingest.gke import parse_gke_method, parse_gke_resource_name
from kforensics.jsontext import go_escape, go_escape_bytes
from kforensics.sample.shapes import native_line
from tests.conftest import event, jsonl

COLUMNS = (
    "audit_id, stage, verb, username, source_ips, user_agent, resource, subresource, namespace, "
    "name, api_group, api_version, code, decision, request_object, ts"
)


def rows(con, where: str = "") -> list[tuple]:
    return con().execute(f"SELECT {COLUMNS} FROM events {where} ORDER BY audit_id").fetchall()


EXEC = event(
    "x-exec",
    verb="create",
    requestURI="/api/v1/namespaces/shop/pods/web-1/exec?command=id&container=c",
    objectRef={"resource": "pods", "namespace": "shop", "name": "web-1",
               "apiVersion": "v1", "subresource": "exec"},
    responseStatus={"metadata": {}, "code": 101},
)  # fmt: skip
CRB = event(
    "x-crb",
    verb="create",
    level="RequestResponse",
    requestURI="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    objectRef={"resource": "clusterrolebindings", "name": "pwn",
               "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"},
    responseStatus={"metadata": {}, "code": 201},
    requestObject={"kind": "ClusterRoleBinding", "roleRef": {"name": "cluster-admin"}},
)  # fmt: skip
DENIED = event("x-denied", responseStatus={"metadata": {}, "code": 403},
               annotations={"authorization.k8s.io/decision": "forbid"})  # fmt: skip
EVENTS = [EXEC, CRB, DENIED]


def test_eks_export_lines_and_filter_log_events(tmp_path, case_path, con):
    native = tmp_path / "native.duckdb"
    (tmp_path / "n.log").write_bytes(jsonl(*EVENTS))
    load(native, [tmp_path / "n.log"])
    export = tmp_path / "eks" / "000000.log"
    export.parent.mkdir()
    export.write_text(
        "".join(f"{e['stageTimestamp']} {json.dumps(e, separators=(',', ':'))}\n" for e in EVENTS)
    )
    cw = {
        "events": [
            {"logStreamName": "kube-apiserver-audit-1", "timestamp": 1, "message": json.dumps(e),
             "ingestionTime": 2, "eventId": str(i)}
            for i, e in enumerate(EVENTS)
        ],
        "searchedLogStreams": [],
    }  # fmt: skip
    (tmp_path / "eks" / "filter.json").write_text(json.dumps(cw, indent=4))
    result = load(case_path, [tmp_path / "eks"])
    # The same events in two exports: loaded once, the second copy counted as duplicates.
    assert (result.events_loaded, result.duplicates, result.rejected) == (3, 3, 0)
    assert {s.format for s in result.sources} == {"eks"}
    import kforensics

    with kforensics.connect(native) as n:
        expected = n.execute(f"SELECT {COLUMNS} FROM events ORDER BY audit_id").fetchall()
    assert rows(con) == expected
    envelope = con().execute("SELECT envelope FROM events LIMIT 1").fetchone()[0]
    assert "message" not in json.loads(envelope)


def gke_entry(ev: dict) -> dict:
    ref = ev["objectRef"]
    group = ref.get("apiGroup", "")
    method_group = (
        "core" if not group else ".".join(reversed(group.removesuffix(".k8s.io").split(".")))
    )
    method = ".".join(
        ["io.k8s", method_group, ref["apiVersion"], ref["resource"]]
        + ([ref["subresource"]] if ref.get("subresource") else [])
        + [ev["verb"]]
    )
    name = f"{group or 'core'}/{ref['apiVersion']}/"
    name += f"namespaces/{ref['namespace']}/" if ref.get("namespace") else ""
    name += f"{ref['resource']}/{ref['name']}" + (
        f"/{ref['subresource']}" if ref.get("subresource") else ""
    )
    code = ev["responseStatus"]["code"]
    return {
        "insertId": ev["auditID"],
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"id": ev["auditID"], "producer": "k8s.io", "first": True, "last": True},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": ev["user"]["username"]},
            "methodName": method,
            "resourceName": name,
            "serviceName": "k8s.io",
            "requestMetadata": {"callerIp": ev["sourceIPs"][0],
                                "callerSuppliedUserAgent": ev["userAgent"]},
            "status": {} if code < 400 else {"code": 7, "message": "PERMISSION_DENIED"},
            **({"request": {"@type": "rbac.authorization.k8s.io/v1.ClusterRoleBinding",
                            **ev["requestObject"]}} if "requestObject" in ev else {}),
        },
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "c"}},
        "timestamp": ev["requestReceivedTimestamp"],
        "labels": {k: v for k, v in ev["annotations"].items() if k.endswith("/decision")},
    }  # fmt: skip


def test_gke_entries_map_onto_native_fields(tmp_path, case_path, con):
    log = tmp_path / "gke.jsonl"
    log.write_bytes(b"".join(orjson.dumps(gke_entry(e)) + b"\n" for e in EVENTS))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (3, 0)
    got = {r[0]: r for r in rows(con)}
    assert got["x-exec"][1:12] == (
        "ResponseComplete", "create", "alice", ["203.0.113.10"], "kubectl/v1.29.2", "pods",
        "exec", "shop", "web-1", None, "v1",
    )  # fmt: skip
    assert got["x-crb"][6:12] == (
        "clusterrolebindings", None, None, "pwn", "rbac.authorization.k8s.io", "v1",
    )  # fmt: skip
    assert json.loads(got["x-crb"][14]) == CRB["requestObject"]
    # GKE has no HTTP code: it is derived from the google.rpc status (200 for every success).
    assert [got[a][12] for a in ("x-exec", "x-crb", "x-denied")] == [200, 200, 403]
    assert got["x-denied"][13] == "forbid"
    groups = con().execute("SELECT DISTINCT user_groups FROM events").fetchall()
    assert groups == [(None,)]


@pytest.mark.parametrize(
    "method, expected",
    [
        ("io.k8s.core.v1.pods.create", ("", "v1", "pods", None, "create")),
        ("io.k8s.core.v1.pods.exec.create", ("", "v1", "pods", "exec", "create")),
        ("io.k8s.authorization.rbac.v1.clusterrolebindings.create",
         ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", None, "create")),
        ("io.k8s.networking.v1.networkpolicies.delete",
         ("networking.k8s.io", "v1", "networkpolicies", None, "delete")),
        ("io.k8s.apps.v1.deployments.patch", ("apps", "v1", "deployments", None, "patch")),
        ("io.cert-manager.v1.certificates.create",
         ("cert-manager.io", "v1", "certificates", None, "create")),
        ("io.k8s.autoscaling.v2beta2.horizontalpodautoscalers.update",
         ("autoscaling", "v2beta2", "horizontalpodautoscalers", None, "update")),
    ],
)  # fmt: skip
def test_gke_method_names(method, expected):
    m = parse_gke_method(method)
    assert (m["apiGroup"], m["apiVersion"], m["resource"], m["subresource"], m["verb"]) == expected


def test_gke_resource_names():
    assert parse_gke_resource_name("core/v1/namespaces/shop/pods/web-1/exec") == {
        "apiGroup": "", "namespace": "shop", "resource": "pods", "name": "web-1",
        "subresource": "exec",
    }  # fmt: skip
    assert parse_gke_resource_name("core/v1/namespaces/shop") == {
        "apiGroup": "", "namespace": "shop", "resource": "namespaces", "name": "shop",
        "subresource": None,
    }  # fmt: skip
    assert parse_gke_resource_name("rbac.authorization.k8s.io/v1/clusterroles/x")["name"] == "x"


def go_style(ev: dict) -> str:
    """The event as the API server writes it: compact, with Go's HTML-safe escapes."""
    text = orjson.dumps(ev).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def aks_record(ev: dict, as_object: bool = False) -> dict:
    return {
        "time": ev["stageTimestamp"],
        "resourceId": "/SUBSCRIPTIONS/0/RESOURCEGROUPS/RG/PROVIDERS/"
        "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS",
        "category": "kube-audit",
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {"log": ev if as_object else go_style(ev), "stream": "stdout",
                       "pod": "kube-apiserver-1"},
    }  # fmt: skip


def test_aks_envelopes_records_per_line_and_log_objects(tmp_path, case_path, con):
    (tmp_path / "PT1H.json").write_bytes(
        orjson.dumps({"records": [aks_record(EXEC), aks_record(CRB)]}) + b"\n"
        + orjson.dumps({"records": [aks_record(DENIED)]}) + b"\n"
    )  # fmt: skip
    (tmp_path / "admin.jsonl").write_bytes(
        b"".join(orjson.dumps(aks_record(e, as_object=True)) + b"\n" for e in EVENTS)
        + orjson.dumps({**aks_record(EXEC), "category": "guard"}) + b"\n"
    )  # fmt: skip
    result = load(case_path, [tmp_path / "PT1H.json", tmp_path / "admin.jsonl"])
    assert [(s.lines_read, s.records, s.events_loaded, s.duplicates, s.rejected)
            for s in result.sources] == [(2, 3, 3, 0, 0), (4, 4, 0, 3, 1)]  # fmt: skip
    reason = con().execute("SELECT reason FROM rejects").fetchone()[0]
    assert reason == "AKS record of category 'guard', not kube-audit"
    lines = (
        con()
        .execute("SELECT audit_id, source_line, source_index FROM events ORDER BY 1")
        .fetchall()
    )
    assert lines == [("x-crb", 1, 1), ("x-denied", 2, 0), ("x-exec", 1, 0)]


def test_a_file_mixing_shapes_loads_each_line_by_its_own_shape(tmp_path, case_path, con):
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(
        jsonl(EXEC)
        + orjson.dumps(gke_entry(CRB)) + b"\n"
        + orjson.dumps({"records": [aks_record(DENIED)]}) + b"\n"
        + f"2026-03-14T10:00:00.000Z {json.dumps(event('x-eks'))}\n".encode()
    )  # fmt: skip
    result = load(case_path, [mixed])
    assert (result.events_loaded, result.rejected) == (4, 0)
    assert result.sources[0].format == "aks+eks+gke+native"
    fmts = con().execute("SELECT audit_id, source_format FROM events ORDER BY 1").fetchall()
    assert fmts == [("x-crb", "gke"), ("x-denied", "aks"), ("x-eks", "eks"), ("x-exec", "native")]


def test_go_escape_writes_what_go_encoding_json_writes() -> None:
    # Go's encoding/json: json.Marshal("<a href='x'>&</a>\u2028\u2029é") (é stays UTF-8)
    text = "\"<a href='x'>&</a>\u2028\u2029é\""
    expected = "\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\\u2028\\u2029é\""
    assert go_escape(text) == expected
    assert go_escape_bytes(text.encode()) == expected.encode()
    assert go_escape_bytes(b'{"a":"plain"}') == b'{"a":"plain"}'


def test_sample_lines_escape_as_the_api_server_does() -> None:
    line = native_line({"user": {"username": "<x>&\u2028"}})
    assert line == b'{"user":{"username":"\\u003cx\\u003e\\u0026\\u2028"}}\n'
