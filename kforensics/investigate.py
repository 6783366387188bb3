"""Investigation queries for the notebooks: DuckDB aggregates over a case, as pyarrow tables.

Every function takes a read-only case connection (`kforensics.connect`) and an optional time
window (`since` inclusive, `until` exclusive: datetimes, ISO strings, or None/"" for the whole
case). Values are always bound parameters; SQL text is built only from constant fragments.
"""

from __future__ import annotations

import math

import duckdb
import pyarrow as pa

from kforensics.htmltable import html_table
from kforensics.investigate_sql import EXEC, NICE, Time, as_time, redact_columns, run

__all__ = [
    "as_time",
    "attack_counts",
    "denials",
    "exec_sessions",
    "findings_for",
    "findings_points",
    "findings_summary",
    "html_table",
    "identity_sources",
    "identity_timeline",
    "new_in_window",
    "permission_changes",
    "policy_and_label_changes",
    "resources_touched",
    "secrets_read",
    "top_identities",
    "volume_over_time",
    "who_did_what",
    "workload_activity",
    "workload_exec",
]

# --- triage ---------------------------------------------------------------------------------


def bucket_seconds(con: duckdb.DuckDBPyConnection, since: Time, until: Time, buckets: int) -> int:
    """Return a round bucket width (seconds) giving at most about `buckets` buckets."""
    lo, hi = (
        run(
            con,
            "SELECT coalesce($since::TIMESTAMPTZ, min(ts)), coalesce($until::TIMESTAMPTZ, max(ts)) "
            "FROM requests WHERE @W(ts)",
            since=since,
            until=until,
        )
        .to_pylist()[0]
        .values()
    )
    if lo is None or hi is None:
        return 60
    need = max(1, math.ceil((hi - lo).total_seconds() / max(1, buckets)))
    return next((n for n in NICE if n >= need), math.ceil(need / 86400) * 86400)


def volume_over_time(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    buckets: int = 60,
    identity: str | None = None,
) -> pa.Table:
    """Return requests per time bucket and outcome class (2xx/3xx/4xx/5xx/none)."""
    width = bucket_seconds(con, since, until, buckets)
    return run(
        con,
        """
        SELECT to_timestamp(floor(epoch(ts) / $width) * $width) AS bucket,
               $width AS bucket_seconds,
               CASE WHEN code IS NULL THEN 'none' ELSE (code // 100)::VARCHAR || 'xx' END
                   AS outcome,
               count(*) AS requests
        FROM requests WHERE @W(ts) AND ($identity::VARCHAR IS NULL OR username = $identity)
        GROUP BY ALL ORDER BY bucket, outcome
        """,
        since=since,
        until=until,
        width=width,
        identity=identity or None,
    )


def top_identities(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 15
) -> pa.Table:
    """Return the busiest identities: requests, distinct verbs, denials, first and last seen."""
    return run(
        con,
        """
        SELECT username AS identity, count(*) AS requests, count(DISTINCT verb) AS verbs,
               count(*) FILTER (WHERE code IN (401, 403)) AS denials,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests WHERE @W(ts)
        GROUP BY ALL ORDER BY requests DESC, identity LIMIT $limit
        """,
        since=since,
        until=until,
        limit=limit,
    )


def who_did_what(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 50
) -> pa.Table:
    """Return request counts per identity, verb and resource (resource/subresource), top N."""
    return run(
        con,
        """
        SELECT username AS identity, verb,
               concat_ws('/', resource, subresource) AS resource, count(*) AS requests
        FROM requests WHERE @W(ts)
        GROUP BY ALL ORDER BY requests DESC, identity, verb, resource LIMIT $limit
        """,
        since=since,
        until=until,
        limit=limit,
    )


def denials(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 50
) -> pa.Table:
    """Return 401/403 responses counted by identity, resource, namespace and code."""
    return run(
        con,
        """
        SELECT username AS identity, concat_ws('/', resource, subresource) AS resource,
               namespace, code, count(*) AS requests, min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests WHERE code IN (401, 403) AND @W(ts)
        GROUP BY ALL ORDER BY requests DESC, identity, resource LIMIT $limit
        """,
        since=since,
        until=until,
        limit=limit,
    )


def new_in_window(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 100
) -> pa.Table:
    """Return identities, source IPs and user agents first seen inside the window."""
    return run(
        con,
        """
        WITH x AS (
            SELECT 'identity' AS kind, username AS value, ts FROM requests
            UNION ALL SELECT 'source_ip', unnest(source_ips), ts FROM requests
            UNION ALL SELECT 'user_agent', user_agent, ts FROM requests
        )
        SELECT * FROM (
            SELECT kind, value, min(ts) AS first_seen,
                   count(*) FILTER (WHERE @W(ts)) AS requests_in_window
            FROM x WHERE value IS NOT NULL GROUP BY ALL
        ) WHERE @W(first_seen)
        ORDER BY kind, first_seen, value LIMIT $limit
        """,
        since=since,
        until=until,
        limit=limit,
    )


def findings_summary(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None
) -> pa.Table:
    """Return finding counts by level and by ATT&CK tactic (dimension, value, findings, events)."""
    return run(
        con,
        """
        WITH f AS (SELECT * FROM findings WHERE @W(first_seen)),
        t AS (SELECT unnest(tactics) AS tactic, count FROM f)
        SELECT 'level' AS dimension, level AS value, count(*) AS findings,
               sum(count)::BIGINT AS events, min(@LEVELS) AS rank
        FROM f GROUP BY ALL
        UNION ALL
        SELECT 'tactic', tactic, count(*), sum(count)::BIGINT, 9 FROM t GROUP BY ALL
        ORDER BY dimension, rank, findings DESC, value
        """,
        since=since,
        until=until,
    ).drop_columns(["rank"])


def attack_counts(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None
) -> pa.Table:
    """Return findings per (ATT&CK tactic, technique) pair carried by the same finding."""
    return run(
        con,
        """
        WITH f AS (SELECT unnest(tactics) AS tactic, attack FROM findings WHERE @W(first_seen)),
        p AS (SELECT tactic, unnest(attack) AS technique FROM f)
        SELECT tactic, technique, count(*) AS findings
        FROM p GROUP BY ALL ORDER BY tactic, technique
        """,
        since=since,
        until=until,
    )


def findings_points(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    identity: str | None = None,
    limit: int = 300,
) -> pa.Table:
    """Return one row per finding (first_seen, level, rule, actor, count), most severe first."""
    return run(
        con,
        """
        SELECT first_seen, level, rule_id, coalesce(actor, '(several)') AS actor,
               coalesce(namespace, '') AS namespace, count
        FROM findings
        WHERE @W(first_seen) AND ($identity::VARCHAR IS NULL OR actor = $identity)
        ORDER BY @LEVELS, first_seen, rule_id LIMIT $limit
        """,
        since=since,
        until=until,
        identity=identity or None,
        limit=limit,
    )


# --- identity -------------------------------------------------------------------------------


def identity_timeline(
    con: duckdb.DuckDBPyConnection,
    identity: str,
    since: Time = None,
    until: Time = None,
    limit: int = 500,
) -> pa.Table:
    """Return the identity's requests in time order (metadata only, with the evidence line)."""
    return run(
        con,
        """
        SELECT ts, verb, concat_ws('/', resource, subresource) AS resource, namespace, name,
               code, source_ips[1] AS source_ip, user_agent, audit_id,
               source_file || ':' || source_line AS evidence
        FROM requests WHERE username = $identity AND @W(ts)
        ORDER BY ts, audit_id LIMIT $limit
        """,
        identity=identity,
        since=since,
        until=until,
        limit=limit,
    )


def resources_touched(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return what the identity touched: resource, namespace, verb, requests, denials, names."""
    return run(
        con,
        """
        SELECT concat_ws('/', resource, subresource) AS resource, namespace, verb,
               count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
               count(DISTINCT name) AS names, min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests WHERE username = $identity AND @W(ts)
        GROUP BY ALL ORDER BY requests DESC, resource, namespace, verb
        """,
        identity=identity,
        since=since,
        until=until,
    )


def identity_sources(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return the identity's source IPs and user agents with requests, first and last seen."""
    return run(
        con,
        """
        WITH r AS (SELECT * FROM requests WHERE username = $identity AND @W(ts)),
        x AS (SELECT 'source_ip' AS kind, unnest(source_ips) AS value, ts FROM r
              UNION ALL SELECT 'user_agent', user_agent, ts FROM r)
        SELECT kind, value, count(*) AS requests, min(ts) AS first_seen, max(ts) AS last_seen
        FROM x WHERE value IS NOT NULL GROUP BY ALL ORDER BY kind, first_seen, value
        """,
        identity=identity,
        since=since,
        until=until,
    )


def permission_changes(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return RBAC writes made by the identity or whose binding subjects include it."""
    return run(
        con,
        """
        WITH r AS (
            SELECT *, coalesce(request_object, response_object) AS obj,
                list_transform(
                    coalesce(from_json(obj->'$.subjects', '@SUBJECTS'), []),
                    lambda s: CASE WHEN s.kind = 'ServiceAccount'
                        THEN 'system:serviceaccount:' || coalesce(s.namespace, namespace, '')
                             || ':' || s.name
                        ELSE s.name END) AS subject_names
            FROM requests
            WHERE resource IN @RBAC AND verb IN @WRITES AND @W(ts)
        )
        SELECT ts, username AS actor, verb, resource, namespace,
               coalesce(name, obj->>'$.metadata.name') AS name,
               obj->>'$.roleRef.name' AS role_ref, subject_names AS subjects, code,
               CASE WHEN username = $identity AND list_contains(subject_names, $identity)
                    THEN 'by and for' WHEN username = $identity THEN 'by' ELSE 'grants' END
                   AS relation,
               source_file || ':' || source_line AS evidence
        FROM r WHERE username = $identity OR list_contains(subject_names, $identity)
        ORDER BY ts
        """,
        identity=identity,
        since=since,
        until=until,
    )


def exec_sessions(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return the identity's exec/attach/portforward requests with the URL-decoded command."""
    table = run(
        con,
        EXEC + " AND username = $identity ORDER BY ts",
        identity=identity,
        since=since,
        until=until,
    )
    return redact_columns(table, ["command"])


def findings_for(
    con: duckdb.DuckDBPyConnection,
    identity: str | None = None,
    namespace: str | None = None,
    since: Time = None,
    until: Time = None,
    level: str | None = None,
) -> pa.Table:
    """Return the stored findings of an identity and/or namespace, most severe first."""
    return run(
        con,
        """
        SELECT first_seen, level, rule_id, title, actor, namespace,
               concat_ws('/', resource, name) AS object, count, tactics, attack,
               evidence[1].source_file || ':' || evidence[1].source_line AS first_evidence
        FROM findings
        WHERE ($identity::VARCHAR IS NULL OR actor = $identity)
          AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
          AND ($level::VARCHAR IS NULL OR level = $level)
          AND @W(first_seen)
        ORDER BY @LEVELS, first_seen, rule_id
        """,
        identity=identity or None,
        namespace=namespace or None,
        level=level or None,
        since=since,
        until=until,
    )


# --- workload -------------------------------------------------------------------------------


def workload_activity(
    con: duckdb.DuckDBPyConnection,
    namespace: str,
    pod: str | None = None,
    since: Time = None,
    until: Time = None,
) -> pa.Table:
    """Return who touched the namespace (or one pod): identity x verb x resource counts."""
    return run(
        con,
        """
        SELECT username AS identity, verb, concat_ws('/', resource, subresource) AS resource,
               count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests
        WHERE namespace = $namespace AND @W(ts)
          AND ($pod::VARCHAR IS NULL OR (resource = 'pods' AND name = $pod))
        GROUP BY ALL ORDER BY requests DESC, identity, verb, resource
        """,
        namespace=namespace,
        pod=pod or None,
        since=since,
        until=until,
    )


def workload_exec(
    con: duckdb.DuckDBPyConnection,
    namespace: str,
    pod: str | None = None,
    since: Time = None,
    until: Time = None,
) -> pa.Table:
    """Return exec/attach/portforward into the namespace's pods, with the decoded command."""
    table = run(
        con,
        EXEC + " AND namespace = $namespace AND ($pod::VARCHAR IS NULL OR name = $pod) ORDER BY ts",
        namespace=namespace,
        pod=pod or None,
        since=since,
        until=until,
    )
    return redact_columns(table, ["command"])


def secrets_read(
    con: duckdb.DuckDBPyConnection, namespace: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return secret reads in the namespace (and cluster-wide lists) by identity: no values."""
    return run(
        con,
        """
        SELECT username AS identity, verb,
               CASE WHEN namespace IS NULL THEN '(all namespaces)'
                    ELSE coalesce(name, '(list)') END AS secret,
               count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests
        WHERE resource = 'secrets' AND verb IN ('get', 'list', 'watch')
          AND (namespace = $namespace OR namespace IS NULL) AND @W(ts)
        GROUP BY ALL ORDER BY requests DESC, identity, secret
        """,
        namespace=namespace,
        since=since,
        until=until,
    )


def policy_and_label_changes(
    con: duckdb.DuckDBPyConnection, namespace: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return NetworkPolicy writes and namespace/pod label changes, with old and new labels."""
    table = run(
        con,
        """
        WITH o AS (
            SELECT ts, username, verb, resource, namespace, code, source_file, source_line,
                coalesce(name, request_object->>'$.metadata.name') AS object,
                coalesce(response_object->'$.metadata.labels',
                         request_object->'$.metadata.labels') AS labels,
                (request_object->'$.metadata.labels') IS NOT NULL AS sets_labels
            FROM requests
            WHERE (resource = 'namespaces' AND name = $namespace)
               OR (resource IN ('pods', 'networkpolicies') AND namespace = $namespace)
        ),
        h AS (
            SELECT *, last_value(labels IGNORE NULLS) OVER (
                PARTITION BY resource, object ORDER BY ts
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS old_labels
            FROM o
        )
        SELECT ts, username AS actor, verb, resource, object, code,
               old_labels::VARCHAR AS old_labels, labels::VARCHAR AS new_labels,
               source_file || ':' || source_line AS evidence
        FROM h
        WHERE @W(ts) AND (
            (resource = 'networkpolicies' AND verb IN @WRITES)
            OR (verb IN ('update', 'patch') AND labels IS NOT NULL
                AND (old_labels IS NOT NULL OR sets_labels)
                AND old_labels IS DISTINCT FROM labels))
        ORDER BY ts
        """,
        namespace=namespace,
        since=since,
        until=until,
    )
    return redact_columns(table, ["old_labels", "new_labels"])
