"""First-time pairs on a generated week of logs (issue #12 item 5), and an oracle fuzz of them.

The week (tests/gen_week.py): an operator reads the logs of the StatefulSet db/payments-db every
hour for seven days; on day 7 a CI runner reads them for the first time and alice execs into a
pod. The oracle fuzz compares `touched` with a pure-Python reading of the rules the modules
document.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kforensics import load
from kforensics.case import connect
from kforensics.cli import main
from kforensics.detection.sensitive import touched
from kforensics.netpol.inventory import Inventory
from kforensics.sensitive.resolve import Workload, target_rows
from tests import gen_week
from tests.gen_week import ALICE, CI, OPERATOR, WINDOW, generate, write

FIRST = "k8s-sensitive-workload-first-access"
DB = "db/StatefulSet/payments-db"
UNTIL = "2026-05-11T00:00:00Z"
SELECTORS = "selectors:\n  - tier: database\n"
# the first-access findings' ids: md5 of rule and subject (actor, namespace, resource, name)
CI_ID, ALICE_ID = "b2a6fbfcab108651", "2daf311f4340df8c"


@dataclass
class Files:
    folder: Path
    week: Path  # all eight days
    base: Path  # days 0-6
    day7: Path
    dump: Path  # kubectl get -o json of the database's objects, as on day 7
    selectors: Path  # sensitive.yaml declaring tier: database
    case: Path  # the whole week loaded


@pytest.fixture(scope="module")
def week() -> gen_week.Week:
    return generate()


@pytest.fixture(scope="module")
def files(week, tmp_path_factory) -> Files:
    folder = tmp_path_factory.mktemp("week")
    objects = [e["responseObject"] for e in week.events if "responseObject" in e]
    items = [o for o in objects if o["metadata"]["name"].startswith("payments-db")]
    dump = {"apiVersion": "v1", "kind": "List", "items": items}
    (folder / "dump.json").write_bytes(orjson.dumps(dump))
    (folder / "decl.yaml").write_text(SELECTORS)
    f = Files(
        folder,
        write(week.events, folder / "week.jsonl"),
        write(week.before_window, folder / "base.jsonl"),
        write(week.window, folder / "day7.jsonl"),
        folder / "dump.json",
        folder / "decl.yaml",
        folder / "week.duckdb",
    )
    load(f.case, [f.week], progress=False)
    return f


def _copy(files: Files, tmp_path: Path) -> Path:
    return Path(shutil.copy(files.case, tmp_path / "case.duckdb"))


def _detect(case: Path, *args: str) -> list[dict]:
    out = CliRunner().invoke(main, ["detect", "--case", str(case), *args, "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _first(findings: list[dict]) -> list[tuple]:
    return [
        (f["finding_id"], f["actor"], f["namespace"], f["resource"], f["name"], f["count"],
         f["first_seen"], [e["source_line"] for e in f["evidence"]], f["sensitive"])
        for f in findings if f["rule_id"] == FIRST
    ]  # fmt: skip


# --- the generated week ---------------------------------------------------------------------


def test_the_week_is_native_complete_seeded_and_about_two_thousand_events(week, files):
    events = week.events
    assert len(events) == 1744 and len(week.before_window) == 1524 and len(week.window) == 220
    assert len({e["auditID"] for e in events}) == 1744
    assert {(e["kind"], e["apiVersion"], e["stage"]) for e in events} == {
        ("Event", "audit.k8s.io/v1", "ResponseComplete")
    }
    stamp = re.compile(r"2026-05-(0[4-9]|1[01])T\d\d:\d\d:\d\d\.\d{6}Z")
    assert all(stamp.fullmatch(e["requestReceivedTimestamp"]) for e in events)
    assert events[0]["requestReceivedTimestamp"].startswith("2026-05-04T00:")
    assert events[-1]["requestReceivedTimestamp"].startswith("2026-05-11T23:")
    assert generate().events == events  # no wall clock, no global random state
    assert generate(13).events != events
    assert (week.line("ci"), week.line("alice")) == (1554, 1613)
    assert (week.line("ci", week.window), week.line("alice", week.window)) == (30, 89)
    con = connect(files.case)
    try:
        counts = con.execute("SELECT count(*), count(DISTINCT audit_id) FROM requests")
        assert counts.fetchone() == (1744, 1744)
        assert con.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
    finally:
        con.close()


# --- detect on the week ---------------------------------------------------------------------


def test_with_baseline_until_only_the_ci_runner_and_alice_are_first_time(files, tmp_path):
    case = _copy(files, tmp_path)
    findings = _detect(case, "--sensitive", str(files.selectors), "--baseline-until", UNTIL)
    assert _first(findings) == [
        (CI_ID, CI, "db", "statefulsets", "payments-db", 1, "2026-05-11T03:17:00.228101Z",
         [1554], [DB]),
        (ALICE_ID, ALICE, "db", "statefulsets", "payments-db", 1, "2026-05-11T09:42:00.117723Z",
         [1613], [DB]),
    ]  # fmt: skip
    ci = next(f for f in findings if f["finding_id"] == CI_ID)
    assert ci["evidence"][0]["source_file"] == str(files.week)
    assert ci["level"] == "high" and ci["raised_from"] is None
    # the operator read these logs all week: 48 reads in the window, none a finding
    assert not [f for f in findings if f["actor"] == OPERATOR]
    # nothing about the reporting Deployment is sensitive
    assert [f["name"] for f in findings if f["name"].startswith("reporting")] == [
        "reporting-7c9d8f-abcde", "reporting"]  # fmt: skip
    assert all(f["sensitive"] == [] for f in findings if f["name"].startswith("reporting"))


def test_without_baseline_until_every_pair_is_new_at_its_first_request(files, tmp_path):
    # No baseline at all: the history is empty, so each (identity, workload, access) is new from
    # its first request in the case on, and the finding cites every request of it (384 of the
    # operator: two pods, every hour of eight days).
    case = _copy(files, tmp_path)
    findings = _first(_detect(case, "--sensitive", str(files.selectors)))
    op = findings[0]
    assert op[1:7] == (OPERATOR, "db", "statefulsets", "payments-db", 384,
                       "2026-05-04T00:13:00.234089Z")  # fmt: skip
    assert op[7][:3] == [8, 12, 20] and len(op[7]) == 384
    assert [f[:6] for f in findings[1:]] == [
        (CI_ID, CI, "db", "statefulsets", "payments-db", 1),
        (ALICE_ID, ALICE, "db", "statefulsets", "payments-db", 1),
    ]
    assert len(findings) == 3


def test_a_baseline_case_gives_the_same_findings_as_baseline_until(files, tmp_path):
    base, case = tmp_path / "base.duckdb", tmp_path / "case.duckdb"
    load(base, [files.base], progress=False)
    # day 7 never recorded the StatefulSet: a dump taken during the window has its labels
    load(case, [files.day7], inventory=[files.dump], progress=False)
    findings = _detect(case, "--sensitive", str(files.selectors), "--baseline", str(base))
    assert [f[:7] for f in _first(findings)] == [
        (CI_ID, CI, "db", "statefulsets", "payments-db", 1, "2026-05-11T03:17:00.228101Z"),
        (ALICE_ID, ALICE, "db", "statefulsets", "payments-db", 1, "2026-05-11T09:42:00.117723Z"),
    ]  # fmt: skip
    assert [f[7] for f in _first(findings)] == [[30], [89]]  # lines of day7.jsonl
    assert not [f for f in findings if f["actor"] == OPERATOR]
    # the dump alone resolves the selector; without a baseline the operator is new too
    alone = _first(_detect(case, "--sensitive", str(files.selectors)))
    assert [(f[1], f[5]) for f in alone] == [(OPERATOR, 48), (CI, 1), (ALICE, 1)]


def test_a_baseline_case_resolves_the_selector_without_a_dump_or_by_name(files, tmp_path):
    base, case = tmp_path / "base.duckdb", tmp_path / "case.duckdb"
    load(base, [files.base], progress=False)
    load(case, [files.day7], progress=False)
    # day 7 alone never recorded the StatefulSet: its labels come from the baseline case's log
    findings = _detect(case, "--sensitive", str(files.selectors), "--baseline", str(base))
    assert [(f[0], f[1], f[5], f[7]) for f in _first(findings)] == [
        (CI_ID, CI, 1, [30]), (ALICE_ID, ALICE, 1, [89])]  # fmt: skip
    # without the baseline case, the selector reaches nothing: the window alone has no labels
    assert _first(_detect(case, "--sensitive", str(files.selectors))) == []
    # declared by name, its pods are known by the StatefulSet's naming pattern
    (tmp_path / "byname.yaml").write_text("workloads: [db/StatefulSet/payments-db]\n")
    findings = _detect(case, "--sensitive", str(tmp_path / "byname.yaml"), "--baseline", str(base))
    assert [(f[0], f[1], f[5], f[7]) for f in _first(findings)] == [
        (CI_ID, CI, 1, [30]), (ALICE_ID, ALICE, 1, [89])]  # fmt: skip


def test_exec_into_the_sensitive_pod_is_raised_to_high_elsewhere_it_stays_medium(files, tmp_path):
    case = _copy(files, tmp_path)
    findings = _detect(case, "--sensitive", str(files.selectors), "--baseline-until", UNTIL)
    execs = [
        (f["actor"], f["name"], f["count"], f["level"], f["raised_from"], f["sensitive"])
        for f in findings if f["rule_id"] == "k8s-pod-exec"
    ]  # fmt: skip
    assert execs == [
        (ALICE, "payments-db-1", 1, "high", "medium", [DB]),
        ("carol@example.com", "reporting-7c9d8f-abcde", 8, "medium", None, []),
    ]
    assert all("sensitive" in f and "raised_from" in f for f in findings)
    con = connect(case)
    try:
        stored = con.execute(
            "SELECT f.rule_id, f.level, s.workloads, s.raised_from FROM findings f "
            "JOIN sensitive_findings s USING (finding_id) ORDER BY f.first_seen, f.rule_id"
        ).fetchall()
    finally:
        con.close()
    assert stored == [
        (FIRST, "high", [DB], None),
        ("k8s-pod-exec", "high", [DB], "medium"),
        (FIRST, "high", [DB], None),
    ]


def _extra(week: gen_week.Week, *items: tuple[str | None, str | None, str]) -> list[dict]:
    """Return day-7 requests by mallory: (namespace, pod name, subresource) each."""
    gen = gen_week._Gen(99)
    at = WINDOW + timedelta(hours=20)
    for n, (ns, name, sub) in enumerate(items):
        gen.add(at + timedelta(seconds=n), "mallory@example.com", "create" if sub == "exec"
                else "get", "pods", name, sub=sub, namespace=ns,
                code=101 if sub == "exec" else 200,
                uri=f"/api/v1/namespaces/{ns}/pods/x/{sub}")  # fmt: skip
    return gen.week.events


def test_a_pod_the_log_never_recorded_is_known_by_the_statefulset_pattern(week, files, tmp_path):
    extra = write(_extra(week, ("db", "payments-db-7", "log"), ("db", "payments-dbx-0", "log"),
                         ("shop", "payments-db-0", "log"), ("db", "payments-db-7", "exec")),
                  tmp_path / "extra.jsonl")  # fmt: skip
    case = tmp_path / "case.duckdb"
    load(case, [files.week, extra], progress=False)
    findings = _detect(case, "--sensitive", str(files.selectors), "--baseline-until", UNTIL)
    mallory = [
        (f["rule_id"], f["name"], f["level"], f["sensitive"],
         [(Path(e["source_file"]).name, e["source_line"]) for e in f["evidence"]])
        for f in findings if f["actor"] == "mallory@example.com"
    ]  # fmt: skip
    # payments-db-7's logs and exec are two new pairs of one subject; the others reach nothing
    assert sorted(mallory) == [
        ("k8s-pod-exec", "payments-db-7", "high", [DB], [("extra.jsonl", 4)]),
        (FIRST, "payments-db", "high", [DB], [("extra.jsonl", 1), ("extra.jsonl", 4)]),
    ]


def test_kforensics_sensitive_lists_the_first_time_pairs(files, tmp_path):
    case = _copy(files, tmp_path)
    _detect(case, "--sensitive", str(files.selectors), "--baseline-until", UNTIL)
    out = CliRunner().invoke(main, ["sensitive", "--case", str(case)])
    assert out.exit_code == 0, out.output
    assert "baseline: this case's requests before 2026-05-11T00:00:00+00:00" in out.stdout
    lines = {who: [r for r in out.stdout.splitlines() if who in r] for who in (CI, ALICE, OPERATOR)}
    assert len(lines[CI]) == 1 and "FIRST TIME" in lines[CI][0] and "│ logs " in lines[CI][0]
    assert len(lines[ALICE]) == 1 and "FIRST TIME" in lines[ALICE][0] and "exec" in lines[ALICE][0]
    assert "FIRST TIME" not in lines[OPERATOR][0] and "│ 48 " in lines[OPERATOR][0]
    assert out.stdout.count("FIRST TIME") == 2


# --- hostile input --------------------------------------------------------------------------


def test_a_baseline_that_is_not_a_case_is_one_line_naming_it(files, tmp_path):
    case = _copy(files, tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()  # a DuckDB file, but no kforensics case
    for path, says in ((text, "cannot open the baseline case"),
                       (other, "not a kforensics case usable as a baseline")):  # fmt: skip
        args = ["detect", "--case", str(case), "--sensitive", str(files.selectors),
                "--baseline", str(path)]  # fmt: skip
        out = CliRunner().invoke(main, args)
        assert out.exit_code == 1, out.output
        assert out.stdout == "" and "Traceback" not in out.output
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: {says}: ")
        assert out.exception is None or isinstance(out.exception, SystemExit)
    out = CliRunner().invoke(main, ["detect", "--case", str(case), "--baseline",
                                    str(tmp_path / "missing.duckdb")])  # fmt: skip
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert "Invalid value for '--baseline'" in out.stderr and "does not exist" in out.stderr


CRAFTED = [
    "payments-db-.*",
    "payments-db-[0-9]+",
    "payments-db-" + "1" * 10_000,
    ".*",
    "payments-db-0|.*",
    "payments-db-" + "0" * 10_000 + "x",
    "payments-db-" + "a" * 10_240,
    "p" * 10_240,
    "payments-db-0\n",
    "payments-db-0\x1b[2J",
    "payments-db-\t0",
    "payments-db-0\u202e",
    "payments-db-\u0663",  # ARABIC-INDIC DIGIT THREE is no [0-9]
    "payments-db-\uff10",  # FULLWIDTH DIGIT ZERO
    "\uff50ayments-db-0",
    "PAYMENTS-DB-0",
    "payments-db-",
    "payments-db-0 ",
    " payments-db-0",
    "payments-db-0/log",
    "payments-db",  # the StatefulSet's own name, as a pod: a pod of that name is no replica
]


def test_crafted_names_never_reach_the_database_and_never_crash(week, files, tmp_path):
    items = [("db", n, sub) for n in CRAFTED for sub in ("log", "exec")]
    items += [("db\n", "payments-db-0", "log"), ("d\u0431", "payments-db-0", "exec"),
              ("db" * 5000, "payments-db-0", "log")]  # fmt: skip
    extra = write(_extra(week, *items), tmp_path / "crafted.jsonl")
    case = tmp_path / "case.duckdb"
    result = load(case, [files.week, extra], progress=False)
    assert result.events_loaded == 1744 + len(items) and result.reject_reasons == []
    findings = _detect(case, "--sensitive", str(files.selectors), "--baseline-until", UNTIL)
    assert [f[1] for f in _first(findings)] == [CI, ALICE]
    execs = [f for f in findings if f["rule_id"] == "k8s-pod-exec" and f["actor"] != ALICE]
    assert len(execs) == 1 + len(CRAFTED) + 1  # carol's, each crafted pod, the unicode namespace
    assert {(f["level"], tuple(f["sensitive"]), f["raised_from"]) for f in execs} == {
        ("medium", (), None)
    }
    con = connect(case)
    try:
        rows = touched(con, baseline_until=WINDOW)
    finally:
        con.close()
    assert [(r["identity"], r["access"], r["requests"], r["first_time"]) for r in rows] == [
        (OPERATOR, "logs", 48, False), (CI, "logs", 1, True), (ALICE, "exec", 1, True)]  # fmt: skip


# --- the oracle fuzz ------------------------------------------------------------------------

# The targets: a StatefulSet with a known pod, the secret it shares with a Deployment, its
# configmap and Service; the Deployment (pod, ReplicaSet and pod naming patterns); a bare pod
# named like a replica (a known pod of no sensitive workload); the sensitive namespace vault.
CHOSEN = [
    Workload("db", "StatefulSet", "payments-db", pods=["payments-db-0"],
             secrets=["creds", "shared"], configmaps=["cfg"], services=["pdb"]),
    Workload("db", "Deployment", "api", pods=["api-7c9d8f-abcde"], secrets=["shared"]),
]  # fmt: skip
BARE = {"kind": "Pod", "metadata": {"name": "payments-db-5", "namespace": "db"}, "spec": {}}
ROWS = target_rows(CHOSEN, Inventory(None, {("Pod", "db", "payments-db-5"): BARE}), ("vault",))
T0 = datetime(2026, 5, 11, tzinfo=UTC)
# written out here (not imported): the oracle states the rule on its own
KCM_CONTROLLERS = {
    "attachdetach-controller", "bootstrap-signer", "certificate-controller",
    "clusterrole-aggregation-controller", "cronjob-controller", "daemon-set-controller",
    "deployment-controller", "disruption-controller", "endpoint-controller",
    "endpointslice-controller", "endpointslicemirroring-controller", "ephemeral-volume-controller",
    "expand-controller", "generic-garbage-collector", "horizontal-pod-autoscaler",
    "job-controller", "legacy-service-account-token-cleaner", "namespace-controller",
    "node-controller", "persistent-volume-binder", "pod-garbage-collector",
    "pv-protection-controller", "pvc-protection-controller", "replicaset-controller",
    "replication-controller", "resourcequota-controller", "root-ca-cert-publisher",
    "service-account-controller", "service-controller", "statefulset-controller", "token-cleaner",
    "ttl-after-finished-controller", "ttl-controller",
    "validatingadmissionpolicy-status-controller",
}  # fmt: skip

USERS = ["alice", "bob", "system:serviceaccount:db:op", "system:serviceaccount:ci:runner",
         "system:anonymous", "system:node:n1", "system:kube-scheduler", "system:apiserver",
         "system:serviceaccount:kube-system:statefulset-controller",
         "system:serviceaccount:kube-system:-controller",
         "system:serviceaccount:kube-system:evil-controller",
         "system:serviceaccount:kube-system:generic-garbage-collector",
         "system:serviceaccount:kube-system:pod-garbage-collector",
         "system:serviceaccount:kube-system:coredns", "system:nodes-but-not-a-node",
         None]  # fmt: skip
NAMES = ["payments-db-0", "payments-db-1", "payments-db-5", "payments-db-12", "payments-dbx-0",
         "payments-db-", "payments-db-.*", "payments-db", "api-7c9d8f-abcde", "api-5f6c8d-x1y2z",
         "api-5f6c8d", "api", "creds", "shared", "cfg", "pdb", "other", "vault-0", "",
         "payments-db-3x", "xpayments-db-3", "payments-db-3\n", "api-5f6c8d-x1y2z9"]  # fmt: skip


@dataclass(frozen=True)
class Req:
    username: str | None
    impersonated: str | None
    verb: str | None
    resource: str
    sub: str | None
    namespace: str | None
    name: str | None
    minutes: int | None  # from T0; None: undated
    code: int | None


# weighted toward what reaches in (pods, sessions, the namespace db, the names of the targets)
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", None]
RESOURCES = (
    ["pods"] * 4
    + ["secrets"] * 2
    + ["configmaps", "deployments", "statefulsets", "services", "replicasets", "nodes", "Pods"]
)
SUBRESOURCES = [None] * 4 + [
    "log",
    "exec",
    "attach",
    "portforward",
    "proxy",
    "status",
    "ephemeralcontainers",
]
REQ = st.builds(
    Req,
    st.sampled_from(USERS),
    st.one_of(st.none(), st.none(), st.sampled_from(["alice", "system:node:n1", "carol"])),
    st.sampled_from(VERBS),
    st.sampled_from(RESOURCES),
    st.sampled_from(SUBRESOURCES),
    st.sampled_from(["db", "db", "db", "vault", "other", None]),
    st.one_of(*[st.sampled_from(NAMES)] * 4, st.none(), st.text(max_size=16)),
    st.one_of(st.none(), st.integers(-300, 300)),
    st.sampled_from([200, 101, 201, 403, 404, None]),
)

# The oracle: the rules as the module docstrings state them, written without the SQL.
_SESSIONS = {"exec": "exec", "attach": "attach", "portforward": "port-forward", "proxy": "proxy",
             "log": "logs", "ephemeralcontainers": "ephemeral-container"}  # fmt: skip
_SCOPE = {"pods", "services", "secrets", "configmaps", "deployments", "replicasets",
          "statefulsets", "daemonsets", "jobs", "cronjobs"}  # fmt: skip
_SA_CONTROLLER = "system:serviceaccount:kube-system:"


def _access(r: Req) -> str | None:
    """The kind of reaching in: a session or logs of a pod, a proxy, a read, a change, a delete."""
    if r.resource == "pods" and r.sub in _SESSIONS:
        return _SESSIONS[r.sub]
    if r.resource == "services" and r.sub == "proxy":
        return "proxy"
    if r.sub is not None:
        return None
    if r.resource in ("secrets", "configmaps") and r.verb in ("get", "list", "watch"):
        return "read"
    return {"patch": "change", "update": "change", "delete": "delete",
            "deletecollection": "delete"}.get(r.verb)  # fmt: skip


def _compared(username: str | None) -> bool:
    """People, service accounts and anonymous: not the nodes, the control plane, controllers."""
    u = username or ""
    if u.startswith("system:node:"):
        return False
    if u.startswith("system:") and not (
        u.startswith("system:serviceaccount:") or u == "system:anonymous"
    ):
        return False
    # kube-controller-manager's service accounts, by name: a look-alike (`x-controller`,
    # `-controller`) made by someone who may create service accounts in kube-system is compared
    return u not in {_SA_CONTROLLER + n for n in KCM_CONTROLLERS}


def _reached(r: Req) -> set[str]:
    """The sensitive workloads a request reaches: a named one its most specific rows (exact,
    then pattern, then namespace), a collective one every row of its resource in its namespace
    (all namespaces when it has none)."""
    if r.name is None:
        rows = [t for t in ROWS if r.namespace in (None, t["namespace"])
                and t["resource"] in (None, r.resource)]  # fmt: skip
    else:
        rows = []
        for t in ROWS:
            if t["namespace"] != r.namespace or t["resource"] not in (None, r.resource):
                continue
            if t["name"] is not None:
                hit = t["name"] == r.name
            elif t["name_regex"] is not None:
                hit = re.fullmatch(t["name_regex"], r.name) is not None
            else:
                hit = True
            if hit:
                rows.append(t)
        best = min((t["priority"] for t in rows), default=None)
        rows = [t for t in rows if t["priority"] == best]
    return {t["workload"] for t in rows if t["workload"] is not None}


def _pairs(r: Req) -> list[tuple]:
    """The (workload, identity, access) pairs of one request: whoever it is acting as."""
    access = _access(r)
    if access is None or r.resource not in _SCOPE or not _compared(r.username):
        return []
    who = r.impersonated if r.impersonated is not None else r.username
    return [(w, who, access) for w in _reached(r)]


def _oracle(reqs: list[Req], since, until, base, older: list[Req] = ()) -> dict[tuple, dict]:
    def at(i: int) -> datetime | None:
        r = reqs[i]
        return None if r.minutes is None else T0 + timedelta(minutes=r.minutes, microseconds=i)

    def pairs(i: int) -> list[tuple]:
        return _pairs(reqs[i])

    history = {p for i in range(len(reqs)) if base is not None and at(i) is not None
               and at(i) < base for p in pairs(i)}  # fmt: skip
    history |= {p for r in older for p in _pairs(r)}  # every request of a baseline case
    out: dict[tuple, dict] = {}
    for i, r in enumerate(reqs):
        t = at(i)
        if t is not None and not ((since is None or t >= since) and (until is None or t < until)
                                  and (base is None or t >= base)):  # fmt: skip
            continue
        for key in pairs(i):
            row = out.setdefault(key, {"ids": [], "allowed": 0, "times": []})
            row["ids"].append(i)
            row["allowed"] += r.code is not None and r.code < 400
            if t is not None:
                row["times"].append(t)
            # an unknown identity is never known to the baseline
            row["first_time"] = key[1] is None or key not in history
    for row in out.values():
        first = min((at(i) or datetime.max.replace(tzinfo=UTC)) for i in row["ids"])
        row["evidence"] = {f"audit.log:{i + 1}" for i in row["ids"]
                           if (at(i) or datetime.max.replace(tzinfo=UTC)) == first}  # fmt: skip
    return out


def _table(reqs: list[Req], path: Path | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:" if path is None else str(path))
    con.execute(
        "CREATE TABLE requests (event_id VARCHAR, ts TIMESTAMPTZ, verb VARCHAR, username VARCHAR, "
        "impersonated_user VARCHAR, resource VARCHAR, subresource VARCHAR, namespace VARCHAR, "
        "name VARCHAR, code INTEGER, source_file VARCHAR, source_line BIGINT, raw VARCHAR, "
        "envelope VARCHAR)"
    )
    if reqs:
        con.executemany(
            "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'audit.log', ?, NULL, "
            "NULL)",
            [[f"e{i}", None if r.minutes is None else T0 + timedelta(minutes=r.minutes,
              microseconds=i), r.verb, r.username, r.impersonated, r.resource, r.sub,
              r.namespace, r.name, r.code, i + 1] for i, r in enumerate(reqs)],
        )  # fmt: skip
    return con


def test_the_target_rows_of_the_oracle_fuzz():
    assert [
        (t["workload"], t["resource"], t["name"], t["name_regex"], t["priority"]) for t in ROWS
    ] == [  # fmt: skip
        (DB, "statefulsets", "payments-db", None, 0),
        (DB, "pods", "payments-db-0", None, 0),
        (DB, "pods", None, r"payments\-db-[0-9]{1,9}", 1),
        (DB, "services", "pdb", None, 0),
        (DB, "secrets", "creds", None, 0),
        (DB, "secrets", "shared", None, 0),
        (DB, "configmaps", "cfg", None, 0),
        ("db/Deployment/api", "deployments", "api", None, 0),
        ("db/Deployment/api", "pods", "api-7c9d8f-abcde", None, 0),
        ("db/Deployment/api", "pods", None, "api-[a-z0-9]{1,10}-[a-z0-9]{5}", 1),
        ("db/Deployment/api", "replicasets", None, "api-[a-z0-9]{1,10}", 1),
        ("db/Deployment/api", "secrets", "shared", None, 0),
        ("vault/Namespace/vault", None, None, None, 2),
        (None, "pods", "payments-db-5", None, 0),
    ]


@pytest.mark.parametrize(
    ("req", "reached"),
    [
        (Req("alice", None, "get", "pods", "log", "db", "payments-db-12", 0, 200), {DB}),
        (Req("alice", None, "get", "pods", "log", "db", "payments-db-5", 0, 200), set()),
        (Req("alice", None, "get", "secrets", None, "db", "shared", 0, 200),
         {DB, "db/Deployment/api"}),
        (Req("alice", None, "list", "secrets", None, None, None, 0, 200),
         {DB, "db/Deployment/api", "vault/Namespace/vault"}),
        (Req("alice", None, "deletecollection", "pods", None, "db", None, 0, 200),
         {DB, "db/Deployment/api"}),
        (Req("alice", None, "get", "pods", "log", None, "payments-db-0", 0, 200), set()),
        (Req("alice", None, "patch", "replicasets", None, "db", "api-5f6c8d", 0, 200),
         {"db/Deployment/api"}),
        (Req("alice", None, "get", "configmaps", None, "vault", "anything", 0, 200),
         {"vault/Namespace/vault"}),
    ],
)  # fmt: skip
def test_the_oracle_on_cases_stated_by_hand(req, reached):
    assert _reached(req) == reached
    con = _table([req])
    try:
        rows = touched(con, ROWS)
    finally:
        con.close()
    assert {r["workload"] for r in rows} == reached


# always tried: a request at the window's first instant, a known pod of no sensitive workload
# named like a replica, a cluster-wide list, an impersonated read in and before the window,
# undated requests
EXAMPLE = [
    Req("alice", None, "get", "pods", "log", "db", "payments-db-12", 0, 200),  # at T0: the window
    Req("alice", None, "get", "pods", "log", "db", "payments-db-5", 10, 200),
    Req("bob", None, "list", "secrets", None, None, None, 20, 403),
    Req("system:node:n1", "alice", "get", "secrets", None, "db", "creds", -50, 200),
    Req("carol", "system:node:n1", "get", "secrets", None, "db", "creds", 30, 200),
    Req("carol", "system:node:n1", "get", "secrets", None, "db", "creds", -30, 200),
    Req(None, None, "create", "pods", "exec", "db", "api-5f6c8d-x1y2z", None, 101),
    Req(None, None, "create", "pods", "exec", "db", "api-5f6c8d-x1y2z", None, None),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(reqs=EXAMPLE, since=None, until=None, base=T0, older=None)
@example(reqs=EXAMPLE, since=None, until=None, base=None, older=EXAMPLE[2:4])
@given(
    reqs=st.lists(REQ, min_size=4, max_size=24),
    since=st.sampled_from([None, T0 - timedelta(minutes=200)]),
    until=st.sampled_from([None, T0 + timedelta(minutes=200)]),
    base=st.sampled_from([None, T0, T0 - timedelta(minutes=100)]),
    older=st.one_of(st.none(), st.lists(REQ, max_size=8)),
)
def test_touched_agrees_with_the_oracle(reqs, since, until, base, older):
    with tempfile.TemporaryDirectory() as folder:
        baseline = None
        if older is not None:  # a baseline case: only its requests table is read
            baseline = Path(folder) / "baseline.duckdb"
            _table(older, baseline).close()
        con = _table(reqs)
        try:
            got = touched(con, ROWS, since=since, until=until, baseline_until=base,
                          baseline_case=baseline)  # fmt: skip
        finally:
            con.close()
    want = _oracle(reqs, since, until, base, older or [])
    assert {(r["workload"], r["identity"], r["access"]) for r in got} == set(want)
    assert len(got) == len(want)
    for r in got:
        w = want[(r["workload"], r["identity"], r["access"])]
        assert r["requests"] == len(w["ids"])
        assert r["allowed"] == w["allowed"]
        assert r["first_seen"] == min(w["times"], default=None)
        assert r["last_seen"] == max(w["times"], default=None)
        assert r["first_evidence"] in w["evidence"]
        assert r["first_time"] == w["first_time"]
