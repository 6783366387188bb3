"""One offline HTML page from an executed notebook.

The page is self-contained and safe to open from an untrusted case: no network resource at all,
one inlined copy of the Vega bundle, every chart drawn by vega-embed from the Vega-Lite spec the
notebook displayed (kforensics.reporting.display.show) embedded as inert JSON, every other output
cleaned to an allow-list (kforensics.reporting.sanitise), scripts allowed only by a per-page nonce
(Content-Security-Policy), so a payload that slipped through an output's escaping cannot run.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
from functools import cache
from pathlib import Path
from typing import Any

import nbformat

from kforensics.jsontext import go_escape
from kforensics.reporting.sanitise import clean_html, markdown_html

# Jupyter's mime types for a Vega-Lite or Vega spec (display.VEGA_LITE_MIME among them).
_VEGA_MIME = re.compile(r"^application/vnd\.vega(lite)?\.v\d+\+json$")
# The mime types a page shows (nbconvert escapes text/plain and text/latex); every other one
# goes: JavaScript, widgets that need a live kernel, types nbconvert would pass through raw.
_KEPT_MIME = frozenset(
    {"text/html", "text/markdown", "text/plain", "text/latex", "image/svg+xml", "image/png",
     "image/jpeg"}
)  # fmt: skip
# nbconvert writes a PNG or JPEG into an img's src as it is: only base64 may be there.
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328}
main{max-width:1200px;margin:0 auto;padding:16px 24px}
.jp-Cell,.cell{margin:0 0 8px}
table{border-collapse:collapse;margin:6px 0;font-size:13px;max-width:100%}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere;min-width:4.5em}
th{overflow-wrap:break-word}
td a{color:#0550ae}
.kf-facts th{white-space:nowrap}
.kf-evidence h4{margin:14px 0 4px}
.kf-evidence:target h4{background:#fff8c5}
.kf-chart{overflow-x:auto;max-width:100%}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fbfbfc}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
.output_stderr pre,.output_error pre{background:#fff0f0}
.kf-chart{margin:8px 0;min-height:20px}
.output_html,.output_subarea,.output_area,.output,.output_wrapper{min-width:0;max-width:100%}
.kf-chart-error{color:#b00020;font-family:monospace}
img{max-width:100%}
"""

# Draws one chart: no actions (they open the online editor), a loader that refuses every fetch
# (vega-embed uses any object with a `load` method as the loader) and lets a mark's `href`
# open only an ATT&CK technique page, the default tooltip handler (vega-tooltip HTML-escapes
# values). Errors are shown with textContent, never innerHTML.
_EMBED_JS = (
    '(function(){var el=document.getElementById("%s");'
    'function no(u){return Promise.reject(new Error("offline report: no external data ("+u+")"))}'
    "var attack=/^https:[/][/]attack[.]mitre[.]org[/]techniques[/]T[0-9]{4}[/]([0-9]{3}[/])?$/;"
    "function link(u,o){return o&&o.context==='href'&&attack.test(u)?"
    "Promise.resolve({href:u}):no(u)}"
    'vegaEmbed(el,%s,{actions:false,renderer:"svg",tooltip:true,'
    "loader:{load:no,sanitize:link,http:no,file:no}}).catch(function(e){"
    'el.className+=" kf-chart-error";el.textContent="chart failed: "+e.message;});})();'
)


@cache
def vega_bundle() -> str:
    """Return the vega/vega-lite/vega-embed JS bundle, safe to put inside a <script> element."""
    import vl_convert

    bundle = vl_convert.javascript_bundle()
    # The HTML parser ends a script at "</script" and misreads "<!--": neither may appear.
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE).replace("<!--", "<\\!--")


def script_json(value: Any) -> str:
    """Return value as JSON that is also a JS literal no string inside can break out of."""
    # Go's escaping keeps <, >, & (and U+2028/9, line terminators in old JS) from ever being
    # read as markup or as the end of the script.
    return go_escape(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


def chart_spec(data: dict) -> dict | None:
    """Return the Vega(-Lite) spec an output's mime bundle carries, or None."""
    for mime, value in data.items():
        if _VEGA_MIME.match(mime):
            return json.loads(value) if isinstance(value, str) else dict(value)
    return None


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _html_output(markup: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", {"text/html": markup})


def _chart_output(spec: dict, number: int, nonce: str) -> nbformat.NotebookNode:
    div = f"kf-chart-{number}"
    script = _EMBED_JS % (div, script_json(spec))
    return nbformat.from_dict(
        {
            "text/html": f'<div class="kf-chart" id="{div}"></div>'
            f'<script nonce="{nonce}">{script}</script>'
        }
    )


def _clean_outputs(data: nbformat.NotebookNode) -> None:
    for mime in list(data):
        image = mime in ("image/png", "image/jpeg")
        if mime not in _KEPT_MIME or image and not _BASE64.fullmatch(_text(data[mime])):
            del data[mime]
    if "image/svg+xml" in data:
        # Inside an <img> an SVG is a picture: its scripts and links never run.
        svg = base64.b64encode(_text(data.pop("image/svg+xml")).encode()).decode()
        data["text/html"] = f'<img src="data:image/svg+xml;base64,{svg}" alt="image">'
    elif "text/html" in data:
        data["text/html"] = clean_html(_text(data["text/html"]))
    elif "text/markdown" in data:
        data["text/html"] = markdown_html(_text(data.pop("text/markdown")))
    if "text/html" in data:
        data.pop("text/markdown", None)  # nbconvert would prefer it to the cleaned HTML


def _prepare(nb: nbformat.NotebookNode, nonce: str) -> int:
    """Rewrite cells in place for the offline page; return the number of charts."""
    charts = 0
    for n, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            # Rendered and cleaned here, shown as an output (the page shows no input).
            prose = _html_output(markdown_html(_text(cell.source)))
            nb.cells[n] = nbformat.v4.new_code_cell(outputs=[prose])
            continue
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.output_type not in ("display_data", "execute_result"):
                continue  # streams and tracebacks are escaped by nbconvert
            spec = chart_spec(output.data)
            if spec is not None:
                charts += 1
                output.data = _chart_output(spec, charts, nonce)
                output.metadata = nbformat.from_dict({})
            else:
                _clean_outputs(output.data)
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
