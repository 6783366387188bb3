"""What a notebook shows: charts as their own Vega-Lite spec, rows as escaped HTML tables.

The exporter (kforensics.reporting.export) draws a chart from the spec `show` put in the output,
so nothing has to be read back out of a renderer's HTML. Live in Jupyter a chart draws with no
network: vega-embed from vl-convert's bundle, sent once per kernel (not Altair's renderer,
whose HTML loads vega from a CDN).
"""

from __future__ import annotations

import hashlib
import html
import secrets
from functools import cache
from typing import Any

import pyarrow as pa

from kforensics.investigate.tables import html_table
from kforensics.progress import batch_run
from kforensics.reporting.export import script_json, vega_bundle

# Jupyter's name for a Vega-Lite spec (a "+json" type, so nbformat stores it as JSON). The
# exporter reads the spec from here; front ends that cannot draw it fall back to text/html.
VEGA_LITE_MIME = "application/vnd.vegalite.v6+json"


# A live chart: vega-embed draws the spec (no actions: they open the online editor; a loader
# that refuses every fetch; vega-tooltip escapes values). Without the library in the page (a
# reload, another tab on the same kernel) it runs the copy the browser kept; the library may
# also arrive in an earlier output, so it waits a little, then says what to do. Messages go
# through textContent, never innerHTML. Scripts in an output run only where Jupyter trusts it
# (the user ran it): elsewhere the placeholder text stays.
_LIVE_JS = (
    '(function(){var el=document.getElementById("%s"),tries=0;'
    "if(!window.vegaEmbed){try{var kept=localStorage.getItem(%s);"
    "if(kept){(new Function(kept))();}}catch(e){}}"
    'function no(u){return Promise.reject(new Error("offline: no external data ("+u+")"))}'
    'function draw(){el.textContent="";vegaEmbed(el,%s,{actions:false,renderer:"svg",'
    "tooltip:true,loader:{load:no,sanitize:no,http:no,file:no}}).catch(function(e){"
    'el.textContent="chart failed: "+e.message;});}'
    "(function wait(){if(window.vegaEmbed){draw();}else if(++tries<80){setTimeout(wait,250);}"
    "else{el.textContent=%s;}})();})();"
)
# The library defines window.vegaEmbed once per page and leaves a copy in the browser's
# localStorage (about 2 MB of the origin's 5 MB; refused quietly when full or disabled).
_LIBRARY_JS = (
    "(function(){var key=%s,source=%s;"
    "if(!window.vegaEmbed){(new Function(source))();}"
    "try{localStorage.setItem(key,source);}catch(e){}})();"
)
_PLACEHOLDER = "chart: drawn when this notebook runs in Jupyter; kforensics report draws it in HTML"
_NO_LIBRARY = (
    "chart: the chart library is not in this page: run "
    "kforensics.reporting.display.resend_chart_library(), then this cell again"
)
# The library goes into the first live chart a kernel shows, not into every chart (~0.9 MB).
_library = {"sent": False}


def resend_chart_library() -> None:
    """Make the next chart carry the chart library again (after a page reload); returns None."""
    _library["sent"] = False


@cache
def _library_key() -> str:
    # A new bundle (vl-convert upgraded) is a new key: a page never runs a stale copy.
    digest = hashlib.sha256(vega_bundle().encode()).hexdigest()[:16]
    return f"kforensics-vega-bundle-{digest}"


@cache
def chart_library_html() -> str:
    """Return a <script> defining vegaEmbed from vl-convert's bundle, once per page."""
    # The bundle as a JSON string (no "<" inside), run in a function of its own: its
    # top-level consts never clash when it runs again.
    script = _LIBRARY_JS % (script_json(_library_key()), script_json(vega_bundle()))
    return f"<script>{script}</script>"


def live_chart_html(spec: dict, *, with_library: bool) -> str:
    """Return HTML that draws the spec in Jupyter with no network (the library inline or not)."""
    div = f"kf-live-{secrets.token_hex(8)}"
    key, text = script_json(_library_key()), script_json(_NO_LIBRARY)
    script = _LIVE_JS % (div, key, script_json(spec), text)
    library = chart_library_html() if with_library else ""
    return (
        f'<div class="kf-chart" id="{div}">{html.escape(_PLACEHOLDER)}</div>'
        f"{library}<script>{script}</script>"
    )


def chart_bundle(chart: Any) -> dict[str, Any]:
    """Return the mime bundle of an Altair chart: its spec (data inlined), HTML, plain text."""
    return spec_bundle(chart.to_dict(), f"<{type(chart).__name__}>")


def spec_bundle(spec: dict, text: str = "<Chart>") -> dict[str, Any]:
    """Return the mime bundle of a Vega-Lite spec: the spec, offline live HTML, plain text."""
    bundle = {VEGA_LITE_MIME: spec, "text/plain": text}
    # The live HTML, for Jupyter only (the exporter replaces the whole output with a chart
    # drawn from the spec). A batch run (papermill) is never watched live: no library there.
    with_library = not _library["sent"] and not batch_run()
    bundle["text/html"] = live_chart_html(spec, with_library=with_library)
    _library["sent"] = _library["sent"] or with_library
    return bundle


def _rows(value: Any) -> pa.Table | list[dict]:
    if isinstance(value, pa.Table | list):
        return value
    if hasattr(value, "to_arrow_table"):  # a DuckDB relation
        return value.to_arrow_table()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
        # Arrow would keep its attrs (a Case frame's own Arrow schema) as JSON, warning on
        # every table that they are no JSON: the rows are what is shown.
        frame = value.copy(deep=False)
        frame.attrs = {}
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise TypeError(f"show() takes a chart, an Arrow table or a list of rows, not {type(value)}")


def bundle(value: Any, max_rows: int = 50) -> dict[str, Any]:
    """Return the mime bundle show() displays for a chart or for rows."""
    import altair as alt

    if isinstance(value, alt.TopLevelMixin):  # every Altair chart: single, layered, concat
        return chart_bundle(value)
    return {"text/html": html_table(_rows(value), max_rows), "text/plain": f"<{len(value)} rows>"}


def _altair_renderer(spec: dict, **_metadata: Any) -> dict[str, Any]:
    return spec_bundle(spec)


def offline_charts() -> None:
    """Make Altair draw every chart as show() does (a bare `chart` in a cell too); returns None.

    Altair's own Jupyter renderer loads vega from a CDN, which a forensic workstation often
    cannot reach. show() calls this on first use.
    """
    import altair as alt

    if alt.renderers.active != "kforensics":
        alt.renderers.register("kforensics", _altair_renderer)
        alt.renderers.enable("kforensics")


def show(value: Any, max_rows: int = 50) -> None:
    """Display a chart (its Vega-Lite spec) or rows (an escaped HTML table); returns None."""
    from IPython.display import display

    offline_charts()
    display(bundle(value, max_rows), raw=True)


def show_remediation(remediation: Any, out_dir: Any) -> None:
    """Display what remediate_case returned (steps, validation, simulation); returns None."""
    from IPython.display import HTML, display

    from kforensics.contain.summary import remediation_html

    show([{"remediation written to": str(out_dir)}])
    display(HTML(remediation_html(remediation)))  # its HTML escapes every log value
