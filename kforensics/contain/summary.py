"""What `remediate_case` did, as escaped HTML for a notebook: steps, checks, changes, files."""

from __future__ import annotations

from kforensics.contain.remediate import Remediation
from kforensics.investigate.tables import html_table


def remediation_html(result: Remediation, max_rows: int = 50) -> str:
    """Return escaped HTML of a remediation: its actions by step, validation, simulation."""
    plan, sim = result.plan, result.plan.simulation
    rows = [
        {
            "step": a.step,
            "kind": a.kind,
            "name": a.name,
            "rationale": a.rationale,
            "rules": sorted({f.rule_id for f in a.findings}),
            "objects": len(a.objects),
            "commands": "; ".join(a.commands),
            "notes": "; ".join(a.notes),
            "evidence": a.cited(3),
        }
        for a in plan.actions
    ]
    validation = [{"invalid, kept apart (not applied)": e} for e in result.errors] or [
        {"validation": "all objects valid"}
    ]
    simulation = [{"simulation problem": p} for p in sim.problems]
    if sim.error:
        simulation.insert(0, {"simulation problem": f"simulation failed: {sim.error}"})
    changes = [
        {"from": c.src, "to": c.dst, "before": str(c.before), "after": str(c.after)}
        for c in sim.changes
    ]
    recorded = (
        {"recorded": f"remediation {result.remediation_id}: watched by kforensics detect"}
        if result.remediation_id
        else {"recorded": result.record_error or "not recorded (record=False)"}
    )
    parts = [
        f"<h4>Containment plan ({len(plan.actions)} actions)</h4>",
        html_table(rows, max_rows),
        "<h4>Recorded for the watch</h4>",
        html_table([recorded], max_rows),
        "<h4>Validation</h4>",
        html_table(validation, max_rows),
        f"<h4>Simulation: {len(sim.changes)} connections change</h4>",
        html_table(simulation or [{"simulation": "every quarantine holds"}], max_rows),
        html_table(changes, max_rows),
        f"<h4>Files written ({len(result.paths)})</h4>",
        html_table([{"file": str(f)} for f in result.paths], max_rows),
    ]
    return "\n".join(parts)
