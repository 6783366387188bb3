"""What `remediate_case` proposes, as escaped HTML for a notebook: remedies, checks, changes."""

from __future__ import annotations

from pathlib import Path

from kforensics.investigate.tables import html_table
from kforensics.netpol.plan import Remedy
from kforensics.netpol.remediation import Simulation


def remediation_html(
    files: list[Path],
    remedies: list[Remedy],
    sim: Simulation,
    errors: list[str],
    max_rows: int = 50,
) -> str:
    """Return escaped HTML summarising `remediate_case` output: remedies, validation, simulation."""
    remedy_rows = [
        {
            "kind": r.kind,
            "name": r.name,
            "rationale": r.rationale,
            "rules": sorted({f.rule_id for f in r.findings}),
            "objects": len(r.objects),
            "commands": "; ".join(r.commands),
            "notes": "; ".join(r.notes),
            "evidence": r.evidence(3),
        }
        for r in remedies
    ]
    validation = [{"validation error": e} for e in errors] or [{"validation": "all objects valid"}]
    simulation = [{"simulation problem": p} for p in sim.problems]
    if sim.error:
        simulation.insert(0, {"simulation problem": f"simulation failed: {sim.error}"})
    changes = [
        {"from": c.src, "to": c.dst, "before": str(c.before), "after": str(c.after)}
        for c in sim.changes
    ]
    parts = [
        f"<h4>Remedies ({len(remedies)})</h4>",
        html_table(remedy_rows, max_rows),
        "<h4>Validation</h4>",
        html_table(validation, max_rows),
        f"<h4>Simulation: {len(sim.changes)} connections change</h4>",
        html_table(simulation or [{"simulation": "every quarantine holds"}], max_rows),
        html_table(changes, max_rows),
        f"<h4>Files written ({len(files)})</h4>",
        html_table([{"file": str(f)} for f in files], max_rows),
    ]
    return "\n".join(parts)
