"""Checking a rule against its own match / no-match events, through the real loader."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson

from kforensics.detect.ev import prepare
from kforensics.detect.rule import Rule
from kforensics.detect.run import run_rules
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


def _item_log(item: dict, tag: str, workdir: Path) -> tuple[Path, list[str]]:
    events = expand(item, tag)
    log = workdir / f"{tag}.log"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return log, [e["auditID"] for e in events]


def check_rule(rule: Rule) -> list[str]:
    """Return the problems found by running the rule on its test events (empty: all good).

    Every test item goes through the real loader, all of a rule's items in one load into one
    in-memory case (their audit IDs are distinct, so the loader's de-duplication cannot join
    two); each item is then judged alone, with `events` holding that item's events only.
    """
    items = [
        (kind, n, item)
        for kind in ("match", "no_match")
        for n, item in enumerate(rule.tests[kind], 1)
    ]
    problems = []
    # A named in-memory database lives while a connection to it is open: load() opens and closes
    # its own, and `con` keeps the loaded case for the checks.
    name = f":memory:kf-selftest-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix=f"kf-{rule.id}-") as tmp, duckdb.connect(name) as con:
        logs = {}
        for kind, n, item in items:
            logs[kind, n] = _item_log(item, f"{kind}-{n}", Path(tmp))
        load(name, [log for log, _ in logs.values()])
        rejected = con.execute("SELECT source_file, reason FROM rejects ORDER BY ALL").fetchall()
        if rejected:
            raise ValueError(f"{rule.path}: test event rejected: {rejected}")
        con.execute("SET TimeZone = 'UTC'")  # as case.connect does
        con.execute("CREATE TEMP TABLE loaded AS SELECT * FROM events")
        for kind, n, _ in items:
            log, ids = logs[kind, n]
            con.execute("DELETE FROM events")
            con.execute(
                "INSERT INTO events SELECT * FROM loaded WHERE source_file = $f", {"f": str(log)}
            )
            prepare(con)
            findings = run_rules(con, [rule])
            cited = {e["audit_id"] for f in findings for e in f.evidence}
            if kind == "match" and not cited & set(ids):
                problems.append(f"{rule.id}: match event {n} did not fire")
            if kind == "no_match" and findings:
                problems.append(f"{rule.id}: no_match event {n} fired")
    return problems
