"""`kforensics remediate`: the containment plan of a case's findings, written and recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

from kforensics.case import connect
from kforensics.contain.plan import Plan, build
from kforensics.contain.record import record as record_plan
from kforensics.contain.write import write
from kforensics.detection.run import Finding
from kforensics.errors import CaseError


@dataclass
class Remediation:
    """What `remediate_case` did: the plan, the files, and how it was recorded."""

    plan: Plan
    paths: list[Path] = field(default_factory=list)
    remediation_id: str | None = None
    record_error: str | None = None

    @property
    def errors(self) -> list[str]:
        """Return the validation errors (objects kept apart in invalid/, not applied)."""
        return self.plan.errors


def remediate_case(
    case: str | Path,
    out: str | Path,
    *,
    at: datetime | None = None,
    forensics_namespace: str | None = None,
    findings: list[Finding] | None = None,
    record: bool = True,
) -> Remediation:
    """Plan, validate, simulate, write and (unless record=False) record the case's containment.

    Uses the findings the last `kforensics detect` stored (running it when there are none). A
    plan that cannot be recorded (the case is open elsewhere) is still written, and says so.
    """
    from kforensics.detection.rule import load_rules
    from kforensics.detection.run import detect, stored_findings
    from kforensics.netpol.inventory import timeline
    from kforensics.netpol.plan import before_times

    if findings is None:
        with connect(case) as con:
            findings = stored_findings(con)
        if not findings:
            findings = detect(case, load_rules())
    con = connect(case)
    try:
        at_time = timeline(con)
        # every inventory the plan asks for, from one chronological pass over the log
        known = at_time.snapshots([at, *before_times(findings)])

        @cache
        def inv_at(when):
            when = when if when is not None else at
            return known[when] if when in known else at_time(when)

        plan = build(con, findings, inv_at, forensics_namespace=forensics_namespace)
    finally:
        con.close()
    result = Remediation(plan)
    recorded = "not recorded (record=False): the watch rules do not know this plan"
    if record:
        try:
            result.remediation_id, n, since = record_plan(case, plan, at)
            recorded = (
                f"remediation {result.remediation_id}: {n} row(s) in the case's remediations "
                f"table; events after {since} are watched"
            )
        except CaseError as exc:
            result.record_error = str(exc)
            recorded = f"NOT RECORDED: {exc}"
    result.paths = write(Path(out), plan, case=str(case), recorded=recorded)
    return result
