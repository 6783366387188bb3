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
from types import ModuleType
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

__version__ = "0.1.0"

# name -> (module, attribute): imported by __getattr__ on first use
_LAZY = {
    "Case": ("kforensics.case", "Case"),
    "open_case": ("kforensics.case", "open_case"),
    "connect": ("kforensics.case", "connect"),
    "load": ("kforensics.ingest.load", "load"),
    "LoadResult": ("kforensics.ingest.load", "LoadResult"),
    "remediate": ("kforensics.netpol.remediation", "remediate_case"),
    "show": ("kforensics.report.display", "show"),
    "show_remediation": ("kforensics.report.display", "show_remediation"),
    "explore": ("kforensics.report.explore", "explore"),
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
    # the lazy names (_LAZY) and the callable subpackages (_CALLS)
    "Case",
    "LoadResult",
    "connect",
    "detect",
    "explore",
    "load",
    "open_case",
    "remediate",
    "report",
    "show",
    "show_remediation",
]

if TYPE_CHECKING:
    from kforensics.api import detect
    from kforensics.case import Case, connect, open_case
    from kforensics.ingest.load import LoadResult, load
    from kforensics.netpol.remediation import remediate_case as remediate
    from kforensics.report.display import show, show_remediation
    from kforensics.report.explore import explore
    from kforensics.report.run import run_report as report


# `kforensics.detect` and `kforensics.report` are subpackages, and Python binds an imported
# subpackage as an attribute of its parent, which would hide functions of those names. So the
# subpackages themselves are made callable: `kf.detect(case)` runs `kforensics.api.detect`, and
# `kf.detect.rule` is still the module (both subpackages' __init__ are docstrings only).
_CALLS = {
    "kforensics.detect": ("kforensics.api", "detect"),
    "kforensics.report": ("kforensics.report.run", "run_report"),
}


class _CallablePackage(ModuleType):
    """A subpackage that is also a function of the API (see `_CALLS`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, attribute = _CALLS[self.__name__]
        return getattr(import_module(module), attribute)(*args, **kwargs)


for _package in _CALLS:
    import_module(_package).__class__ = _CallablePackage


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
