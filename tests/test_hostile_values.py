"""Nothing a crafted log can break: hostile values in every field, end to end.

Every field of an audit log is attacker-controlled. Crafted native events (code-looking strings
in every string field, 100 KB strings, bodies nested 5000 levels deep, timestamps at the edges
of the allowed range, status codes and ports at the edges, hostile label selectors) are mixed
into the sample incident; the case then goes through `load`, `detect` (both formats), `netpol`
and `report` of every notebook with no traceback, and each HTML page draws as many charts in
headless Chromium (network off) as the same notebook draws on the plain sample, running none of
the planted scripts.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import quote

import nbformat
import orjson
import pytest
import yaml
from click.testing import CliRunner

from kforensics import connect, untrusted
from kforensics.cli import main
from kforensics.netpol.validate import validate_object
from kforensics.reporting.export import chart_spec
from tests.conftest import SAMPLES, event
from tests.test_report import CHROMIUM, _Dom, dump_dom

# Strings that look like code to some layer: JS and JSON (a spec or a script), HTML, template
# engines, Markdown, tables, shells, line breaks, bidi and control characters.
PAYLOADS = [
    "})(",
    '"]}',
    "</script><script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</script><script>document.title='pwned'</script>",
    "<img src=x id=pwned onerror=\"document.title='pwned'\">",
    "<svg><a id=pwned href=\"javascript:document.title='pwned'\">x</a></svg>",
    "{{7*7}}",
    "${x}",
    "[x](javascript:alert(1))",
    "| col |",
    "`id` ```",
    "$(reboot)",
    "line\nbreak\rreturn\r\n",
    "\u2028\u2029",
    "\x01\x07\x08\x1b[31m\x7f\x85\x9b",
    "\u202egnp.exe",
    "\U0001f525\U0001f480",
]
EVIL = "".join(PAYLOADS)
LONG = "L" * 100_000
SHORT = "kubectl\u202egnp.exe\x1b[31m\r\n"  # short enough for a table cell to show it whole
# The entities the identity and workload notebooks are run on (no ":" in the namespace, so the
# identity reads as a service account of it).
NAMESPACE = "ns" + EVIL.replace(":", "")
POD = "pod" + EVIL
SA = "sa" + EVIL.replace(":", "")
IDENTITY = f"system:serviceaccount:{NAMESPACE}:{SA}"
TS = "2026-03-14T10:{:02d}:{:02d}.{:06d}Z"
NET = "networking.k8s.io"
# JSON nested 5000 levels deep, alternating objects and arrays: built as text, since Python's
# serializers give up long before.
DEPTH = 5000
DEEP = '{"a":[' * (DEPTH // 2) + '"bottom"' + "]}" * (DEPTH // 2)
_DEEP_MARK = "__kforensics_deep__"


def _deep_labels() -> str:
    """Return metadata.labels nested DEPTH levels deep (a label value that is an object)."""
    return '{"app":' * DEPTH + '"x"' + "}" * DEPTH


_DEEP_LABELS_MARK = "__kforensics_deep_labels__"


class _Log:
    """Crafted native events, one JSON per line, each with a unique audit ID."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.n = 0

    def add(self, ts: str | None = None, **over) -> None:
        self.n += 1
        at = ts or TS.format(30 + self.n // 600, (self.n // 10) % 60, self.n % 1_000_000)
        ev = event(
            f"hostile-{self.n:05d}" + (EVIL if self.n % 3 else ""),
            requestReceivedTimestamp=at,
            stageTimestamp=at,
            user={"username": IDENTITY, "groups": [EVIL, "system:serviceaccounts"]},
            sourceIPs=["10.244.9.9"],
            userAgent=EVIL,
            annotations={
                "authorization.k8s.io/decision": "allow",
                "authorization.k8s.io/reason": EVIL,
                EVIL: EVIL,
            },
        )
        ev.update(over)
        text = orjson.dumps(ev).decode()
        text = text.replace(f'"{_DEEP_MARK}"', DEEP)
        text = text.replace(f'"{_DEEP_LABELS_MARK}"', _deep_labels())
        self.lines.append(text.encode() + b"\n")


def _ref(resource: str, namespace: str | None, name: str | None, **more) -> dict:
    ref = {"resource": resource, "apiVersion": "v1", **more}
    if namespace is not None:
        ref["namespace"] = namespace
    if name is not None:
        ref["name"] = name
    return ref


def _uri(namespace: str, resource: str, name: str = "", tail: str = "") -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/{resource}"
    return path + (f"/{quote(name, safe='')}" if name else "") + tail


HOSTILE_SELECTOR = {
    "matchLabels": {EVIL: EVIL, "app": "$(reboot)", "k" + LONG: LONG},
    "matchExpressions": [
        {"key": EVIL, "operator": "In", "values": [EVIL, LONG]},
        {"key": "app", "operator": "Exists; rm -rf /", "values": [EVIL]},
    ],
}
HOSTILE_POLICY_SPEC = {
    "podSelector": HOSTILE_SELECTOR,
    "policyTypes": ["Ingress", "Egress", EVIL],
    "ingress": [
        {
            "from": [
                {"namespaceSelector": HOSTILE_SELECTOR, "podSelector": HOSTILE_SELECTOR},
                {"ipBlock": {"cidr": EVIL, "except": [EVIL, "10.0.0.0/33"]}},
            ],
            "ports": [
                {"protocol": EVIL, "port": 65536},
                {"protocol": "TCP", "port": 0, "endPort": 65535},
                {"protocol": "TCP", "port": EVIL},
            ],
        }
    ],
    "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": -1}]}],
}


def hostile_events() -> list[bytes]:
    """Return the crafted events (JSON lines)."""
    log = _Log()
    ns, pod = NAMESPACE, POD
    labels = {EVIL: EVIL, "app": "web", "k" + LONG: LONG}
    # Every string field hostile at once, on a get and on a create of an unknown resource.
    for verb in ("get", "list", "create", EVIL):
        log.add(
            verb=verb,
            level=EVIL if verb == EVIL else "Metadata",
            sourceIPs=[EVIL, "300.1.2.3", "::ffff:10.0.0.1", "198.51.100.7/32"],
            impersonatedUser={"username": EVIL, "groups": [EVIL]},
            requestURI=_uri(ns, EVIL, EVIL, "?" + EVIL),
            objectRef=_ref(EVIL, ns, EVIL, subresource=EVIL, apiGroup=EVIL, apiVersion=EVIL),
            requestObject={"kind": EVIL, "metadata": {"name": EVIL, "labels": labels}},
            responseObject={"kind": EVIL, "metadata": {"name": EVIL, "labels": labels}},
            responseStatus={"code": 200, "message": EVIL},
        )
    # 100 KB in every string field.
    log.add(
        auditID=LONG,
        user={"username": LONG, "groups": [LONG]},
        annotations={"k" + LONG: LONG, LONG: EVIL},
        userAgent=LONG,
        requestURI="/api/v1/" + LONG,
        objectRef=_ref(LONG, LONG, LONG, subresource=LONG),
    )
    # The workload: its pod created (labels hostile, a body 5000 levels deep in spec, a
    # response whose labels nest 5000 levels), read, exec'd into, port-forwarded to.
    pod_body = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": pod, "namespace": ns, "labels": labels},
        "spec": {
            "serviceAccountName": SA,
            "containers": [{"name": EVIL, "image": EVIL, "command": [EVIL]}],
            "deep": _DEEP_MARK,
        },
    }
    log.add(
        verb="create",
        level="RequestResponse",
        requestURI=_uri(ns, "pods"),
        objectRef=_ref("pods", ns, None),
        requestObject=pod_body,
        responseObject={**pod_body, "metadata": {"name": pod, "namespace": ns,
                                                 "labels": _DEEP_LABELS_MARK}},
        responseStatus={"code": 201},
    )  # fmt: skip
    log.add(
        verb="create",
        level="RequestResponse",
        requestURI=_uri(ns, "pods"),
        objectRef=_ref("pods", ns, None),
        requestObject=_DEEP_MARK,
        responseObject=_DEEP_MARK,
        responseStatus={"code": 201},
    )
    log.add(requestURI=_uri(ns, "pods", pod), objectRef=_ref("pods", ns, pod))
    command = "&".join(
        "command=" + c
        for c in [
            quote(EVIL, safe=""),
            EVIL.replace("&", ""),
            "%ZZ%",
            "%00%C3%28%FF",
            "+%2B+",
            quote(DEEP),
            "[" * DEPTH,
        ]
    )
    log.add(
        verb="create",
        requestURI=_uri(ns, "pods", pod, "/exec?container=" + quote(EVIL) + "&" + command),
        objectRef=_ref("pods", ns, pod, subresource="exec"),
        responseStatus={"code": 101},
    )
    for ports in ("ports=65535", "ports=0", "ports=65535&ports=0&ports=" + quote(EVIL)):
        log.add(
            verb="create",
            requestURI=_uri(ns, "pods", pod, "/portforward?" + ports),
            objectRef=_ref("pods", ns, pod, subresource="portforward"),
            responseStatus={"code": 101},
        )
    # Status codes at the edges of the schema.
    for code in (100, 599):
        log.add(
            requestURI=_uri(ns, "secrets", EVIL),
            objectRef=_ref("secrets", ns, EVIL),
            responseStatus={"code": code},
        )
    # Timestamps at the edges of the allowed range, and many requests in one microsecond.
    for at in ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000001Z",
               "9999-12-31T23:59:59.999999Z"):  # fmt: skip
        log.add(ts=at, requestURI=_uri(ns, "pods", pod), objectRef=_ref("pods", ns, pod))
    for _ in range(300):
        log.add(
            ts="2026-03-14T10:40:00.123456Z",
            userAgent=SHORT,
            requestURI=_uri(ns, "pods", pod),
            objectRef=_ref("pods", ns, pod),
            responseStatus={"code": 403},
        )
    # Undated: a NetworkPolicy deletion and an exec with no timestamp at all (kept, flagged).
    for verb, resource, name, sub in (("delete", "networkpolicies", "undated", None),
                                      ("create", "pods", pod, "exec")):  # fmt: skip
        log.add(
            ts="2026-03-14T10:31:00Z",
            verb=verb,
            requestURI=_uri("payments" if sub is None else ns, resource, name, "?command=id"),
            objectRef=_ref(resource, "payments" if sub is None else ns, name, subresource=sub),
        )
        for key in ("requestReceivedTimestamp", "stageTimestamp"):
            log.lines[-1] = log.lines[-1].replace(f'"{key}":"2026-03-14T10:31:00Z",'.encode(), b"")
    # A binding of cluster-admin to hostile subjects.
    subjects = [
        {"kind": "ServiceAccount", "name": SA, "namespace": ns},
        {"kind": "User", "name": IDENTITY},
        {"kind": EVIL, "name": EVIL},
    ]
    crb = {"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
           "metadata": {"name": EVIL, "labels": labels},
           "roleRef": {"kind": "ClusterRole", "name": "cluster-admin",
                       "apiGroup": "rbac.authorization.k8s.io"},
           "subjects": subjects}  # fmt: skip
    log.add(
        verb="create",
        level="RequestResponse",
        requestURI="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        objectRef=_ref("clusterrolebindings", None, None, apiGroup="rbac.authorization.k8s.io"),
        requestObject=crb,
        responseObject=crb,
        responseStatus={"code": 201},
    )
    # The pod and its namespace relabelled with labels nested 5000 levels deep.
    for resource, name, uri in (
        ("pods", pod, _uri(ns, "pods", pod)),
        ("namespaces", ns, "/api/v1/namespaces/" + quote(ns, safe="")),
    ):
        log.add(
            verb="patch",
            level="RequestResponse",
            requestURI=uri,
            objectRef=_ref(resource, ns if resource == "pods" else None, name),
            requestObject={"metadata": {"labels": _DEEP_LABELS_MARK}},
            responseObject={"kind": "Pod" if resource == "pods" else "Namespace",
                            "metadata": {"name": name, "labels": _DEEP_LABELS_MARK}},
        )  # fmt: skip
    # The namespace relabelled with hostile labels, and a real one (payments) too.
    for target in (ns, "payments"):
        body = {"kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": target, "labels": labels}}  # fmt: skip
        log.add(
            verb="patch",
            level="RequestResponse",
            requestURI="/api/v1/namespaces/" + quote(target, safe=""),
            objectRef=_ref("namespaces", None, target),
            requestObject={"metadata": {"labels": labels}},
            responseObject=body,
        )
    # NetworkPolicies with hostile selectors, created and then deleted (so that the remediation
    # reads their bodies back to restore them): in payments, in the crafted namespace, and one
    # nested 5000 levels deep.
    for target, name, spec in (
        ("payments", "allow-hostile", HOSTILE_POLICY_SPEC),
        (ns, EVIL, HOSTILE_POLICY_SPEC),
        ("payments", "deep", {"podSelector": {}, "ingress": [{"from": _DEEP_MARK}]}),
        ("shop", "typed-wrong", {"podSelector": [EVIL], "ingress": EVIL, "policyTypes": EVIL}),
    ):
        policy = {"kind": "NetworkPolicy", "apiVersion": f"{NET}/v1",
                  "metadata": {"name": name, "namespace": target, "labels": labels,
                               "annotations": {EVIL: EVIL}},
                  "spec": spec}  # fmt: skip
        uri = f"/apis/{NET}/v1/namespaces/{quote(target, safe='')}/networkpolicies"
        log.add(
            verb="create",
            level="RequestResponse",
            requestURI=uri,
            objectRef=_ref("networkpolicies", target, None, apiGroup=NET),
            requestObject=policy,
            responseObject=policy,
            responseStatus={"code": 201},
        )
        log.add(
            verb="delete",
            level="RequestResponse",
            requestURI=f"{uri}/{quote(name, safe='')}",
            objectRef=_ref("networkpolicies", target, name, apiGroup=NET),
            requestObject=_DEEP_MARK,
            responseObject=_DEEP_MARK,
        )
    return log.lines


def build_logs(folder: Path) -> Path:
    """Copy the native sample into folder and add the crafted events as one more log file."""
    shutil.copytree(SAMPLES / "native", folder, dirs_exist_ok=True)
    (folder / "hostile.log").write_bytes(b"".join(hostile_events()))
    return folder


# --- the case, built once ------------------------------------------------------------------

NOTEBOOKS = {
    "01_triage": {},
    "02_identity": {"identity": IDENTITY},
    "03_workload": {"namespace": NAMESPACE, "pod": POD},
}
# What must never reach a terminal or a Markdown line as logged, and no log text at all the YAML.
TERMINAL = ["\x1b", "\u202e", "\u2028", "\r", "\x85"]
RAW = [*TERMINAL, "<script", "<img", "{{7*7}}", "$(reboot)", "javascript:"]


def invoke(*args: str):
    """Run the CLI; fail on any traceback (an exception other than the documented exits)."""
    out = CliRunner().invoke(main, list(args))
    if out.exception is not None and not isinstance(out.exception, SystemExit):
        raise AssertionError(f"kforensics {args[0]} raised") from out.exception
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample with the crafted events: loaded, detected (both formats), remediated."""
    root = tmp_path_factory.mktemp("hostile")
    logs = build_logs(root / "logs")
    case = root / "case.duckdb"
    done = {"root": root, "case": case, "load": invoke("load", str(logs), "--case", str(case))}
    done["jsonl"] = invoke("detect", "--case", str(case), "--format", "jsonl")
    done["table"] = invoke("detect", "--case", str(case))
    done["netpol"] = invoke("netpol", "--case", str(case), "--out", str(root / "netpol"))
    return done


@pytest.fixture(scope="module")
def reports(hostile: dict) -> dict:
    """Every notebook on the crafted case, through the CLI."""
    out = {}
    for name, params in NOTEBOOKS.items():
        args = [arg for item in params.items() for arg in ("-p", *item)]
        folder = hostile["root"] / "reports"
        result = invoke("report", name, "--case", str(hostile["case"]), "--out", str(folder), *args)
        out[name] = (result, folder / f"{name}.html")
    return out


# What each page draws on the plain sample: its charts (kf-chart-1...) and the widest one's
# width in pixels. A crafted log must neither remove a chart nor widen the page.
CHARTS = {"01_triage": 4, "02_identity": 1, "03_workload": 1}
WIDEST = 834


# --- load, detect, netpol ------------------------------------------------------------------


def test_load_keeps_every_crafted_event(hostile: dict) -> None:
    assert hostile["load"].exit_code == 0, hostile["load"].output
    con = connect(hostile["case"])
    try:
        loaded, first, last, codes, deep = con.execute(
            "SELECT count(*), min(ts), max(ts), list_sort(list_distinct(list(code))),"
            " count(*) FILTER (WHERE request_object->>'$.spec.containers[0].image' = $evil)"
            " FROM events WHERE source_file LIKE '%hostile.log'",
            {"evil": EVIL},
        ).fetchall()[0]
        same_us = con.execute(
            "SELECT count(*) FROM events WHERE ts = '2026-03-14 10:40:00.123456+00'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert loaded == len(hostile_events())
    assert (first.isoformat(), last.isoformat()) == (
        "1970-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00"
    )  # fmt: skip
    assert {100, 101, 599} <= set(codes) and deep == 1 and same_us == 300


def test_detect_prints_every_finding_of_the_crafted_identity(hostile: dict) -> None:
    jsonl, table = hostile["jsonl"], hostile["table"]
    assert jsonl.exit_code == 0 and table.exit_code == 0, jsonl.output + table.output
    findings = [orjson.loads(line) for line in jsonl.output.splitlines()]
    rules = {f["rule_id"] for f in findings if f["actor"] == IDENTITY}
    assert {"k8s-pod-exec", "k8s-pod-portforward", "k8s-cluster-admin-binding",
            "k8s-networkpolicy-deleted-or-modified"} <= rules  # fmt: skip
    # The table shows log text literally: no terminal escape, line break or bidi override.
    body = table.output.split("\n", 3)[3]
    assert not [r for r in ("\x1b", "\u202e", "\u2028", "\r") if r in body]
    assert "\\x1b[31m" in body and "\\u202e" in body


def test_netpol_never_emits_what_the_log_crafted(hostile: dict) -> None:
    out, folder = hostile["netpol"], hostile["root"] / "netpol"
    assert out.exit_code == 0, out.output  # every object valid: nothing crafted was proposed
    assert not [r for r in TERMINAL if r in out.output]
    for path in folder.glob("*.yaml"):
        text = path.read_text()
        assert not [r for r in RAW if r in text], path.name
        for obj in yaml.safe_load_all(text):
            assert validate_object(obj) == [], path.name
    assert not [r for r in RAW if r in (folder / "apply.sh").read_text()]
    report = (folder / "REPORT.md").read_text()
    assert not [r for r in TERMINAL if r in report]
    # Log text makes no line of its own, and no markup: outside the code block of connections
    # and the code spans of commands, every <, [, ` and | is escaped.
    lines = report.split("\n")
    actions = [line for line in out.output.split("\n") if line.startswith("  ")]
    steps = [line for line in out.output.split("\n") if re.fullmatch(r"[a-z-]+:", line)]
    prose, fenced = [], False
    for line in lines:  # fenced blocks (commands, connections) hold no Markdown
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            prose.append(line)
    headings = [line for line in prose if line.startswith("#")]
    # title, one per step, one per action, then recorded, validation, simulation, unknowns
    assert len(headings) == 1 + len(steps) + len(actions) + 4
    assert all(re.match(r"# Containment plan$|## [1-9A-Z]|### [a-z-]+: ", h) for h in headings)
    unescaped = [line for line in prose if re.search(r"[<\[`|]", re.sub(r"\\.", "", line))
                 and not line.startswith(("- the fix-quarantine-defeats action",
                                          "Review every step, capture"))]  # fmt: skip
    assert unescaped == []
    assert "payments/allow-hostile: its recorded state is not a policy the API server" in report
    assert f"nested deeper than {untrusted.MAX_DEPTH} levels" in report
    assert "payments/undated: the change is undated" in report
    (path,) = folder.glob("*-contain-restore-payments-default-deny.yaml")
    restored = yaml.safe_load(path.read_text())
    assert restored["metadata"]["name"] == "default-deny"  # the real incident is still remedied


# --- reports -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_report_runs_on_the_crafted_entity(reports: dict, name: str) -> None:
    result, page = reports[name]
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == str(page)
    nb = nbformat.read(str(page.with_suffix(".ipynb")), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    tables = "".join(re.findall(r'<table class="kforensics">.*?</table>', html, flags=re.S))
    assert "\u202e" not in html and "\x1b" not in html  # shown, not obeyed:
    if name == "02_identity":  # its sources table lists every user agent of the identity
        assert "kubectl\\u202egnp.exe\\x1b[31m\\x0d\\x0a" in tables
    if name == "03_workload":  # the relabel whose labels nest 5000 levels deep
        assert untrusted.TOO_DEEP in html
    # The requests of 1970 and 9999 do not stretch the time axis over millennia: the bars
    # cover the incident, and the chart says what it left out.
    specs = [spec for o in outputs if (spec := chart_spec(o.get("data", {})))]
    volumes = [v for spec in specs for v in (spec.get("vconcat") or [spec]) if _buckets(v)]
    assert volumes
    for chart in volumes:
        assert {b[:10] for b in _buckets(chart)} == {"2026-03-14"}
        assert chart["title"]["subtitle"].startswith("not drawn: 3 request(s) dated 1970-01-01")


def _buckets(chart: dict) -> list[str]:
    return [row["bucket"] for row in chart.get("data", {}).get("values", []) if "bucket" in row]


class _Charts(_Dom):
    """_Dom, plus the number of mark items (bars, points, cells) drawn in each chart."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, int] = {}
        self.widths: list[int] = []

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        a = dict(attrs)
        if a.get("aria-roledescription") in ("bar", "point", "rect mark", "text mark"):
            for chart in filter(None, self._stack):
                self.marks[chart] = self.marks.get(chart, 0) + 1
        if tag == "svg" and any(self._stack) and (a.get("width") or "").isdigit():
            self.widths.append(int(a["width"]))


def charts_drawn(page: Path, tmp_path: Path) -> _Charts:
    dom = _Charts()
    dom.feed(dump_dom(page, tmp_path))
    return dom


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_report_draws_every_chart_and_runs_no_payload(reports, name, tmp_path) -> None:
    _, page = reports[name]
    dom = charts_drawn(page, tmp_path)
    charts = {f"kf-chart-{n}" for n in range(1, CHARTS[name] + 1)}
    assert dom.drawn == dict.fromkeys(charts, True)  # a chart the crafted log broke is missing
    assert dom.marks.keys() == charts and all(dom.marks.values())
    assert max(dom.widths) <= WIDEST + 200  # no log value widens the page
    assert dom.title == name and not [i for i in dom.ids if "pwned" in i]
