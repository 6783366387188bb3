"""The fences around sensitive workloads, written beside the containment: fences/fences.yaml
(the valid NetworkPolicies) and fences/FENCES.md (each allow with what it was inferred from,
the unknowns, the problems and the simulation).

Fences are proposals to review, not containment: they are not in apply.sh and not recorded for
the watch rules. Every value from the log in FENCES.md is redacted and inert Markdown.
"""

from __future__ import annotations

from pathlib import Path

from kforensics.contain.steps import say_md
from kforensics.sensitive.fences import to_yaml
from kforensics.sensitive.view import SensitiveView

_md = say_md


def fences_markdown(view: SensitiveView) -> str:
    """Return FENCES.md for the view's fences."""
    lines = ["# Fences around the sensitive workloads", ""]
    lines += [f"Declared in {_md(view.source)}. Baseline: {_md(view.baseline)}.", ""]
    lines += [
        "Review before applying: an audit log records no packets, so every allow below is "
        "inferred and says from what; what the log cannot show is listed as unknown.",
        "",
    ]
    for fence in view.fences:
        lines += [f"## {_md(fence.workload)}", ""]
        for a in fence.allows:
            ports = ", ".join(a.ports) or "every port"
            lines.append(
                f"- allow {_md(a.direction)} {_md(a.peer)} ({_md(ports)}): inferred from "
                f"{_md(a.inferred_from)}"
            )
        lines += [f"- unknown: {_md(u)}" for u in fence.unknowns]
        lines += [f"- PROBLEM: {_md(p)}" for p in fence.problems]
        lines += [f"- simulated: {_md(s)}" for s in fence.simulation]
        lines.append("")
    return "\n".join(lines)


def write_fences(view: SensitiveView, out: str | Path) -> list[Path]:
    """Write OUT/fences/fences.yaml and FENCES.md; return their paths (none without fences)."""
    if not view.fences:
        return []
    folder = Path(out) / "fences"
    folder.mkdir(parents=True, exist_ok=True)
    yaml_path, md_path = folder / "fences.yaml", folder / "FENCES.md"
    yaml_path.write_text(to_yaml(view.fences), encoding="utf-8")
    md_path.write_text(fences_markdown(view), encoding="utf-8")
    return [yaml_path, md_path]
