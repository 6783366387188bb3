"""What show() puts in a notebook: the chart library once per kernel, tables without warnings."""

from __future__ import annotations

import warnings

import altair as alt
import pandas as pd
import pyarrow as pa
import pytest

from kforensics.progress import BATCH_ENV
from kforensics.reporting.display import (
    VEGA_LITE_MIME,
    bundle,
    chart_library_html,
    resend_chart_library,
    show,
)
from kforensics.reporting.export import vega_bundle


def _chart() -> alt.Chart:
    return alt.Chart(alt.Data(values=[{"verb": "get"}])).mark_bar().encode(x="verb:N")


@pytest.fixture
def live_kernel(monkeypatch):
    for name in ("CI", BATCH_ENV):
        monkeypatch.delenv(name, raising=False)
    resend_chart_library()
    yield
    resend_chart_library()  # the next test's kernel starts afresh too


def test_the_first_chart_of_a_kernel_carries_the_library_and_the_next_do_not(live_kernel):
    first, second = bundle(_chart()), bundle(_chart())
    assert first["text/html"].count(chart_library_html()) == 1
    assert chart_library_html() not in second["text/html"]
    assert len(first["text/html"]) > len(vega_bundle()) > 500_000 > len(second["text/html"])
    resend_chart_library()  # after a page reload
    assert chart_library_html() in bundle(_chart())["text/html"]
    assert sorted(second) == [VEGA_LITE_MIME, "text/html", "text/plain"]


def test_the_library_runs_once_per_page_is_kept_by_the_browser_and_loads_nothing():
    library = chart_library_html()
    assert library.startswith('<script>(function(){var key="kforensics-vega-bundle-')
    assert library.endswith(
        "if(!window.vegaEmbed){(new Function(source))();}"
        "try{localStorage.setItem(key,source);}catch(e){}})();</script>"
    )
    # the bundle is a JSON string: no markup can start or end inside it
    assert library.count("<") == 2 and library.count(">") == 2
    chart = bundle(_chart())["text/html"].replace(library, "")
    assert "cdn.jsdelivr.net" not in chart
    key = library.split('"')[1]  # a chart of a page without the library runs the kept copy
    assert f'localStorage.getItem("{key}")' in chart


@pytest.mark.parametrize("variable", ["CI", BATCH_ENV])
def test_a_batch_kernel_sends_no_library(live_kernel, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    html = bundle(_chart())["text/html"]
    assert chart_library_html() not in html
    assert "drawn when this notebook runs in Jupyter" in html  # what an untrusted page shows
    monkeypatch.delenv(variable)
    assert chart_library_html() in bundle(_chart())["text/html"]  # the first live chart has it


def test_a_frame_with_attrs_shows_without_a_warning():
    frame = pd.DataFrame({"verb": ["get", "list"]})
    frame.attrs["arrow_schema"] = pa.schema([("verb", pa.string())])  # not JSON
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shown = bundle(frame)
    assert shown["text/plain"] == "<2 rows>" and "<td>list</td>" in shown["text/html"]
    assert list(frame.attrs) == ["arrow_schema"]  # the caller's frame is left as it was


def test_after_show_a_bare_chart_draws_offline_too(live_kernel, monkeypatch):
    # an analyst's own chart, left as a cell's last value: Jupyter asks Altair for its bundle
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: None)
    before = alt.renderers.active
    try:
        show([{"a": 1}])
        assert alt.renderers.active == "kforensics"
        own = _chart()._repr_mimebundle_()
        own = own[0] if isinstance(own, tuple) else own
        assert own[VEGA_LITE_MIME]["data"] == {"values": [{"verb": "get"}]}
        assert "cdn.jsdelivr" not in own["text/html"] and "vegaEmbed" in own["text/html"]
        assert own["text/html"].count(chart_library_html()) == 1  # the kernel's first chart
    finally:
        alt.renderers.enable(before)
