"""The sensitive workloads in the case: resolved for `detect` (which stores them), read back by
reports and fences."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from kforensics.case import added_table, connect
from kforensics.detection.sensitive import SensitiveTargets
from kforensics.errors import CaseError
from kforensics.netpol.inventory import Inventory, reconstruct
from kforensics.sensitive.declare import Declaration, load_text
from kforensics.sensitive.resolve import Candidate, Workload, candidates, resolve, target_rows
from kforensics.untrusted import visible

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


def with_baseline(inv: Inventory, baseline: str | Path | None) -> Inventory:
    """Return inv with a baseline case's objects under its own (a week of logs shows the pods
    that a day of them never recorded whole); inv itself without a baseline."""
    if baseline is None:
        return inv
    if not Path(baseline).is_file():
        raise CaseError(f"{visible(str(baseline))}: no such baseline case file")
    try:
        older = _rebuilt(baseline)
    except CaseError as exc:  # the same words as detect's own refusal of it
        why = str(exc.__cause__ or exc).splitlines()[0]
        raise CaseError(f"{visible(str(baseline))}: cannot open the baseline case: {why}") from None
    except duckdb.Error as exc:  # a DuckDB file without the case's tables
        raise CaseError(
            f"{visible(str(baseline))}: not a kforensics case usable as a baseline: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    where = f"baseline case {baseline}: "
    for key, obj in older.objects.items():
        if key not in inv.objects and key not in inv.evidence:  # deleted in the case: gone
            inv.objects[key] = obj
            inv.evidence[key] = where + older.evidence.get(key, "")
    return inv


def _rebuilt(case: str | Path) -> Inventory:
    con = connect(case)
    try:
        return reconstruct(con)
    finally:
        con.close()


def targets(
    case: str | Path, decl: Declaration, baseline: str | Path | None = None
) -> SensitiveTargets:
    """Return the declaration resolved against the case's inventory (and a baseline case's), as
    detect stores it: the covered workloads, the candidates, and the names a request may give
    to reach them."""
    inv = with_baseline(_rebuilt(case), baseline)
    chosen = resolve(decl, inv)
    rows = [
        {"workload": w.key, "namespace": w.namespace, "kind": w.kind, "name": w.name,
         "why": w.why, "pods": w.pods, "labels": w.labels or None, "secrets": w.secrets,
         "configmaps": w.configmaps, "services": w.services, "service_account": w.service_account,
         "recorded": w.recorded, "evidence": w.evidence or None, "candidate": False}
        for w in chosen
    ]  # fmt: skip
    for c in candidates(inv, chosen):
        ns, kind, name = c.workload.split("/", 2)
        rows.append(
            {"workload": c.workload, "namespace": ns, "kind": kind, "name": name,
             "why": list(c.reasons), "pods": [], "labels": None, "secrets": [], "configmaps": [],
             "services": [], "service_account": None, "recorded": True, "evidence": None,
             "candidate": True}
        )  # fmt: skip
    return SensitiveTargets(
        decl.source, decl.to_yaml(), target_rows(chosen, inv, decl.namespaces), rows
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
