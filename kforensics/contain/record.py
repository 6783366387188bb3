"""Recording a plan in the case (table remediations), so that the watch rules know it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kforensics.case import connect
from kforensics.contain.plan import Plan
from kforensics.errors import CaseError
from kforensics.investigate.redact import redact, redact_text

_INSERT = """
INSERT INTO remediations VALUES ($id, $generated_at, $effective_from, $step, $action, $kind,
    $namespace, $name, $identity, CAST($labels::JSON AS MAP(VARCHAR, VARCHAR)), $object::JSON,
    $finding_ids, $evidence)
"""


def rows(plan: Plan) -> list[dict]:
    """Return the plan's rows for the remediations table (run columns apart)."""
    out = []
    for action in plan.actions:
        for r in action.records:
            out.append({
                "step": action.step,
                "action": r["action"],
                "kind": r.get("kind"),
                # names are the log's: one that looks like a credential is not stored as is
                "namespace": redact_text(r.get("namespace")),
                "name": redact_text(r.get("name")),
                "identity": redact_text(r.get("identity")),
                "labels": None if r.get("labels") is None else json.dumps(redact(r["labels"])),
                "object": None if r.get("object") is None else json.dumps(r["object"]),
                "finding_ids": sorted({f.finding_id for f in action.findings}),
                "evidence": action.cited(limit=10**6),
            })  # fmt: skip
    return out


def record(case: str | Path, plan: Plan, at: datetime | None = None) -> tuple[str, int, datetime]:
    """Store the plan in the case; return its remediation_id, rows and effective_from.

    effective_from is the time of the case's last event (as of `at`): what happens after it
    happened after the plan.
    """
    data = rows(plan)
    remediation_id = uuid.uuid4().hex[:16]
    con = connect(case, read_only=False)  # CaseError when something else holds the case
    try:
        effective = con.execute(
            "SELECT max(ts) FROM events WHERE $at IS NULL OR ts <= $at", {"at": at}
        ).fetchall()[0][0]
        run = {"id": remediation_id, "generated_at": datetime.now(UTC), "effective_from": effective}
        con.execute("BEGIN")
        for row in data:
            con.execute(_INSERT, {**run, **row})
        con.execute("COMMIT")
    except Exception as exc:  # noqa: BLE001 (DuckDB's errors have no common base worth naming)
        raise CaseError(f"{case}: could not record the remediation: {exc}") from exc
    finally:
        con.close()
    return remediation_id, len(data), effective
