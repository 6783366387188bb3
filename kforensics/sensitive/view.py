"""The case's sensitive workloads for a report: what is declared, who reached into them, the
first-time pairs, the candidates to confirm, and the fences proposed around them.

The declaration is, first found first: the one given (a file, a mapping in the file's shape),
`sensitive.yaml` beside the case, or the one the last `detect` stored in the case (as for
`detect` itself). It is
resolved against the inventory rebuilt from the log whenever the view is made, so a report on
newer logs sees newer pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from kforensics.detection.sensitive import touched
from kforensics.investigate.sql import Time, as_time
from kforensics.netpol.inventory import timeline
from kforensics.sensitive.declare import Declaration, from_value
from kforensics.sensitive.fences import Fence, fences
from kforensics.sensitive.resolve import Candidate, Workload, candidates, resolve, target_rows
from kforensics.sensitive.store import stored, with_baseline

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
    decl = from_value(sensitive if sensitive not in (None, "") else None, case)
    if decl is not None:
        return decl, decl.source or "the sensitive parameter", kept
    if kept is not None:
        return kept.declaration, f"{kept.source} (stored by detect at {kept.declared_at})", kept
    return None, "", kept


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
    at_time = timeline(con)
    inv = at_time(None)
    view = SensitiveView(decl, source)
    if kept is not None:
        view.baseline_until, view.baseline_case = kept.baseline_until, kept.baseline_case
    if view.baseline_until is None:
        view.baseline_until = since
    baseline_case = view.baseline_case
    if baseline_case and not Path(baseline_case).is_file():
        view.notes.append(
            f"the baseline case {baseline_case} that detect compared with is not there any more: "
            "the pairs below are compared with this case only"
        )
        baseline_case = view.baseline_case = None
    inv = with_baseline(inv, baseline_case)
    chosen = resolve(decl, inv) if decl is not None else []
    view.workloads = chosen
    view.candidates = candidates(inv, chosen)
    if not chosen:
        return view
    rows = target_rows(chosen, inv, decl.namespaces)
    view.touched = touched(
        con, rows, since=since, until=until, baseline_until=view.baseline_until,
        baseline_case=baseline_case,
    )  # fmt: skip
    if with_fences:
        before = at_time(view.baseline_until) if view.baseline_until else None
        users = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT username FROM requests "
                "WHERE username LIKE 'system:serviceaccount:%'"
            ).fetchall()
        }
        view.fences = fences(chosen, inv, before=before, api_users=users)
    return view
