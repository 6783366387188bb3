"""GKE Cloud Logging entries (Cloud Audit Logs of k8s.io) mapped onto native audit events."""

from __future__ import annotations

import re
from typing import Any

# google.rpc.Code -> the HTTP status the API server would have returned (lossy: 200 vs 201).
GRPC_TO_HTTP = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip


_VERSION = re.compile(r"^v\d+(?:(?:alpha|beta)\d+)?$")


# Built-in API groups named without the k8s.io suffix.
_LEGACY_GROUPS = {"apps", "batch", "autoscaling", "policy", "extensions"}


def _group_from_method(labels: list[str]) -> str:
    """Return the API group for the reversed-DNS prefix of a GKE methodName."""
    if labels[:2] == ["io", "k8s"]:
        rest = labels[2:]
        if rest == ["core"] or not rest:
            return ""
        if len(rest) == 1 and rest[0] in _LEGACY_GROUPS:
            return rest[0]
        return ".".join(reversed(rest)) + ".k8s.io"
    return ".".join(reversed(labels))


def parse_gke_method(method: str) -> dict[str, str | None]:
    """Return api_group, api_version, resource, subresource and verb of a GKE methodName."""
    parts = method.split(".")
    for i, part in enumerate(parts):
        if _VERSION.match(part) and i + 2 < len(parts):
            tail = parts[i + 1 :]
            return {
                "apiGroup": _group_from_method(parts[:i]),
                "apiVersion": part,
                "resource": tail[0],
                "subresource": tail[1] if len(tail) > 2 else None,
                "verb": tail[-1],
            }
    # A non-resource request (`io.k8s.get` on `readyz`) names only its verb.
    verb = parts[2] if len(parts) == 3 and parts[:2] == ["io", "k8s"] else None
    return {
        "apiGroup": None,
        "apiVersion": None,
        "resource": None,
        "subresource": None,
        "verb": verb,
    }


def parse_gke_resource_name(name: str) -> dict[str, str | None]:
    """Return apiGroup, namespace, resource, name, subresource of a GKE resourceName."""
    parts = [p for p in name.split("/") if p]
    out: dict[str, str | None] = {"namespace": None, "name": None, "subresource": None}
    if len(parts) < 3:
        return out
    out["apiGroup"] = "" if parts[0] == "core" else parts[0]
    rest = parts[2:]
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        out["namespace"], rest = rest[1], rest[2:]
    elif len(rest) == 2 and rest[0] == "namespaces":
        # The API server's objectRef for a Namespace names it as its own namespace too.
        out["resource"], out["name"], out["namespace"] = "namespaces", rest[1], rest[1]
        return out
    if rest:
        out["resource"] = rest[0]
    if len(rest) > 1:
        out["name"] = rest[1]
    if len(rest) > 2:
        out["subresource"] = rest[2]
    return out


def _http_code(payload: dict) -> int | None:
    response = payload.get("response")
    if isinstance(response, dict) and response.get("kind") == "Status":
        code = response.get("code")
        if isinstance(code, int):
            return code
    status = payload.get("status")
    if status is None:
        return None
    if not isinstance(status, dict):
        return None
    code = status.get("code", 0)
    return GRPC_TO_HTTP.get(code) if isinstance(code, int) else None


def _strip_type(obj: Any) -> Any:
    if isinstance(obj, dict) and "@type" in obj:
        return {k: v for k, v in obj.items() if k != "@type"}
    return obj


def gke_to_native(entry: dict) -> dict:
    """Return the native audit Event equivalent of a GKE Cloud Logging entry."""
    payload = entry.get("protoPayload") or {}
    if not isinstance(payload, dict):
        raise ValueError("protoPayload is not an object")
    method = payload.get("methodName") or ""
    m = parse_gke_method(method) if isinstance(method, str) else {}
    resource_name = payload.get("resourceName") or ""
    if not isinstance(resource_name, str):
        raise ValueError("resourceName is not a string")
    r = parse_gke_resource_name(resource_name)
    operation = entry.get("operation") if isinstance(entry.get("operation"), dict) else {}
    audit_id = operation.get("id") or entry.get("insertId")
    auth = payload.get("authenticationInfo") or {}
    meta = payload.get("requestMetadata") or {}
    labels = entry.get("labels") if isinstance(entry.get("labels"), dict) else {}
    object_ref = {
        "resource": r.get("resource") or m.get("resource"),
        "namespace": r.get("namespace"),
        "name": r.get("name"),
        # resourceName spells the group out; the methodName only reverses it.
        "apiGroup": r.get("apiGroup") if r.get("apiGroup") is not None else m.get("apiGroup"),
        "apiVersion": m.get("apiVersion"),
        "subresource": m.get("subresource") or r.get("subresource"),
    }
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": audit_id,
        # GKE writes one entry per request, once it has completed.
        "stage": "ResponseComplete",
        "verb": m.get("verb"),
        "user": {"username": auth.get("principalEmail")},
        "sourceIPs": [meta["callerIp"]] if meta.get("callerIp") else None,
        "userAgent": meta.get("callerSuppliedUserAgent"),
        "objectRef": {k: v for k, v in object_ref.items() if v is not None} or None,
        # Only a non-resource request (no objectRef) has its path in resourceName.
        "requestURI": "/" + resource_name.lstrip("/")
        if m.get("resource") is None and r.get("resource") is None and resource_name
        else None,
        "requestReceivedTimestamp": entry.get("timestamp"),
        "annotations": {k: v for k, v in labels.items() if isinstance(v, str)} or None,
    }
    code = _http_code(payload)
    if code is not None:
        event["responseStatus"] = {"code": code}
    if payload.get("request") is not None:
        event["requestObject"] = _strip_type(payload["request"])
    if payload.get("response") is not None:
        event["responseObject"] = _strip_type(payload["response"])
    return {k: v for k, v in event.items() if v is not None}
