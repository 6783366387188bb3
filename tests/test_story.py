"""The triage report's first screen: header, storyline, severity-weighted matrix, linked evidence.

On the sample incident detected with its known false positives (what `make demo` builds): the
header's exact values, the attacker's first steps, the ATT&CK matrix without info findings, the
links (ATT&CK pages, same-page anchors that resolve) in the exported page, a page no wider than
a 1280 px window in Chromium, no chart twice; and hostile names that stay text.
"""

from __future__ import annotations

import html
import json
import re
import string
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kforensics import connect, load
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect, load_exceptions
from kforensics.investigate import charts, story
from kforensics.investigate.suspects import suspects
from kforensics.investigate.tables import SAFE_HREF, as_text, html_table
from kforensics.reporting.display import VEGA_LITE_MIME
from kforensics.reporting.run import run_report
from kforensics.reporting.sanitise import clean_html
from kforensics.version import __version__
from tests.conftest import SAMPLES, event, jsonl
from tests.test_report import CHROMIUM, dump_dom

SA = "system:serviceaccount:shop:storefront"
NATIVE = SAMPLES / "native"
LOG = f"{NATIVE / 'audit.log'}"


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample incident, detected with the sample's known false positives (as make demo)."""
    case = tmp_path_factory.mktemp("story") / "case.duckdb"
    load(case, [NATIVE], progress=False)
    exceptions = load_exceptions(SAMPLES / "known_false_positives.yaml")
    detect(case, load_rules(), exceptions=exceptions)
    return case


@pytest.fixture(scope="module")
def triage(demo_case: Path, tmp_path_factory: pytest.TempPathFactory):
    """The 01_triage report of the demo case: (executed notebook, exported page text)."""
    out = tmp_path_factory.mktemp("triage")
    result = run_report("01_triage", demo_case, {"remediation_out": str(out / "plan")}, out)
    return nbformat.read(str(result.ipynb), as_version=4), result.html.read_text("utf-8")


def test_the_header_names_case_sources_window_rules_version(demo_case: Path) -> None:
    with connect(demo_case) as con:
        header = story.case_header(con, demo_case, "2026-03-14T10:00:00Z", None)
    assert header["case"] == str(demo_case.resolve())
    assert header["sources"] == [
        {
            "path": str(NATIVE / "audit-2026-03-14T09-30-00.000.log.gz"), "format": "native",
            "sha256": "a768229c91220f8085eaf29cf9c4eab20b72c3946cc06a6c70d9dc74da3e07cd",
            "records": 1448, "events_loaded": 1448, "duplicates": 0, "rejected": 0,
            "events_in_case": 1448,
        },
        {
            "path": LOG, "format": "native",
            "sha256": "0161b59bc4fade55cd17f00ce0a1db15d7cba185d11fca1650dd5c28dcc126ba",
            "records": 2422, "events_loaded": 2402, "duplicates": 20, "rejected": 0,
            "events_in_case": 2402,
        },
        {
            "path": str(NATIVE / "webhook-eventlist.json"), "format": "eventlist",
            "sha256": "238faa078496fefbd54e86332dda776c6df2ee2ddd42cbd1e612d698b76b3de0",
            "records": 50, "events_loaded": 0, "duplicates": 50, "rejected": 0,
            "events_in_case": 0,
        },
    ]  # fmt: skip
    assert header["events"] == 3850 and header["undated_events"] == 0
    assert [t.isoformat() for t in header["case_window"]] == [
        "2026-03-14T08:00:04.200074+00:00",
        "2026-03-14T12:00:22.565586+00:00",
    ]
    assert header["window"] == (datetime(2026, 3, 14, 10, tzinfo=UTC), None)
    detect_run = header["detect"]
    assert detect_run["rules"] == sorted(r.id for r in load_rules())
    assert (detect_run["exceptions"], detect_run["findings"]) == (3, 74)
    assert detect_run["since"] is None and detect_run["until"] is None
    assert [(e["rule_id"], e["fields"]) for e in detect_run["exception_entries"]] == [
        ("k8s-cluster-admin-binding", {"actor": ["alice@example.com"], "name": ["ci-deployer"]}),
        ("k8s-serviceaccount-outside-cluster",
         {"actor": ["system:serviceaccount:ci:deployer"], "source_ip": ["192.0.2.50"]}),
        ("k8s-role-pod-exec",
         {"actor": ["system:serviceaccount:ci:deployer"], "name": ["storefront-ops"]}),
    ]  # fmt: skip
    assert detect_run["exception_entries"][0]["reason"].endswith("intended and reviewed.")
    assert header["kforensics"] == __version__
    assert abs((datetime.now(UTC) - header["generated_at"]).total_seconds()) < 120
    page = story.header_html(header)
    assert "<td>3850 from 3 sources</td>" in page
    assert "<td>2026-03-14T10:00:00+00:00 to (open)</td>" in page
    rules = len(detect_run["rules"])
    assert f"{rules} rules, 3 exceptions, window whole case, 74 findings stored" in page
    assert "0161b59bc4fade55cd17f00ce0a1db15d7cba185d11fca1650dd5c28dcc126ba" in page
    assert "<summary>exceptions applied (3)</summary>" in page
    assert "<td>actor: alice@example.com, name: ci-deployer</td>" in page


def test_a_case_never_detected_says_so(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(jsonl(event("x1")))
    load(tmp_path / "c.duckdb", [log], progress=False)
    with connect(tmp_path / "c.duckdb") as con:
        header = story.case_header(con, tmp_path / "c.duckdb")
    assert header["detect"] is None
    assert "none stored: run `kforensics detect` on the case" in story.header_html(header)
    detect(tmp_path / "c.duckdb", load_rules())  # no exceptions: none listed
    with connect(tmp_path / "c.duckdb") as con:
        header = story.case_header(con, tmp_path / "c.duckdb")
    assert header["detect"]["exception_entries"] == []
    assert "exceptions applied" not in story.header_html(header)


def test_a_case_detected_before_exceptions_were_kept_says_so(demo_case: Path, tmp_path) -> None:
    older = tmp_path / "older.duckdb"
    older.write_bytes(demo_case.read_bytes())
    with connect(older, read_only=False) as con:
        con.execute("DROP TABLE detect_exceptions")
    with connect(older) as con:
        header = story.case_header(con, older)
    assert header["detect"]["exception_entries"] is None
    assert "exceptions: not recorded (detected before kforensics kept them)" in (
        story.header_html(header)
    )


def test_the_storyline_tells_the_attackers_steps_in_order(demo_case: Path) -> None:
    with connect(demo_case) as con:
        assert suspects(con) == [SA]  # alice and ci:deployer's findings are known false positives
        [(who, steps)] = story.storylines(con)
    assert who == SA
    first = [
        {k: r[k] for k in ("step", "level", "what", "request", "code", "where", "techniques")}
        | {"at": r["at"].isoformat(), "evidence": r["evidence"]}
        for r in steps.to_pylist()[:5]
    ]
    assert first == [
        {"step": 1, "at": "2026-03-14T10:28:41.310260+00:00", "level": "medium",
         "what": ["Service account token used from outside the cluster or with a hand-held client"],
         "request": "get /api", "code": 200, "where": None,
         "techniques": ["T1078.004", "T1528", "T1550.001"], "evidence": f"{LOG}:953"},
        {"step": 2, "at": "2026-03-14T10:28:44.510251+00:00", "level": "low",
         "what": ["Identity enumerated its own permissions (SelfSubjectRulesReview / "
                  "AccessReview / whoami)"],
         "request": "create selfsubjectrulesreviews", "code": 201,
         "where": "selfsubjectrulesreviews", "techniques": ["T1033", "T1069", "T1087", "T1613"],
         "evidence": f"{LOG}:955"},
        {"step": 3, "at": "2026-03-14T10:28:48.187586+00:00", "level": "medium",
         "what": ["Burst of denied API requests from one identity (permission enumeration)",
                  "Request refused (401 Unauthorized or 403 Forbidden)"],
         "request": "list namespaces", "code": 403, "where": "namespaces",
         "techniques": ["T1069", "T1078", "T1087", "T1613"], "evidence": f"{LOG}:957"},
        {"step": 4, "at": "2026-03-14T10:33:05.780367+00:00", "level": "medium",
         "what": ["Command executed in a pod, or attached to one (exec/attach)"],
         "request": "create pods/exec", "code": 101, "where": "shop/pods/storefront-7d4b9c-q9w2m",
         "techniques": ["T1609"], "evidence": f"{LOG}:1101"},
        {"step": 5, "at": "2026-03-14T10:33:50.087667+00:00", "level": "high",
         "what": ["Exec command reads a service account token or Kubernetes credential file",
                  "Command executed in a pod, or attached to one (exec/attach)"],
         "request": "create pods/exec", "code": 101,
         "where": "payments/pods/payments-api-5f6c8d-7hjkq",
         "techniques": ["T1528", "T1552.001", "T1609"], "evidence": f"{LOG}:1120"},
    ]  # fmt: skip
    assert steps.num_rows == 19 and "info" not in steps.column("level").to_pylist()
    rendered = story.steps_html(steps)
    assert (
        '<td><a href="https://attack.mitre.org/techniques/T1078/004/">T1078.004</a>, '
        '<a href="https://attack.mitre.org/techniques/T1528/">T1528</a>, '
        '<a href="https://attack.mitre.org/techniques/T1550/001/">T1550.001</a></td>'
    ) in rendered
    anchor = story.evidence_anchor(steps.column("findings")[0].as_py()[0])
    assert f'<td><a href="#{anchor}">{LOG}:953</a></td>' in rendered


def test_attack_urls() -> None:
    assert story.attack_url("T1552.007") == "https://attack.mitre.org/techniques/T1552/007/"
    assert story.attack_url("T1609") == "https://attack.mitre.org/techniques/T1609/"
    for bad in ("T1609/../../x", "javascript:alert(1)", "t1609", "T16090", None, 1609):
        assert story.attack_url(bad) is None


def test_the_matrix_weighs_by_severity_and_leaves_info_out(demo_case: Path) -> None:
    with connect(demo_case) as con:
        spec = charts.attack_matrix(con).to_dict()
        every = charts.attack_matrix(con, include_info=True).to_dict()
        info = con.execute(
            "SELECT count(*) FROM findings WHERE level = 'info' AND len(attack) > 0"
        ).fetchall()[0][0]
    rows = spec["data"]["values"] if "data" in spec else spec["layer"][0]["data"]["values"]
    rows_all = every["data"]["values"] if "data" in every else every["layer"][0]["data"]["values"]
    assert info > 20  # the sample's "object created" activity, no longer on the matrix
    assert {r["worst"] for r in rows} == {"low", "medium", "high"}
    assert "info" in {r["worst"] for r in rows_all}
    assert sum(r["findings"] for r in rows) < sum(r["findings"] for r in rows_all)
    for r in rows:
        assert r["url"] == story.attack_url(r["technique"])
    weights = {"low": 1, "medium": 3, "high": 9}
    (t1609,) = [r for r in rows if (r["tactic"], r["technique"]) == ("execution", "T1609")]
    assert t1609["worst"] == "high" and t1609["score"] >= weights["high"]
    text = json.dumps(spec)
    assert '"href": {"field": "url"' in text and '"field": "worst"' in text


def test_tables_show_lists_as_text_and_keep_only_safe_links() -> None:
    assert as_text(["a", "b", 3]) == "a, b, 3"
    assert as_text({"file": "x.log", "line": 3}) == "file: x.log, line: 3"
    assert as_text([{"f": "a", "n": 1}, {"f": "b", "n": 2}]) == "(f: a, n: 1), (f: b, n: 2)"
    hrefs = {"#ev-1": True, "https://attack.mitre.org/techniques/T1609/": True,
             "javascript:alert(1)": False, "https://evil.example/": False,
             "#\" onmouseover=\"x": False}  # fmt: skip
    rows = [{"v": h} for h in hrefs]
    out = html_table(rows, links={"v": lambda value, _row: value})
    for href, kept in hrefs.items():
        assert (f'<a href="{html.escape(href)}">' in out) is kept, href
    assert "<td>tags</td>" not in html_table([{"tags": ["x", "y"]}])
    assert "<td>x, y</td>" in html_table([{"tags": ["x", "y"]}])
    assert 'id="ev-7"' in html_table([{"n": 7}], row_id=lambda r: f"ev-{r['n']}")
    assert "<th>secret</th>" not in html_table([{"n": 1, "secret": 2}], hidden=("secret",))


class _Page(HTMLParser):
    """The ids and hrefs of a page's elements (script text is not markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.add(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"] or "")


def test_the_report_opens_with_the_story_and_its_links_resolve(triage) -> None:
    nb, page = triage
    first_chart = page.index('class="kf-chart"')
    # The header and the storyline come before any chart.
    for text in ("What this report examined", "0161b59bc4fade55cd17f00ce0a1db15d7cba185d11fca16",
                 "74 findings stored", f"<h3>{SA}</h3>", "get /api"):  # fmt: skip
        assert 0 <= page.find(text) < first_chart, text
    parsed = _Page()
    parsed.feed(page)
    local = [h for h in parsed.hrefs if h.startswith("#")]
    assert len(local) > 100 and sorted({h[1:] for h in local} - parsed.ids) == []
    external = {h for h in parsed.hrefs if not h.startswith("#")}
    assert external and all(SAFE_HREF.fullmatch(h) for h in external), external
    evidence = [i for i in parsed.ids if i.startswith("ev-")]
    assert len(evidence) == 74  # every finding's evidence rows, once
    # No chart twice: every Vega-Lite spec the notebook displayed is different.
    specs = [
        json.dumps(o["data"][VEGA_LITE_MIME], sort_keys=True)
        for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
        if VEGA_LITE_MIME in o.get("data", {})
    ]  # fmt: skip
    assert len(specs) >= 3 and len(set(specs)) == len(specs)
    assert "Requests by outcome" not in page  # the timeline's bars are the only requests chart
    # Lists read as text: no JSON list in a cell.
    assert not re.search(r"<td>\[&quot;", page) and not re.search(r"<td>\[\'", page)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
def test_the_report_fits_a_1280px_window(triage, tmp_path: Path) -> None:
    _, page = triage
    nonce = re.search(r"'nonce-([^']+)'", page).group(1)
    # A probe of the page's own (nonce-bearing) scripts: measured after the charts are drawn.
    probe = (
        f'<script nonce="{nonce}">setTimeout(function(){{var d=document.documentElement;'
        "document.body.setAttribute('data-probe',JSON.stringify({scroll:d.scrollWidth,"
        "inner:window.innerWidth,svg:document.querySelectorAll('.kf-chart svg').length}))"
        "},3000)</script>"
    )
    head, tail = page.rsplit("</body>", 1)
    measured = tmp_path / "probe.html"
    measured.write_text(head + probe + "</body>" + tail, encoding="utf-8")
    dom = dump_dom(measured, tmp_path, window=(1280, 900))
    found = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom).group(1)))
    assert found["inner"] == 1280
    assert found["svg"] >= 3  # the charts were drawn
    assert found["scroll"] <= found["inner"], found


EVIL_WHO = "<img src=x onerror=alert(1)>**who**"
EVIL_POD = "<script>alert(1)</script>[x](javascript:alert(1))"


@pytest.fixture(scope="module")
def hostile_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exec (a medium finding) by an identity and into a pod named with HTML and Markdown."""
    root = tmp_path_factory.mktemp("hostile")
    log = root / "<b>audit<i>.log"
    exec_event = event(
        "h1",
        verb="create",
        user={"username": EVIL_WHO, "groups": ["system:authenticated"]},
        requestURI="/api/v1/namespaces/shop/pods/x/exec?command=id",
        objectRef={
            "resource": "pods",
            "subresource": "exec",
            "namespace": "shop",
            "name": EVIL_POD,
            "apiVersion": "v1",
        },  # fmt: skip
        responseStatus={"metadata": {}, "code": 101},
    )
    log.write_bytes(jsonl(exec_event))
    case = root / "case.duckdb"
    load(case, [log], progress=False)
    detect(case, load_rules())
    return case


def test_hostile_names_stay_text_in_header_and_storyline(hostile_case: Path) -> None:
    with connect(hostile_case) as con:
        header = story.header_html(story.case_header(con, hostile_case))
        stories = story.storylines(con)
    assert [who for who, _ in stories] == [EVIL_WHO]
    shown = story.storyline_html(stories)
    for markup in (header, shown, clean_html(header + shown)):
        parsed = _Page()
        parsed.feed(markup)
        assert not {"img", "script", "b", "i"} & set(parsed.tags)
        assert all(h.startswith("#") or SAFE_HREF.fullmatch(h) for h in parsed.hrefs)
    assert "&lt;b&gt;audit&lt;i&gt;.log" in header
    assert "&lt;img src=x onerror=alert(1)&gt;**who**" in shown
    assert f"shop/pods/{html.escape(EVIL_POD)}/exec" not in shown  # the where has no subresource
    assert f"shop/pods/{html.escape(EVIL_POD)}" in shown


TEXT = st.text(alphabet=string.printable + "<>&\"'\u202e\u2028", max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.dictionaries(TEXT, TEXT | st.lists(TEXT, max_size=3), max_size=3),
                     max_size=4))  # fmt: skip
def test_any_table_is_only_table_markup_and_safe_links(rows) -> None:
    out = html_table(rows, links={k: lambda v, _r: v for r in rows for k in r})
    parsed = _Page()
    parsed.feed(out)
    assert set(parsed.tags) <= {"table", "caption", "thead", "tbody", "tr", "th", "td", "a", "p",
                                "em"}  # fmt: skip
    assert all(SAFE_HREF.fullmatch(h) for h in parsed.hrefs)


def test_the_identity_report_tells_its_story_and_links_its_evidence(demo_case, tmp_path) -> None:
    params = {"identity": SA, "remediation_out": str(tmp_path / "plan")}
    page = run_report("02_identity", demo_case, params, tmp_path).html.read_text("utf-8")
    parsed = _Page()
    parsed.feed(page)
    local = {h[1:] for h in parsed.hrefs if h.startswith("#")}
    assert len(local) > 30 and sorted(local - parsed.ids) == []
    evidence = {i for i in parsed.ids if i.startswith("ev-")}
    assert len(evidence) == 31  # the attacker's findings (low and info ones included)
    story_at = page.index("Its story, step by step")
    assert story_at < page.index('<a href="#') < page.index('class="kf-chart"')
    assert page.index(f"{LOG}:953</a>") > story_at


def test_the_page_keeps_same_page_anchors_and_attack_links_only() -> None:
    kept = clean_html(
        '<a href="#ev-1">a</a><div id="ev-1"></div>'
        '<a href="https://attack.mitre.org/techniques/T1552/007/">b</a>'
        '<a href="https://evil.example/">c</a><a href="javascript:alert(1)">d</a>'
        '<a href="https://attack.mitre.org/techniques/T1552/007/../../../x">e</a>'
    )
    parsed = _Page()
    parsed.feed(kept)
    assert parsed.hrefs == ["#ev-1", "https://attack.mitre.org/techniques/T1552/007/"]
    assert parsed.ids == {"ev-1"}


def test_the_notebook_calls_take_a_case_or_its_path(demo_case: Path, monkeypatch) -> None:
    import kforensics as kf

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    kf.show_header(str(demo_case))
    kf.show_storyline(kf.open_case(demo_case, since="2026-03-14T10:36:00Z"))
    kf.show_storyline(demo_case, identity="nobody@example.com")
    header, storyline, nobody = (o.data for o in shown)
    assert "<td>3850 from 3 sources</td>" in header
    assert storyline.count("<tr>") == 1 + 13  # the head and the steps from 10:36 on
    assert nobody == "<h3>nobody@example.com</h3><p><em>no finding at low or above</em></p>"
    with pytest.raises(kf.CaseError, match="no such case file"):
        kf.show_header(demo_case.with_name("absent.duckdb"))
