"""The "sensitive workloads" section in a notebook: HTML over kforensics.sensitive.view.

Every value shown comes from the log or the declaration: each goes through the escaping table
helpers, and YAML blocks keep their lines but not their markup.
"""

from __future__ import annotations

from typing import Any

import yaml

from kforensics.investigate.tables import escape, escape_block, html_table
from kforensics.sensitive.fences import Fence
from kforensics.sensitive.fences import to_yaml as fences_yaml
from kforensics.sensitive.view import SensitiveView


def _list(items: list[str], empty: str = "") -> str:
    if not items:
        return f"<p><em>{escape(empty)}</em></p>" if empty else ""
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def _workload_rows(view: SensitiveView) -> list[dict]:
    return [
        {"workload": w.key, "why": w.why, "pods": w.pods, "holds secrets": w.secrets,
         "configmaps": w.configmaps, "services": w.services,
         "recorded": "a secret" if w.kind == "Secret" else "yes" if w.recorded
         else "no (declared; its pods known by their names' pattern)"}
        for w in view.workloads
    ]  # fmt: skip


def _touched_rows(rows: list[dict]) -> list[dict]:
    return [
        {"workload": r["workload"], "identity": r["identity"], "access": r["access"],
         "requests": r["requests"], "allowed": r["allowed"], "first seen": r["first_seen"],
         "last seen": r["last_seen"], "first evidence": r["first_evidence"],
         "new": "FIRST TIME" if r["first_time"] else "in baseline"}
        for r in rows
    ]  # fmt: skip


def fence_html(fence: Fence) -> str:
    """Return one fence: its allows with what each is inferred from, unknowns, problems,
    simulation and the YAML, all escaped."""
    allows = [
        {"direction": a.direction, "peer": a.peer, "ports": a.ports or ["every port"],
         "inferred from": a.inferred_from}
        for a in fence.allows
    ]  # fmt: skip
    out = [f"<h4>{escape(fence.workload)}</h4>"]
    if fence.objects:
        out.append(html_table(allows, max_rows=200, max_chars=400))
    if fence.problems:
        out.append("<p><strong>problems</strong></p>" + _list(fence.problems))
    out.append("<p>unknowns</p>" + _list(fence.unknowns))
    if fence.simulation:
        out.append("<p>simulated (before → after)</p>" + _list(fence.simulation))
    if fence.objects:
        out.append(
            f"<details><summary>NetworkPolicy YAML ({len(fence.objects)})</summary>"
            f"<pre>{escape_block(fences_yaml([fence]))}</pre></details>"
        )
    return "".join(out)


def sensitive_html(view: SensitiveView, max_rows: int = 300) -> str:
    """Return the "sensitive workloads" section: declared, who touched them, first-time pairs,
    candidates to confirm and proposed fences (every value escaped)."""
    out = []
    if view.declaration is None:
        out.append(
            "<p>No sensitive workloads are declared. Write <code>sensitive.yaml</code> beside "
            "the case (or pass <code>--sensitive FILE</code> / the <code>sensitive</code> "
            "parameter) naming namespaces, label selectors, secrets or workloads, then run "
            "<code>kforensics detect</code> again.</p>"
        )
    else:
        out.append(
            f"<p>declared in {escape(view.source)}; baseline: {escape(view.baseline)}</p>"
            + _list(view.notes)
        )
        out.append(html_table(_workload_rows(view), max_rows=max_rows, max_chars=300))
        out.append("<h3>Who reached into them</h3>")
        if view.touched:
            out.append(html_table(_touched_rows(view.touched), max_rows=max_rows))
        else:
            out.append("<p><em>no request in the window reached into them</em></p>")
        out.append("<h3>First-time pairs</h3>")
        first = _touched_rows(view.first_time)
        out.append(
            html_table(first, max_rows=max_rows)
            if first
            else "<p><em>none: every identity that reached into them had done so in the "
            "baseline</em></p>"
        )
    out.append("<h3>Candidates to confirm</h3>")
    if view.candidates:
        rows = [{"workload": c.workload, "why": c.reasons} for c in view.candidates]
        snippet = yaml.safe_dump({"workloads": [c.workload for c in view.candidates]})
        out.append(
            html_table(rows, max_rows=max_rows, max_chars=400)
            + "<p>To declare them, add to sensitive.yaml:</p>"
            + f"<pre>{escape_block(snippet)}</pre>"
        )
    else:
        out.append("<p><em>none: no other workload of the case looks sensitive</em></p>")
    if view.fences:
        out.append("<h3>Proposed fences</h3>")
        out.append("".join(fence_html(f) for f in view.fences))
    return "".join(out)


def show_sensitive(case: Any, sensitive: Any = None) -> None:
    """Display what is declared sensitive, who reached into it, first-time pairs, candidates
    and proposed fences (sensitive: a file or mapping, default the case's); returns None."""
    from IPython.display import HTML, display

    from kforensics.api import Case

    case = case if isinstance(case, Case) else Case(case)
    display(HTML(sensitive_html(case.sensitive(sensitive))))
