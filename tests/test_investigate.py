"""Investigation queries, HTML escaping, redaction and chart sizes: exact values on real loads."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kforensics import connect, load
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect, load_exceptions
from kforensics.detection.selftest import expand
from kforensics.investigate import charts
from kforensics.investigate import queries as inv
from kforensics.investigate.redact import REDACTED, clip, redact, redact_text
from kforensics.investigate.tables import html_table
from tests.conftest import SAMPLES, jsonl

SA = "system:serviceaccount:shop:storefront"
T = "2026-03-14T10:00:{:02d}.000001Z"
_IDS = itertools.count()


def ev(n: int, user: str = "alice", **over) -> dict:
    """One synthetic event at 10:00:n, through ruletest.expand's defaults."""
    item = {"user": {"username": user, "groups": ["system:authenticated"]}, **over}
    item.setdefault("objectRef", {"resource": "pods", "namespace": "shop", "name": "web-1"})
    item["requestReceivedTimestamp"] = T.format(n)
    return expand(item, f"e{n}-{next(_IDS)}")[0]


def binding(n: int, actor: str, subject_ns: str, subject: str, role: str) -> dict:
    obj = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"b{n}"},
        "roleRef": {"kind": "ClusterRole", "name": role, "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "ServiceAccount", "namespace": subject_ns, "name": subject}],
    }
    ref = {"resource": "clusterrolebindings", "apiGroup": "rbac.authorization.k8s.io"}
    return ev(n, actor, verb="create", objectRef=ref, requestObject=obj)


SYNTHETIC = [
    ev(0, "alice", verb="get"),
    ev(1, "alice", verb="list"),
    ev(2, "alice", verb="get", responseStatus={"code": 403}),
    # the same request at two stages: counted once (the `requests` view)
    {**ev(3, "mallory", verb="get"), "auditID": "twice", "stage": "ResponseStarted"},
    {**ev(3, "mallory", verb="get"), "auditID": "twice"},
    ev(
        4,
        SA,
        verb="create",
        sourceIPs=["198.51.100.7"],
        userAgent="curl/8.5.0",
        objectRef={"resource": "pods", "namespace": "shop", "name": "web-1", "subresource": "exec"},
        requestURI="/api/v1/namespaces/shop/pods/web-1/exec?command=sh&command=-c&command="
        "curl+-H+%22Authorization%3A+Bearer+abcdefghijklmnop%22+http%3A%2F%2Fx&container=web",
        responseStatus={"code": 101},
    ),
    binding(5, "root-admin", "shop", "storefront", "cluster-admin"),
    ev(
        6,
        SA,
        verb="get",
        objectRef={"resource": "secrets", "namespace": "shop", "name": "db"},
        responseObject={"kind": "Secret", "data": {"password": "c2VjcmV0LXZhbHVl"}},
    ),
    ev(
        7,
        SA,
        verb="patch",
        objectRef={"resource": "namespaces", "name": "shop"},
        responseObject={"kind": "Namespace", "metadata": {"name": "shop", "labels": {"a": "2"}}},
    ),
]
SYNTHETIC.insert(
    0,
    ev(
        0,
        "root-admin",
        verb="create",
        objectRef={"resource": "namespaces", "name": "shop"},
        responseObject={"kind": "Namespace", "metadata": {"name": "shop", "labels": {"a": "1"}}},
    ),
)


@pytest.fixture
def synthetic(tmp_path: Path, case_path: Path, con):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(*SYNTHETIC))
    result = load(case_path, [log])
    assert result.rejected == 0
    return con()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    case = tmp_path_factory.mktemp("sample") / "case.duckdb"
    load(case, [SAMPLES / "native"])
    exceptions = load_exceptions(SAMPLES / "known_false_positives.yaml")
    detect(case, load_rules(), exceptions=exceptions)
    c = connect(case)
    yield c
    c.close()


def rows(table) -> list[dict]:
    return table.to_pylist()


def test_top_identities_counts_requests_not_stages(synthetic):
    top = {r["identity"]: r for r in rows(inv.top_identities(synthetic))}
    assert top["alice"]["requests"] == 3
    assert top["alice"]["verbs"] == 2
    assert top["alice"]["denials"] == 1
    assert top["mallory"]["requests"] == 1
    assert top[SA]["requests"] == 3
    assert top["alice"]["first_seen"] == datetime(2026, 3, 14, 10, 0, 0, 1, tzinfo=UTC)


def test_time_window_is_half_open(synthetic):
    top = rows(inv.top_identities(synthetic, "2026-03-14T10:00:01", "2026-03-14T10:00:03"))
    assert [(r["identity"], r["requests"]) for r in top] == [("alice", 2)]
    top = rows(inv.top_identities(synthetic, datetime(2026, 3, 14, 10, 0, 7, tzinfo=UTC), ""))
    assert [(r["identity"], r["requests"]) for r in top] == [(SA, 1)]


def test_volume_over_time_by_outcome(synthetic):
    table = inv.volume_over_time(synthetic, buckets=60)
    totals: dict[str, int] = {}
    for r in rows(table):
        totals[r["outcome"]] = totals.get(r["outcome"], 0) + r["requests"]
    assert totals == {"1xx": 1, "2xx": 7, "4xx": 1}
    assert set(table.column("bucket_seconds").to_pylist()) == {1}
    assert inv.volume_over_time(synthetic, "2030-01-01", None).num_rows == 0


def test_denials_and_who_did_what(synthetic):
    assert [
        (r["identity"], r["resource"], r["code"], r["requests"])
        for r in rows(inv.denials(synthetic))
    ] == [("alice", "pods", 403, 1)]
    wdw = {
        (r["identity"], r["verb"], r["resource"]): r["requests"]
        for r in rows(inv.who_did_what(synthetic))
    }
    assert wdw[("alice", "get", "pods")] == 2
    assert wdw[(SA, "create", "pods/exec")] == 1


def test_new_in_window(synthetic):
    new = rows(inv.new_in_window(synthetic, "2026-03-14T10:00:03", None))
    got = {(r["kind"], r["value"]) for r in new}
    assert ("identity", "mallory") in got and ("identity", SA) in got
    assert ("identity", "alice") not in got  # seen before the window
    assert ("user_agent", "curl/8.5.0") in got
    assert ("source_ip", "198.51.100.7") in got
    assert ("source_ip", "203.0.113.10") not in got


def test_exec_sessions_decode_and_redact(synthetic):
    (row,) = rows(inv.exec_sessions(synthetic, SA))
    assert row["pod"] == "web-1" and row["container"] == "web" and row["code"] == 101
    assert row["command"].startswith('sh -c curl -H "Authorization: Bearer ')
    assert "abcdefghijklmnop" not in row["command"] and REDACTED in row["command"]
    assert rows(inv.workload_exec(synthetic, "shop", "web-1"))[0]["command"] == row["command"]
    assert inv.workload_exec(synthetic, "shop", "other").num_rows == 0


def test_permission_changes_grants_and_sources(synthetic):
    (row,) = rows(inv.permission_changes(synthetic, SA))
    assert row["actor"] == "root-admin" and row["relation"] == "grants"
    assert row["role_ref"] == "cluster-admin" and row["subjects"] == [SA]
    assert inv.permission_changes(synthetic, "alice").num_rows == 0
    src = {
        (r["kind"], r["value"]): r["requests"] for r in rows(inv.identity_sources(synthetic, SA))
    }
    assert src == {
        ("source_ip", "198.51.100.7"): 1,
        ("source_ip", "203.0.113.10"): 2,
        ("user_agent", "curl/8.5.0"): 1,
        ("user_agent", "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"): 2,
    }


def test_secrets_read_never_values(synthetic):
    table = inv.secrets_read(synthetic, "shop")
    assert [(r["identity"], r["verb"], r["secret"]) for r in rows(table)] == [(SA, "get", "db")]
    text = json.dumps(rows(table), default=str)
    assert "c2VjcmV0" not in text


def test_label_changes_old_and_new(synthetic):
    (row,) = rows(inv.policy_and_label_changes(synthetic, "shop"))
    assert row["verb"] == "patch" and row["resource"] == "namespaces"
    assert json.loads(row["old_labels"]) == {"a": "1"}
    assert json.loads(row["new_labels"]) == {"a": "2"}


def test_identity_queries_on_the_sample(sample):
    execs = rows(inv.exec_sessions(sample, SA))
    assert len(execs) == 4
    assert "cat /var/run/secrets/kubernetes.io/serviceaccount/token" in {
        r["command"] for r in execs
    }
    perms = rows(inv.permission_changes(sample, SA))
    assert {(r["name"], r["role_ref"], r["relation"]) for r in perms} == {
        ("storefront-ops", "storefront-ops", "grants"),
        ("storefront-admin", "cluster-admin", "by and for"),
    }
    new = rows(inv.new_in_window(sample, "2026-03-14T10:00", None))
    assert {(r["kind"], r["value"]) for r in new} == {
        ("identity", SA),
        ("source_ip", "10.244.1.23"),
        ("user_agent", "curl/8.5.0"),
    }
    assert inv.identity_timeline(sample, SA, limit=10).num_rows == 10


def test_findings_on_the_sample(sample):
    levels = dict(sample.execute("SELECT level, count(*) FROM findings GROUP BY 1").fetchall())
    summary = rows(inv.findings_summary(sample))
    assert {r["value"]: r["findings"] for r in summary if r["dimension"] == "level"} == levels
    assert [r["value"] for r in summary if r["dimension"] == "level"][0] == "high"
    mine = rows(inv.findings_for(sample, identity=SA))
    assert mine and {r["actor"] for r in mine} == {SA} and mine[0]["level"] == "high"
    assert {
        r["rule_id"] for r in rows(inv.findings_for(sample, namespace="payments", min_level="high"))
    } >= {
        "k8s-exec-reads-sa-token",
        "k8s-exec-cloud-metadata",
        "k8s-namespace-relabel-netpol-selector",
    }
    assert inv.findings_summary(sample, "2030-01-01", None).num_rows == 0
    # a level means that level and the more severe ones
    at_least_medium = rows(inv.findings_for(sample, min_level="medium"))
    assert len(at_least_medium) == levels.get("medium", 0) + levels["high"] + levels.get(
        "critical", 0
    )
    assert {r["level"] for r in at_least_medium} <= {"medium", "high", "critical"}
    points = rows(inv.findings_points(sample, namespace="payments", min_level="high"))
    assert points and {(r["level"], r["namespace"]) for r in points} == {("high", "payments")}


def test_html_table_escapes_every_cell():
    evil = "<img src=x onerror=alert(1)>"
    out = html_table([{evil: evil, "list": [evil], "obj": {"k": evil}, "none": None}])
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert out.count("<td>") == 4 and out.count("<th>") == 4
    long = html_table([{"x": "a" * 1000 + "<script>"}], max_chars=50)
    assert "<script" not in long and "&lt;script" not in long and "…" in long
    many = html_table([{"n": i} for i in range(80)], max_rows=10)
    assert many.count("<tr>") == 11 and "70 more rows" in many
    assert html_table([]) == "<p><em>no rows</em></p>"


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://k"}}],
    "users": [{"name": "u", "user": {"client-key-data": "S0VZ", "token": "tok-123456789"}}],
}


def test_redact_secret_material():
    secret = {"kind": "Secret", "metadata": {"name": "db"}, "data": {"pw": "cGxhbnRlZA=="}}
    out = redact(secret)
    assert out["data"] == {"pw": REDACTED} and out["metadata"] == {"name": "db"}
    assert secret["data"]["pw"] == "cGxhbnRlZA=="  # a copy, the input is untouched
    assert redact({"kind": "Secret", "stringData": {"k": "planted"}})["stringData"] == {
        "k": REDACTED
    }
    items = redact({"kind": "SecretList", "items": [{"data": {"x": "planted"}}]})
    assert items["items"][0]["data"] == {"x": REDACTED}
    token = redact({"kind": "TokenRequest", "status": {"token": "planted-token"}, "spec": {}})
    assert "planted-token" not in json.dumps(token)
    assert "S0VZ" not in json.dumps(redact({"cfg": KUBECONFIG}))
    assert redact({"headers": {"Authorization": "Bearer planted"}})["headers"] == {
        "Authorization": REDACTED
    }
    assert redact({"note": f"token is {JWT} ok"})["note"] == f"token is {REDACTED} ok"
    assert redact({"password": "hunter2", "access_token": "x", "id_token": None}) == {
        "password": REDACTED,
        "access_token": REDACTED,
        "id_token": None,
    }
    last_applied = json.dumps({"kind": "Secret", "data": {"k": "cGxhbnRlZA=="}})
    assert (
        "cGxhbnRlZA"
        not in redact({"annotations": {"last-applied": last_applied}})["annotations"][
            "last-applied"
        ]
    )
    assert redact({"kind": "ConfigMap", "data": {"k": "plain"}})["data"] == {"k": "plain"}


def test_redact_text():
    assert redact_text("curl -H 'Authorization: Bearer abcdefghijkl' x") == (
        f"curl -H 'Authorization: Bearer {REDACTED}' x"
    )
    assert JWT not in redact_text(f"--token={JWT}")
    assert "hunter2" not in redact_text("password=hunter2&user=bob")
    assert redact_text("ls -la /tmp") == "ls -la /tmp"
    # the value ends where the sentence goes on: brackets and closing marks are kept
    assert redact_text("(token=abc123) and [password=x] `token=y`") == (
        f"(token={REDACTED}) and [password={REDACTED}] `token={REDACTED}`"
    )
    blob = redact(json.dumps(KUBECONFIG))
    assert "S0VZ" not in blob and "tok-123456789" not in blob and '"server"' in blob
    yaml_blob = "apiVersion: v1\nkind: Config\nclusters: []\nusers:\n- user: {token: abc}\n"
    assert redact_text(yaml_blob) == REDACTED


_VALUE = st.text(
    st.characters(
        blacklist_characters=" \t\n\r\"',&;}", blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")
    ),
    min_size=3,
    max_size=30,
).filter(lambda v: any(ch.isalnum() for ch in v.rstrip(")]>|`.")))


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(["token", "password", "TOKEN", "client_secret"]),
       sep=st.sampled_from(["=", ": ", ":"]), value=_VALUE,
       before=st.sampled_from(["", "(", "[", "x "]),
       after=st.sampled_from(["", ")", ".", " y"]))  # fmt: skip
def test_redact_text_hides_any_value_and_is_idempotent(key, sep, value, before, after):
    text = f"{before}{key}{sep}{value}{after}"
    once = redact_text(text)
    assert value.rstrip(")]>|`.") not in once.replace(REDACTED, "")
    assert redact_text(once) == once


PEM_ID = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    "text, shown",
    [
        (f"a {PEM_ID} b", f"a {REDACTED} b"),
        ("x -----BEGIN RSA PRIVATE KEY-----\nMIIBOgI", f"x {REDACTED}"),  # cut inside the body
        ("x -----BEGIN RSA PRIV", f"x {REDACTED}"),  # cut inside the header
        ("-----BEGIN lower case", "-----BEGIN lower case"),
    ],
)
def test_redact_text_hides_a_pem_block_even_cut_short(text, shown):
    assert redact_text(text) == shown


def test_clip_redacts_before_it_cuts():
    # cut first, the block would lose its END line; a JWT its signature
    assert clip(f"id-{PEM_ID}", 20) == f"id-{REDACTED}"
    assert clip(f"id {JWT}", 20) == f"id {REDACTED}"
    assert clip("a" * 70) == "a" * 63 + "\u2026"


def _data_sizes(spec) -> list[int]:
    """Return the row count of every inline dataset in a Vega-Lite spec."""
    sizes = []
    if isinstance(spec, dict):
        if isinstance(spec.get("values"), list):
            sizes.append(len(spec["values"]))
        for value in spec.values():
            sizes += _data_sizes(value)
    elif isinstance(spec, list):
        for value in spec:
            sizes += _data_sizes(value)
    return sizes


def test_charts_use_small_aggregates(sample):
    for chart in (
        charts.timeline(sample),
        charts.timeline(sample, identity=SA),
        charts.outcomes_over_time(sample),
        charts.identity_verb_heatmap(sample),
        charts.attack_matrix(sample),
    ):
        sizes = _data_sizes(chart.to_dict())
        assert sizes and max(sizes) <= 300, sizes
    requests = sample.execute("SELECT count(*) FROM requests").fetchall()[0][0]
    bars = _data_sizes(charts.outcomes_over_time(sample).to_dict())
    assert sum(bars) < requests / 5
    empty = charts.timeline(sample, since="2030-01-01").to_dict()
    assert empty["mark"]["type"] == "text"


EVIL = "</script><img src=x onerror=alert(1)>"


def test_hostile_log_text_never_becomes_markup(tmp_path, case_path, con):
    log = tmp_path / "evil.log"
    log.write_bytes(
        jsonl(
            ev(1, EVIL, verb=EVIL, userAgent=EVIL, responseStatus={"code": 403}),
            ev(2, "alice"),
        )
    )
    load(case_path, [log])
    c = con()
    for table in (inv.top_identities(c), inv.who_did_what(c), inv.denials(c), inv.new_in_window(c)):
        assert EVIL in json.dumps(table.to_pylist(), default=str)  # the data keeps the text
        out = html_table(table)
        assert "<img" not in out and "</script>" not in out and "&lt;img" in out
    for chart in (charts.timeline(c), charts.identity_verb_heatmap(c)):
        bundle = chart._repr_mimebundle_()
        html = (bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"]
        assert "<img" not in html and "</script><img" not in html
    heatmap = json.dumps(charts.identity_verb_heatmap(c).to_dict(), ensure_ascii=False)
    assert "\u2039/script\u203a\u2039img src=x onerror=alert(1)\u203a" in heatmap


def test_workload_queries_on_the_sample(sample):
    shop = rows(inv.policy_and_label_changes(sample, "shop"))
    (relabel,) = [r for r in shop if r["resource"] == "namespaces"]
    assert relabel["actor"] == SA and relabel["verb"] == "patch"
    assert "trust" not in json.loads(relabel["old_labels"])
    assert json.loads(relabel["new_labels"])["trust"] == "high"
    assert {r["resource"] for r in shop} == {"namespaces", "networkpolicies"}  # no status noise
    payments = rows(inv.policy_and_label_changes(sample, "payments"))
    assert ("delete", "default-deny", SA) in {
        (r["verb"], r["object"], r["actor"]) for r in payments
    }
    secrets = {(r["identity"], r["secret"]) for r in rows(inv.secrets_read(sample, "payments"))}
    assert (SA, "(all namespaces)") in secrets and (SA, "payments-db-credentials") in secrets
    execs = rows(inv.workload_exec(sample, "payments"))
    assert [r["container"] for r in execs] == ["api", "api"]
    who = {r["identity"] for r in rows(inv.workload_activity(sample, "payments"))}
    assert SA in who
