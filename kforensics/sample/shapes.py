"""Convert native audit.k8s.io/v1 events into the shapes EKS, GKE and AKS export them in."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from kforensics.jsontext import go_escape_bytes

GKE_PROJECT = "acme-prod"
GKE_RESOURCE = {
    "type": "k8s_cluster",
    "labels": {"cluster_name": "prod-1", "location": "europe-west1", "project_id": GKE_PROJECT},
}
EKS_STREAMS = (
    "kube-apiserver-audit-3f1c9e27b84d4a6f9d02c5b7e18a6d43",
    "kube-apiserver-audit-a97b20e4c6d14f5e8b3a91f0d2c7e5b8",
)
AKS_RESOURCE_ID = (
    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG-PROD"
    "/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-PROD-1"
)
AKS_POD = "kube-apiserver-6f8d7c9b5-abcde"
AKS_CONTAINER_ID = hashlib.sha256(b"kube-apiserver-6f8d7c9b5-abcde").hexdigest()
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# HTTP status -> google.rpc.Code (number, name) as GKE reports failures.
_RPC = {
    400: (3, "INVALID_ARGUMENT"),
    401: (16, "UNAUTHENTICATED"),
    403: (7, "PERMISSION_DENIED"),
    404: (5, "NOT_FOUND"),
    409: (6, "ALREADY_EXISTS"),
    422: (3, "INVALID_ARGUMENT"),
    429: (8, "RESOURCE_EXHAUSTED"),
    500: (13, "INTERNAL"),
    503: (14, "UNAVAILABLE"),
}


def native_line(ev: dict) -> bytes:
    """Serialize one event like kube-apiserver's log backend: compact, HTML-escaped, newline."""
    return go_escape_bytes(orjson.dumps(ev, option=orjson.OPT_APPEND_NEWLINE))


def _message(ev: dict) -> str:
    return native_line(ev)[:-1].decode()


def _hash(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big")


def epoch_us(ts: str) -> int:
    """Microseconds since the epoch for an RFC 3339 timestamp."""
    dt = datetime.fromisoformat(ts)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _ms(ts: str) -> int:
    return epoch_us(ts) // 1000


def to_eks_export_line(ev: dict) -> str:
    """A CloudWatch Logs export-to-S3 line: `<ISO8601 ms timestamp> <event JSON>`, no newline."""
    return f"{ev['stageTimestamp'][:23]}Z {_message(ev)}"


def to_eks_filter_events(events: Iterable[dict]) -> dict:
    """The document `aws logs filter-log-events` prints for these events (dump with indent=4)."""
    out = []
    for ev in events:
        ts = _ms(ev["stageTimestamp"])
        h = _hash(ev["auditID"] + ev["stage"])
        event_id = f"{ts:013d}{(h * 2654435761) % 10**43:043d}"
        out.append(
            {
                "logStreamName": EKS_STREAMS[_hash(ev["auditID"]) & 1],
                "timestamp": ts,
                "message": _message(ev),
                "ingestionTime": ts + 300 + h % 1700,
                "eventId": event_id,
            }
        )
    out.sort(key=lambda e: e["timestamp"])
    streams = [{"logStreamName": s, "searchedCompletely": True} for s in EKS_STREAMS]
    return {"events": out, "searchedLogStreams": streams}


def gke_group(group: str) -> tuple[str, str]:
    """Return (methodName prefix, resourceName group) for an API group as GKE spells them."""
    if not group:
        return "io.k8s.core", "core"
    if group.endswith(".k8s.io") or "." not in group:
        labels = group.removesuffix(".k8s.io").split(".")
        return "io.k8s." + ".".join(reversed(labels)), group
    return ".".join(reversed(group.split("."))), group


def gke_names(ref: dict) -> tuple[str, str]:
    """Return (permission-style method name without verb, resourceName) for an objectRef."""
    prefix, rgroup = gke_group(ref.get("apiGroup", ""))
    version, resource, sub = ref.get("apiVersion", "v1"), ref["resource"], ref.get("subresource")
    method = f"{prefix}.{version}.{resource}" + (f".{sub}" if sub else "")
    parts = [rgroup, version]
    ns, name = ref.get("namespace"), ref.get("name")
    if ns and resource != "namespaces":
        parts += ["namespaces", ns]
    parts.append(resource)
    if name:
        parts.append(name)
        if sub:
            parts.append(sub)
    return method, "/".join(parts)


def _gke_typed(obj: object) -> object:
    if not isinstance(obj, dict):
        return obj
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind and api_version:
        group, _, version = api_version.rpartition("/")
        group = group or "core"
        if "." not in group:
            group += ".k8s.io"
        return {"@type": f"{group}/{version}.{kind}", **obj}
    return {"@type": "k8s.io/Patch", **obj}


def to_gke_entry(ev: dict) -> dict | None:
    """Cloud Logging LogEntry for a ResponseComplete event (None for other stages, non-resource)."""
    ref = ev.get("objectRef")
    if ev.get("stage") != "ResponseComplete" or not ref or not ref.get("resource"):
        return None
    aid, verb = ev["auditID"], ev["verb"]
    method, resource_name = gke_names(ref)
    method = f"{method}.{verb}"
    code = ev.get("responseStatus", {}).get("code", 200)
    ann = ev.get("annotations", {})
    granted = ann.get("authorization.k8s.io/decision", "allow") == "allow" and code != 403
    activity = verb in WRITE_VERBS
    log = "activity" if activity else "data_access"
    payload: dict = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": ev["user"]["username"]},
        "authorizationInfo": [
            {"granted": granted, "permission": method, "resource": resource_name}
        ],
        "methodName": method,
        "requestMetadata": {
            "callerIp": (ev.get("sourceIPs") or [""])[0],
            "callerSuppliedUserAgent": ev.get("userAgent", ""),
        },
        "resourceName": resource_name,
        "serviceName": "k8s.io",
    }
    if "requestObject" in ev:
        payload["request"] = _gke_typed(ev["requestObject"])
    if "responseObject" in ev:
        payload["response"] = _gke_typed(ev["responseObject"])
    if code >= 400:
        rpc, name = _RPC.get(code, (2, "UNKNOWN"))
        payload["status"] = {"code": rpc, "message": name}
    else:
        payload["status"] = {}
    stage_us = epoch_us(ev["stageTimestamp"])
    receive_us = stage_us + 400_000 + _hash(aid) % 1_600_000
    receive = datetime.fromtimestamp(receive_us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    nanos = (receive_us % 1_000_000) * 1000 + _hash(aid + "ns") % 1000
    entry = {
        "insertId": aid,
        "logName": f"projects/{GKE_PROJECT}/logs/cloudaudit.googleapis.com%2F{log}",
        "operation": {"id": aid, "producer": "k8s.io", "first": True, "last": True},
        "protoPayload": payload,
        "receiveTimestamp": f"{receive}.{nanos:09d}Z",
        "resource": GKE_RESOURCE,
        "severity": "ERROR" if code >= 400 else ("NOTICE" if activity else "INFO"),
        "timestamp": ev["requestReceivedTimestamp"],
    }
    if ann:
        entry["labels"] = dict(ann)
    return entry


def to_aks_record(ev: dict, log_as_object: bool = False, category: str | None = None) -> dict:
    """Azure diagnostic-settings record (category kube-audit-admin when log_as_object)."""
    if category is None:
        category = "kube-audit-admin" if log_as_object else "kube-audit"
    return {
        "time": ev["stageTimestamp"],
        "resourceId": AKS_RESOURCE_ID,
        "category": category,
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {
            "log": ev if log_as_object else _message(ev),
            "stream": "stdout",
            "pod": AKS_POD,
            "containerID": AKS_CONTAINER_ID,
        },
    }
