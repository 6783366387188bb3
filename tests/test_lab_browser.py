"""A real JupyterLab (and Notebook 7) runs the triage notebook in headless Chromium, offline.

One server and one browser for the module: the page may reach 127.0.0.1 only (a dead proxy and
a resolver that finds no other host), so a chart that needs a CDN would not draw. The counts
expected are read from the notebook's cells, not from what the page shows.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kforensics import load
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from kforensics.progress import BATCH_ENV
from kforensics.reporting.display import VEGA_LITE_MIME
from tests.conftest import ROOT, SAMPLES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)
NOTEBOOK = ROOT / "kforensics" / "reporting" / "notebooks" / "01_triage.ipynb"
HAS_NOTEBOOK7 = (
    subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", "import notebook, sys; sys.exit(int(notebook.__version__[0]) < 7)"],
        capture_output=True,
    ).returncode
    == 0
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)"),
    pytest.mark.skipif(
        CHROMEDRIVER is None, reason="chromedriver is not installed (CI installs chromium-driver)"
    ),
]
# What the page may load: loopback only. Chromium never proxies loopback, so the dead proxy
# catches every other address, and the resolver finds no other host.
NETWORK_OFF = [
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
RUN_TIMEOUT = 150  # seconds for Run All on a slow shared machine
# Seconds for one cell of papermill's run (all of it: about 20 s). On a busy machine its client
# now and then sees the explore cell's reply only when a wait times out (without a timeout it
# waited for ever, the kernel idle): a timeout bounds that stall.
ORACLE_TIMEOUT = 45


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def expected_counts(executed: dict) -> tuple[int, int]:
    """Return the (charts, widget views) an executed notebook's outputs and widget state hold."""
    state = executed["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    found = {"charts": 0, "widgets": 0}

    def outputs(shown: list[dict]) -> None:
        for output in shown:
            data = output.get("data", {})
            found["charts"] += VEGA_LITE_MIME in data
            if WIDGET_VIEW in data:
                view(data[WIDGET_VIEW]["model_id"])

    def view(model_id: str) -> None:
        found["widgets"] += 1
        model = state[model_id]["state"]
        for child in model.get("children", []):  # a box's children are views too
            view(child.removeprefix("IPY_MODEL_"))
        outputs(model.get("outputs", []))  # what an Output widget shows

    for cell in executed["cells"]:
        outputs(cell.get("outputs", []))
    return found["charts"], found["widgets"]


def _expected(notebook: Path, case: Path, work: Path) -> tuple[int, int]:
    """Return the counts papermill's run of the notebook (interactive, no front end) holds."""
    import papermill

    papermill.execute_notebook(
        str(notebook),
        str(work / "expected.ipynb"),
        parameters={"case": str(case), "interactive": True},
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=ORACLE_TIMEOUT,
        cwd=str(work),
    )
    return expected_counts(json.loads((work / "expected.ipynb").read_text(encoding="utf-8")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_on(case: Path) -> dict:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    [params] = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    source = "".join(params["source"])
    assert "\ninteractive = False\n" in source
    params["source"] = f"{source}\ncase = {str(case)!r}\ninteractive = True\n"
    return nb


class Lab:
    """A Jupyter server on a free loopback port and a headless Chromium on it."""

    def __init__(self, root: Path, work: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.port, self.token = _free_port(), os.urandom(16).hex()
        env = {k: v for k, v in os.environ.items() if k not in ("CI", BATCH_ENV)}
        # An analyst's live kernel (CI's variable would make it a batch run, drawing nothing).
        env.update(
            JUPYTER_CONFIG_DIR=str(work / "config"),
            JUPYTER_RUNTIME_DIR=str(work / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(work / "lab-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(work / "lab-workspaces"),
        )
        args = [
            str(Path(sys.executable).parent / "jupyter"),
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
        ]
        if os.geteuid() == 0:
            args.append("--allow-root")
        self.log = (work / "lab.log").open("wb")
        self.server = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)  # noqa: S603
        self._wait_for_server()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={work / 'chromium-profile'}",
            "--window-size=1400,1000",
            *NETWORK_OFF,
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))

    def api(self, path: str) -> object:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read())

    def _wait_for_server(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise AssertionError(f"jupyter lab exited {self.server.returncode}")
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("jupyter lab did not answer within 60 s")

    def run_all(self, url_path: str) -> None:
        """Open the notebook, Run All Cells from the menu, wait until the kernel is idle."""
        from selenium.webdriver.common.by import By

        d = self.driver
        d.get(f"http://127.0.0.1:{self.port}{url_path}?token={self.token}")
        self.wait(lambda: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell"), 60)
        self.wait(lambda: self._kernels_idle(), 60)  # started and ready
        time.sleep(0.5)
        [menu] = [
            e for e in d.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == "Run"
        ]
        menu.click()
        [item] = self.wait(
            lambda: [
                e
                for e in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
                if e.text == "Run All Cells"
            ],
            10,
        )
        item.click()

        def done() -> bool:
            prompts = [
                e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")
            ]
            ran = prompts and all(p.strip("[]: ").isdigit() for p in prompts)
            return bool(ran) and self._kernels_idle()

        self.wait(done, RUN_TIMEOUT)

    def _kernels_idle(self) -> bool:
        try:
            kernels = self.api("/api/kernels")
        except urllib.error.HTTPError:  # a kernel half started: ask again
            return False
        return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)

    def wait(self, condition, seconds: float):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(
            f"timed out after {seconds} s waiting for {condition.__name__}: {value}"
        )

    def counts(self) -> dict[str, int]:
        """Charts placed, charts drawn (an SVG or canvas inside), widget views, CDN errors."""
        return self.driver.execute_script(
            "var charts=[].slice.call(document.querySelectorAll('.jp-Notebook .kf-chart'));"
            "return {placed: charts.length,"
            " drawn: charts.filter(function(c){return c.querySelector('svg.marks,canvas')}).length,"
            " widgets: document.querySelectorAll('.jp-Notebook .jupyter-widgets').length,"
            " errors: document.querySelectorAll("
            "'.jp-OutputArea-output[data-mime-type*=stderr]').length,"
            " script_errors: (document.body.innerText.match(/Error loading script/g)||[]).length};"
        )

    def counts_once_drawn(self, charts: int, seconds: float = 20) -> dict[str, int]:
        """Return counts() once `charts` charts are drawn, or as they are after `seconds`."""
        deadline = time.monotonic() + seconds
        while (seen := self.counts())["drawn"] != charts and time.monotonic() < deadline:
            time.sleep(0.3)
        return seen

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            self.server.terminate()
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    root, work = tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-work")
    case = root / "case.duckdb"
    load(case, [SAMPLES / "native"], progress=False)
    detect(case, load_rules())
    nb = _notebook_on(case)
    # One copy per front end: each has its own kernel, as two analysts' notebooks would.
    for name in ("lab.ipynb", "classic.ipynb"):
        (root / name).write_text(json.dumps(nb), encoding="utf-8")
    # papermill's run, the counts' source, runs beside the server, the browser and the first run
    with ThreadPoolExecutor(1) as pool:
        expected = pool.submit(_expected, NOTEBOOK, case, work)
        server = Lab(root, work)
        server.case = case
        try:
            yield server, expected
        finally:
            server.close()


def test_the_counts_expected_are_read_from_the_executed_notebook():
    def shown(model_id):
        return {"output_type": "display_data", "data": {WIDGET_VIEW: {"model_id": model_id}}}

    chart = {"output_type": "display_data", "data": {VEGA_LITE_MIME: {}, "text/html": ""}}
    table = {"output_type": "display_data", "data": {"text/html": "<table>"}}
    state = {
        "box": {"state": {"children": ["IPY_MODEL_text", "IPY_MODEL_level"]}},
        "text": {"state": {}},
        "level": {"state": {"layout": "IPY_MODEL_layout"}},  # a layout is no view
        "out": {"state": {"outputs": [chart, table, shown("button")]}},
        "button": {"state": {}},
    }
    executed = {
        "metadata": {"widgets": {WIDGET_STATE: {"state": state}}},
        "cells": [
            {"cell_type": "markdown", "source": "kf.show(c.chart('prose'))"},
            {"cell_type": "code", "outputs": [chart, table, chart]},
            {"cell_type": "code", "outputs": [shown("box"), shown("out")]},
        ],
    }
    # charts: two in cells, one in the Output; views: box, text, level, the Output, its button
    assert expected_counts(executed) == (3, 5)


def test_the_page_reaches_no_cdn(lab):
    server, _ = lab
    server.driver.get(f"http://127.0.0.1:{server.port}/api/status?token={server.token}")
    result = server.driver.execute_async_script(
        "var done=arguments[arguments.length-1];"
        "fetch('https://cdn.jsdelivr.net/npm/vega@6').then("
        "function(){done('loaded')},function(e){done('refused: '+e.name)});"
    )
    assert result == "refused: TypeError"


@pytest.fixture(scope="module")
def lab_page(lab):
    """Return the Lab with lab.ipynb run in its page (once for the module)."""
    server, _ = lab
    server.run_all("/lab/tree/lab.ipynb")
    return server


def test_jupyterlab_draws_every_chart_and_widget_offline(lab, lab_page):
    server, expected = lab
    charts, widgets = expected.result(timeout=RUN_TIMEOUT)
    seen = server.counts_once_drawn(charts)
    assert seen == {"placed": charts, "drawn": charts, "widgets": widgets, "errors": 0,
                    "script_errors": 0}  # fmt: skip


# Page helpers for the widget test. A control is found by its description label, its message
# by the Label beside it in the same row; the explore Output shows chart, findings, who-did-what.
SA = "system:serviceaccount:shop:storefront"
TIME_HINT = "not a time: use ISO 8601, e.g. 2026-03-14T10:00Z"
MARK_OUTPUTS = (  # tag each output shown now: an output drawn again has no tag
    "arguments[0].querySelectorAll('.widget-output .jp-OutputArea-child')"
    ".forEach(function(o){o.setAttribute('data-kf-seen','1')});"
)
OUTPUTS_SEEN = (
    "var o=arguments[0].querySelectorAll('.widget-output .jp-OutputArea-child');"
    "return [o.length, [].filter.call(o,function(c){"
    " return c.hasAttribute('data-kf-seen')}).length];"
)
TABLES = (  # the findings and who-did-what tables: [[header...], [cell...]...] each
    "var o=arguments[0].querySelectorAll('.widget-output .jp-OutputArea-child');"
    "return [1,2].map(function(i){var t=o[i]&&o[i].querySelector('table');"
    " if(!t) return o[i]?[o[i].innerText]:null;"
    " return [].map.call(t.querySelectorAll('tr'),function(r){"
    "  return [].map.call(r.children,function(c){return c.textContent})})});"
)


def _cell_with(driver, label: str):
    from selenium.webdriver.common.by import By

    [cell] = driver.find_elements(
        By.XPATH, f"//div[contains(@class,'jp-CodeCell')][.//label[.='{label}']]"
    )
    return cell


def _control(cell, label: str):
    from selenium.webdriver.common.by import By

    return cell.find_element(By.XPATH, f".//label[.='{label}']/following-sibling::*[1]")


def _message(cell, label: str) -> str:
    from selenium.webdriver.common.by import By

    row = f".//label[.='{label}']/ancestor::div[contains(@class,'widget-hbox')][1]"
    return cell.find_element(By.XPATH, f"{row}/div[contains(@class,'widget-label')]").text


def _column(table: list[list[str]], name: str) -> list[str]:
    at = table[0].index(name)
    return [row[at] for row in table[1:]]


def test_an_analyst_filters_with_the_explore_widgets_and_saves_a_note(lab, lab_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    import kforensics as kf

    server, d = lab_page, lab_page.driver
    c = kf.open_case(server.case)
    found, high = c.findings(), c.findings(min_level="high")
    sa_high = c.window().query("findings_for", identity=SA, min_level="high")
    sa_requests = c.window().query("who_did_what", identity=SA, limit=30)
    assert (len(found), len(high), len(sa_high), len(sa_requests)) == (77, 12, 11, 27)
    cell = _cell_with(d, "level")

    def tables():
        return d.execute_script(TABLES, cell)

    def outputs_seen():
        return d.execute_script(OUTPUTS_SEEN, cell)

    def settled():  # the kernel idle, the three outputs shown and drawn again
        return server._kernels_idle() and outputs_seen() == [3, 0]

    def findings_rows():
        return len(tables()[0]) - 1

    assert findings_rows() == 50  # the first 50 of the case's 77 findings (show's max_rows)
    d.execute_script(MARK_OUTPUTS, cell)
    Select(_control(cell, "level")).select_by_value("high and above")
    server.wait(lambda: settled() and findings_rows() == len(high), 30)
    assert set(_column(tables()[0], "level")) <= {"high", "critical"}

    since = _control(cell, "since")
    before = tables()
    d.execute_script(MARK_OUTPUTS, cell)
    since.send_keys(Keys.CONTROL, "a")
    since.send_keys("2026-")  # typed, not applied: no message yet, nothing drawn again
    server.wait(server._kernels_idle, 10)
    assert (_message(cell, "since"), outputs_seen(), tables()) == ("", [3, 3], before)
    since.send_keys(Keys.ENTER)
    server.wait(lambda: _message(cell, "since") == TIME_HINT, 20)
    server.wait(server._kernels_idle, 10)
    assert (outputs_seen(), tables()) == ([3, 3], before)  # what is shown stays as it was
    since.send_keys(Keys.CONTROL, "a")
    since.send_keys(Keys.BACKSPACE, Keys.ENTER)
    server.wait(lambda: _message(cell, "since") == "" and settled(), 30)

    identity = _control(cell, "identity")
    before = tables()
    d.execute_script(MARK_OUTPUTS, cell)
    identity.send_keys(SA)
    server.wait(server._kernels_idle, 10)
    assert (outputs_seen(), tables()) == ([3, 3], before)  # no query per keystroke
    identity.send_keys(Keys.ENTER)
    server.wait(lambda: settled() and findings_rows() == len(sa_high), 30)
    findings, requests = tables()
    named = zip(_column(findings, "actor"), _column(findings, "impersonated"), strict=True)
    assert all(SA in row for row in named)
    assert len(requests) - 1 == len(sa_requests)
    assert set(_column(requests, "identity")) == {SA}

    note = _cell_with(d, "comment")
    Select(_control(note, "on")).select_by_value("identity")
    # the target's suggestions become identities: the kernel has the kind
    server.wait(lambda: note.find_elements(By.CSS_SELECTOR, f"datalist option[value='{SA}']"), 20)
    _control(note, "target").send_keys(SA)
    _control(note, "tag").send_keys("suspect")
    _control(note, "comment").send_keys("<b>x</b>")
    note.find_element(By.CSS_SELECTOR, ".widget-button").click()
    server.wait(lambda: note.find_element(By.XPATH, ".//button/following-sibling::div").text
                == "note 1 stored", 20)  # fmt: skip
    [stored] = kf.notes(server.case)
    fields = ("note_id", "target_kind", "target", "tag", "comment", "mark", "reason")
    assert [stored[k] for k in fields] == [1, "identity", SA, "suspect", "<b>x</b>", None, None]
    assert _control(note, "comment").get_attribute("value") == ""  # ready for the next note


@pytest.mark.skipif(
    not HAS_NOTEBOOK7, reason="notebook 7 is not installed (pip install -e '.[dev]')"
)
def test_classic_notebook_draws_every_chart_and_widget_offline(lab):
    server, expected = lab
    server.run_all("/notebooks/classic.ipynb")
    charts, widgets = expected.result(timeout=RUN_TIMEOUT)
    seen = server.counts_once_drawn(charts)
    assert seen == {"placed": charts, "drawn": charts, "widgets": widgets, "errors": 0,
                    "script_errors": 0}  # fmt: skip
