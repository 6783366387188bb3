"""Every recognisable Kubernetes audit event is kept, mapped like a native one, flags listed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest

from kforensics import load
from tests.conftest import event, jsonl


def one(con, sql: str, params: dict | None = None):
    return con().execute(sql, params or {}).fetchone()


def test_event_without_audit_id_is_kept_flagged_with_a_stable_unique_id(tmp_path, case_path, con):
    a = {k: v for k, v in event("x").items() if k != "auditID"}
    b = {**a, "verb": "delete"}
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(a, b))
    first = load(case_path, [log])
    assert (first.events_loaded, first.rejected, first.quality) == (2, 0, {"no-audit-id": 2})
    copy = tmp_path / "copy.log"  # the same lines in another file (one read before is skipped)
    copy.write_bytes(b"\n" + jsonl(a, b))
    again = load(case_path, [copy])
    assert (again.events_loaded, again.duplicates) == (0, 2)
    rows = con().execute("SELECT audit_id, quality, event_id, request_id FROM events").fetchall()
    assert [r[:2] for r in rows] == [(None, ["no-audit-id"]), (None, ["no-audit-id"])]
    assert len({r[2] for r in rows}) == 2 and len({r[3] for r in rows}) == 2
    assert one(con, "SELECT count(*) FROM requests") == (2,)


def test_undated_event_is_kept_and_sorts_last(tmp_path, case_path, con):
    undated = {k: v for k, v in event("u1").items() if not k.endswith("imestamp")}
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(undated, event("d1")))
    result = load(case_path, [log])
    assert (result.events_loaded, result.quality) == (2, {"no-timestamp": 1})
    got = con().execute("SELECT audit_id, ts, quality FROM events ORDER BY ts NULLS LAST")
    got = got.fetchall()
    assert got[1] == ("u1", None, ["no-timestamp"])


def test_a_minimal_hand_trimmed_event_is_kept_with_every_flag(tmp_path, case_path, con):
    log = tmp_path / "ticket.json"
    log.write_text('{"verb": "create", "requestURI": "/api/v1/namespaces/shop/pods/p/exec"}\n')
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (1, 0)
    assert one(con, "SELECT verb, request_uri, quality FROM events") == (
        "create",
        "/api/v1/namespaces/shop/pods/p/exec",
        ["no-audit-id", "no-timestamp", "no-stage", "no-user", "no-level"],
    )


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}, "not an audit event"),
        ({"verb": "get"}, "not an audit event"),
        ({"kind": "Event", "apiVersion": "v1", "reason": "Pulled"}, "not an audit event"),
    ],
)
def test_what_is_not_recognisably_an_audit_event_stays_a_reject(
    tmp_path, case_path, con, record, reason
):
    log = tmp_path / "x.log"
    log.write_bytes(jsonl(record, event("ok")))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (1, 1)
    assert reason in one(con, "SELECT reason FROM rejects")[0]


def test_kind_event_with_audit_api_version_is_an_event_even_without_verb(tmp_path, case_path, con):
    log = tmp_path / "x.log"
    log.write_bytes(jsonl({"kind": "Event", "apiVersion": "audit.k8s.io/v1"}))
    assert load(case_path, [log]).events_loaded == 1
    assert "no-verb" in one(con, "SELECT quality FROM events")[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2022-11-29 00:09:04.38", datetime(2022, 11, 29, 0, 9, 4, 380000, tzinfo=UTC)),
        ("2022-11-29T00:09:04.123456789Z", datetime(2022, 11, 29, 0, 9, 4, 123456, tzinfo=UTC)),
        ("2022-11-29t00:09:04z", datetime(2022, 11, 29, 0, 9, 4, tzinfo=UTC)),
        ("2022-11-29T02:09:04+02:00", datetime(2022, 11, 29, 0, 9, 4, tzinfo=UTC)),
        ("2022-11-29T02:09:04.5+0200", datetime(2022, 11, 29, 0, 9, 4, 500000, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_timestamp_spellings_of_real_exports(tmp_path, case_path, con, text, expected):
    log = tmp_path / "x.log"
    log.write_bytes(jsonl(event("t", requestReceivedTimestamp=text, stageTimestamp=text)))
    assert load(case_path, [log]).events_loaded == 1
    assert one(con, "SELECT ts, stage_ts FROM events") == (expected, expected)


@pytest.mark.parametrize("group", ["", "core"])
def test_the_core_group_is_null_whatever_the_source_wrote(tmp_path, case_path, con, group):
    ref = {"resource": "pods", "namespace": "shop", "name": "p", "apiGroup": group}
    log = tmp_path / "x.log"
    log.write_bytes(jsonl(event("g", objectRef=ref)))
    load(case_path, [log])
    assert one(con, "SELECT api_group FROM events") == (None,)


def test_exact_repeats_are_one_event_whatever_the_whitespace(tmp_path, case_path, con):
    ev = event("w1", userAgent="kubectl <x> & y")
    (tmp_path / "spaced.log").write_text(json.dumps(ev, indent=None) + "\n")
    (tmp_path / "hook.json").write_text(json.dumps({"kind": "EventList", "items": [ev]}, indent=3))
    (tmp_path / "go.log").write_bytes(
        orjson.dumps(ev).replace(b"<", b"\\u003c").replace(b">", b"\\u003e") + b"\n"
    )
    result = load(case_path, [tmp_path])
    assert (result.events_loaded, result.duplicates, result.collisions) == (1, 2, 0)


def test_different_events_sharing_audit_id_and_time_are_both_kept(tmp_path, case_path, con):
    log = tmp_path / "x.log"
    log.write_bytes(jsonl(event("same"), event("same", verb="delete")))
    result = load(case_path, [log])
    assert (result.events_loaded, result.duplicates, result.collisions) == (2, 0, 1)


# --- GKE ----------------------------------------------------------------------------------------


def gke(**payload) -> dict:
    entry = {
        "insertId": "ins-1",
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Fdata_access",
        "operation": {"id": "op-1", "producer": "k8s.io"},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": "system:kube-scheduler"},
            "methodName": "io.k8s.get",
            "resourceName": "readyz",
            "serviceName": "k8s.io",
            "requestMetadata": {"callerIp": "10.0.0.5"},
            "status": {},
        },
        "timestamp": "2026-03-14T10:00:00.5Z",
    }
    entry["protoPayload"].update(payload)
    return entry


def test_gke_non_resource_request_keeps_verb_and_path(tmp_path, case_path, con):
    log = tmp_path / "gke.json"
    log.write_bytes(jsonl(gke()))
    assert load(case_path, [log]).events_loaded == 1
    assert one(con, "SELECT verb, request_uri, resource, username, quality FROM events") == (
        "get",
        "/readyz",
        None,
        "system:kube-scheduler",
        [],
    )


def test_gke_entry_without_ids_or_service_name_is_kept(tmp_path, case_path, con):
    entry = gke(methodName="io.k8s.core.v1.pods.list", resourceName="core/v1/namespaces/a/pods")
    del entry["insertId"], entry["operation"], entry["protoPayload"]["serviceName"]
    log = tmp_path / "gke.json"
    log.write_bytes(jsonl(entry))
    assert load(case_path, [log]).events_loaded == 1
    assert one(con, "SELECT verb, resource, namespace, audit_id, quality FROM events") == (
        "list",
        "pods",
        "a",
        None,
        ["no-audit-id"],
    )


@pytest.mark.parametrize(
    "payload, reason",
    [
        (
            {"serviceName": "compute.googleapis.com", "methodName": "v1.compute.instances.get"},
            "Cloud Audit Log entry of 'compute.googleapis.com', not Kubernetes (k8s.io)",
        ),
        (
            {"methodName": "google.container.v1.ClusterManager.GetCluster"},
            "is not a Kubernetes call",
        ),
    ],
)
def test_gke_entries_of_other_services_are_rejects_that_say_so(
    tmp_path, case_path, con, payload, reason
):
    log = tmp_path / "gke.json"
    log.write_bytes(jsonl(gke(**payload)))
    assert load(case_path, [log]).rejected == 1
    assert reason in one(con, "SELECT reason FROM rejects")[0]


def test_aks_log_without_audit_id_is_kept(tmp_path, case_path, con):
    ev = {k: v for k, v in event("a").items() if k != "auditID"}
    record = {"category": "kube-audit", "properties": {"log": json.dumps(ev), "pod": "apiserver"}}
    log = tmp_path / "aks.json"
    log.write_bytes(jsonl({"records": [record]}))
    assert load(case_path, [log]).events_loaded == 1
    assert one(con, "SELECT source_format, quality FROM events") == ("aks", ["no-audit-id"])


# --- log pipelines --------------------------------------------------------------------------------

EV = event("p1")
EV_TEXT = json.dumps(EV)

PIPELINES = {
    "fluent bit": ({"date": 1773482400.1, "log": EV_TEXT, "stream": "stdout"}, "pipeline",
                   {"date": 1773482400.1, "stream": "stdout"}),
    "fluentd": ({"log": EV_TEXT + "\n", "time": "2026-03-14T10:00:00Z",
                 "kubernetes": {"pod_name": "kube-apiserver-0"}}, "pipeline",
                {"time": "2026-03-14T10:00:00Z", "kubernetes": {"pod_name": "kube-apiserver-0"}}),
    "vector": ({"message": EV_TEXT, "timestamp": "2026-03-14T10:00:01Z", "source_type": "file"},
               "pipeline", {"timestamp": "2026-03-14T10:00:01Z", "source_type": "file"}),
    "splunk": ({"_raw": EV_TEXT, "_time": "1773482400", "host": "cp-1", "p_source": "k8s"},
               "splunk", {"_time": "1773482400", "host": "cp-1", "p_source": "k8s"}),
    "splunk export": ({"preview": False, "result": {"_raw": EV_TEXT, "host": "cp-1"}}, "splunk",
                      {"preview": False, "result": {"host": "cp-1"}}),
    "filebeat": ({"@timestamp": "2026-03-14T10:00:00Z", "kubernetes": {"audit": EV},
                  "event": {"dataset": "kubernetes.audit_logs"}}, "elastic",
                 {"@timestamp": "2026-03-14T10:00:00Z",
                  "event": {"dataset": "kubernetes.audit_logs"}}),
    "elastic hit": ({"_index": "audit", "_id": "1", "_source": EV}, "elastic",
                    {"_index": "audit", "_id": "1"}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_log_pipeline_records_map_like_native_events(tmp_path, case_path, con, name):
    record, fmt, envelope = PIPELINES[name]
    native = tmp_path / "native.duckdb"
    (tmp_path / "n.log").write_bytes(jsonl(EV))
    load(native, [tmp_path / "n.log"])
    log = tmp_path / "pipe.json"
    log.write_bytes(jsonl(record))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (1, 0)
    columns = "audit_id, verb, username, request_uri, ts, namespace, name, code, quality"
    import kforensics

    with kforensics.connect(native) as n:
        expected = n.execute(f"SELECT {columns} FROM events").fetchone()
    assert one(con, f"SELECT {columns} FROM events") == expected
    got_fmt, got_envelope = one(con, "SELECT source_format, envelope FROM events")
    assert (got_fmt, json.loads(got_envelope)) == (fmt, envelope)


def test_elasticsearch_search_response_yields_every_hit(tmp_path, case_path, con):
    body = {"took": 3, "hits": {"total": {"value": 2}, "hits": [
        {"_index": "a", "_id": "1", "_source": event("h1")},
        {"_index": "a", "_id": "2", "_source": {"kubernetes": {"audit": event("h2")}}},
    ]}}  # fmt: skip
    log = tmp_path / "search.json"
    log.write_text(json.dumps(body, indent=2))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (2, 0)


def test_pipeline_line_that_is_not_an_event_is_a_reject_naming_the_field(tmp_path, case_path, con):
    log = tmp_path / "pipe.json"
    log.write_bytes(jsonl({"log": "I0314 10:00:00 started", "stream": "stderr"}, event("ok")))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (1, 1)
    assert one(con, "SELECT source_line, reason FROM rejects")[0] == 1
    assert "pipeline record whose log is not JSON" in one(con, "SELECT reason FROM rejects")[0]


def test_eventlist_items_that_are_not_objects_say_what_they_are(tmp_path, case_path, con):
    log = tmp_path / "hook.json"
    log.write_text(json.dumps({"kind": "EventList", "items": [event("i"), 42, "x", [1]]}, indent=1))
    result = load(case_path, [log])
    assert (result.events_loaded, result.rejected) == (1, 3)
    reasons = con().execute("SELECT source_index, reason FROM rejects ORDER BY 1").fetchall()
    assert reasons == [
        (1, "not an audit event: a JSON number"),
        (2, "not an audit event: a JSON string"),
        (3, "not an audit event: a JSON array"),
    ]
