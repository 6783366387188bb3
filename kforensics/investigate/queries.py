"""Investigation queries for the notebooks: DuckDB aggregates over a case, as pyarrow tables.

Every function takes a read-only case connection (`kforensics.connect`) and an optional time
window (`since` inclusive, `until` exclusive: datetimes, ISO strings, or None/"" for the whole
case); undated events (flagged `no-timestamp`) could be from any time and are in every window.
Values are always bound parameters; SQL text is built only from constant fragments.

Both identities of a request made with impersonation (`kubectl --as`) are named: tables of
requests by `identity` show the identity the request was authorised as (the impersonated one;
its refusals are that identity's) and `impersonated_by` who sent it; tables by `actor` (findings,
RBAC and label changes) show who sent it and `impersonated` as whom. The identity functions take
an identity's own requests and those others made as it, marked in `relation`.
"""

from __future__ import annotations

import math

import duckdb
import pyarrow as pa

from kforensics.ingest.mapping import QUALITY_FLAGS
from kforensics.investigate.sql import EXEC, NICE, Time, as_time, redact_columns, run
from kforensics.investigate.tables import html_table

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
    "quality_summary",
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
    """Return requests per time bucket and outcome class (2xx/3xx/4xx/5xx/none).

    Undated requests are left out (they have no bucket; `quality_summary` counts them); with an
    identity, its own requests and those made as it.
    """
    width = bucket_seconds(con, since, until, buckets)
    return run(
        con,
        """
        SELECT to_timestamp(floor(epoch(ts) / $width) * $width) AS bucket,
               $width AS bucket_seconds,
               CASE WHEN code IS NULL THEN 'none' ELSE (code // 100)::VARCHAR || 'xx' END
                   AS outcome,
               count(*) AS requests
        FROM requests
        WHERE ts IS NOT NULL AND @W(ts)  -- undated requests have no bucket
          AND ($identity::VARCHAR IS NULL OR @MINE)
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
    """Return the busiest identities: requests, distinct verbs, denials, first and last seen.

    One row per identity the requests were authorised as and impersonator (NULL: its own).
    """
    return run(
        con,
        """
        SELECT @IDENTITY AS identity, @BY AS impersonated_by, count(*) AS requests,
               count(DISTINCT verb) AS verbs,
               count(*) FILTER (WHERE code IN (401, 403)) AS denials,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests WHERE @W(ts)
        GROUP BY ALL ORDER BY requests DESC, identity, impersonated_by NULLS FIRST LIMIT $limit
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
        SELECT @IDENTITY AS identity, @BY AS impersonated_by, verb,
               concat_ws('/', resource, subresource) AS resource, count(*) AS requests
        FROM requests WHERE @W(ts)
        GROUP BY ALL
        ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, verb, resource
        LIMIT $limit
        """,
        since=since,
        until=until,
        limit=limit,
    )


def denials(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 50
) -> pa.Table:
    """Return 401/403 responses counted by identity, resource, namespace and code.

    A refusal of an impersonated request is the impersonated identity's (`impersonated_by` says
    who sent it).
    """
    return run(
        con,
        """
        SELECT @IDENTITY AS identity, @BY AS impersonated_by,
               concat_ws('/', resource, subresource) AS resource,
               namespace, code, count(*) AS requests, min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests WHERE code IN (401, 403) AND @W(ts)
        GROUP BY ALL ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, resource
        LIMIT $limit
        """,
        since=since,
        until=until,
        limit=limit,
    )


def new_in_window(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 100
) -> pa.Table:
    """Return identities (sending or impersonated), source IPs and user agents first seen
    inside the window (a value seen only undated counts as new in every window)."""
    return run(
        con,
        """
        WITH x AS (
            SELECT 'identity' AS kind, username AS value, ts FROM requests
            UNION ALL SELECT 'identity', impersonated_user, ts FROM requests
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


def quality_summary(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None
) -> pa.Table:
    """Return, per quality flag, the events that carry it and the findings that rest on them.

    One row per flag (mapping.QUALITY_FLAGS, in its order, zeros included) after a first row
    `any flag`: `events` in the window (undated events, `no-timestamp`, are in every window, so
    that row counts every undated event of the case) and `findings` whose evidence has at least
    one event with the flag.
    """
    return run(
        con,
        """
        WITH flags AS (
            SELECT unnest($flags) AS flag, unnest($meanings) AS meaning,
                   generate_subscripts($flags, 1) AS n
            UNION ALL SELECT 'any flag', 'the event lacks at least one of the fields below', 0
        ),
        e AS (SELECT quality FROM events WHERE @W(ts)),
        f AS (SELECT quality FROM findings WHERE @W(first_seen)),
        ec AS (SELECT flag, count(*) AS n FROM (SELECT unnest(quality) AS flag FROM e)
               GROUP BY flag
               UNION ALL SELECT 'any flag', count(*) FROM e WHERE len(quality) > 0),
        fc AS (SELECT flag, count(*) AS n FROM (SELECT unnest(quality) AS flag FROM f)
               GROUP BY flag
               UNION ALL SELECT 'any flag', count(*) FROM f WHERE len(quality) > 0)
        SELECT flags.flag, meaning, coalesce(ec.n, 0) AS events, coalesce(fc.n, 0) AS findings
        FROM flags LEFT JOIN ec USING (flag) LEFT JOIN fc USING (flag)
        ORDER BY flags.n
        """,
        since=since,
        until=until,
        flags=list(QUALITY_FLAGS),
        meanings=list(QUALITY_FLAGS.values()),
    )


def findings_points(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    identity: str | None = None,
    limit: int = 300,
) -> pa.Table:
    """Return one row per dated finding (first_seen, level, rule, actor, count), most severe
    first; the actor reads `alice as system:admin` under impersonation."""
    return run(
        con,
        """
        SELECT first_seen, level, rule_id,
               coalesce(actor, '(several)') || coalesce(' as ' || impersonated, '') AS actor,
               coalesce(namespace, '') AS namespace, count
        FROM findings
        WHERE first_seen IS NOT NULL AND @W(first_seen)  -- a chart point needs a time
          AND ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
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
    """Return the identity's requests, and those others made as it, in time order (undated
    last): metadata only, with the evidence line and the event's quality flags."""
    return run(
        con,
        """
        SELECT ts, @RELATION AS relation, @IDENTITY AS identity, @BY AS impersonated_by, verb,
               concat_ws('/', resource, subresource) AS resource, namespace, name,
               code, source_ips[1] AS source_ip, user_agent, audit_id,
               source_file || ':' || source_line AS evidence, quality
        FROM requests WHERE @MINE AND @W(ts)
        ORDER BY ts NULLS LAST, source_file, source_line, source_index LIMIT $limit
        """,
        identity=identity,
        since=since,
        until=until,
        limit=limit,
    )


def resources_touched(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return what the identity touched (itself, or others as it: `relation`): resource,
    namespace, verb, requests, failures, names."""
    return run(
        con,
        """
        SELECT concat_ws('/', resource, subresource) AS resource, namespace, verb,
               @RELATION AS relation,
               count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
               count(DISTINCT name) AS names, min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests WHERE @MINE AND @W(ts)
        GROUP BY ALL ORDER BY requests DESC, resource, namespace, verb, relation
        """,
        identity=identity,
        since=since,
        until=until,
    )


def identity_sources(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return the identity's source IPs and user agents with requests, first and last seen
    (`relation`: its own requests, or those others made as it)."""
    return run(
        con,
        """
        WITH r AS (SELECT *, @RELATION AS relation FROM requests WHERE @MINE AND @W(ts)),
        x AS (SELECT 'source_ip' AS kind, unnest(source_ips) AS value, relation, ts FROM r
              UNION ALL SELECT 'user_agent', user_agent, relation, ts FROM r)
        SELECT kind, value, relation, count(*) AS requests, min(ts) AS first_seen,
               max(ts) AS last_seen
        FROM x WHERE value IS NOT NULL GROUP BY ALL
        ORDER BY kind, first_seen NULLS LAST, value, relation
        """,
        identity=identity,
        since=since,
        until=until,
    )


def permission_changes(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return RBAC writes made by the identity (or by others as it: `impersonated`) or whose
    binding subjects include it."""
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
        SELECT ts, username AS actor, impersonated_user AS impersonated, verb, resource,
               namespace, coalesce(name, obj->>'$.metadata.name') AS name,
               obj->>'$.roleRef.name' AS role_ref, subject_names AS subjects, code,
               CASE WHEN @MINE AND list_contains(subject_names, $identity)
                    THEN 'by and for' WHEN @MINE THEN 'by' ELSE 'grants' END
                   AS relation,
               source_file || ':' || source_line AS evidence
        FROM r WHERE @MINE OR list_contains(subject_names, $identity)
        ORDER BY ts NULLS LAST, source_file, source_line
        """,
        identity=identity,
        since=since,
        until=until,
    )


def exec_sessions(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return the identity's exec/attach/portforward requests, and those others made as it
    (`impersonated_by`), with the URL-decoded command."""
    table = run(
        con,
        EXEC + " AND @MINE ORDER BY ts NULLS LAST, source_file, source_line",
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
    """Return the stored findings of an identity (as actor or impersonated) and/or namespace,
    most severe first (undated last), with the quality flags of the events they stand on."""
    return run(
        con,
        """
        SELECT first_seen, level, rule_id, title, actor, impersonated, namespace,
               concat_ws('/', resource, name) AS object, count, tactics, attack,
               evidence[1].source_file || ':' || evidence[1].source_line AS first_evidence,
               quality
        FROM findings
        WHERE ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
          AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
          AND ($level::VARCHAR IS NULL OR level = $level)
          AND @W(first_seen)
        ORDER BY @LEVELS, first_seen NULLS LAST, rule_id, finding_id
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
        SELECT @IDENTITY AS identity, @BY AS impersonated_by, verb,
               concat_ws('/', resource, subresource) AS resource,
               count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests
        WHERE namespace = $namespace AND @W(ts)
          AND ($pod::VARCHAR IS NULL OR (resource = 'pods' AND name = $pod))
        GROUP BY ALL
        ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, verb, resource
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
        EXEC + " AND namespace = $namespace AND ($pod::VARCHAR IS NULL OR name = $pod)"
        " ORDER BY ts NULLS LAST, source_file, source_line",
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
        SELECT @IDENTITY AS identity, @BY AS impersonated_by, verb,
               CASE WHEN namespace IS NULL THEN '(all namespaces)'
                    ELSE coalesce(name, '(list)') END AS secret,
               count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM requests
        WHERE resource = 'secrets' AND verb IN ('get', 'list', 'watch')
          AND (namespace = $namespace OR namespace IS NULL) AND @W(ts)
        GROUP BY ALL ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, secret
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
            SELECT ts, username, impersonated_user, verb, resource, namespace, code,
                source_file, source_line,
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
        SELECT ts, username AS actor, impersonated_user AS impersonated, verb, resource, object,
               code,
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
