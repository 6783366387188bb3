"""The `ev` table every rule reads: one row per request, JSON parsed once into helper columns.

Rules stay portable (plain SQL over these columns plus five helper macros: `has`, `has_any`,
`has_all`, `jstr`, `jget`), and 60 rules cost one parse of the request objects, not 60.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import duckdb

from kforensics.case import added_table
from kforensics.detection import ev_store
from kforensics.detection.sensitive import prepare_sensitive
from kforensics.errors import CaseError
from kforensics.investigate.sql import query_values

_CONTAINER = {
    "name": "VARCHAR",
    "image": "VARCHAR",
    "securityContext": {
        "privileged": "BOOLEAN",
        "allowPrivilegeEscalation": "BOOLEAN",
        "runAsUser": "BIGINT",
        "runAsNonRoot": "BOOLEAN",
        "capabilities": {"add": ["VARCHAR"]},
    },
}
POD_SPEC_TYPE = json.dumps(
    {
        "containers": [_CONTAINER],
        "initContainers": [_CONTAINER],
        "ephemeralContainers": [_CONTAINER],
        "hostNetwork": "BOOLEAN",
        "hostPID": "BOOLEAN",
        "hostIPC": "BOOLEAN",
        "serviceAccountName": "VARCHAR",
        "nodeName": "VARCHAR",
        "volumes": [{"name": "VARCHAR", "hostPath": {"path": "VARCHAR"}}],
    }
)
RBAC_TYPE = json.dumps(
    {
        "roleRef": {"kind": "VARCHAR", "name": "VARCHAR"},
        "subjects": [{"kind": "VARCHAR", "name": "VARCHAR", "namespace": "VARCHAR"}],
        "rules": [
            {
                "apiGroups": ["VARCHAR"],
                "resources": ["VARCHAR"],
                "verbs": ["VARCHAR"],
                "nonResourceURLs": ["VARCHAR"],
            }
        ],
    }
)

WORKLOADS = ("deployments", "replicasets", "daemonsets", "statefulsets", "jobs",
             "replicationcontrollers")  # fmt: skip

MACROS = """
CREATE OR REPLACE TEMP MACRO has(l, x) AS coalesce(list_contains(l, x), false);
CREATE OR REPLACE TEMP MACRO has_any(l, xs) AS coalesce(list_has_any(l, xs), false);
CREATE OR REPLACE TEMP MACRO has_all(l, xs) AS coalesce(list_has_all(l, xs), false);
CREATE OR REPLACE TEMP MACRO jstr(j, p) AS json_extract_string(j, p);
CREATE OR REPLACE TEMP MACRO jget(j, p) AS json_extract(j, p);
"""

# Which requests rules see: the `requests` view (one row per request, its final stage), in the
# window. An undated event (ts NULL, flagged `no-timestamp`) could be from any time: every window
# keeps it, so that a rule never loses evidence for want of a clock.
_REQUESTS = """
SELECT {columns} FROM requests
WHERE ts IS NULL OR (($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts < $until))
"""

# The events columns ev always holds: what its helper columns are computed from, what findings
# and exceptions read (run.py), and what the built-in rules and the sensitive tables read. The
# other columns (the raw text's offset and digest, user.extra, the annotations, ...) are in ev
# only when a rule's SQL names them: a wide JSON column costs memory on every row.
CORE_COLUMNS = (
    "event_id", "audit_id", "ts", "verb", "username", "user_groups", "impersonated_user",
    "source_ips", "user_agent", "resource", "subresource", "namespace", "name", "api_group",
    "request_uri", "code", "decision", "request_object", "response_object", "source_file",
    "source_line", "source_index", "load_id", "quality",
)  # fmt: skip
# never in ev: the event's text and its envelope (rules read the parsed columns)
_NEVER = ("raw", "envelope")

# ev's rows: a function of each request's own events and nothing else (no other request, no
# other table), which is what lets `ev_store` keep them between runs. {requests} is the
# requests to derive (_REQUESTS, or those of some request ids), {columns} their columns.
_EV = f"""
WITH r AS ({{requests}}),
p AS (
    SELECT *,
        username AS actor,
        -- the identity the request was authorised as: the impersonated one under `--as`
        coalesce(impersonated_user, username) AS effective_user,
        source_ips[1] AS source_ip,
        coalesce(name, response_object->>'$.metadata.name', request_object->>'$.metadata.name')
            AS object_name,
        coalesce(code < 400, false) AS succeeded,
        CASE
            WHEN username LIKE 'system:serviceaccount:%' THEN 'serviceaccount'
            WHEN username LIKE 'system:node:%' THEN 'node'
            WHEN username = 'system:anonymous' THEN 'anonymous'
            WHEN username LIKE 'system:%' THEN 'system'
            ELSE 'user'
        END AS user_kind,
        CASE WHEN request_object IS NOT NULL THEN
            CASE
                WHEN resource = 'pods' THEN request_object->'$.spec'
                WHEN resource IN {WORKLOADS} THEN request_object->'$.spec.template.spec'
                WHEN resource = 'cronjobs'
                    THEN request_object->'$.spec.jobTemplate.spec.template.spec'
            END
        END AS pod_spec_json,
        CASE WHEN request_object IS NOT NULL AND resource IN
                ('roles', 'clusterroles', 'rolebindings', 'clusterrolebindings')
            THEN from_json(request_object, '{RBAC_TYPE}')
        END AS rbac,
        CASE WHEN subresource IN ('exec', 'attach') THEN {query_values("command")}
        END AS exec_command,
        coalesce(
            try_cast(response_object->'$.metadata.labels' AS MAP(VARCHAR, VARCHAR)),
            try_cast(request_object->'$.metadata.labels' AS MAP(VARCHAR, VARCHAR))
        ) AS labels
    FROM r
),
s AS (
    SELECT * EXCLUDE (pod_spec_json),
        from_json(pod_spec_json, '{POD_SPEC_TYPE}') AS pod
    FROM p
),
c AS (
    SELECT *,
        list_concat(
            list_transform(coalesce(pod.containers, []),
                lambda x: struct_insert(x, kind := 'container')),
            list_transform(coalesce(pod.initContainers, []),
                lambda x: struct_insert(x, kind := 'init')),
            list_transform(coalesce(pod.ephemeralContainers, []),
                lambda x: struct_insert(x, kind := 'ephemeral'))
        ) AS containers
    FROM s
)
SELECT * EXCLUDE (rbac),
    list_transform(containers, lambda x: x.image) AS images,
    list_transform(containers, lambda x:
        regexp_replace(regexp_replace(x.image, '@.*$', ''), ':[^:/]*$', '')) AS image_repos,
    coalesce(list_bool_or(list_transform(containers,
        lambda x: coalesce(x.securityContext.privileged, false))), false) AS privileged,
    list_distinct(list_transform(flatten(list_transform(containers,
        lambda x: coalesce(x.securityContext.capabilities.add, []))),
        lambda cap: upper(regexp_replace(cap, '^(?i)CAP_', '')))) AS capabilities,
    coalesce(pod.hostNetwork, false) AS host_network,
    coalesce(pod.hostPID, false) AS host_pid,
    coalesce(pod.hostIPC, false) AS host_ipc,
    list_filter(list_transform(coalesce(pod.volumes, []), lambda v: v.hostPath.path),
        lambda x: x IS NOT NULL) AS host_paths,
    rbac.roleRef.name AS role_ref,
    rbac.roleRef.kind AS role_ref_kind,
    coalesce(rbac.subjects, []) AS subjects,
    coalesce(rbac.rules, []) AS role_rules,
    flatten(list_transform(coalesce(rbac.rules, []), lambda x: coalesce(x.verbs, [])))
        AS role_verbs,
    flatten(list_transform(coalesce(rbac.rules, []), lambda x: coalesce(x.resources, [])))
        AS role_resources
FROM c
"""  # noqa: S608 (only constants, and quoted column names of the case, are formatted in)


def ev_columns(con: duckdb.DuckDBPyConnection, sql: Iterable[str] | None = None) -> list[str]:
    """Return the requests columns ev holds: the core ones and those the SQL texts name
    (every column but the raw text and the envelope when sql is None)."""
    names = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'requests' "
            "AND schema_name = 'main' AND database_name = current_database() ORDER BY column_index"
        ).fetchall()
    ]
    if sql is None:
        return [n for n in names if n not in _NEVER]
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(sql)))
    return [n for n in names if n not in _NEVER and (n in CORE_COLUMNS or n in words)]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ev_select(
    con: duckdb.DuckDBPyConnection, sql: Iterable[str] | None = None, requests: str = _REQUESTS
) -> str:
    """Return the SELECT giving ev's rows for the requests that the SELECT requests gives
    (default: those of the window $since to $until), with the columns ev_columns(con, sql)."""
    columns = ", ".join(_quoted(c) for c in ev_columns(con, sql))
    return _EV.replace("{requests}", requests).replace("{columns}", columns)


def prepare(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    sensitive_rows: list[dict] | None = None,
    baseline_until: datetime | None = None,
    baseline_case: str | Path | None = None,
    sql: Iterable[str] | None = None,
    work: str | None = None,
    kept: bool = False,
) -> int:
    """Build `ev` (and the helper macros) for a time window; return its rows.

    ev is a temp view of the table kf_ev: a temp table, or one in the attached database `work`
    (a file, compressed: for cases whose ev would not fit in memory).

    ev holds the events columns that the SQL texts sql (the rules to run) name, beside the
    core ones (`ev_columns`); sql None keeps every column but the raw text and the envelope.

    kept (no window): ev is the rows the case keeps (`ev_store.keep`, which the caller has
    brought up to date: `ev_store.StaleRows` if they are not the case's now).

    With it come the sensitive workloads' tables (`detection.sensitive.prepare_sensitive`):
    for sensitive_rows (None: those the case stored), their baseline before baseline_until
    (default since) and in baseline_case.
    """
    con.execute(MACROS)
    added_table(con, "remediations")  # the watch rules read it; a version-2 case has none
    # `work` is a database name of the caller's (run.bounded_memory), not input
    table = "temp.main.kf_ev" if work is None else f"{work}.main.kf_ev"
    kind = "TEMP TABLE kf_ev" if work is None else f"TABLE {table}"
    if kept:
        if since is not None or until is not None:
            raise CaseError("ev kept in the case is the whole case's: no window")
        ev_store.check_current(con, ev_select(con, sql))
        table = f"main.{ev_store.ROWS}"
    else:
        select = ev_select(con, sql)
        con.execute(f"CREATE OR REPLACE {kind} AS {select}", {"since": since, "until": until})
    con.execute(f"CREATE OR REPLACE TEMP VIEW ev AS SELECT * FROM {table}")  # noqa: S608
    # no sensitive workloads anywhere: empty tables, which the rules can still read
    prepare_sensitive(
        con, sensitive_rows, baseline_until=baseline_until or since, baseline_case=baseline_case
    )
    return con.execute("SELECT count(*) FROM ev").fetchall()[0][0]
