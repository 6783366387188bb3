"""Investigation queries for the notebooks: the named investigations as pyarrow tables.

Every function takes a read-only case connection (`kforensics.connect`) and an optional time
window (`since` inclusive, `until` exclusive: datetimes, ISO strings, or None/"" for the whole
case); undated events (flagged `no-timestamp`) could be from any time and are in every window.
Values are always bound parameters; SQL text is built only from constant fragments.

Both identities of a request made with impersonation (`kubectl --as`) are named: tables of
requests by `identity` show the identity the request was authorised as (the impersonated one;
its refusals are that identity's) and `impersonated_by` who sent it; tables by `actor` (findings,
RBAC and label changes) show who sent it and `impersonated` as whom. The identity functions take
an identity's own requests and those others made as it, marked in `relation`.

Each function runs the investigation of its name (investigations/NAME.sql, through
`kforensics.investigate.canned`): the SQL lives in those files, this module gives them
Python signatures.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from kforensics.investigate.canned import run_query
from kforensics.investigate.sql import Time, as_time
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


def _run(name: str, args: dict[str, Any]) -> pa.Table:
    """Return the rows of the investigation `name` for a function's arguments (its locals)."""
    con = args.pop("con")
    return run_query(con, name, args)


# --- triage ---------------------------------------------------------------------------------------


def volume_over_time(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    buckets: int = 60,
    identity: str | None = None,
    namespace: str | None = None,
) -> pa.Table:
    """Return requests per time bucket and outcome class (2xx/3xx/4xx/5xx/none).

    Undated requests are left out (they have no bucket; `quality_summary` counts them); with an
    identity, its own requests and those made as it.
    """
    return _run("volume_over_time", locals())


def top_identities(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 15
) -> pa.Table:
    """Return the busiest identities: requests, distinct verbs, denials, first and last seen.

    One row per identity the requests were authorised as and impersonator (NULL: its own).
    """
    return _run("top_identities", locals())


def who_did_what(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    identity: str | None = None,
    namespace: str | None = None,
    limit: int = 50,
) -> pa.Table:
    """Return request counts per identity, verb and resource (resource/subresource), top N."""
    return _run("who_did_what", locals())


def denials(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 50
) -> pa.Table:
    """Return 401/403 responses counted by identity, resource, namespace and code.

    A refusal of an impersonated request is the impersonated identity's (`impersonated_by` says
    who sent it).
    """
    return _run("denials", locals())


def new_in_window(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 100
) -> pa.Table:
    """Return identities (sending or impersonated), source IPs and user agents first seen
    inside the window (a value seen only undated counts as new in every window)."""
    return _run("new_in_window", locals())


def findings_summary(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None
) -> pa.Table:
    """Return finding counts by level and by ATT&CK tactic (dimension, value, findings, events)."""
    return _run("findings_summary", locals())


def attack_counts(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    min_level: str = "info",
) -> pa.Table:
    """Return findings per (ATT&CK tactic, technique) pair carried by the same finding, with
    the worst level and a severity score, counting findings at min_level and up."""
    return _run("attack_counts", locals())


def quality_summary(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None
) -> pa.Table:
    """Return, per quality flag, the events that carry it and the findings that rest on them.

    One row per flag (mapping.QUALITY_FLAGS, in its order, zeros included) after a first row
    `any flag`: `events` in the window (undated events, `no-timestamp`, are in every window, so
    that row counts every undated event of the case) and `findings` whose evidence has at least
    one event with the flag.
    """
    return _run("quality_summary", locals())


def findings_points(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    identity: str | None = None,
    namespace: str | None = None,
    min_level: str | None = None,
    limit: int = 300,
) -> pa.Table:
    """Return one row per dated finding (first_seen, level, rule, actor, count), most severe
    first; the actor reads `alice as system:admin` under impersonation."""
    return _run("findings_points", locals())


# --- identity -------------------------------------------------------------------------------------


def identity_timeline(
    con: duckdb.DuckDBPyConnection,
    identity: str,
    since: Time = None,
    until: Time = None,
    limit: int = 500,
    namespace: str | None = None,
) -> pa.Table:
    """Return the identity's requests, and those others made as it, in time order (undated
    last): metadata only, with the evidence line and the event's quality flags."""
    return _run("identity_timeline", locals())


def resources_touched(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return what the identity touched (itself, or others as it: `relation`): resource,
    namespace, verb, requests, failures, names."""
    return _run("resources_touched", locals())


def identity_sources(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return the identity's source IPs and user agents with requests, first and last seen
    (`relation`: its own requests, or those others made as it)."""
    return _run("identity_sources", locals())


def permission_changes(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return RBAC writes made by the identity (or by others as it: `impersonated`) or whose
    binding subjects include it."""
    return _run("permission_changes", locals())


def exec_sessions(
    con: duckdb.DuckDBPyConnection, identity: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return the identity's exec/attach/portforward requests, and those others made as it
    (`impersonated_by`), with the URL-decoded command."""
    return _run("exec_sessions", locals())


def findings_for(
    con: duckdb.DuckDBPyConnection,
    identity: str | None = None,
    namespace: str | None = None,
    since: Time = None,
    until: Time = None,
    min_level: str | None = None,
) -> pa.Table:
    """Return the stored findings of an identity (as actor or impersonated) and/or namespace,
    most severe first (undated last), with the quality flags of the events they stand on."""
    return _run("findings_for", locals())


# --- workload -------------------------------------------------------------------------------------


def workload_activity(
    con: duckdb.DuckDBPyConnection,
    namespace: str,
    pod: str | None = None,
    since: Time = None,
    until: Time = None,
    identity: str | None = None,
) -> pa.Table:
    """Return who touched the namespace (or one pod): identity x verb x resource counts."""
    return _run("workload_activity", locals())


def workload_exec(
    con: duckdb.DuckDBPyConnection,
    namespace: str,
    pod: str | None = None,
    since: Time = None,
    until: Time = None,
) -> pa.Table:
    """Return exec/attach/portforward into the namespace's pods, with the decoded command."""
    return _run("workload_exec", locals())


def secrets_read(
    con: duckdb.DuckDBPyConnection, namespace: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return secret reads in the namespace (and cluster-wide lists) by identity: no values."""
    return _run("secrets_read", locals())


def policy_and_label_changes(
    con: duckdb.DuckDBPyConnection, namespace: str, since: Time = None, until: Time = None
) -> pa.Table:
    """Return NetworkPolicy writes and namespace/pod label changes, with old and new labels."""
    return _run("policy_and_label_changes", locals())
