"""kforensics: Kubernetes audit-log forensics on DuckDB.

The public API, for notebooks and scripts:

    import kforensics as kf
    case = kf.open_case("incident.duckdb", since="2026-03-14T09:00")  # read-only, holds no lock
    case.findings(min_level="medium")              # pandas DataFrames, log text escaped in Jupyter
    case.query("identity_timeline", identity="alice")
    case.sql("SELECT verb, count(*) FROM requests WHERE namespace = $ns GROUP BY ALL", ns="shop")
    case.chart("timeline")
    kf.load(case, paths); kf.detect(case); kf.remediate(case, out); kf.report(notebook, case, ...)

Names are imported on first use, so `import kforensics` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from kforensics.errors import (
    CaseError,
    ExceptionsError,
    InputError,
    KforensicsError,
    LabelGapError,
    ManifestError,
    QueryError,
    ReportError,
    RuleError,
    RuleSQLError,
)
from kforensics.levels import LEVELS
from kforensics.version import __version__

# name -> (module, attribute): imported by __getattr__ on first use
_LAZY = {
    "Case": ("kforensics.api", "Case"),
    "open_case": ("kforensics.api", "open_case"),
    "connect": ("kforensics.case", "connect"),
    "load": ("kforensics.ingest.load", "load"),
    "LoadResult": ("kforensics.ingest.load", "LoadResult"),
    "detect": ("kforensics.api", "detect"),
    "remediate": ("kforensics.contain.remediate", "remediate_case"),
    "report": ("kforensics.reporting.run", "run_report"),
    "show": ("kforensics.reporting.display", "show"),
    "offline_charts": ("kforensics.reporting.display", "offline_charts"),
    "show_remediation": ("kforensics.reporting.display", "show_remediation"),
    "show_header": ("kforensics.reporting.story", "show_header"),
    "show_storyline": ("kforensics.reporting.story", "show_storyline"),
    "show_findings": ("kforensics.reporting.story", "show_findings"),
    "show_evidence": ("kforensics.reporting.story", "show_evidence"),
    "show_sensitive": ("kforensics.reporting.sensitive", "show_sensitive"),
    "explore": ("kforensics.reporting.explore", "explore"),
    "export": ("kforensics.investigate.export", "export"),
    "note": ("kforensics.investigate.notes", "add_note"),
    "notes": ("kforensics.investigate.notes", "notes"),
    "false_positives": ("kforensics.detection.false_positives", "false_positives"),
    "note_widget": ("kforensics.reporting.note_widget", "note_widget"),
}

__all__ = [
    "LEVELS",
    "CaseError",
    "ExceptionsError",
    "InputError",
    "KforensicsError",
    "LabelGapError",
    "ManifestError",
    "QueryError",
    "ReportError",
    "RuleError",
    "RuleSQLError",
    "__version__",
    # the lazy names (_LAZY)
    "Case",
    "LoadResult",
    "connect",
    "detect",
    "explore",
    "export",
    "false_positives",
    "load",
    "note",
    "note_widget",
    "notes",
    "offline_charts",
    "open_case",
    "remediate",
    "report",
    "show",
    "show_evidence",
    "show_findings",
    "show_header",
    "show_remediation",
    "show_sensitive",
    "show_storyline",
]

if TYPE_CHECKING:
    from kforensics.api import Case, detect, open_case
    from kforensics.case import connect
    from kforensics.contain.remediate import remediate_case as remediate
    from kforensics.detection.false_positives import false_positives
    from kforensics.ingest.load import LoadResult, load
    from kforensics.investigate.export import export
    from kforensics.investigate.notes import add_note as note
    from kforensics.investigate.notes import notes
    from kforensics.reporting.display import offline_charts, show, show_remediation
    from kforensics.reporting.explore import explore
    from kforensics.reporting.note_widget import note_widget
    from kforensics.reporting.run import run_report as report
    from kforensics.reporting.sensitive import show_sensitive
    from kforensics.reporting.story import (
        show_evidence,
        show_findings,
        show_header,
        show_storyline,
    )


def __getattr__(name: str) -> Any:
    """Return a lazily imported public name (see `_LAZY`)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'kforensics' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Return the module's names, the lazy ones included."""
    return sorted({*globals(), *_LAZY})
