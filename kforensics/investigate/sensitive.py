"""The case's sensitive workloads for a report: what is declared, who reached into them, the
first-time pairs, the candidates to confirm, and the fences proposed around them.

The declaration is, first found first: the one given (a file, a mapping in the file's shape),
the one the last `detect` stored in the case, or `sensitive.yaml` beside the case. It is
resolved against the inventory rebuilt from the log whenever the view is made, so a report on
newer logs sees newer pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from kforensics.detection.sensitive import touched
from kforensics.investigate.sql import Time, as_time
from kforensics.investigate.tables import escape, escape_block, html_table
from kforensics.netpol.fences import Fence, fences
from kforensics.netpol.fences import to_yaml as fences_yaml
from kforensics.netpol.inventory import reconstruct
from kforensics.sensitive.declare import Declaration, from_value
from kforensics.sensitive.resolve import Candidate, Workload, candidates, resolve, target_rows
from kforensics.sensitive.store import stored

FIRST_ACCESS_RULE = "k8s-sensitive-workload-first-access"


@dataclass
class SensitiveView:
    """Everything the "sensitive workloads" section shows."""

    declaration: Declaration | None
    source: str  # where the declaration came from, as a person reads it
    workloads: list[Workload] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    touched: list[dict] = field(default_factory=list)  # detection.sensitive.touched rows
    fences: list[Fence] = field(default_factory=list)
    baseline_until: datetime | None = None
    baseline_case: str | None = None
    notes: list[str] = field(default_factory=list)  # what the view could not do as asked

    @property
    def first_time(self) -> list[dict]:
        """Return the touched rows whose (identity, workload, access) the baseline lacks."""
        return [r for r in self.touched if r["first_time"]]

    @property
    def baseline(self) -> str:
        """Return what the pairs were compared with, in words."""
        parts = []
        if self.baseline_until is not None:
            parts.append(f"this case's requests before {self.baseline_until.isoformat()}")
        if self.baseline_case:
            parts.append(f"every request of the baseline case {self.baseline_case}")
        if not parts:
            return (
                "none (no --since, --baseline-until or --baseline): every pair is new at its "
                "first request in the case"
            )
        return " and ".join(parts)


def _declaration(
    con: duckdb.DuckDBPyConnection, case: str | Path, sensitive: Any
) -> tuple[Declaration | None, str, Any]:
    """Return (declaration, where from, what the case stored) by the module's precedence."""
    kept = stored(con)
    if sensitive not in (None, ""):
        decl = from_value(sensitive)
        return decl, decl.source or "the sensitive parameter", kept
    if kept is not None:
        return kept.declaration, f"{kept.source} (stored by detect at {kept.declared_at})", kept
    decl = from_value(None, case)
    return decl, (decl.source if decl else ""), kept


def sensitive_view(
    con: duckdb.DuckDBPyConnection,
    case: str | Path,
    sensitive: Any = None,
    *,
    since: Time = None,
    until: Time = None,
    with_fences: bool = True,
) -> SensitiveView:
    """Return the sensitive-workloads view of the case in the window (see the module)."""
    since, until = as_time(since), as_time(until)
    decl, source, kept = _declaration(con, case, sensitive)
    inv = reconstruct(con)
    view = SensitiveView(decl, source)
    if kept is not None:
        view.baseline_until, view.baseline_case = kept.baseline_until, kept.baseline_case
    if view.baseline_until is None:
        view.baseline_until = since
    chosen = resolve(decl, inv) if decl is not None else []
    view.workloads = chosen
    view.candidates = candidates(inv, chosen)
    if not chosen:
        return view
    rows = target_rows(chosen, inv, decl.namespaces)
    baseline_case = view.baseline_case
    if baseline_case and not Path(baseline_case).is_file():
        view.notes.append(
            f"the baseline case {baseline_case} that detect compared with is not there any more: "
            "the pairs below are compared with this case only"
        )
        baseline_case = view.baseline_case = None
    view.touched = touched(
        con, rows, since=since, until=until, baseline_until=view.baseline_until,
        baseline_case=baseline_case,
    )  # fmt: skip
    if with_fences:
        before = reconstruct(con, view.baseline_until) if view.baseline_until else None
        users = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT username FROM requests "
                "WHERE username LIKE 'system:serviceaccount:%'"
            ).fetchall()
        }
        view.fences = fences(chosen, inv, before=before, api_users=users)
    return view


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
