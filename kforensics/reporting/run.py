"""Run an investigation notebook on a case with papermill: notebooks, typed parameters, fail_on.

The executed notebook is exported as one offline HTML page by kforensics.reporting.export.
"""

from __future__ import annotations

import ast
import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kforensics.errors import ReportError
from kforensics.investigate.sql import as_time
from kforensics.levels import LEVELS, at_or_above
from kforensics.progress import batch_environment
from kforensics.reporting.export import export_html
from kforensics.untrusted import visible

KERNEL = "python3"


@dataclass(frozen=True)
class Parameter:
    """A notebook parameter: its name, default (Python source), the type values convert to."""

    name: str
    default: str
    type: str  # "str", "int", "float", "bool", "json" or "any" (kept as given)
    help: str = ""


@dataclass(frozen=True)
class NotebookInfo:
    """A notebook that can be run as a report."""

    name: str
    path: Path
    parameters: list[Parameter] = field(default_factory=list)


@dataclass(frozen=True)
class ReportResult:
    """What run_report wrote, how long it took, and the fail_on outcome."""

    notebook: str
    ipynb: Path
    html: Path
    seconds: float
    fail_on: str | None = None
    findings_at_or_above: int | None = None  # None when fail_on is None

    @property
    def failed(self) -> bool:
        """Return True when fail_on was given and findings at or above it exist."""
        return bool(self.findings_at_or_above)


def notebooks_dir() -> Path:
    """Return the folder of report notebooks ($KFORENSICS_NOTEBOOKS, else the installed ones)."""
    env = os.environ.get("KFORENSICS_NOTEBOOKS")
    if env:
        return Path(env)
    # Package data: built from notebooks/*.py (notebooks/build.py), shipped in the wheel.
    return Path(str(resources.files("kforensics.reporting") / "notebooks"))


def _kernel_manager() -> dict[str, Any]:
    """Return papermill's kernel_manager_class argument: a kernel on Unix sockets where it can.

    Over TCP the kernel listens on loopback ports any local user can reach and warns about it
    on every run; Unix sockets sit in the Jupyter runtime folder, the user's own.
    """
    if os.name != "posix":
        return {}
    from jupyter_client.manager import AsyncKernelManager

    class UnixSocketKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return {"kernel_manager_class": UnixSocketKernelManager}


def _type_of(default: str) -> str:
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return "any"  # an expression: the value is passed as the string given
    if isinstance(value, bool):  # before int: bool is an int
        return "bool"
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind.__name__
    return "json" if isinstance(value, list | dict) else "any"


def _info(path: Path) -> NotebookInfo:
    import papermill

    try:
        declared = papermill.inspect_notebook(str(path))
    except Exception as exc:  # papermill raises several types for unreadable notebooks
        raise ReportError(f"{path}: cannot read the notebook's parameters: {exc}") from exc
    params = [
        Parameter(p["name"], p["default"], _type_of(p["default"]), p.get("help") or "")
        for p in declared.values()
    ]
    return NotebookInfo(path.stem, path, params)


def list_notebooks(folder: Path | None = None) -> list[NotebookInfo]:
    """Return the notebooks of the folder (default notebooks_dir()), by name, with parameters."""
    folder = folder or notebooks_dir()
    if not folder.is_dir():
        return []
    return [_info(p) for p in sorted(folder.glob("*.ipynb")) if is_notebook(p)]


def is_notebook(path: Path) -> bool:
    """Return whether path is a report notebook: not hidden, not a JupyterLab checkpoint copy."""
    checkpoint = path.name.endswith("-checkpoint.ipynb") or ".ipynb_checkpoints" in path.parts
    return not path.name.startswith(".") and not checkpoint


def resolve_notebook(notebook: str | Path) -> NotebookInfo:
    """Return the notebook named (`01_triage`, `01_triage.ipynb`) or at a path."""
    path = Path(notebook)
    if path.suffix == ".ipynb" and path.is_file():
        return _info(path)
    name = path.name.removesuffix(".ipynb")
    candidate = notebooks_dir() / f"{name}.ipynb"
    if candidate.is_file() and is_notebook(candidate):
        return _info(candidate)
    known = ", ".join(n.name for n in list_notebooks()) or "none"
    raise ReportError(f"no notebook {str(notebook)!r} (known in {notebooks_dir()}: {known})")


def is_time(param: Parameter) -> bool:
    """Return whether the parameter is a time: named ...since or ...until, or a time default."""
    if param.type != "str":
        return False
    if param.name.endswith(("since", "until")):
        return True
    default = ast.literal_eval(param.default)
    try:
        return bool(default) and as_time(default) is not None
    except ValueError:
        return False


def _convert(param: Parameter, raw: str) -> Any:
    bad = f"parameter {param.name!r} expects {param.type} (default {param.default}), got {raw!r}"
    if is_time(param):
        # checked here, before a kernel starts, not by the notebook's first query
        try:
            as_time(raw)
        except ValueError as exc:
            raise ReportError(
                f"{param.name}: not an ISO 8601 time: {visible(repr(raw))} (for example "
                "2026-03-14T10:00, UTC if no zone; empty: no bound)"
            ) from exc
        return raw
    if param.type in ("str", "any"):
        return raw  # never reinterpreted: namespace "0123" stays "0123"
    if param.type == "bool":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ReportError(bad + " (use true or false)")
    try:
        if param.type == "int":
            return int(raw)
        if param.type == "float":
            return float(raw)
        return json.loads(raw)
    except ValueError as exc:
        raise ReportError(bad) from exc


def typed_parameters(info: NotebookInfo, params: dict[str, str]) -> dict[str, Any]:
    """Return params converted to their declared types; unknown names raise ReportError."""
    declared = {p.name: p for p in info.parameters}
    typed: dict[str, Any] = {}
    for name, raw in params.items():
        if name == "case":
            raise ReportError("`case` is set by --case, not as a parameter")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ReportError(f"{info.name}: unknown parameter {name!r} (known: {known})")
        typed[name] = _convert(declared[name], raw)
    return typed


def run_report(
    notebook: str | Path,
    case: str | Path,
    params: dict[str, str],
    out_dir: str | Path,
    *,
    fail_on: str | None = None,
    log_output: bool = False,
) -> ReportResult:
    """Run the notebook on the case; return the paths of OUT/<name>.ipynb and .html, fail_on."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if fail_on is not None and fail_on not in LEVELS:
        raise ReportError(f"fail_on {fail_on!r} is not a level ({', '.join(LEVELS)})")
    info = resolve_notebook(notebook)
    case_path = Path(case).resolve()
    if not case_path.is_file():
        raise ReportError(f"{case_path}: no such case file (create it with `kforensics load`)")
    typed = typed_parameters(info, params)
    typed["case"] = str(case_path)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ipynb, page = out / f"{info.name}.ipynb", out / f"{info.name}.html"

    started = time.perf_counter()
    try:
        with batch_environment():  # its kernel draws no progress bar: no one watches it
            papermill.execute_notebook(
                str(info.path),
                str(ipynb),
                parameters=typed,
                kernel_name=KERNEL,
                progress_bar=False,
                log_output=log_output,
                cwd=str(out),  # the root filesystem may be read-only (CronJob); OUT is writable
                **_kernel_manager(),
            )
    except PapermillExecutionError as exc:
        _try_export(ipynb, page, info.name)  # the failed run is still worth reading
        raise ReportError(
            f"{info.name}: cell {exc.exec_count} failed: {exc.ename}: {exc.evalue} "
            f"(executed notebook: {ipynb})"
        ) from exc
    except Exception as exc:  # kernel death, timeouts, unreadable notebook
        raise ReportError(f"{info.name}: could not run: {type(exc).__name__}: {exc}") from exc
    export_html(ipynb, page, title=info.name)
    seconds = time.perf_counter() - started

    count = _findings_at_or_above(case_path, fail_on) if fail_on else None
    return ReportResult(info.name, ipynb, page, seconds, fail_on, count)


def _findings_at_or_above(case: Path, level: str) -> int:
    from kforensics.case import connect

    con = connect(case)
    try:
        runs = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'detect_runs'"
        ).fetchone()[0]
        if runs:
            runs = con.execute("SELECT count(*) FROM detect_runs").fetchone()[0]
        if not runs:
            # Failing open would report "nothing found" for a case never examined.
            raise ReportError(f"{case}: no detection has run; run `kforensics detect` first")
        levels = list(at_or_above(level))
        return con.execute(
            "SELECT count(*) FROM findings WHERE list_contains($levels, level)", {"levels": levels}
        ).fetchone()[0]
    finally:
        con.close()


def _try_export(ipynb: Path, page: Path, title: str) -> None:
    try:
        if ipynb.is_file():
            export_html(ipynb, page, title=title)
    except Exception:  # noqa: S110 - the cell's error is what the caller must see
        pass
