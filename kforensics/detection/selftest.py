"""Checking a rule against its own match / no-match events, through the real loader."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson

from kforensics.detection.ev import prepare
from kforensics.detection.rule import Rule
from kforensics.detection.run import run_rules
from kforensics.detection.sensitive import prepare_sensitive
from kforensics.ingest.load import load

T0 = datetime(2026, 3, 14, 10, 0, 0, tzinfo=UTC)

BASE_EVENT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "stage": "ResponseComplete",
    "verb": "get",
    "user": {"username": "alice@example.com", "groups": ["oidc:sre", "system:authenticated"]},
    "sourceIPs": ["203.0.113.10"],
    "userAgent": "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
    "responseStatus": {"metadata": {}, "code": 200},
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
}


def _uri(ref: dict) -> str:
    group, version = ref.get("apiGroup"), ref.get("apiVersion", "v1")
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if ref.get("namespace") and ref.get("resource") != "namespaces":
        path += f"/namespaces/{ref['namespace']}"
    path += f"/{ref.get('resource', '')}"
    if ref.get("name"):
        path += f"/{ref['name']}"
    if ref.get("subresource"):
        path += f"/{ref['subresource']}"
    return path


def expand(item: dict, tag: str) -> list[dict]:
    """Return the native events of one test item (an event, or {sequence: [...]}).

    An event is merged onto BASE_EVENT (top-level keys replace). `x-offset-seconds` shifts its
    time from T0; `x-repeat: N` with `x-every-seconds: S` makes N copies S seconds apart.
    """
    events = item["sequence"] if "sequence" in item else [item]
    out = []
    for i, partial in enumerate(events):
        partial = dict(partial)
        offset = float(partial.pop("x-offset-seconds", i))
        repeat = int(partial.pop("x-repeat", 1))
        every = float(partial.pop("x-every-seconds", 1))
        for j in range(repeat):
            ev = {**BASE_EVENT, **partial}
            ev.setdefault("auditID", f"{tag}-{i}-{j}")
            if "objectRef" in ev:
                ev.setdefault("requestURI", _uri(ev["objectRef"]))
            ev.setdefault("requestURI", "/api/v1/namespaces/default/pods")
            t = T0 + timedelta(seconds=offset + j * every)
            ev.setdefault("requestReceivedTimestamp", t.isoformat().replace("+00:00", "Z"))
            ev.setdefault(
                "stageTimestamp",
                (t + timedelta(milliseconds=3)).isoformat().replace("+00:00", "Z"),
            )
            out.append(ev)
    return out


_INSERT_REMEDIATION = """
INSERT INTO remediations BY NAME
SELECT $remediation_id AS remediation_id, $generated_at AS generated_at,
       $effective_from AS effective_from, $step AS step, $action AS action, $kind AS kind,
       $namespace AS namespace, $name AS name, $identity AS identity,
       CASE WHEN $has_labels THEN map($label_keys::VARCHAR[], $label_values::VARCHAR[]) END
           AS labels,
       $object::JSON AS object, $finding_ids::VARCHAR[] AS finding_ids,
       $evidence::VARCHAR[] AS evidence
"""


def remediation_params(row: dict, n: int) -> dict:
    """Return the bound parameters inserting one `tests.given.remediations` row (the n-th)."""
    offset = row.get("effective_from_offset_seconds", 0)
    generated = row.get("generated_at_offset_seconds", offset)
    labels = row.get("labels")
    return {
        "remediation_id": row.get("remediation_id", f"given-{n}"),
        "generated_at": T0 + timedelta(seconds=generated or 0),
        "effective_from": None if offset is None else T0 + timedelta(seconds=offset),
        "step": row.get("step", f"step-{n}"),
        "action": row["action"],
        **{k: row.get(k) for k in ("kind", "namespace", "name", "identity")},
        "has_labels": labels is not None,
        "label_keys": list((labels or {}).keys()),
        "label_values": list((labels or {}).values()),
        "object": None if row.get("object") is None else json.dumps(row["object"]),
        "finding_ids": row.get("finding_ids", []),
        "evidence": row.get("evidence", []),
    }


def insert_remediations(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> int:
    """Insert `tests.given.remediations` rows (as rule.py validates them); return how many."""
    for n, row in enumerate(rows, 1):
        con.execute(_INSERT_REMEDIATION, remediation_params(row, n))
    return len(rows)


def _given_sensitive(con: duckdb.DuckDBPyConnection, given: dict) -> None:
    """Put `tests.given.sensitive_targets` rows in place for the item, as `detect` would."""
    if "sensitive_targets" not in given:
        return
    rows = [
        {"workload": None, "resource": None, "name": None, "name_regex": None, "priority": 0, **r}
        for r in given["sensitive_targets"]
    ]
    offset = given.get("baseline_until_offset_seconds")
    until = None if offset is None else T0 + timedelta(seconds=offset)
    prepare_sensitive(con, rows, baseline_until=until)


def duckdb_judge(con: duckdb.DuckDBPyConnection, rule: Rule) -> tuple[set[str], bool]:
    """Return the audit IDs the rule's findings cite over the prepared `ev`, and whether any."""
    findings = run_rules(con, [rule])
    return {e["audit_id"] for f in findings for e in f.evidence}, bool(findings)


def check_rule(rule: Rule, judge: Callable = duckdb_judge) -> list[str]:
    """Return the problems found by running the rule on its test events (empty: all good).

    judge(con, rule) runs the rule over con's prepared `ev`: DuckDB by default, Spark for
    `kforensics.spark.selftest`.

    Every test item goes through the real loader: all of a rule's items, one after another in
    one log file (their audit IDs differ, so the loader's de-duplication cannot join two), in
    one load into an in-memory case. Each item is then judged alone, `events` holding its lines,
    with the rows of `tests.given.remediations` in the table remediations.
    """
    items = [
        (kind, n, expand(item, f"{kind}-{n}"))
        for kind in ("match", "no_match")
        for n, item in enumerate(rule.tests[kind], 1)
    ]
    ids = [{e["auditID"] for e in events} for _, _, events in items]
    if len(set().union(*ids)) != sum(len(i) for i in ids):
        # the loader would take one item's event for a repeat of another's and drop it
        raise ValueError(f"{rule.path}: two test items give events the same auditID")
    # A named in-memory database lives while a connection to it is open: load() opens and closes
    # its own, and `con` keeps the loaded case for the checks.
    name = f":memory:kf-selftest-{uuid.uuid4().hex}"
    problems = []
    with tempfile.TemporaryDirectory(prefix=f"kf-{rule.id}-") as tmp, duckdb.connect(name) as con:
        log = Path(tmp) / "tests.log"
        log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for _, _, evs in items for e in evs))
        load(name, [log])
        rejected = con.execute("SELECT source_line, reason FROM rejects ORDER BY ALL").fetchall()
        if rejected:
            raise ValueError(f"{rule.path}: test event rejected (line, reason): {rejected}")
        con.execute("SET TimeZone = 'UTC'")  # as case.connect does
        con.execute("CREATE TEMP TABLE loaded AS SELECT * FROM events")
        # the case as `kforensics remediate` leaves it: the same rows for every item
        insert_remediations(con, rule.tests.get("given", {}).get("remediations", []))
        first = 1
        for (kind, n, events), audit_ids in zip(items, ids, strict=True):
            con.execute("DELETE FROM events")
            con.execute(
                "INSERT INTO events SELECT * FROM loaded WHERE source_line BETWEEN $a AND $b",
                {"a": first, "b": first + len(events) - 1},
            )
            first += len(events)
            prepare(con)
            _given_sensitive(con, rule.tests.get("given", {}))
            cited, fired = judge(con, rule)
            if kind == "match" and not cited & audit_ids:
                problems.append(f"{rule.id}: match event {n} did not fire")
            if kind == "no_match" and fired:
                problems.append(f"{rule.id}: no_match event {n} fired")
    return problems
