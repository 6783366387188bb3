"""SQL fragments of the named investigations (`@NAME` in their files), time windows, decoding.

The fragments are constants: `@W(col)` is the time-window test on col, `@NAME` a constant of
FRAGMENTS. Values are only ever bound parameters ($since, $until, $identity, ...).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from kforensics.investigate.redact import redact
from kforensics.levels import LEVELS, severity_sql

Time = datetime | str | None

NICE = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200]


def query_values(keys: str, uri: str = "request_uri") -> str:
    """Return SQL for the values of the query-string keys (a regex alternation) in uri,
    URL-decoded ('+' is a space) and joined by spaces: how `kubectl exec` sends a command."""
    return (
        "array_to_string(list_transform("
        f"regexp_extract_all({uri}, '[?&](?:{keys})=([^&]*)', 1), "
        # an escape that decodes to invalid UTF-8 would abort the query: it stays as logged
        "lambda c: coalesce(try(url_decode(replace(c, '+', ' '))), c)), ' ')"
    )


# Attribution of a request (columns of `requests`): `identity` is the identity it was authorised
# as (the impersonated one under `kubectl --as`, as `ev.effective_user`), `impersonated_by` who
# sent it when it was made with impersonation. A refusal of an impersonated request is the
# impersonated identity's.
IDENTITY = "coalesce(impersonated_user, username)"
BY = "CASE WHEN impersonated_user IS NOT NULL THEN username END"
# The requests of an identity $identity: its own, and those others made as it.
MINE = "(username = $identity OR impersonated_user = $identity)"
RELATION = (
    "CASE WHEN username = $identity AND impersonated_user IS NULL THEN 'own' "
    "WHEN username = $identity THEN 'own, as ' || impersonated_user "
    "ELSE 'by ' || coalesce(username, '(unknown)') || ', as this identity' END"
)
# exec, attach and portforward requests, with the container and the decoded command (or ports)
EXEC = """
    SELECT ts, @IDENTITY AS identity, @BY AS impersonated_by, namespace, name AS pod,
        subresource,
        coalesce(try(url_decode(regexp_extract(request_uri, '[?&]container=([^&]*)', 1))),
                 regexp_extract(request_uri, '[?&]container=([^&]*)', 1)) AS container,
        @COMMAND AS command,
        code, source_ips[1] AS source_ip, source_file || ':' || source_line AS evidence,
        quality
    FROM requests
    WHERE resource = 'pods' AND subresource IN ('exec', 'attach', 'portforward') AND @W(ts)
"""


def notes_of(kind: str, target: str) -> str:
    """Return SQL for the notes on a target (`kind` a constant, `target` a column) as one text.

    Oldest first: `[false positive: why] #tag comment (author) | ...`; NULL without notes.
    """
    # kind and target are the constants FRAGMENTS passes, never a value
    return f"""(
    SELECT string_agg(
        concat_ws(' ', '[' || replace(n.mark, '_', ' ') || ': ' || n.reason || ']',
                  '#' || n.tag, n.comment) || ' (' || n.author || ')',
        ' | ' ORDER BY n.created_at, n.note_id)
    FROM notes n WHERE n.target_kind = '{kind}' AND n.target = {target})"""  # noqa: S608


FRAGMENTS = {
    "LEVELS": severity_sql(),
    "LEVEL_LIST": str(list(LEVELS)),  # least severe first: list_position ranks a level
    "RBAC": "('roles', 'clusterroles', 'rolebindings', 'clusterrolebindings')",
    "WRITES": "('create', 'update', 'patch', 'delete', 'deletecollection')",
    "SUBJECTS": '[{"kind": "VARCHAR", "name": "VARCHAR", "namespace": "VARCHAR"}]',
    "NICE": str(NICE),
    "IDENTITY": IDENTITY, "BY": BY, "MINE": MINE, "RELATION": RELATION, "EXEC": EXEC,
    "COMMAND": query_values("command|ports"), "NOTES": notes_of("finding", "findings.finding_id"),
    "EVENT_NOTES": notes_of("event", "e.event_id"),
}  # fmt: skip


def window(col: str) -> str:
    """Return the window test on col. An undated row (col NULL) could be from any time: every
    window keeps it (it is flagged `no-timestamp`), as `kforensics detect` does."""
    return (
        f"({col} IS NULL OR (($since::TIMESTAMPTZ IS NULL OR {col} >= $since::TIMESTAMPTZ) AND "
        f"($until::TIMESTAMPTZ IS NULL OR {col} < $until::TIMESTAMPTZ)))"
    )


def as_time(value: Time) -> datetime | None:
    """Return a timezone-aware UTC datetime for a datetime or ISO string ("" and None: None)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def redact_columns(table: pa.Table, columns: list[str]) -> pa.Table:
    """Return the table with the named text columns passed through `redact`."""
    for name in columns:
        i = table.column_names.index(name)
        values = [redact(v) if isinstance(v, str) else v for v in table.column(i).to_pylist()]
        table = table.set_column(i, name, pa.array(values, pa.string()))
    return table
