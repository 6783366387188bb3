"""Reports: papermill runs, typed parameters, fail_on, and an offline HTML page that is safe.

The notebooks are built here with nbformat; the browser check uses headless Chromium (skipped
only when it is not installed) with the network cut off.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from kforensics import connect, load
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from kforensics.reporting import export
from kforensics.reporting.display import VEGA_LITE_MIME
from kforensics.reporting.export import render_html, script_json, vega_bundle
from kforensics.reporting.run import ReportError, list_notebooks, resolve_notebook, run_report
from tests.conftest import SAMPLES, event, jsonl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAYLOADS = [
    "<img src=x onerror=\"document.title='pwned'\">",
    "</script><script>document.title='pwned'</script>",
    "<script>document.body.insertAdjacentHTML('beforeend','<b id=pwned>x</b>')</script>",
    "\u2028<!--<script>document.title='pwned'</script>",
]
PARAMS = "case = ''\nnamespace = 'default'\nlimit = 10\nratio = 0.5\ninteractive = False\n"


def notebook(path: Path, *cells: str) -> Path:
    """Write a notebook with a parameters cell, then the given code cells; return its path."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


CHART_CELLS = (
    f"import altair as alt, html\nfrom kforensics.reporting.display import show\nP = {PAYLOADS!r}\n"
    "show(alt.Chart(alt.Data(values=[{'a': i, 'b': i + 1, 'who': p} for i, p in enumerate(P)]))"
    ".mark_bar().encode(x='a:Q', y='b:Q', tooltip='who:N'))\n"
    # A bare chart after show(): kforensics' Altair renderer gives it the same bundle, so the
    # page draws it from its spec (its live scripts go).
    "display(alt.Chart(alt.Data(values=[{'a': 1}])).mark_point().encode(x='a:Q'))",
    # The Jupyter mime type, as a frontend-targeted renderer would emit it.
    "from IPython.display import display, HTML, Javascript\n"
    "c = alt.Chart(alt.Data(values=[{'k': p, 'n': 3} for p in P])).mark_bar()"
    ".encode(x='k:N', y='n:Q', tooltip='k:N')\n"
    "display({'application/vnd.vegalite.v5+json': c.to_dict(), 'text/plain': 'c'}, raw=True)",
    # An escaped table (what the notebooks emit), then a notebook bug: unescaped HTML and JS.
    "display(HTML('<table id=\"t\"><tr><th>who</th></tr>' + ''.join("
    "f'<tr><td>{html.escape(p)}</td></tr>' for p in P) + '</table>'))\n"
    "display(HTML('<div id=\"raw\">' + ''.join(P) + '</div>'))\n"
    "display(Javascript(\"document.title='pwned'\"))\n"
    "print(namespace, type(namespace).__name__, limit, type(limit).__name__, interactive)",
)


@pytest.fixture(scope="module")
def empty_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A case with one benign event and a detection run (no findings at high)."""
    root = tmp_path_factory.mktemp("benign")
    log = root / "audit.log"
    log.write_bytes(jsonl(event("b1")))
    case = root / "case.duckdb"
    load(case, [log], progress=False)
    detect(case, load_rules())
    return case


@pytest.fixture(scope="module")
def incident_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample incident with its findings stored (it has high and critical ones)."""
    case = tmp_path_factory.mktemp("incident") / "case.duckdb"
    load(case, [SAMPLES / "native"], progress=False)
    detect(case, load_rules())
    return case


@pytest.fixture(scope="module")
def chart_report(tmp_path_factory: pytest.TempPathFactory, empty_case: Path):
    root = tmp_path_factory.mktemp("chart")
    nb = notebook(root / "chart.ipynb", *CHART_CELLS)
    result = run_report(nb, empty_case, {"namespace": "0123", "limit": "7"}, root / "out")
    return result, result.html.read_text(encoding="utf-8")


def test_report_writes_ipynb_and_html(chart_report) -> None:
    result, _ = chart_report
    assert result.ipynb.name == "chart.ipynb" and result.html.name == "chart.html"
    assert result.fail_on is None and result.findings_at_or_above is None and not result.failed
    out = nbformat.read(str(result.ipynb), as_version=4)
    printed = "".join(o.get("text", "") for o in out.cells[-1].outputs)
    # `0123` stays a string (its default is one); `7` becomes an int.
    assert "0123 str 7 int False" in printed


def test_html_is_offline_and_has_one_bundle(chart_report) -> None:
    _, page = chart_report
    bundle = vega_bundle()
    assert page.count(bundle) == 1
    outside = page.replace(bundle, "")
    remote = r"""\s*["']?\s*(?:https?:)?//"""
    refs = re.findall(rf"(?:src|href)\s*={remote}|url\({remote}", outside, flags=re.IGNORECASE)
    assert refs == []
    assert "require.js" not in outside and "mathjax" not in outside.lower()
    assert "<link" not in outside.lower()
    assert len(re.findall(r'<div class="kf-chart" id="kf-chart-\d+">', page)) == 3
    assert "cdn.jsdelivr" not in outside  # Altair's loader script is replaced, not kept
    assert len(page) < 2_000_000


def test_html_drops_scripts_from_outputs(chart_report) -> None:
    _, page = chart_report
    nonce = re.search(r"'nonce-([^']+)'", page).group(1)
    scripts = re.findall(r"<script\b[^>]*>", page, flags=re.IGNORECASE)
    # Only ours: the bundle and one per chart, each with the page's nonce.
    assert scripts == [f'<script nonce="{nonce}">'] * 4
    assert "document.title='pwned'</script>" not in page.replace("\\u003c", "<")
    for p in PAYLOADS:  # the escaped table passes through (nbconvert re-serializes quotes)
        assert f"<td>{html.escape(p, quote=False)}</td>" in page
    raw = re.search(r'<div id="raw">.*?</div>', page, flags=re.DOTALL).group(0)
    assert "onerror" not in raw and "<img" in raw  # the unescaped bug's handler is gone


def test_show_puts_the_spec_in_the_output_and_the_page_draws_it(chart_report) -> None:
    result, page = chart_report
    out = nbformat.read(str(result.ipynb), as_version=4)
    data = [o.get("data", {}) for c in out.cells for o in c.get("outputs", [])]
    spec, bare = [d[VEGA_LITE_MIME] for d in data if VEGA_LITE_MIME in d]
    assert bare["mark"] == {"type": "point"}  # the chart displayed without show()
    assert [row["who"] for row in spec["data"]["values"]] == PAYLOADS  # data inlined, as given
    assert spec["mark"] == {"type": "bar"} and spec["encoding"]["tooltip"]["field"] == "who"
    embedded = re.search(r"vegaEmbed\(el,(\{.*?\}),\{actions:false", page).group(1)
    assert script_json(spec) == embedded


HOSTILE_HTML = {
    "svg-script": "<svg><script>document.title='pwned'</script></svg>",
    "js-link": '<a id="js" href="javascript:document.title=\'pwned\'">x</a>',
    "cell-img": "<table><tr><td><img src=x onerror=\"document.title='pwned'\"></td></tr></table>",
    "unclosed": "<b>bold <i>italic <a href='#top'>top",
    "style": "<style>body{display:none}</style>styled",
    "iframe": "<iframe srcdoc=\"<script>parent.document.title='pwned'</script>\"></iframe>",
    "meta": "<meta http-equiv=refresh content='0;url=https://evil.example/'>",
    "form": "<form action=https://evil.example/><button formaction=javascript:x>go</button></form>",
    "data-link": '<a href="data:text/html,<script>alert(1)</script>">d</a>',
    "attack": '<a href="https://attack.mitre.org/techniques/T1609/">T1609</a>',
    "clobber": '<div id="kf-chart-1">not a chart</div>',
}
CLEANED = {
    "svg-script": "",
    "js-link": '<a id="js" rel="noopener noreferrer">x</a>',
    "cell-img": '<table><tbody><tr><td><img alt="No description has been provided for this image"/>'
    "</td></tr></tbody></table>",
    "unclosed": '<b>bold <i>italic <a href="#top" rel="noopener noreferrer">top</a></i></b>',
    "style": "styled",
    "iframe": "",
    "meta": "",
    "form": "go",
    "data-link": '<a rel="noopener noreferrer">d</a>',
    "attack": '<a href="https://attack.mitre.org/techniques/T1609/" rel="noopener noreferrer">'
    "T1609</a>",
    "clobber": "<div>not a chart</div>",
}


def test_exported_html_keeps_only_the_allow_list() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"text/html": f'<div id="{k}">{v}</div>'})
        for k, v in HOSTILE_HTML.items()
    ]
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Notes `<b>`\n\n<script>document.title='pwned'</script>"),
        cell,
    ]
    page, charts = render_html(nb, "allow-list")
    assert charts == 0 and "<script" not in page and "pwned" not in page
    for key, expected in CLEANED.items():
        assert f'<div id="{key}">{expected}</div>' in page, key
    # Markdown is rendered, then cleaned: code spans stay literal text, the script is gone.
    assert '<h2 id="Notes-%3Cb%3E">Notes <code>&lt;b&gt;</code>' in page


def test_other_output_types_show_nothing_that_runs() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>document.title="pwned"</script></svg>'
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            {"image/svg+xml": svg, "application/javascript": "document.title='pwned'"},
        ),
        nbformat.v4.new_output(
            "display_data",
            {"image/png": "iVBORw0KGgo=\" onerror=\"document.title='pwned'", "text/plain": "png"},
        ),
        nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo=", "text/plain": "ok"}),
        nbformat.v4.new_output("display_data", {"text/markdown": "`<i>` <script>pwned</script>"}),
    ]
    nb.cells = [cell]
    page, _ = render_html(nb, "types")
    assert "<svg" not in page and "pwned" not in page and "<script" not in page
    assert '<img alt="image" src="data:image/svg+xml;base64,' in page  # a picture, inert
    assert page.count("<img") == 2 and 'src="data:image/png;base64,iVBORw0KGgo="' in page
    assert "<pre>png</pre>" in page  # the crafted PNG fell back to its text
    assert "<p><code>&lt;i&gt;</code> </p>" in page


def test_script_json_cannot_close_the_script() -> None:
    text = script_json({"x": "</script><!--\u2028\u2029&"})
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    assert "\u2029" not in text and "&" not in text
    assert '"\\u003c/script\\u003e\\u003c!--\\u2028\\u2029\\u0026"' in text


class _Dom(HTMLParser):
    """Collects the title, ids, and for each chart div whether an svg/canvas is inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.ids, self.drawn = "", set(), {}
        self._in_title, self._stack = False, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag in ("svg", "canvas"):
            for chart in filter(None, self._stack):
                self.drawn[chart] = True
        if tag == "div" and (a.get("id") or "").startswith("kf-chart-"):
            self.drawn.setdefault(a["id"], False)
            self._stack.append(a["id"])
        elif tag == "div":
            self._stack.append(None)
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        if tag == "div" and self._stack:
            self._stack.pop()
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def dump_dom(page: Path, tmp_path: Path, window: tuple[int, int] | None = None) -> str:
    """Return the DOM Chromium holds after running the page's scripts with no network."""
    profile = tmp_path / "chromium-profile"
    size = [f"--window-size={window[0]},{window[1]}"] if window else []
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000", *size,
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
def test_browser_draws_charts_and_runs_no_payload(chart_report, tmp_path: Path) -> None:
    result, _ = chart_report
    dom = _Dom()
    dom.feed(dump_dom(result.html, tmp_path))
    assert dom.title == "chart"
    assert dom.drawn == {"kf-chart-1": True, "kf-chart-2": True, "kf-chart-3": True}
    assert "pwned" not in dom.ids
    assert {"t", "raw"} <= dom.ids  # the outputs are there, only their scripts are gone


def test_failing_cell_raises_and_keeps_ipynb(tmp_path: Path, empty_case: Path) -> None:
    nb = notebook(
        tmp_path / "failing.ipynb", "x = 1", "raise ValueError('no such namespace: shop')"
    )
    with pytest.raises(ReportError, match=r"ValueError: no such namespace: shop"):
        run_report(nb, empty_case, {}, tmp_path / "out")
    executed = nbformat.read(str(tmp_path / "out" / "failing.ipynb"), as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0].evalue == "no such namespace: shop"


def test_parameter_typing_errors(tmp_path: Path, empty_case: Path) -> None:
    nb = notebook(tmp_path / "p.ipynb", "pass")
    with pytest.raises(ReportError, match=r"'limit' expects int .* got 'abc'"):
        run_report(nb, empty_case, {"limit": "abc"}, tmp_path / "out")
    with pytest.raises(ReportError, match=r"'interactive' expects bool"):
        run_report(nb, empty_case, {"interactive": "maybe"}, tmp_path / "out")
    with pytest.raises(ReportError, match=r"unknown parameter 'nmespace' \(known: .*namespace"):
        run_report(nb, empty_case, {"nmespace": "shop"}, tmp_path / "out")
    with pytest.raises(ReportError, match="fail_on 'severe'"):
        run_report(nb, empty_case, {}, tmp_path / "out", fail_on="severe")
    assert not (tmp_path / "out" / "p.ipynb").exists()  # rejected before running


def test_list_and_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook(tmp_path / "nb" / "01_triage.ipynb", "pass")
    monkeypatch.setenv("KFORENSICS_NOTEBOOKS", str(tmp_path / "nb"))
    [info] = list_notebooks()
    assert info.name == "01_triage"
    types = {p.name: p.type for p in info.parameters}
    assert types == {
        "case": "str", "namespace": "str", "limit": "int", "ratio": "float", "interactive": "bool"
    }  # fmt: skip
    assert resolve_notebook("01_triage").path == info.path
    assert resolve_notebook("01_triage.ipynb").path == info.path
    with pytest.raises(ReportError, match=r"no notebook '02_nope' .*01_triage"):
        resolve_notebook("02_nope")


@pytest.mark.parametrize(
    ("level", "expect_failed"), [("info", True), ("high", True), ("critical", False)]
)
def test_fail_on_counts_findings_at_or_above(tmp_path, incident_case, level, expect_failed) -> None:
    con = connect(incident_case)
    levels = {r[0] for r in con.execute("SELECT DISTINCT level FROM findings").fetchall()}
    con.close()
    assert "high" in levels and "critical" not in levels  # what makes critical a "no"
    nb = notebook(tmp_path / "f.ipynb", "pass")
    result = run_report(nb, incident_case, {}, tmp_path / "out", fail_on=level)
    assert result.fail_on == level
    assert result.failed is expect_failed
    assert (result.findings_at_or_above > 0) is expect_failed


def test_fail_on_without_findings(tmp_path: Path, empty_case: Path) -> None:
    nb = notebook(tmp_path / "f.ipynb", "pass")
    result = run_report(nb, empty_case, {}, tmp_path / "out", fail_on="high")
    assert result.findings_at_or_above == 0 and not result.failed


def test_fail_on_refuses_a_case_no_detection_examined(tmp_path: Path) -> None:
    (tmp_path / "audit.log").write_bytes(jsonl(event("never-examined")))
    case = tmp_path / "case.duckdb"
    load(case, [tmp_path / "audit.log"], progress=False)
    nb = notebook(tmp_path / "f.ipynb", "pass")
    with pytest.raises(ReportError, match="no detection has run"):
        run_report(nb, case, {}, tmp_path / "out", fail_on="high")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
def test_csp_alone_stops_unescaped_payloads(tmp_path: Path, monkeypatch) -> None:
    # Defence in depth: with the output filter disabled, the page's CSP still runs no payload.
    monkeypatch.setattr(export, "clean_html", lambda markup: markup)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    raw = "".join(PAYLOADS) + '<svg><a id="l" href="javascript:document.title=\'pwned\'"></a></svg>'
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"text/html": f"<div id=raw>{raw}</div>"})
    ]
    nb.cells = [cell]
    page, charts = render_html(nb, "csp")
    assert charts == 0 and "onerror" in page  # the filter really was off
    path = tmp_path / "csp.html"
    path.write_text(page, encoding="utf-8")
    dom = _Dom()
    dom.feed(dump_dom(path, tmp_path))
    assert dom.title == "csp" and "raw" in dom.ids and "pwned" not in dom.ids


def test_cli_report_prints_both_paths_and_fails_on_level(tmp_path: Path, incident_case: Path):
    from click.testing import CliRunner

    from kforensics.cli import main

    nb = notebook(tmp_path / "nb" / "01_check.ipynb", "assert isinstance(namespace, str)")
    runner = CliRunner()
    args = ["report", str(nb), "--case", str(incident_case), "--out", str(tmp_path / "o"),
            "-p", "namespace", "0123"]  # fmt: skip
    out = runner.invoke(main, args)
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[-2:] == [
        str(tmp_path / "o" / "01_check.ipynb"), str(tmp_path / "o" / "01_check.html")
    ]  # fmt: skip
    out = runner.invoke(main, [*args, "--fail-on", "high"])
    assert out.exit_code == 1
    failing = notebook(tmp_path / "nb" / "02_bad.ipynb", "raise ValueError('no such pod')")
    out = runner.invoke(main, ["report", str(failing), "--case", str(incident_case),
                               "--out", str(tmp_path / "o")])  # fmt: skip
    assert out.exit_code == 1 and "ValueError: no such pod" in out.output


def test_a_report_in_a_terminal_prints_only_its_paths(tmp_path: Path, empty_case: Path) -> None:
    # The kernel writes to the terminal directly: over TCP it warned on every run.
    nb = notebook(tmp_path / "nb" / "01_quiet.ipynb", "print('in the notebook only')")
    kforensics = Path(sys.executable).parent / "kforensics"
    run = subprocess.run(
        [str(kforensics), "report", str(nb), "--case", str(empty_case), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == f"{tmp_path / '01_quiet.ipynb'}\n{tmp_path / '01_quiet.html'}\n"
