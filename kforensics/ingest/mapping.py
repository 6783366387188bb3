"""The one SQL mapping from a native audit Event (JSON text) onto the canonical `events` columns.

Every shape ends here: native lines straight from the file, and the events that `shapes.py`
unwraps from EventLists, cloud envelopes and log pipelines. The JSON is parsed once per event,
with an explicit type (DuckDB's inference fails on audit logs: `requestObject` differs per
resource). This module is also where an event's kind is decided: what is recognisably a
Kubernetes audit event is kept, with what it lacks listed in `quality`; a field that is present
with the wrong type makes the record a reject with the reason.
"""

from __future__ import annotations

import json

# Scalars that must be JSON strings when present. They are read as JSON, not VARCHAR: DuckDB
# would turn a number or an object into text silently, and a verb of 5 is a lie, not a verb.
STRINGS = {
    "auditID": "audit_id",
    "stage": "stage",
    "level": "level",
    "verb": "verb",
    "requestURI": "request_uri",
    "userAgent": "user_agent",
    "kind": "kind",
    "apiVersion": "event_api_version",
    "requestReceivedTimestamp": "rts_text",
    "stageTimestamp": "stage_ts_text",
    "timestamp": "old_ts_text",
    "user.username": "username",
    "impersonatedUser.username": "impersonated_user",
    "objectRef.resource": "resource",
    "objectRef.namespace": "namespace",
    "objectRef.name": "name",
    "objectRef.apiGroup": "api_group_text",
    "objectRef.apiVersion": "api_version",
    "objectRef.subresource": "subresource",
}


# Objects whose fields are mapped: read as JSON first, so that one of the wrong type (a `user`
# that is a string) is a reject rather than a silent NULL, then parsed with their own type.
OBJECTS = ("user", "impersonatedUser", "objectRef", "responseStatus")


def _object_type(name: str) -> dict:
    """Return the from_json type of one mapped object: its string fields, lists and code."""
    fields = {p.split(".")[1]: "JSON" for p in STRINGS if p.startswith(name + ".")}
    if name in ("user", "impersonatedUser"):
        fields["groups"] = "JSON"
    if name == "user":
        fields["extra"] = "JSON"  # kept whole: events.user_extra
    if name == "responseStatus":
        fields["code"] = "JSON"
    return fields


def _event_type() -> dict:
    """Return the from_json type of an event: every mapped field as JSON."""
    out = {p: "JSON" for p in STRINGS if "." not in p}
    out.update({name: "JSON" for name in OBJECTS})
    out.update(sourceIPs="JSON", requestObject="JSON", responseObject="JSON", annotations="JSON")
    return out


EVENT_TYPE = _event_type()
_TYPE_LITERAL = json.dumps(EVENT_TYPE).replace("'", "''")

# An instant as the API server and real exports write it: RFC 3339, or a space instead of the
# `T` and no zone (meaning UTC), with fractional seconds of any length. DuckDB alone would also
# take `infinity`, `epoch` and bare dates.
_ZONE = r"([Zz]|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)$"
_INSTANT = r"^\d{4}-[01]\d-[0-3]\d[Tt ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?" + _ZONE[:-1] + "?$"
# What may stand before an event's `{`: JSON whitespace and a byte-order mark.
LEADING_SPACE = " \t\r\n\ufeff"
# 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z, in microseconds since the epoch.
_FIRST_US, _LAST_US = 0, 253402300799999999

QUALITY_FLAGS = {
    "no-audit-id": "no auditID: the event cannot be tied to the other stages of its request",
    "no-timestamp": "no requestReceivedTimestamp, stageTimestamp or timestamp: undated",
    "no-stage": "no stage: treated as the final record of its request",
    "no-verb": "no verb",
    "no-user": "no user.username: the identity is unknown",
    "no-request-uri": "no requestURI (the shape has one)",
    "no-level": "no level",
}


def _ref(path: str) -> str:
    """Return the SQL reference of a mapped field as JSON (`e.verb`, `o_user.username`)."""
    if "." not in path:
        return f"e.{path}"
    parent, leaf = path.split(".")
    return f"o_{parent}.{leaf}"


# Checks on the JSON text DuckDB re-serialises (compact, no spaces): cheaper than json_type,
# which parses every value again.
_JSON_STRING = r'"([^"\\]|\\.)*"'
STRING_LIST = r"^\[(" + _JSON_STRING + "(," + _JSON_STRING + r")*)?\]$"
STRING_MAP = (
    r"^\{(" + _JSON_STRING + ":" + _JSON_STRING
    + "(," + _JSON_STRING + ":" + _JSON_STRING + r")*)?\}$"
)  # fmt: skip


def _string(path: str) -> str:
    """SQL for the JSON string at `path` as VARCHAR, NULL when absent or not a string."""
    ref = f"{_ref(path)}::VARCHAR"
    # Without a backslash the string is its text between the quotes: no parse needed.
    return (
        f"CASE WHEN starts_with({ref}, '\"') THEN CASE WHEN contains({ref}, '\\') "
        f"THEN {_ref(path)}->>'$' ELSE ({ref})[2:-2] END END"
    )


# The API server's own form (metav1.MicroTime, RFC 3339 with microseconds, UTC): almost every
# timestamp of a real log, recognised without the regex, which cost 0.36 CPU-seconds per
# million per column (measured on bench/ingest.py's 1M-event file).
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_MICRO_TIME_LENGTH = len("2026-03-14T09:26:53.589793Z")


def instant(text: str) -> str:
    """SQL giving the TIMESTAMPTZ of a timestamp string, NULL when it is not a real instant.

    A string without a zone is read in the connection's time zone, which `case.connect`
    sets to UTC.
    """
    # A text of MICRO_TIME's length that strptime reads and strftime writes back unchanged is
    # MICRO_TIME exactly: digits, ranges and separators all as _INSTANT requires, so it gives
    # what the pattern gives (tests/test_instant.py compares them on any text). The length
    # matters: strptime reads `infinity` and strftime writes it back. try_cast reads the text
    # again, yet costs less than making strptime's zone-less result UTC with timezone().
    return (
        f"CASE WHEN strlen({text}) = {_MICRO_TIME_LENGTH} "
        f"AND strftime(try_strptime({text}, '{MICRO_TIME}'), '{MICRO_TIME}') = {text} "
        f"THEN try_cast({text} AS TIMESTAMPTZ) ELSE {instant_by_pattern(text)} END"
    )


def instant_by_pattern(text: str) -> str:
    """SQL giving the TIMESTAMPTZ of a timestamp string by _INSTANT alone, NULL when it is not
    an instant: what `instant` gives, more slowly."""
    return (
        f"CASE WHEN regexp_matches({text}, '{_INSTANT}') "
        f"THEN try_cast(translate({text}, 'tz', 'TZ') AS TIMESTAMPTZ) END"
    )


def strings_of(json_value: str, cast: str, pattern: str = STRING_LIST) -> str:
    """SQL casting a JSON list (or object) of strings, NULL when any element is not a string."""
    return (
        f"CASE WHEN regexp_matches({json_value}::VARCHAR, '{pattern}') "
        f"THEN try_cast({json_value} AS {cast}) END"
    )


def status_code(json_value: str) -> str:
    """SQL giving the INTEGER of a JSON status code, NULL when it is not a JSON integer."""
    # Only JSON integers are status codes: true, "201" and 201.7 are not.
    return (
        f"CASE WHEN regexp_matches({json_value}::VARCHAR, '^-?[0-9]+$') "
        f"THEN try_cast({json_value} AS INTEGER) END"
    )


def _field(value: str) -> str:
    """SQL giving a value's length and text, unambiguous when joined (NULL apart from '')."""
    return f"coalesce(length({value}) || ':' || {value}, '-')"


def _in_range(col: str) -> str:
    """SQL giving col when it lies from 1970 to 9999, else NULL."""
    return f"CASE WHEN epoch_us({col}) BETWEEN {_FIRST_US} AND {_LAST_US} THEN {col} END"


# What makes a record an audit event at all (over `e`, the parsed event, and its strings).
AUDIT_EVENT = """coalesce(
            e.auditID IS NOT NULL
            OR (kind = 'Event' AND starts_with(event_api_version, 'audit.k8s.io/'))
            OR (e.verb IS NOT NULL AND (e.requestURI IS NOT NULL OR e.objectRef IS NOT NULL)),
            false
        )"""


def _problem() -> str:
    """SQL CASE giving the reason an event cannot be loaded, or NULL when it can."""
    wrong_objects = "\n".join(
        f"        WHEN NOT starts_with(e.{name}::VARCHAR, '{{') THEN"
        f" '{name} is not an object: ' || left(e.{name}::VARCHAR, 60)"
        for name in OBJECTS
    )
    wrong_strings = "\n".join(
        f"        WHEN NOT starts_with({_ref(path)}::VARCHAR, '\"')"
        f" THEN '{path} is not a string: ' || left({_ref(path)}::VARCHAR, 60)"
        for path in STRINGS
    )
    return f"""CASE
        -- Only text that starts as an object is parsed (see `mapped_select`).
        WHEN e IS NULL THEN coalesce(
            'not an audit event: a JSON ' || CASE try(json_type(event_text))
                WHEN 'VARCHAR' THEN 'string' WHEN 'BOOLEAN' THEN 'boolean' WHEN 'ARRAY' THEN
                'array' WHEN 'NULL' THEN 'null' WHEN 'OBJECT' THEN NULL ELSE 'number' END,
            'invalid JSON')
        WHEN NOT {AUDIT_EVENT} THEN
            'not an audit event: no auditID, no audit.k8s.io kind Event, and no '
            || 'verb with requestURI or objectRef'
            || coalesce(' (keys: ' || array_to_string(list_slice(list_sort(
                json_keys(event_text)), 1, 8), ', ') || ')', '')
{wrong_objects}
{wrong_strings}
        WHEN e.responseStatus IS NOT NULL AND o_responseStatus.code IS NOT NULL AND code IS NULL
            THEN 'responseStatus.code is not an HTTP status code: '
                || left(o_responseStatus.code, 60)
        WHEN e.sourceIPs IS NOT NULL AND source_ips IS NULL THEN
            'sourceIPs is not a list of strings: ' || left(e.sourceIPs, 60)
        WHEN o_user.groups IS NOT NULL AND user_groups IS NULL THEN
            'user.groups is not a list of strings: ' || left(o_user.groups, 60)
        WHEN o_impersonatedUser.groups IS NOT NULL AND impersonated_groups IS NULL THEN
            'impersonatedUser.groups is not a list of strings: '
            || left(o_impersonatedUser.groups, 60)
        WHEN e.annotations IS NOT NULL AND annotations IS NULL THEN
            'annotations is not an object of strings: ' || left(e.annotations, 60)
        WHEN rts_text IS NOT NULL AND rts IS NULL THEN
            'requestReceivedTimestamp is not an instant from 1970 to 9999: ' || left(rts_text, 60)
        WHEN stage_ts_text IS NOT NULL AND stage_ts IS NULL THEN
            'stageTimestamp is not an instant from 1970 to 9999: ' || left(stage_ts_text, 60)
        WHEN old_ts_text IS NOT NULL AND old_ts IS NULL THEN
            'timestamp is not an instant from 1970 to 9999: ' || left(old_ts_text, 60)
    END"""


def _quality() -> str:
    """SQL list of the quality flags of a mapped event (see QUALITY_FLAGS)."""
    checks = {
        "no-audit-id": "audit_id IS NULL OR audit_id = ''",
        "no-timestamp": "coalesce(rts, old_ts, stage_ts) IS NULL",
        "no-stage": "stage IS NULL",
        "no-verb": "verb IS NULL",
        "no-user": "username IS NULL",
        # GKE entries never carry these: that is the shape, documented, not a defect.
        "no-request-uri": "request_uri IS NULL AND source_format IS DISTINCT FROM 'gke'",
        "no-level": "level IS NULL AND source_format IS DISTINCT FROM 'gke'",
    }
    assert checks.keys() == QUALITY_FLAGS.keys()
    items = ", ".join(f"CASE WHEN {cond} THEN '{flag}' END" for flag, cond in checks.items())
    return f"list_filter([{items}], lambda q: q IS NOT NULL)"


def project(inner: str, problem: str) -> str:
    """Return the SELECT of the events columns (plus `problem`) over a mapped inner relation.

    `inner` gives each event's fields already typed and checked (audit_id ... annotations,
    rts/stage_ts/old_ts, `e` with requestObject and responseObject, user_extra) beside the
    chunk's columns; `problem` is the SQL of the reason it cannot be loaded (NULL: it can).
    Both mappings end here: `mapped_select` and the typed fast path (`typed.typed_select`).
    """
    return f"""
    SELECT
        substr(lower(hex(digest)), 1, 32) AS event_id,
        -- The stages of one request share audit ID, user, verb, URI and received time; a
        -- client-chosen Audit-ID reused by another request does not merge the two. Without
        -- an audit ID an event is a request of its own.
        CASE WHEN audit_id IS NULL OR audit_id = '' THEN event_id
            ELSE md5(concat_ws(chr(0), {_field("audit_id")}, {_field("username")},
                {_field("impersonated_user")}, {_field("verb")}, {_field("request_uri")},
                {_field("epoch_us(coalesce(rts, old_ts))::VARCHAR")}))
        END AS request_id,
        nullif(audit_id, '') AS audit_id,
        stage,
        level,
        coalesce(rts, old_ts, stage_ts) AS ts,
        stage_ts,
        verb,
        username,
        user_groups,
        user_extra,
        impersonated_user,
        impersonated_groups,
        source_ips,
        user_agent,
        resource,
        subresource,
        namespace,
        name,
        -- The core group is NULL in every shape ("" in some logs, "core" in GKE's).
        CASE WHEN api_group_text NOT IN ('', 'core') THEN api_group_text END AS api_group,
        api_version,
        request_uri,
        code,
        annotations['authorization.k8s.io/decision'] AS decision,
        annotations['authorization.k8s.io/reason'] AS reason,
        annotations,
        e.requestObject AS request_object,
        e.responseObject AS response_object,
        coalesce(source_format, 'native') AS source_format,
        source_line,
        source_index,
        {_quality()} AS quality,
        -- A line of the file is the event: its bytes stay in the source (sha256 in
        -- `sources`), found again at raw_offset and proven by the digest (kforensics verify).
        CASE WHEN position IS NULL THEN coalesce(raw, event_text) END AS raw,
        position AS raw_offset,
        digest,
        envelope::JSON AS envelope,
        {problem} AS problem
    FROM ({inner})
    """  # noqa: S608 (only constants are formatted in)


def in_range(inner: str) -> str:
    """Return a SELECT over inner with rts, stage_ts and old_ts outside 1970-9999 made NULL."""
    return f"""
        SELECT * EXCLUDE (rts, stage_ts, old_ts),
            {_in_range("rts")} AS rts,
            {_in_range("stage_ts")} AS stage_ts,
            {_in_range("old_ts")} AS old_ts
        FROM ({inner})"""  # noqa: S608 (only constants are formatted in)


def mapped_select(chunk: str) -> str:
    """Return a SELECT mapping each row of `chunk` to the events columns plus `problem`.

    `chunk` is a table or view of events.CHUNK_SCHEMA: source_line BIGINT, source_index
    INTEGER, line VARCHAR (the line as read, without its line end), event VARCHAR (native
    event JSON when it differs from line, else NULL), raw VARCHAR (what to keep as raw when it
    differs from the event, else NULL), envelope VARCHAR, source_format VARCHAR (NULL: native),
    digest BLOB (SHA-256 of the event's text), position BIGINT (a line's offset in its file).
    """
    # try(): a line that is not JSON must become a reject, and a failed statement would
    # abort the load's transaction.
    # Only text that can be an object is parsed: a failed parse inside try() costs an
    # exception, and a file of junk lines would pay it per line.
    parse = (
        f"CASE WHEN starts_with(ltrim(event_text, '{LEADING_SPACE}'), '{{') "
        f"THEN try(from_json(event_text, '{_TYPE_LITERAL}')) END"
    )
    objects = ",\n                ".join(
        f"CASE WHEN starts_with(e.{n}::VARCHAR, '{{') THEN from_json(e.{n}, "
        f"'{json.dumps(_object_type(n))}') END AS o_{n}"
        for n in OBJECTS
    )
    strings = ",\n            ".join(f"{_string(p)} AS {col}" for p, col in STRINGS.items())
    inner = f"""
            SELECT *,
                {status_code("o_responseStatus.code")} AS code,
                {strings_of("e.sourceIPs", "VARCHAR[]")} AS source_ips,
                {strings_of("o_user.groups", "VARCHAR[]")} AS user_groups,
                o_user.extra AS user_extra,
                {strings_of("o_impersonatedUser.groups", "VARCHAR[]")} AS impersonated_groups,
                {strings_of("e.annotations", "MAP(VARCHAR, VARCHAR)", STRING_MAP)}
                    AS annotations,
                {instant("rts_text")} AS rts,
                {instant("stage_ts_text")} AS stage_ts,
                {instant("old_ts_text")} AS old_ts
            FROM (
                SELECT *,
                {strings}
                FROM (
                    SELECT *,
                    {objects}
                    FROM (
                        SELECT source_line, source_index, raw, envelope, source_format,
                               digest, position, event_text, {parse} AS e
                        FROM (
                            SELECT *, coalesce(event, line) AS event_text FROM {chunk}
                        )
                        WHERE event_text IS NOT NULL
                    )
                )
            )"""  # noqa: S608 (chunk is a fixed internal table name, never data)
    return project(in_range(inner), _problem())
