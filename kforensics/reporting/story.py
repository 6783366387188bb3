"""The triage report's story in a notebook: header, storylines, findings and their evidence.

Thin shells over kforensics.investigate.story for a `Case` (its window applied): each displays
escaped HTML, which the exported page keeps (same-page anchors and ATT&CK links only).
"""

from __future__ import annotations

from typing import Any

from kforensics.investigate import story
from kforensics.investigate.suspects import suspects


def _case(case: Any) -> Any:
    """Return case as a `Case` (a path is opened read-only; a bad one raises CaseError)."""
    from kforensics.api import Case

    return case if isinstance(case, Case) else Case(case)


def _display(markup: str) -> None:
    from IPython.display import HTML, display

    display(HTML(markup))


def show_header(case: Any) -> None:
    """Display what the report examined (case, sources, windows, rules, version); returns None."""
    case = _case(case)
    with case.connection() as con:
        header = story.case_header(con, case.path, case.since, case.until)
    _display(story.header_html(header))


def show_storyline(case: Any, min_level: str = "low", identity: str | None = None) -> None:
    """Display each suspect's (or one identity's) steps in time order; returns None."""
    case = _case(case)
    with case.connection() as con:
        stories = story.storylines(con, case.since, case.until, min_level, identity)
    _display(story.storyline_html(stories))


def show_findings(case: Any, min_level: str = "info", identity: str | None = None) -> None:
    """Display the findings (one identity's if given), evidence linked; returns None."""
    case = _case(case)
    with case.connection() as con:
        findings = story.window_findings(con, case.since, case.until, min_level, identity)
    _display(story.findings_html(findings))


def show_evidence(case: Any, min_level: str = "info", identity: str | None = None) -> None:
    """Display each finding's evidence rows under its anchor ev-<finding_id>; returns None."""
    case = _case(case)
    with case.connection() as con:
        findings, evidence = story.finding_rows(con, case.since, case.until, min_level, identity)
    _display(story.evidence_html(findings, evidence))


def top_suspect(case: Any) -> str | None:
    """Return the case's first suspect (worst findings first, then most), or None."""
    from kforensics.case import connect

    con = connect(case)
    try:
        found = suspects(con)
    finally:
        con.close()
    return found[0] if found else None


if __name__ == "__main__":  # `python -m kforensics.reporting.story CASE`: make demo's suspect
    import sys

    print(top_suspect(sys.argv[1]) or "")
