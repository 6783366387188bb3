"""Plumbing of `kforensics.investigate`: time windows and bound-parameter query execution.

SQL templates are constants; `@W(col)` becomes the time-window test on col and `@NAME`
constant fragments are spliced in. Values are only ever bound parameters ($since, $until, ...).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from kforensics.investigate.redact import redact
from kforensics.levels import severity_sql

Time = datetime | str | None

FRAGMENT = re.compile(r"@W\((\w+)\)")
NICE = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200]
RBAC = "('roles', 'clusterroles', 'rolebindings', 'clusterrolebindings')"
WRITES = "('create', 'update', 'patch', 'delete', 'deletecollection')"
SUBJECTS = '[{"kind": "VARCHAR", "name": "VARCHAR", "namespace": "VARCHAR"}]'
LEVELS = severity_sql()
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
CONSTANTS = {
    "@LEVELS": LEVELS, "@RBAC": RBAC, "@WRITES": WRITES, "@SUBJECTS": SUBJECTS,
    "@IDENTITY": IDENTITY, "@BY": BY, "@MINE": MINE, "@RELATION": RELATION,
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


def run(con: duckdb.DuckDBPyConnection, sql: str, **params) -> pa.Table:
    """Run a constant SQL template (`@W(col)` = the time window on col) with bound parameters."""
    sql = FRAGMENT.sub(lambda m: window(m.group(1)), sql)
    for name, fragment in CONSTANTS.items():
        sql = sql.replace(name, fragment)
    for key in ("since", "until"):
        if key in params:
            params[key] = as_time(params[key])
    return con.sql(sql, params=params).to_arrow_table()


EXEC = """
    SELECT ts, @IDENTITY AS identity, @BY AS impersonated_by, namespace, name AS pod,
        subresource,
        -- An escape that decodes to invalid UTF-8 would fail the query: it stays as logged.
        coalesce(try(url_decode(regexp_extract(request_uri, '[?&]container=([^&]*)', 1))),
                 regexp_extract(request_uri, '[?&]container=([^&]*)', 1)) AS container,
        array_to_string(list_transform(
            regexp_extract_all(request_uri, '[?&](?:command|ports)=([^&]*)', 1),
            lambda c: coalesce(try(url_decode(replace(c, '+', ' '))), c)), ' ') AS command,
        code, source_ips[1] AS source_ip, source_file || ':' || source_line AS evidence,
        quality
    FROM requests
    WHERE resource = 'pods' AND subresource IN ('exec', 'attach', 'portforward') AND @W(ts)
"""


def redact_columns(table: pa.Table, columns: list[str]) -> pa.Table:
    """Return the table with the named text columns passed through `redact`."""
    for name in columns:
        i = table.column_names.index(name)
        values = [redact(v) if isinstance(v, str) else v for v in table.column(i).to_pylist()]
        table = table.set_column(i, name, pa.array(values, pa.string()))
    return table
