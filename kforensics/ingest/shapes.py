"""Recognise audit-log shapes and unwrap cloud envelopes into native audit events.

The bulk of real logs (native JSON lines) never reaches this module: DuckDB maps them in one
pass (see `mapping.py`). What lands here is everything else: EventLists and arrays, EKS
CloudWatch records, GKE Cloud Logging entries, AKS diagnostic records, log-pipeline wrappers
(Fluent Bit, Vector, Splunk, Elastic), and lines that are not JSON at all, which become rejects
with a reason. Whether an unwrapped object is an audit event is the SQL mapping's call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

# How deep envelopes may nest (AKS records inside a JSON array, EventList inside a record...).
MAX_ENVELOPE_DEPTH = 4

NATIVE = "native"
EVENTLIST = "eventlist"
EKS = "eks"
GKE = "gke"
AKS = "aks"
PIPELINE = "pipeline"
SPLUNK = "splunk"
ELASTIC = "elastic"

AKS_AUDIT_CATEGORIES = {"kube-audit", "kube-audit-admin"}

# CloudWatch export to S3 writes "<timestamp> <message>" per line.
_EKS_EXPORT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)?|\d{10,13})\s+(\{.*)$"
)

# google.rpc.Code -> the HTTP status the API server would have returned (lossy: 200 vs 201).
GRPC_TO_HTTP = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip


@dataclass(slots=True)
class Record:
    """One record found on a line: a native audit event to map, or a reject."""

    line: int
    index: int | None
    fmt: str
    event: str | None = None  # native audit Event JSON, mapped by the same SQL as the fast path
    raw: str | None = None  # what the source held, when it differs from `event` (GKE entries)
    envelope: str | None = None  # the wrapper's own fields, without the embedded event
    reason: str | None = None  # set for rejects


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# Go's encoding/json, which writes the API server's logs, escapes these even inside strings.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def go_json(value: Any) -> str:
    """Return compact JSON as the API server writes it (Go escaping), for a parsed event.

    An event that reaches us as an object (AKS `properties.log`, EventList items re-encoded)
    then hashes like the same event logged as text.
    """
    return _dumps(value).translate(_GO_ESCAPE_TABLE)


def _minify_str(text: str) -> str:
    """Return embedded JSON text without insignificant whitespace (see `minified`)."""
    return minified(text.encode("utf-8")) if any(c in text for c in " \t\r\n") else text


def _reject(line: int, index: int | None, reason: str) -> Record:
    return Record(line=line, index=index, fmt="", reason=reason)


def _json_error(exc: Exception) -> str:
    return f"invalid JSON: {exc}"


def parse_text(text: str) -> tuple[Any, str | None]:
    """Return (value, None) for JSON text, or (None, reason)."""
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError as exc:
        return None, _json_error(exc)


def classify_line(text: str, line: int) -> list[Record]:
    """Return the records a non-native line holds (events inside envelopes, or a reject)."""
    text = text.strip().lstrip("\ufeff").strip()
    if text[:1] not in _JSON_STARTS:
        # Not JSON, nor an export line `<timestamp> <json>`: no parser needs to say so.
        reason = "invalid JSON: the line does not start with a JSON value"
        if "\x00" in text:
            reason += " (the line holds NUL bytes)"
        return [_reject(line, None, reason)]
    value, error = parse_text(text)
    if error is not None:
        m = _EKS_EXPORT_LINE.match(text)
        if m:
            return _from_eks_message(m.group(2), {"timestamp": m.group(1)}, line, None)
        if "\x00" in text:
            error += " (the line holds NUL bytes)"
        return [_reject(line, None, error)]
    return classify_value(value, line, text.encode("utf-8"))


_JSON_STARTS = frozenset('{["-0123456789tfn')

_CONTAINER_FORMATS = {None: EVENTLIST, "items": EVENTLIST, "records": AKS, "events": EKS}


def classify_piece(text: str, container: str | None, line: int, index: int | None) -> list[Record]:
    """Return the records of one piece of a streamed document (see `jsonstream`).

    `container` names the root array the piece is an element of (None with index None: the
    piece is a whole top-level value).
    """
    if index is None:
        value, error = parse_text(text)
        if error is not None:
            return [_reject(line, None, error)]
        return classify_value(value, line, text.encode("utf-8"))
    compact = _minify_str(text)
    if container == "items":
        # EventList items are events or nothing: the SQL mapping decides, with no parse here.
        return [Record(line, index, EVENTLIST, event=compact)]
    value, error = parse_text(compact)
    if error is not None:
        return [_reject(line, index, error)]
    out = _classify(value, line, index, compact, 1)
    for rec in out:
        if rec.fmt == NATIVE:
            rec.fmt = _CONTAINER_FORMATS.get(container, EVENTLIST)
    return out


def classify_value(value: Any, line: int, data: bytes | None = None) -> list[Record]:
    """Return the records held by one parsed JSON value (whose text is `data`) at `line`.

    Elements of an event array get the line they start on and their own text, when `data` is
    given.
    """
    if data is None or not _has_event_array(value):
        return _classify(value, line, None, data.decode("utf-8") if data else None, 0)
    spans = element_spans(data)
    texts = [(line + ln - 1, minified(data[a:b])) for ln, a, b in spans]
    return _classify(value, line, None, None, 0, texts)


def _has_event_array(value: Any) -> bool:
    if isinstance(value, list):
        return True
    return isinstance(value, dict) and any(
        isinstance(_get_ci(value, k), list) for k in ("items", "records", "events")
    )


def _is_event(value: dict) -> bool:
    """True for what is plainly a native event (the SQL mapping decides for the rest)."""
    return "auditID" in value or value.get("kind") == "Event"


# String fields in which log pipelines carry the line they shipped: Fluent Bit and Fluentd
# (`log`), Vector, Filebeat and CloudWatch (`message`), Splunk (`_raw`).
_TEXT_FIELDS = ("log", "message", "_raw")
# Keys of a CloudWatch Logs event (filter-log-events, subscription filters).
_CLOUDWATCH_KEYS = {"logStreamName", "ingestionTime", "eventId", "logGroupName"}


def _classify(
    value: Any,
    line: int,
    index: int | None,
    text: str | None,
    depth: int,
    texts: list[tuple[int, str]] | None = None,
) -> list[Record]:
    """Classify one value; `texts` holds (line, text) of each element of its event array."""
    if depth > MAX_ENVELOPE_DEPTH:
        return [_reject(line, index, "envelopes nested too deeply")]
    if isinstance(value, list):
        if not value:
            return [_reject(line, index, "empty JSON array: no events")]
        return _children(value, line, index, depth, EVENTLIST, texts)
    if not isinstance(value, dict):
        return [_reject(line, index, f"not an audit event: a JSON {_json_kind(value)}")]
    if _is_event(value):
        return [_native(value, line, index, text)]
    items = value.get("items")
    if value.get("kind") == "EventList" or (isinstance(items, list) and "kind" in value):
        if not isinstance(items, list):
            return [_reject(line, index, "EventList without an items list")]
        return _children(items, line, index, depth, EVENTLIST, texts)
    if "protoPayload" in value:
        return [_from_gke(value, line, index, text)]
    records = _get_ci(value, "records")
    if isinstance(records, list):
        return _children(records, line, index, depth, AKS, texts)
    if _get_ci(value, "category") is not None and _get_ci(value, "properties") is not None:
        return [_from_aks(value, line, index)]
    events = value.get("events")
    if isinstance(events, list) and all(isinstance(e, dict) and "message" in e for e in events):
        return _children(events, line, index, depth, EKS, texts)
    hits = value.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
        return _children(hits["hits"], line, index, depth, ELASTIC)
    wrapped = _wrapped(value)
    if wrapped is not None:
        key, inner, fmt = wrapped
        envelope = {k: v for k, v in value.items() if k != key}
        if key == "kubernetes":  # Filebeat: the pod metadata beside the event stays
            rest = {k: v for k, v in value["kubernetes"].items() if k != "audit"}
            if rest:
                envelope["kubernetes"] = rest
        return _unwrapped(inner, key, envelope, fmt, line, index, depth)
    # Nothing we know wraps it: the SQL mapping decides whether it is recognisably an event.
    return [_native(value, line, index, text)]


def _json_kind(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _native(value: dict, line: int, index: int | None, text: str | None) -> Record:
    return Record(line, index, NATIVE, event=text if text is not None else go_json(value))


def _wrapped(value: dict) -> tuple[str, Any, str] | None:
    """Return (key, inner value, shape) when `value` is a pipeline's wrapper around an event."""
    kubernetes = value.get("kubernetes")
    if isinstance(kubernetes, dict) and isinstance(kubernetes.get("audit"), dict):
        return "kubernetes", kubernetes["audit"], ELASTIC
    if isinstance(value.get("_source"), dict):
        return "_source", value["_source"], ELASTIC
    if isinstance(value.get("result"), dict) and "_raw" in value["result"]:
        return "result", value["result"], SPLUNK  # Splunk's JSON export
    for key in _TEXT_FIELDS:
        if isinstance(value.get(key), str):
            if key == "_raw":
                fmt = SPLUNK
            elif key == "message" and (
                _CLOUDWATCH_KEYS & value.keys() or isinstance(value.get("timestamp"), int)
            ):
                fmt = EKS
            else:
                fmt = PIPELINE
            return key, value[key], fmt
    return None


def _unwrapped(
    inner: Any, key: str, envelope: dict, fmt: str, line: int, index: int | None, depth: int
) -> list[Record]:
    """Return the records inside a pipeline wrapper; `envelope` is the wrapper without them."""
    text = None
    if isinstance(inner, str):
        inner_value, error = parse_text(inner)
        if error is not None:
            return [_reject(line, index, f"{fmt} record whose {key} is not JSON: {error}")]
        text, inner = _minify_str(inner.strip()), inner_value
    out = _classify(inner, line, index, text, depth + 1)
    for rec in out:
        if rec.fmt == NATIVE:
            rec.fmt = fmt
        if rec.reason is None and rec.envelope is None:
            rec.envelope = _dumps(envelope)
        elif rec.reason is None:
            rec.envelope = _dumps({**envelope, key: orjson.loads(rec.envelope)})
    return out


def _children(
    items: list,
    line: int,
    index: int | None,
    depth: int,
    fmt: str,
    texts: list[tuple[int, str]] | None = None,
) -> list[Record]:
    if texts is not None and len(texts) != len(items):
        texts = None  # the scanner and the parser disagree: keep the parser's view
    out: list[Record] = []
    for i, item in enumerate(items):
        item_line, item_text = texts[i] if texts else (line, None)
        for rec in _classify(item, item_line, i if index is None else index, item_text, depth + 1):
            if rec.fmt == NATIVE:
                rec.fmt = fmt
            out.append(rec)
    if not items:
        out.append(_reject(line, index, f"empty {fmt} envelope: no events"))
    return out


def _get_ci(obj: dict, key: str) -> Any:
    """Return obj[key], matching the key case-insensitively (Azure exports vary)."""
    if key in obj:
        return obj[key]
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def _from_eks_message(message: str, envelope: dict, line: int, index: int | None) -> list[Record]:
    return _unwrapped(message, "message", envelope, EKS, line, index, 0)


def _from_aks(record: dict, line: int, index: int | None) -> Record:
    category = _get_ci(record, "category")
    if category not in AKS_AUDIT_CATEGORIES:
        return _reject(line, index, f"AKS record of category {category!r}, not kube-audit")
    props = _get_ci(record, "properties")
    log = _get_ci(props, "log") if isinstance(props, dict) else None
    envelope = {k: v for k, v in record.items() if k.lower() != "properties"}
    if isinstance(props, dict):
        envelope["properties"] = {k: v for k, v in props.items() if k.lower() != "log"}
    if isinstance(log, str):
        value, error = parse_text(log)
        if error is not None:
            return _reject(line, index, f"AKS properties.log is not JSON: {error}")
        event_text = _minify_str(log.strip())
    elif isinstance(log, dict):
        value, event_text = log, go_json(log)
    else:
        return _reject(line, index, "AKS record without properties.log")
    if not isinstance(value, dict):
        return _reject(
            line, index, f"AKS properties.log is a JSON {_json_kind(value)}, not an event"
        )
    # Whether it is recognisably an audit event is the SQL mapping's call, as for every shape.
    return Record(line, index, AKS, event=event_text, envelope=_dumps(envelope))


# --- GKE ---------------------------------------------------------------------------------------

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


def _from_gke(entry: dict, line: int, index: int | None, text: str | None) -> Record:
    payload = entry.get("protoPayload")
    if not isinstance(payload, dict):
        return _reject(line, index, "GKE entry whose protoPayload is not an object")
    service, method = payload.get("serviceName"), payload.get("methodName")
    if service is not None and service != "k8s.io":
        return _reject(
            line, index, f"Cloud Audit Log entry of {str(service)[:80]!r}, not Kubernetes (k8s.io)"
        )
    if not isinstance(method, str) or not method.startswith("io.k8s."):
        return _reject(
            line, index, f"GKE entry whose methodName {str(method)[:80]!r} is not a Kubernetes call"
        )
    try:
        event = gke_to_native(entry)
    except (ValueError, AttributeError, TypeError) as exc:
        return _reject(line, index, f"GKE entry that cannot be mapped: {exc}")
    raw = text if text is not None else _dumps(entry)
    return Record(line, index, GKE, event=_dumps(event), raw=raw)


# --- element positions in JSON text -----------------------------------------------------------

# Possessive quantifiers: a string is consumed in runs, and an unterminated one cannot make the
# pattern backtrack.
_TOKENS = re.compile(rb'"(?:[^"\\\n]++|\\.)*+"|[{}\[\]:,\n]|[^\s"{}\[\]:,]+')
_MINIFY = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[^\s"]+')
_ENVELOPE_KEYS = {b"items", b"records", b"events"}


def element_spans(data: bytes) -> list[tuple[int, int, int]]:
    """Return (line, start, end) of each element of the text's event array.

    The event array is the root array, or the `items` / `records` / `events` array of the root
    object: the containers `classify_value` unwraps. Lines are 1-based; offsets are bytes.
    """
    line = 1
    stack: list[str] = []  # "o" object, "a" array, "t" the event array
    last_key: bytes | None = None
    prev: bytes | None = None
    spans: list[tuple[int, int, int]] = []
    current: tuple[int, int, int] | None = None  # line, start, depth of the open element
    expecting = True
    for m in _TOKENS.finditer(data):
        tok = m.group()
        if tok == b"\n":
            line += 1
            continue
        if stack and stack[-1] == "t" and expecting and tok not in (b"]", b","):
            current = (line, m.start(), len(stack))
            expecting = False
        if tok == b"{":
            stack.append("o")
        elif tok == b"[":
            root_list = not stack
            key_list = stack == ["o"] and last_key in _ENVELOPE_KEYS
            stack.append("t" if root_list or key_list else "a")
            expecting = True
        elif tok in (b"}", b"]"):
            if stack:
                stack.pop()
        elif tok == b",":
            expecting = True
        elif tok == b":":
            last_key = prev[1:-1].lower() if prev and prev.startswith(b'"') else None
        if current is not None and len(stack) == current[2] and tok not in (b"{", b"["):
            spans.append((current[0], current[1], m.end()))
            current = None
        prev = tok
    return spans


def minified(text: bytes) -> str:
    """Return JSON text without whitespace outside strings, escapes kept as written.

    An event pretty-printed in an EventList then matches the same event logged as one line,
    byte for byte, so the two count once.
    """
    return b"".join(_MINIFY.findall(text)).decode("utf-8")
