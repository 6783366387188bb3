"""The one SQL mapping from a native audit Event (JSON text) onto the canonical `events` columns.

Every shape ends here: native lines straight from the file, and the events that `formats.py`
unwraps from EventLists and cloud envelopes. The JSON is parsed once per event, with an explicit
type (DuckDB's inference fails on audit logs: `requestObject` differs per resource).
"""

from __future__ import annotations

import json

# The fields of audit.k8s.io/v1 (and v1beta1) Event that become columns; the rest stays in `raw`.
# Containers whose element types a log can get wrong are read as JSON and cast, so that a
# wrong type is a reject with a reason rather than a silent NULL.
EVENT_TYPE = {
    "auditID": "VARCHAR",
    "stage": "VARCHAR",
    "level": "VARCHAR",
    "timestamp": "VARCHAR",
    "requestURI": "VARCHAR",
    "verb": "VARCHAR",
    "user": {"username": "VARCHAR", "groups": "JSON"},
    "impersonatedUser": {"username": "VARCHAR"},
    "sourceIPs": "JSON",
    "userAgent": "VARCHAR",
    "objectRef": {
        "resource": "VARCHAR",
        "namespace": "VARCHAR",
        "name": "VARCHAR",
        "apiGroup": "VARCHAR",
        "apiVersion": "VARCHAR",
        "subresource": "VARCHAR",
    },
    "responseStatus": {"code": "JSON"},
    "requestObject": "JSON",
    "responseObject": "JSON",
    "requestReceivedTimestamp": "VARCHAR",
    "stageTimestamp": "VARCHAR",
    "annotations": "JSON",
}

_TYPE_LITERAL = json.dumps(EVENT_TYPE).replace("'", "''")


def _problem() -> str:
    """SQL CASE giving the reason an event cannot be loaded, or NULL when it can."""
    return """CASE
        WHEN e IS NULL THEN 'invalid JSON'
        WHEN e.auditID IS NULL OR e.auditID = '' THEN
            'not an audit event: no auditID'
        WHEN e.responseStatus.code IS NOT NULL AND code IS NULL THEN
            'responseStatus.code is not an HTTP status code: ' || left(e.responseStatus.code, 60)
        WHEN e.sourceIPs IS NOT NULL AND source_ips IS NULL THEN
            'sourceIPs is not a list of strings: ' || left(e.sourceIPs, 60)
        WHEN e.user.groups IS NOT NULL AND user_groups IS NULL THEN
            'user.groups is not a list of strings: ' || left(e.user.groups, 60)
        WHEN e.annotations IS NOT NULL AND annotations IS NULL THEN
            'annotations is not an object of strings: ' || left(e.annotations, 60)
        WHEN e.requestReceivedTimestamp IS NOT NULL AND rts IS NULL THEN
            'requestReceivedTimestamp is not a timestamp: ' || left(e.requestReceivedTimestamp, 60)
        WHEN e.stageTimestamp IS NOT NULL AND stage_ts IS NULL THEN
            'stageTimestamp is not a timestamp: ' || left(e.stageTimestamp, 60)
        WHEN coalesce(rts, stage_ts, old_ts) IS NULL THEN
            'no timestamp: requestReceivedTimestamp, stageTimestamp and timestamp are all missing'
    END"""


def mapped_select(chunk: str) -> str:
    """Return a SELECT mapping each row of `chunk` to the events columns plus `problem`.

    `chunk` is a table or view with: source_line BIGINT, source_index INTEGER, line VARCHAR
    (the line as read, without its line end), event VARCHAR (native event JSON when
    it differs from line, else NULL), raw VARCHAR (what to keep as raw when it differs from
    the event, else NULL), envelope VARCHAR, source_format VARCHAR (NULL: native).
    """
    # try(): a line that is not JSON must become a reject, and a failed statement would
    # abort the load's transaction.
    parse = f"try(from_json(event_text, '{_TYPE_LITERAL}'))"
    return f"""
    SELECT
        md5(event_text) AS event_id,
        e.auditID AS audit_id,
        e.stage AS stage,
        e.level AS level,
        coalesce(rts, old_ts, stage_ts) AS ts,
        stage_ts,
        e.verb AS verb,
        e.user.username AS username,
        user_groups,
        e.impersonatedUser.username AS impersonated_user,
        source_ips,
        e.userAgent AS user_agent,
        e.objectRef.resource AS resource,
        e.objectRef.subresource AS subresource,
        e.objectRef.namespace AS namespace,
        e.objectRef.name AS name,
        e.objectRef.apiGroup AS api_group,
        e.objectRef.apiVersion AS api_version,
        e.requestURI AS request_uri,
        code,
        annotations['authorization.k8s.io/decision'] AS decision,
        annotations['authorization.k8s.io/reason'] AS reason,
        annotations,
        e.requestObject AS request_object,
        e.responseObject AS response_object,
        coalesce(source_format, 'native') AS source_format,
        source_line,
        source_index,
        coalesce(raw, event_text) AS raw,
        envelope::JSON AS envelope,
        {_problem()} AS problem
    FROM (
        SELECT *,
            try_cast(e.responseStatus.code AS INTEGER) AS code,
            try_cast(e.sourceIPs AS VARCHAR[]) AS source_ips,
            try_cast(e.user.groups AS VARCHAR[]) AS user_groups,
            try_cast(e.annotations AS MAP(VARCHAR, VARCHAR)) AS annotations,
            try_cast(e.requestReceivedTimestamp AS TIMESTAMPTZ) AS rts,
            try_cast(e.stageTimestamp AS TIMESTAMPTZ) AS stage_ts,
            try_cast(e."timestamp" AS TIMESTAMPTZ) AS old_ts
        FROM (
            SELECT source_line, source_index, raw, envelope, source_format, event_text,
                   {parse} AS e
            FROM (
                SELECT *, coalesce(event, line) AS event_text FROM {chunk}
            )
            WHERE event_text IS NOT NULL
        )
    )
    """  # noqa: S608 (chunk is a fixed internal table name, never data)
