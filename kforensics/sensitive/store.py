"""The sensitive workloads in the case: stored by `detect`, read by reports and fences."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from kforensics.case import added_table
from kforensics.sensitive.declare import Declaration, load_text
from kforensics.sensitive.resolve import Candidate, Workload

_TABLES = ("sensitive_declaration", "sensitive_workloads", "sensitive_targets")


@dataclass
class Stored:
    """What the last detect given a declaration stored: when, from where, and what it covers."""

    declared_at: datetime
    source: str
    declaration: Declaration
    workloads: list[Workload]
    candidates: list[Candidate] = field(default_factory=list)
    baseline_until: datetime | None = None
    baseline_case: str | None = None


def store(
    con: duckdb.DuckDBPyConnection,
    decl: Declaration,
    chosen: list[Workload],
    rows: list[dict],
    at: datetime,
    baseline_until: datetime | None = None,
    baseline_case: str | None = None,
    proposed: list[Candidate] = (),
) -> None:
    """Replace the case's declaration, workloads and target rows (inside the caller's
    transaction)."""
    for table in _TABLES:
        con.execute(f"DELETE FROM {table}")  # noqa: S608 (constant table names)
    con.execute(
        "INSERT INTO sensitive_declaration VALUES ($at, $source, $text, $until, $case)",
        {
            "at": at,
            "source": decl.source,
            "text": decl.to_yaml(),
            "until": baseline_until,
            "case": baseline_case,
        },  # fmt: skip
    )
    if chosen:
        con.executemany(
            "INSERT INTO sensitive_workloads VALUES ($workload, $namespace, $kind, $name, $why, "
            "$pods, $labels, $secrets, $configmaps, $services, $sa, $recorded, $evidence, false)",
            [
                {"workload": w.key, "namespace": w.namespace, "kind": w.kind, "name": w.name,
                 "why": w.why, "pods": w.pods, "labels": w.labels or None, "secrets": w.secrets,
                 "configmaps": w.configmaps, "services": w.services, "sa": w.service_account,
                 "recorded": w.recorded, "evidence": w.evidence or None}
                for w in chosen
            ],
        )  # fmt: skip
    if proposed:
        con.executemany(
            "INSERT INTO sensitive_workloads VALUES ($workload, $ns, $kind, $name, $why, [], NULL, "
            "[], [], [], NULL, true, NULL, true)",
            [
                dict(zip(("ns", "kind", "name"), c.workload.split("/", 2), strict=True),
                     workload=c.workload, why=list(c.reasons))
                for c in proposed
            ],
        )  # fmt: skip
    if rows:
        con.executemany(
            "INSERT INTO sensitive_targets VALUES ($workload, $namespace, $resource, $name, "
            "$name_regex, $priority)",
            rows,
        )


def stored(con: duckdb.DuckDBPyConnection) -> Stored | None:
    """Return what the case stores about its sensitive workloads, or None if nothing."""
    for table in _TABLES:
        added_table(con, table)  # a case written before version 5 has none
    row = con.execute(
        "SELECT declared_at, source, declaration, baseline_until, baseline_case "
        "FROM sensitive_declaration "
        "ORDER BY declared_at DESC LIMIT 1"
    ).fetchall()
    if not row:
        return None
    at, source, text, until, baseline = row[0]
    workloads = [
        Workload(ns, kind, name, why=list(why), pods=list(pods), labels=dict(labels or {}),
                 secrets=list(secrets), configmaps=list(cms), services=list(svcs),
                 service_account=sa, evidence=evidence or "", recorded=recorded)
        for (ns, kind, name, why, pods, labels, secrets, cms, svcs, sa, recorded, evidence)
        in con.execute(
            "SELECT namespace, kind, name, why, pods, labels, secrets, configmaps, services, "
            "service_account, recorded, evidence FROM sensitive_workloads WHERE NOT candidate "
            "ORDER BY kind = 'Secret', workload"
        ).fetchall()
    ]  # fmt: skip
    proposed = [
        Candidate(key, tuple(why))
        for key, why in con.execute(
            "SELECT workload, why FROM sensitive_workloads WHERE candidate ORDER BY workload"
        ).fetchall()
    ]
    return Stored(at, source, load_text(text, source), workloads, proposed, until, baseline)
