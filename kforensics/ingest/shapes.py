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

from kforensics.ingest.elements import element_spans, minified
from kforensics.ingest.gke import gke_to_native
from kforensics.jsontext import go_escape

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


def go_json(value: Any) -> str:
    """Return compact JSON as the API server writes it (Go escaping), for a parsed event.

    An event that reaches us as an object (AKS `properties.log`, EventList items re-encoded)
    then hashes like the same event logged as text.
    """
    return go_escape(_dumps(value))


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
