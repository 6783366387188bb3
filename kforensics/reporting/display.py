"""What a notebook shows: charts as their own Vega-Lite spec, rows as escaped HTML tables.

The exporter (kforensics.reporting.export) draws a chart from the spec `show` put in the output,
so nothing has to be read back out of a renderer's HTML.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from kforensics.investigate.tables import html_table
from kforensics.reporting.export import script_json

# Jupyter's name for a Vega-Lite spec (a "+json" type, so nbformat stores it as JSON). The
# exporter reads the spec from here; front ends that cannot draw it fall back to text/html.
VEGA_LITE_MIME = "application/vnd.vegalite.v6+json"


class _ScriptJSON(json.JSONEncoder):
    """The JSON encoder Altair's HTML renderer is given: script_json's text."""

    def encode(self, o: Any) -> str:
        """Return o as JSON that no string inside can end a <script> with."""
        return script_json(o)


def chart_bundle(chart: Any) -> dict[str, Any]:
    """Return the mime bundle of an Altair chart: its spec (data inlined), HTML, plain text."""
    import altair as alt

    spec = chart.to_dict()
    bundle = {VEGA_LITE_MIME: spec, "text/plain": f"<{type(chart).__name__}>"}
    # Altair's active renderer, for a live Jupyter only: the exporter replaces the whole
    # output with a chart drawn from the spec. Its HTML writes the spec into a <script>, and
    # an analyst's own chart may hold raw log text such as "</script><img onerror=...>".
    try:
        rendered = alt.renderers.get()(spec, json_kwds={"cls": _ScriptJSON})
    except TypeError:  # a renderer that takes no JSON options: no HTML rather than unsafe HTML
        rendered = {}
    rendered = rendered[0] if isinstance(rendered, tuple) else rendered
    if "text/html" in rendered:
        bundle["text/html"] = rendered["text/html"]
    return bundle


def _rows(value: Any) -> pa.Table | list[dict]:
    if isinstance(value, pa.Table | list):
        return value
    if hasattr(value, "to_arrow_table"):  # a DuckDB relation
        return value.to_arrow_table()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
        return pa.Table.from_pandas(value, preserve_index=False)
    raise TypeError(f"show() takes a chart, an Arrow table or a list of rows, not {type(value)}")


def bundle(value: Any, max_rows: int = 50) -> dict[str, Any]:
    """Return the mime bundle show() displays for a chart or for rows."""
    import altair as alt

    if isinstance(value, alt.TopLevelMixin):  # every Altair chart: single, layered, concat
        return chart_bundle(value)
    return {"text/html": html_table(_rows(value), max_rows), "text/plain": f"<{len(value)} rows>"}


def show(value: Any, max_rows: int = 50) -> None:
    """Display a chart (its Vega-Lite spec) or rows (an escaped HTML table); returns None."""
    from IPython.display import display

    display(bundle(value, max_rows), raw=True)


def show_remediation(remediation: Any, out_dir: Any) -> None:
    """Display what remediate_case returned (steps, validation, simulation); returns None."""
    from IPython.display import HTML, display

    from kforensics.contain.summary import remediation_html

    show([{"remediation written to": str(out_dir)}])
    display(HTML(remediation_html(remediation)))  # its HTML escapes every log value
