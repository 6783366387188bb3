"""Requests that target sensitive workloads, and each workload's baseline, for the rules.

`prepare_sensitive` builds two temp tables beside `ev`:

- `sensitive_access`: one row per request in the window that targets a sensitive workload or
  what it holds, with the kind of access (ACCESS below) and the workload it reaches;
- `sensitive_history`: the (identity, workload, access) pairs seen before the investigation
  window: this case's requests before `baseline_until`, and every request of a baseline case.

The same classification (one SQL definition, ACCESS and _MATCH) reads both, so "the same kind of
request" means the same thing in the window and in its history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from kforensics.case import added_table
from kforensics.errors import CaseError
from kforensics.untrusted import visible

# What counts as reaching into a workload (the list): sessions into its pods, its logs,
# changes to its spec or labels, reads of the secrets and configmaps it holds, deletes.
ACCESS = """
CASE
    WHEN resource = 'pods' AND subresource = 'exec' THEN 'exec'
    WHEN resource = 'pods' AND subresource = 'attach' THEN 'attach'
    WHEN resource = 'pods' AND subresource = 'portforward' THEN 'port-forward'
    WHEN resource IN ('pods', 'services') AND subresource = 'proxy' THEN 'proxy'
    WHEN resource = 'pods' AND subresource = 'log' THEN 'logs'
    WHEN resource = 'pods' AND subresource = 'ephemeralcontainers' THEN 'ephemeral-container'
    WHEN resource IN ('secrets', 'configmaps') AND subresource IS NULL
         AND verb IN ('get', 'list', 'watch') THEN 'read'
    WHEN subresource IS NULL AND verb IN ('patch', 'update') THEN 'change'
    WHEN subresource IS NULL AND verb IN ('delete', 'deletecollection') THEN 'delete'
END
"""
# Who is left out: the control plane and the nodes act on every workload by design (a kubelet
# watches the secrets of its pods, the garbage collector deletes pods); their misuse shows in
# the other rules. People, service accounts and anonymous requests are compared. The
# controllers are named one by one (kube-controller-manager's service accounts): a pattern such
# as `*-controller` would let anyone who may create a service account in kube-system hide.
CONTROLLER_SAS = tuple(
    f"system:serviceaccount:kube-system:{name}"
    for name in (
        "attachdetach-controller", "bootstrap-signer", "certificate-controller",
        "clusterrole-aggregation-controller", "cronjob-controller", "daemon-set-controller",
        "deployment-controller", "disruption-controller", "endpoint-controller",
        "endpointslice-controller", "endpointslicemirroring-controller",
        "ephemeral-volume-controller", "expand-controller", "generic-garbage-collector",
        "horizontal-pod-autoscaler", "job-controller", "legacy-service-account-token-cleaner",
        "namespace-controller", "node-controller", "persistent-volume-binder",
        "pod-garbage-collector", "pv-protection-controller", "pvc-protection-controller",
        "replicaset-controller", "replication-controller", "resourcequota-controller",
        "root-ca-cert-publisher", "service-account-controller", "service-controller",
        "statefulset-controller", "token-cleaner", "ttl-after-finished-controller",
        "ttl-controller", "validatingadmissionpolicy-status-controller",
    )
)  # fmt: skip
_COMPARED = f"""
coalesce(username, '') NOT LIKE 'system:node:%'
AND (coalesce(username, '') NOT LIKE 'system:%' OR username LIKE 'system:serviceaccount:%'
     OR username = 'system:anonymous')
AND coalesce(username, '') NOT IN ({", ".join(f"'{sa}'" for sa in CONTROLLER_SAS)})
"""
_RESOURCES = (
    "('pods', 'services', 'secrets', 'configmaps', 'deployments', 'replicasets', 'statefulsets', "
    "'daemonsets', 'jobs', 'cronjobs')"
)
# A request reaches a target row when it names it: exactly, by its controller's naming pattern,
# or anywhere in a sensitive namespace; a list, watch or deletecollection (no name) reaches every
# target of its resource in its namespace (or in all, cluster-wide). A named request takes its
# most specific rows only, so a known pod of another workload is never claimed by a pattern.
_ACCESSES = f"""
WITH r AS (
    SELECT event_id, ts, username, coalesce(impersonated_user, username) AS identity,
           resource, name, namespace, {ACCESS} AS access
    FROM {{source}}
    WHERE {_COMPARED} AND resource IN {_RESOURCES}
),
a AS (SELECT * FROM r WHERE access IS NOT NULL),
-- named requests: exact names (a hash join), then the few pattern and namespace rows;
-- collective ones (no name): every target of their resource in their namespace, or in all
m AS (
    SELECT a.*, t.workload, t.priority FROM a JOIN sensitive_target_rows t
      ON t.namespace = a.namespace AND t.resource = a.resource AND t.name = a.name
    UNION ALL
    SELECT a.*, t.workload, t.priority FROM a JOIN sensitive_target_rows t
      ON t.namespace = a.namespace AND t.resource = a.resource AND t.name_regex IS NOT NULL
     AND regexp_full_match(a.name, t.name_regex)
    UNION ALL
    SELECT a.*, t.workload, t.priority FROM a JOIN sensitive_target_rows t
      ON t.namespace = a.namespace AND t.resource IS NULL AND a.name IS NOT NULL
    UNION ALL
    SELECT a.*, t.workload, t.priority FROM a JOIN sensitive_target_rows t
      ON a.name IS NULL AND (t.namespace = a.namespace OR a.namespace IS NULL)
     AND (t.resource = a.resource OR t.resource IS NULL)
),
q AS (
    SELECT * FROM m
    QUALIFY name IS NULL OR priority = min(priority) OVER (PARTITION BY event_id)
)
SELECT DISTINCT q.event_id, q.ts, q.identity, q.access, q.workload,
       split_part(q.workload, '/', 1) AS workload_namespace,
       split_part(q.workload, '/', 2) AS workload_kind,
       split_part(q.workload, '/', 3) AS workload_name
FROM q WHERE q.workload IS NOT NULL
"""  # noqa: S608 (only constants are formatted in)


@dataclass
class SensitiveTargets:
    """A sensitive-workloads declaration resolved against a case (`sensitive.store.targets`),
    as detect uses and stores it: plain rows of the case's sensitive tables."""

    source: str  # where the declaration came from
    declaration: str  # the declaration as YAML
    rows: list[dict] = field(default_factory=list)  # sensitive_targets rows
    workloads: list[dict] = field(default_factory=list)  # sensitive_workloads rows


_STORED_TABLES = ("sensitive_declaration", "sensitive_workloads", "sensitive_targets")
_WORKLOAD_COLUMNS = (
    "workload", "namespace", "kind", "name", "why", "pods", "labels", "secrets", "configmaps",
    "services", "service_account", "recorded", "evidence", "candidate",
)  # fmt: skip


def store_targets(
    con: duckdb.DuckDBPyConnection,
    targets: SensitiveTargets,
    at: datetime,
    baseline_until: datetime | None = None,
    baseline_case: str | None = None,
) -> None:
    """Replace the case's declaration, workloads and target rows (in the caller's transaction)."""
    for table in _STORED_TABLES:
        con.execute(f"DELETE FROM {table}")  # noqa: S608 (constant table names)
    con.execute(
        "INSERT INTO sensitive_declaration VALUES ($at, $source, $text, $until, $case)",
        {"at": at, "source": targets.source, "text": targets.declaration,
         "until": baseline_until, "case": baseline_case},
    )  # fmt: skip
    if targets.workloads:
        names = ", ".join(f"${c}" for c in _WORKLOAD_COLUMNS)
        con.executemany(
            f"INSERT INTO sensitive_workloads VALUES ({names})",  # noqa: S608 (constant names)
            [{c: w[c] for c in _WORKLOAD_COLUMNS} for w in targets.workloads],
        )
    if targets.rows:
        con.executemany(
            "INSERT INTO sensitive_targets VALUES ($workload, $namespace, $resource, $name, "
            "$name_regex, $priority)",
            targets.rows,
        )


RESOURCES = {  # a workload key's kind -> the resource a request names it by
    "Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets", "Job": "jobs", "CronJob": "cronjobs", "Pod": "pods",
    "Secret": "secrets", "Namespace": "namespaces",
}  # fmt: skip


def _resource_sql() -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in RESOURCES.items())
    return f"CASE workload_kind {whens} END"


def _target_rows(con: duckdb.DuckDBPyConnection, rows: list[dict] | None) -> None:
    """Create the temp table sensitive_target_rows: given rows, else those the case stored."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sensitive_target_rows (workload VARCHAR, namespace VARCHAR, "
        "resource VARCHAR, name VARCHAR, name_regex VARCHAR, priority INTEGER)"
    )
    if rows is None:
        added_table(con, "sensitive_targets")
        con.execute("INSERT INTO sensitive_target_rows SELECT * FROM sensitive_targets")
        return
    if rows:
        con.executemany(
            "INSERT INTO sensitive_target_rows VALUES ($workload, $namespace, $resource, $name, "
            "$name_regex, $priority)",
            rows,
        )


def prepare_sensitive(
    con: duckdb.DuckDBPyConnection,
    rows: list[dict] | None = None,
    *,
    baseline_until: datetime | None = None,
    baseline_case: str | Path | None = None,
) -> int:
    """Build sensitive_access (the window's `ev`) and sensitive_history; return access rows.

    rows are the target rows (`sensitive.resolve.target_rows`); None reads those the case
    stored. Requests of the case before baseline_until are history, not window.
    """
    _target_rows(con, rows)
    table = f"""
        CREATE OR REPLACE TEMP TABLE sensitive_access AS
        SELECT *, {_resource_sql()} AS workload_resource FROM ({_ACCESSES.format(source="ev")})
        WHERE $until IS NULL OR ts IS NULL OR ts >= $until
    """  # noqa: S608 (constants only)
    con.execute(table, {"until": baseline_until})
    _history(con, baseline_until, baseline_case)
    return con.execute("SELECT count(*) FROM sensitive_access").fetchall()[0][0]


def _history(
    con: duckdb.DuckDBPyConnection, until: datetime | None, baseline_case: str | Path | None
) -> None:
    """Create sensitive_history: the case's pairs before until, and the baseline case's."""
    history = _ACCESSES.format(
        source="(SELECT * FROM requests WHERE $until IS NOT NULL AND ts < $until)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE sensitive_history AS "  # noqa: S608 (constants only)
        f"SELECT identity, workload, access, min(ts) AS first_seen, count(*) AS requests "
        f"FROM ({history}) GROUP BY ALL",
        {"until": until},
    )
    if baseline_case is not None:
        _baseline_case(con, Path(baseline_case))


def _baseline_case(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Add a baseline case's pairs to sensitive_history (the case attached read-only)."""
    if not path.is_file():
        raise CaseError(f"{visible(str(path))}: no such baseline case file")
    try:
        con.execute("ATTACH $path AS kf_baseline (READ_ONLY)", {"path": str(path)})
    except duckdb.Error as exc:
        raise CaseError(
            f"{visible(str(path))}: cannot open the baseline case: {str(exc).splitlines()[0]}"
        ) from None
    try:
        history = _ACCESSES.format(source="kf_baseline.main.requests")
        con.execute(
            f"INSERT INTO sensitive_history SELECT identity, workload, access, min(ts), "  # noqa: S608
            f"count(*) FROM ({history}) GROUP BY ALL"
        )
    except duckdb.Error as exc:
        raise CaseError(
            f"{visible(str(path))}: not a kforensics case usable as a baseline: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    finally:
        con.execute("DETACH kf_baseline")


_TOUCHED = f"""
SELECT a.workload, a.identity, a.access, count(*) AS requests,
       count(*) FILTER (WHERE coalesce(q.code, 0) < 400 AND q.code IS NOT NULL) AS allowed,
       min(a.ts) AS first_seen, max(a.ts) AS last_seen,
       arg_min(q.source_file || ':' || q.source_line, coalesce(a.ts, TIMESTAMPTZ '9999-01-01'))
           AS first_evidence,
       bool_or(h.identity IS NULL) AS first_time
FROM ({_ACCESSES.format(source="w")}) a
JOIN w q USING (event_id)
LEFT JOIN sensitive_history h USING (identity, workload, access)
GROUP BY ALL
ORDER BY a.workload, first_seen NULLS LAST, a.identity, a.access
"""  # noqa: S608 (constants only)


def touched(
    con: duckdb.DuckDBPyConnection,
    rows: list[dict] | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    baseline_until: datetime | None = None,
    baseline_case: str | Path | None = None,
) -> list[dict]:
    """Return who reached into each sensitive workload in the window, and how: one row per
    (workload, identity, access) with counts, times, first evidence and whether the pair is
    new against the baseline."""
    _target_rows(con, rows)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE w AS SELECT * EXCLUDE (raw, envelope) FROM requests "
        "WHERE ts IS NULL OR (($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts < $until) "
        "AND ($base IS NULL OR ts >= $base))",
        {"since": since, "until": until, "base": baseline_until},
    )
    _history(con, baseline_until, baseline_case)
    result = con.execute(_TOUCHED)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
