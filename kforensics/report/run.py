"""Run an investigation notebook on a case with papermill; export it as one offline HTML page.

The page is self-contained and safe to open from an untrusted case: no network resource at all,
one inlined copy of the Vega bundle, every Altair chart drawn by vega-embed from a spec embedded
as inert JSON, scripts allowed only by a per-page nonce (Content-Security-Policy), so a payload
that slipped through an output's escaping still cannot run.
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import nbformat

from kforensics.errors import ReportError
from kforensics.levels import LEVELS, at_or_above

KERNEL = "python3"
# Jupyter's mime types (application/vnd.vegalite.v5+json, application/vnd.vega.v5+json) carry a
# spec; Altair 6's default html renderer is handled by _altair_html_spec (its mimetype renderer's
# application/vnd.vegalite.v6.json fails nbformat validation under papermill, so cannot occur).
_VEGA_MIME = re.compile(r"^application/vnd\.vega(lite)?\.v\d+[.+]json$")
# Mime types whose content is code the browser would run, or widgets that need a live kernel.
_DROPPED_MIME = re.compile(r"javascript|ecmascript|widget-view|widget-state", re.IGNORECASE)
# Defence in depth for text/html (the notebooks escape at source; the CSP blocks the rest).
_SCRIPT = re.compile(r"<script\b.*?(?:</script\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_ACTIVE_TAG = re.compile(r"<(?:iframe|object|embed|base|meta|link|frame)\b[^>]*>", re.IGNORECASE)
# Escaped text holds no "<", so only real tags match; their on* handlers and javascript: URLs go.
_TAG = re.compile(r"""<[a-zA-Z](?:"[^"]*"|'[^']*'|[^'">])*>""")
_HANDLER = re.compile(
    r"""\s(?:on\w+|(?:href|src|action|formaction|xlink:href)(?=\s*=\s*["']?\s*javascript:))"""
    r"""\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]*)""",
    re.IGNORECASE,
)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328}
main{max-width:1200px;margin:0 auto;padding:16px 24px}
.jp-Cell,.cell{margin:0 0 8px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fbfbfc}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
.output_stderr pre,.output_error pre{background:#fff0f0}
.kf-chart{margin:8px 0;min-height:20px}
.kf-chart-error{color:#b00020;font-family:monospace}
img{max-width:100%}
"""

# Draws one chart: no actions (they open the online editor), a loader that refuses every fetch
# (vega-embed uses any object with a `load` method as the loader), the default tooltip handler
# (vega-tooltip HTML-escapes values). Errors are shown with textContent, never innerHTML.
_EMBED_JS = (
    '(function(){var el=document.getElementById("%s");'
    'function no(u){return Promise.reject(new Error("offline report: no external data ("+u+")"))}'
    'vegaEmbed(el,%s,{actions:false,renderer:"svg",tooltip:true,'
    "loader:{load:no,sanitize:no,http:no,file:no}}).catch(function(e){"
    'el.className+=" kf-chart-error";el.textContent="chart failed: "+e.message;});})();'
)


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
    """Return the folder of report notebooks ($KFORENSICS_NOTEBOOKS, else the repo's notebooks/)."""
    env = os.environ.get("KFORENSICS_NOTEBOOKS")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "notebooks"


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
    return [_info(p) for p in sorted(folder.glob("*.ipynb")) if not p.name.startswith(".")]


def resolve_notebook(notebook: str | Path) -> NotebookInfo:
    """Return the notebook named (`01_triage`, `01_triage.ipynb`) or at a path."""
    path = Path(notebook)
    if path.suffix == ".ipynb" and path.is_file():
        return _info(path)
    name = path.name.removesuffix(".ipynb")
    candidate = notebooks_dir() / f"{name}.ipynb"
    if candidate.is_file():
        return _info(candidate)
    known = ", ".join(n.name for n in list_notebooks()) or "none"
    raise ReportError(f"no notebook {str(notebook)!r} (known in {notebooks_dir()}: {known})")


def _convert(param: Parameter, raw: str) -> Any:
    bad = f"parameter {param.name!r} expects {param.type} (default {param.default}), got {raw!r}"
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
        papermill.execute_notebook(
            str(info.path),
            str(ipynb),
            parameters=typed,
            kernel_name=KERNEL,
            progress_bar=False,
            log_output=log_output,
            cwd=str(out),  # the root filesystem may be read-only (CronJob); OUT is writable
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


@cache
def vega_bundle() -> str:
    """Return the vega/vega-lite/vega-embed JS bundle, safe to put inside a <script> element."""
    import vl_convert

    bundle = vl_convert.javascript_bundle()
    # The HTML parser ends a script at "</script" and misreads "<!--": neither may appear.
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE).replace("<!--", "<\\!--")


def script_json(value: Any) -> str:
    """Return value as JSON that is also a JS literal no string inside can break out of."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # <, >, & only occur inside JSON strings; \\u escapes keep them (and U+2028/9, line
    # terminators in old JS) from ever being read as markup or as the end of the script.
    for char, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def strip_active(markup: str) -> str:
    """Return markup without scripts, event handlers, javascript: URLs, iframes and the like."""
    markup = _ACTIVE_TAG.sub("", _SCRIPT.sub("", markup))
    return _TAG.sub(lambda tag: _HANDLER.sub("", tag.group(0)), markup)


def _altair_html_spec(markup: str) -> dict | None:
    # Altair's html renderer (its default) emits `(function(spec, embedOpt){...})({spec}, {...})`;
    # the spec is json.dumps output, so a JSON decoder reads it back exactly. The function body
    # is Altair's own code: the first `})(` after its start ends it, whereas one found searching
    # from the end may be inside the spec (a log value in a title or a data row).
    if "altair-viz-" not in markup or "<script" not in markup:
        return None
    start = markup.find("(function(spec, embedOpt)")
    at = markup.find("})(", start) if start >= 0 else -1
    if at < 0:
        return None
    try:
        spec, _ = json.JSONDecoder().raw_decode(markup, at + 3)
    except ValueError:
        return None
    schema = spec.get("$schema", "") if isinstance(spec, dict) else ""
    return spec if "vega" in schema else None


def _chart_spec(data: dict) -> dict | None:
    for mime, value in data.items():
        if _VEGA_MIME.match(mime):
            return json.loads(value) if isinstance(value, str) else dict(value)
    html_out = data.get("text/html")
    if html_out is not None:
        return _altair_html_spec(html_out if isinstance(html_out, str) else "".join(html_out))
    return None


def _prepare(nb: nbformat.NotebookNode, nonce: str) -> int:
    """Rewrite outputs in place for the offline page; return the number of charts."""
    charts = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = strip_active(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.output_type not in ("display_data", "execute_result"):
                continue  # streams and tracebacks are escaped by nbconvert
            data = output.data
            spec = _chart_spec(data)
            if spec is not None:
                charts += 1
                div = f"kf-chart-{charts}"
                script = _EMBED_JS % (div, script_json(spec))
                output.data = nbformat.from_dict(
                    {
                        "text/html": f'<div class="kf-chart" id="{div}"></div>'
                        f'<script nonce="{nonce}">{script}</script>'
                    }
                )
                output.metadata = nbformat.from_dict({})
                continue
            for mime in [m for m in data if _DROPPED_MIME.search(m)]:
                del data[mime]
            for mime in ("text/html", "image/svg+xml", "text/markdown"):
                if mime in data:
                    value = data[mime]
                    data[mime] = strip_active(value if isinstance(value, str) else "".join(value))
    return charts


def render_html(nb: nbformat.NotebookNode, title: str) -> tuple[str, int]:
    """Return the notebook's outputs as one self-contained HTML page, and its chart count."""
    from nbconvert import HTMLExporter

    nonce = secrets.token_urlsafe(18)
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # never alter the caller's notebook
    charts = _prepare(nb, nonce)
    # The "basic" template emits the cells only: no require.js, MathJax, fonts or CDN CSS.
    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    csp = (
        "default-src 'none'; "
        # Vega compiles its expressions with Function() and the bundle exposes no interpreter:
        # 'unsafe-eval' lets running scripts eval; only nonce-bearing scripts run at all.
        f"script-src 'nonce-{nonce}' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; "
        "connect-src 'none'; base-uri 'none'; form-action 'none'"
    )
    bundle = f'<script nonce="{nonce}">{vega_bundle()}</script>\n' if charts else ""
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n{bundle}</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return page, charts


def export_html(ipynb: str | Path, out: str | Path, *, title: str | None = None) -> Path:
    """Write the executed notebook as an offline HTML page; return its path."""
    nb = nbformat.read(str(ipynb), as_version=4)
    page, _ = render_html(nb, title or Path(ipynb).stem)
    out = Path(out)
    out.write_text(page, encoding="utf-8")
    return out
