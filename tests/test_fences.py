"""Fences around sensitive workloads: the sample incident, each inference rule, hostile input."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import load
from kforensics.case import connect
from kforensics.netpol.inventory import Inventory, reconstruct
from kforensics.netpol.validate import validate_object
from kforensics.sensitive.declare import load_text
from kforensics.sensitive.fence_refs import service_references
from kforensics.sensitive.fences import Allow, fences, to_yaml
from kforensics.sensitive.resolve import Workload, resolve, workloads
from tests.conftest import ROOT, SAMPLES

GOLDEN = ROOT / "tests" / "golden" / "sensitive-fences"
EV = "data/samples/native/audit-2026-03-14T09-30-00.000.log.gz"
DEPLOYMENT_EV = f"{EV}:130 (bb2313f5-5b06-458e-be26-f36a8483f8b8)"
POLICY_EV = f"{EV}:120 (5c9bcf35-873b-4078-b3b7-a50df373ca53)"
API = "payments/payments-api-5f6c8d[ReplicaSet]"
PROM = "monitoring/prometheus-7c9d8f[ReplicaSet]"
DNS = Allow(
    "egress",
    "DNS (kube-system k8s-app=kube-dns)",
    ["UDP 53", "TCP 53"],
    "every pod resolves names through the cluster DNS (its pods' labels assumed: the log does "
    "not show them)",
)
REMOVED = [
    f"removed: {API} => 0.0.0.0-255.255.255.255[External] : All Connections (left: No Connections)",
    f"removed: {API} => kube-system/node-debugger[Pod] : All Connections (left: No Connections)",
    f"removed: {API} => {PROM} : All Connections (left: No Connections)",
]
UNSEEN = [
    "clients that reach it by IP address, from outside the cluster (LoadBalancer, NodePort, "
    "Ingress controllers) or through configuration the log does not show (configmap contents, "
    "files, images) are unknown: the fence cuts them",
    "dependencies it reaches by IP address, outside the cluster, or named only in configmaps or "
    "files are unknown: the fence cuts them",
]


def _view(allows: list[Allow]) -> list[tuple[str, str, list[str], str]]:
    return [(a.direction, a.peer, a.ports, a.inferred_from) for a in allows]


# --- the sample incident --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    case = tmp_path_factory.mktemp("case") / "case.duckdb"
    cwd = os.getcwd()
    os.chdir(ROOT)  # evidence cites the path as given to load: relative, the same everywhere
    try:
        load(case, [SAMPLES.relative_to(ROOT) / "native"], progress=False)
    finally:
        os.chdir(cwd)
    with connect(case) as con:
        inv = reconstruct(con)
        before = reconstruct(con, datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
        users = {r[0] for r in con.execute("SELECT DISTINCT username FROM requests").fetchall()}
    chosen = resolve(load_text("selectors: [{app: payments-api}]"), inv)
    return inv, before, users, chosen


def test_sample_fence_with_the_policies_of_10h_matches_the_reviewed_golden_file(sample):
    inv, before, users, chosen = sample
    [fence] = fences(chosen, inv, before=before, api_users=users)
    produced = to_yaml([fence])
    if os.environ.get("KFORENSICS_UPDATE_GOLDEN"):  # then review the diff before committing
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / "payments-api.yaml").write_text(produced)
    assert produced == (GOLDEN / "payments-api.yaml").read_text()
    assert fence.workload == "payments/Deployment/payments-api"
    assert validate_object(fence.objects[0]) == []
    # trust=high at 10:00 was payments and monitoring; shop was relabelled at 10:49
    pinned = (
        f"NetworkPolicy payments/allow-from-trusted ({POLICY_EV}) let it in as of "
        "2026-03-14 10:00:00+00:00 (namespaces matching trust=high then, pinned by name)"
    )
    assert _view(fence.allows) == [
        ("ingress", "namespace monitoring", ["TCP 8443"], pinned),
        ("ingress", "namespace payments", ["TCP 8443"], pinned),
        _view([DNS])[0],
    ]
    assert fence.objects[0]["spec"]["ingress"] == [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                for ns in ("monitoring", "payments")
            ],
            "ports": [{"protocol": "TCP", "port": 8443}],
        }
    ]
    assert "shop" not in produced
    assert fence.unknowns == [
        "an audit log records no packets: every allow here is inferred (Service names in pod "
        "specs, shared secrets, the NetworkPolicies as of 2026-03-14 10:00:00+00:00, the API "
        "requests of its service account), none observed",
        *UNSEEN,
        "system:serviceaccount:payments:payments-api sent no API request the case shows: the "
        "API server is not allowed",
    ]
    assert fence.problems == []
    assert fence.simulation == [
        f"kept: {PROM} => {API} : TCP 8443 (namespace monitoring)",
        *REMOVED,
    ]


def test_sample_fence_without_earlier_policies_denies_ingress_and_names_the_additive_policy(
    sample,
):
    inv, _, users, chosen = sample
    [fence] = fences(chosen, inv, api_users=users)
    [obj] = fence.objects
    assert obj["metadata"]["name"] == "kforensics-fence-payments-api"
    assert obj["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kforensics",
        "kforensics.io/remedy": "fence",
    }
    assert obj["metadata"]["annotations"]["kforensics.io/evidence"] == DEPLOYMENT_EV
    assert obj["spec"]["podSelector"] == {"matchLabels": {"app": "payments-api"}}
    assert obj["spec"]["ingress"] == []
    assert _view(fence.allows) == _view([DNS])
    assert fence.problems == [
        "NetworkPolicy payments/allow-from-trusted also selects these pods and allows more than "
        f"the fence (policies are additive): {PROM} => {API} : TCP 8443; narrow or remove it"
    ]
    assert fence.simulation == REMOVED


# --- tiny hand-built inventories ------------------------------------------------------------


def _inv(*objects: dict) -> Inventory:
    inv = Inventory(at=None)
    for i, o in enumerate(objects, 1):
        meta = o["metadata"]
        key = (
            o["kind"],
            "" if o["kind"] == "Namespace" else meta.get("namespace", ""),
            meta["name"],
        )
        inv.objects[key] = o
        inv.evidence[key] = f"audit.log:{i}"
    return inv


def _ns(name: str, **labels: str) -> dict:
    labels = {"kubernetes.io/metadata.name": name, **labels}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _deploy(ns: str, name: str, labels: dict, *, env=(), ports=(), pull=(), sa=None, args=()):
    container = {"name": "c", "image": "i", "env": list(env), "ports": list(ports)}
    if args:
        container["args"] = list(args)
    spec: dict = {}
    pod = {"containers": [container], **spec}
    if pull:
        pod["imagePullSecrets"] = [{"name": n} for n in pull]
    if sa:
        pod["serviceAccountName"] = sa
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": pod}},
    }


def _svc(ns: str, name: str, selector: dict | None, ports: list[dict], **spec) -> dict:
    body = {"ports": ports, **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": body}  # fmt: skip


def _env(value: str, name: str = "URL") -> dict:
    return {"name": name, "value": value}


SECRET_ENV = {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}
HTTPS = {"name": "https", "containerPort": 8443}
API_SVC = _svc("pay", "api", {"app": "api"}, [{"port": 443, "targetPort": "https"}])


def _world(*extra: dict, api_env=()) -> Inventory:
    return _inv(
        _ns("pay"),
        _ns("shop"),
        _deploy("pay", "api", {"app": "api"}, env=[SECRET_ENV, *api_env], ports=[HTTPS], sa="api"),
        API_SVC,
        *extra,
    )


def _fence_of(inv: Inventory, key: str = "pay/Deployment/api", **kw):
    [fence] = fences([workloads(inv)[key]], inv, **kw)
    return fence


def _ingress(fence) -> list[tuple[str, list[str]]]:
    return [(a.peer, a.ports) for a in fence.allows if a.direction == "ingress"]


@pytest.mark.parametrize(
    "value",
    [
        "api.pay",
        "api.pay.svc",
        "api.pay.svc.cluster.local",
        "https://api.pay.svc:443/x",
        "https://API.PAY.SVC.cluster.local.:443/charge?x=1",
        "--upstream=api.pay.svc,other.example.com",
    ],
)
def test_a_workload_naming_its_service_is_a_client_pinned_by_namespace_and_labels(value):
    inv = _world(_deploy("shop", "web", {"app": "web"}, env=[_env(value)]))
    fence = _fence_of(inv)
    assert _ingress(fence) == [("shop/Deployment/web", ["TCP 8443"])]  # named port resolved
    [allow] = [a for a in fence.allows if a.direction == "ingress"]
    assert allow.inferred_from.startswith("its container c env URL names ")
    assert allow.inferred_from.endswith(", a Service of pay/Deployment/api (audit.log:5)")
    assert fence.objects[0]["spec"]["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                    "podSelector": {"matchLabels": {"app": "web"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8443}],
        }
    ]


@pytest.mark.parametrize(
    "value", ["api.pay.svc.cluster", "xapi.pay", "api-pay.svc", "api.shop.svc", "api", "pay"]
)
def test_names_that_are_not_its_service_from_another_namespace_make_no_client(value):
    inv = _world(_deploy("shop", "web", {"app": "web"}, env=[_env(value)]))
    assert _ingress(_fence_of(inv)) == []


def test_a_bare_service_name_counts_only_from_the_same_namespace_and_args_count():
    inv = _world(
        _deploy("pay", "worker", {"app": "worker"}, args=["--api", "api:443"]),
        _deploy("shop", "web", {"app": "web"}, env=[_env("api")]),
    )
    fence = _fence_of(inv)
    assert _ingress(fence) == [("pay/Deployment/worker", ["TCP 8443"])]
    assert fence.allows[0].inferred_from.startswith("its container c args[1] names api,")


def test_a_workload_holding_its_secret_is_a_client_a_pull_secret_is_not():
    inv = _world(
        _deploy("pay", "batch", {"app": "batch"}, env=[SECRET_ENV]),
        _deploy("pay", "other", {"app": "other"}, pull=["creds"]),
    )
    fence = _fence_of(inv)
    assert _view([a for a in fence.allows if a.direction == "ingress"]) == [
        (
            "ingress",
            "pay/Deployment/batch",
            ["TCP 8443"],
            "its pods hold secret pay/creds too (shared credentials make it a client) "
            "(audit.log:5)",
        )
    ]


def test_the_services_it_names_are_its_egress_on_their_target_ports():
    db = _svc("pay", "db", {"app": "db"}, [{"port": 5432}])
    inv = _world(
        _deploy("pay", "db", {"app": "db"}),
        db,
        api_env=[_env("postgres://u@db.pay.svc:5432/x", "DB"), _env("cache.pay.svc", "C")],
    )
    fence = _fence_of(inv)
    egress = [a for a in fence.allows if a.direction == "egress"]
    assert _view(egress[1:]) == [
        (
            "egress",
            "Service pay/db (pods app=db)",
            ["TCP 5432"],
            "its container c env DB names db.pay.svc (audit.log:3); Service pay/db: audit.log:6",
        )
    ]
    assert fence.objects[0]["spec"]["egress"][1] == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "pay"}},
                "podSelector": {"matchLabels": {"app": "db"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }
    assert (
        "its container c env C names cache.pay.svc, a Service the log never recorded: egress to "
        "it is cut"
    ) in fence.unknowns


def test_the_api_server_is_allowed_only_when_its_service_account_sent_requests():
    kubernetes = _svc("default", "kubernetes", None, [{"port": 443, "targetPort": 6443}])
    kubernetes["spec"]["clusterIP"] = "10.96.0.1"
    inv = _world(kubernetes)
    fence = _fence_of(inv, api_users={"system:serviceaccount:pay:api"})
    assert _view(fence.allows[-1:]) == [
        (
            "egress",
            "API server 10.96.0.1/32",
            ["TCP 443", "TCP 6443"],
            "system:serviceaccount:pay:api sent API requests in the case; the address is Service "
            "default/kubernetes's (audit.log:5)",
        )
    ]
    assert fence.objects[0]["spec"]["egress"][-1] == {
        "to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
    }
    other = _fence_of(inv, api_users={"system:serviceaccount:pay:default"})
    assert [a.peer for a in other.allows] == ["DNS (kube-system k8s-app=kube-dns)"]
    no_address = _fence_of(_world(), api_users={"system:serviceaccount:pay:api"})
    assert (
        "system:serviceaccount:pay:api sent API requests, but the log never recorded the API "
        "server's address (Service default/kubernetes): egress to it is cut; add it by hand"
    ) in no_address.unknowns


def test_earlier_policies_are_pinned_to_the_namespaces_they_then_selected():
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "trusted", "namespace": "pay"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {"trust": "high"}},
                           "podSelector": {"matchLabels": {"role": "client"}}}],
                 "ports": [{"protocol": "TCP", "port": 8443}]},
                {"from": []},
            ],
        },
    }  # fmt: skip
    earlier = _inv(_ns("pay", trust="high"), _ns("shop"), _ns("ops", trust="high"), policy)
    fence = _fence_of(_world(_ns("shop", trust="high")), before=earlier)
    assert _ingress(fence) == [
        ("namespace ops, pods role=client", ["TCP 8443"]),
        ("namespace pay, pods role=client", ["TCP 8443"]),
    ]
    assert fence.problems == [
        "NetworkPolicy pay/trusted in the earlier inventory let every source in: not carried into "
        "the fence (a fence names its clients); add it by hand if it must stay"
    ]


def test_a_service_s_target_ports_and_a_load_balancer_s_unknown_clients():
    lb = _svc("pay", "api", {"app": "api"}, [{"port": 443, "targetPort": 8443},
              {"port": 80, "targetPort": "nope"}], type="LoadBalancer")  # fmt: skip
    inv = _inv(_ns("pay"), _deploy("pay", "api", {"app": "api"}, ports=[HTTPS]), lb)
    fence = _fence_of(inv)
    assert fence.objects[0]["spec"]["ingress"] == []
    assert (
        "Service pay/api is of type LoadBalancer: its clients outside the cluster are unknown, "
        "the fence cuts them"
    ) in fence.unknowns
    assert (
        "Service pay/api: target port 'nope' names no container port of its pods: not allowed"
    ) in fence.unknowns


def test_a_workload_without_labels_gets_no_fence_and_says_why():
    inv = _inv(_ns("pay"), _deploy("pay", "api", {}))
    fence = _fence_of(inv)
    assert fence.objects == []
    assert fence.problems == [
        "no fence: its pods have no labels (an empty podSelector would fence the whole namespace)"
    ]


def test_a_workload_never_recorded_and_a_bare_secret_get_no_fence():
    inv = _world()
    ghost = Workload("pay", "Deployment", "ghost", recorded=False)
    secret = Workload("pay", "Secret", "creds", secrets=["creds"], recorded=False)
    gone, bare = fences([ghost, secret], inv)
    assert (gone.objects, gone.problems, gone.unknowns) == (
        [],
        ["no fence: the log never recorded it whole"],
        ["never recorded whole: its pods, labels and ports are unknown"],
    )
    assert (bare.objects, bare.problems, bare.unknowns) == (
        [],
        [],
        ["a bare secret: nothing to fence (no pods); who read it is what the detections show"],
    )
    assert to_yaml([gone, bare]) == ""


def test_the_simulation_keeps_the_inferred_client_and_removes_the_rest():
    web_pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }  # fmt: skip
    inv = _world(
        _deploy("shop", "web", {"app": "web"}, env=[_env("api.pay.svc")]),
        _deploy("shop", "cart", {"app": "cart"}),
        web_pod,
    )
    fence = _fence_of(inv)
    assert fence.problems == []
    assert fence.simulation == [
        "kept: shop/web-1[Pod] => pay/api[Deployment] : TCP 8443 (shop/Deployment/web)",
        "kept: shop/web[Deployment] => pay/api[Deployment] : TCP 8443 (shop/Deployment/web)",
        "removed: 0.0.0.0-255.255.255.255[External] => pay/api[Deployment] : All Connections "
        "(left: No Connections)",
        "removed: pay/api[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections "
        "(left: No Connections)",
        "removed: pay/api[Deployment] => shop/cart[Deployment] : All Connections (left: No "
        "Connections)",
        "removed: pay/api[Deployment] => shop/web-1[Pod] : All Connections (left: No Connections)",
        "removed: pay/api[Deployment] => shop/web[Deployment] : All Connections (left: No "
        "Connections)",
        "removed: shop/cart[Deployment] => pay/api[Deployment] : All Connections (left: No "
        "Connections)",
        "removed: shop/web-1[Pod] => pay/api[Deployment] : SCTP 1-65535,TCP 1-8442,8444-65535,"
        "UDP 1-65535 (left: TCP 8443)",
        "removed: shop/web[Deployment] => pay/api[Deployment] : SCTP 1-65535,TCP 1-8442,"
        "8444-65535,UDP 1-65535 (left: TCP 8443)",
    ]


def test_a_fence_the_client_s_own_policies_already_block_is_said_so():
    deny = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "shop"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
    }  # fmt: skip
    inv = _world(_deploy("shop", "web", {"app": "web"}, env=[_env("api.pay.svc")]), deny)
    fence = _fence_of(inv)
    assert fence.simulation[0] == (
        "not allowed before the fence either: shop/web[Deployment] => pay/api[Deployment] "
        "(shop/Deployment/web; other policies deny it)"
    )


def test_a_client_the_live_policies_denied_is_newly_allowed_and_said_so():
    only_ops = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "only-ops", "namespace": "pay"},
        "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": "ops"}}}]}]},
    }  # fmt: skip
    inv = _world(_deploy("shop", "web", {"app": "web"}, env=[_env("api.pay.svc")]), only_ops)
    fence = _fence_of(inv)
    assert fence.problems == [
        "newly allowed: shop/web[Deployment] => pay/api[Deployment] : TCP 8443"
    ]


def test_a_selector_shared_with_another_workload_and_a_host_network_workload():
    inv = _world(_deploy("pay", "api-canary", {"app": "api"}))
    assert _fence_of(inv).problems[0] == (
        "the fence's podSelector also selects pay/api-canary[Deployment]: they would be fenced too"
    )
    host = _deploy("pay", "api", {"app": "api"})
    host["spec"]["template"]["spec"]["hostNetwork"] = True
    fence = _fence_of(_inv(_ns("pay"), host))
    assert (fence.objects, fence.problems) == (
        [],
        ["no fence: its pods use the host network, where no NetworkPolicy applies"],
    )


def test_two_kinds_of_one_name_get_two_policy_names_and_a_live_namesake_is_named():
    sts = _deploy("pay", "api", {"app": "sts"})
    sts["kind"] = "StatefulSet"
    live = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "kforensics-fence-api", "namespace": "pay"},
        "spec": {"podSelector": {"matchLabels": {"app": "nothing"}}},
    }  # fmt: skip
    inv = _world(sts, live)
    known = workloads(inv)
    out = fences([known["pay/Deployment/api"], known["pay/StatefulSet/api"]], inv)
    assert [o["metadata"]["name"] for f in out for o in f.objects] == [
        "kforensics-fence-api",
        "kforensics-fence-statefulset-api",
    ]
    assert out[0].problems == [
        "NetworkPolicy pay/kforensics-fence-api exists and is not a fence: applying this one "
        "replaces it"
    ]


def test_a_crafted_earlier_policy_is_a_problem_not_an_exception():
    crafted = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "x\x1b[31m", "namespace": "pay"},
        "spec": {"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}}]}]},
    }  # fmt: skip
    fence = _fence_of(_world(), before=_inv(_ns("pay"), crafted))
    assert fence.problems == [
        "NetworkPolicy pay/x\\x1b[31m in the earlier inventory not readable: NetworkPolicy "
        "selector: unknown operator 'Near'"
    ]
    assert fence.objects and validate_object(fence.objects[0]) == []


# --- hostile input --------------------------------------------------------------------------


def test_crafted_names_and_values_give_valid_objects_or_stated_problems():
    long_name = "Évil\x00name;$(reboot)" + "x" * 300
    inv = _inv(
        _ns("pay"),
        _deploy("pay", long_name, {"app": "api"}, env=[_env("a." * 100_000), _env("\x07" * 50)]),
        _deploy("pay", "bad-labels", {"app": "x\ny"}),
        _deploy("Bad NS", "w", {"app": "w"}),
        _deploy("pay", "client", {"k": "v\x00"}, env=[_env("api.pay.svc")]),
        _svc("pay", long_name, {"app": "api"}, [{"port": 80}]),
        _svc("pay", "api", {"app": "api"}, [{"port": 443, "targetPort": 8443}]),
    )
    known = workloads(inv)
    out = fences(sorted(known.values(), key=lambda w: w.key), inv)
    by_key = {f.workload: f for f in out}
    [obj] = by_key[f"pay/Deployment/{long_name}"].objects
    assert obj["metadata"]["name"].startswith("kforensics-fence-vil-name-reboot-xxx")
    assert len(obj["metadata"]["name"]) == 253
    assert validate_object(obj) == []
    assert by_key["pay/Deployment/bad-labels"].problems == [
        "no fence: one of its pods' labels is not a valid label, so no selector can name them"
    ]
    assert by_key["Bad NS/Deployment/w"].problems == [
        "no fence: its namespace 'Bad NS' is not a valid name"
    ]
    assert by_key[f"pay/Deployment/{long_name}"].problems == [
        "client pay/Deployment/client (its container c env URL names api.pay.svc, a Service of "
        "pay/Deployment/Évil\\x00name;$(reboot)" + "x" * 162 + "…) has no valid namespace "
        "and pod labels to select "
        "it by: not allowed; allow it by hand if it is one"
    ]
    assert yaml.safe_load_all(to_yaml(out)) is not None
    assert list(yaml.safe_load_all(to_yaml(out))) == [o for f in out for o in f.objects]


def test_ten_thousand_env_vars_are_read_in_bounded_time():
    env = [_env("x" * 200 + f"-{i}.example.com:{i}", f"V{i}") for i in range(10_000)]
    env.append(_env("https://api.pay.svc:443"))
    inv = _world(_deploy("shop", "web", {"app": "web"}, env=env))
    start = time.monotonic()
    fence = _fence_of(inv)
    assert time.monotonic() - start < 10
    assert _ingress(fence) == [("shop/Deployment/web", ["TCP 8443"])]


def test_service_references_split_without_backtracking():
    spec = {"containers": [{"name": "c", "env": [_env("-" * 1_000_000 + "api.pay.svc")]}]}
    start = time.monotonic()
    found, unknown = service_references(spec, "pay", {("pay", "api")})
    assert time.monotonic() - start < 2
    assert (found, unknown) == ({}, {})  # one million-character token: no DNS name
    found, _ = service_references(
        {"containers": [{"name": "c", "command": ["sh", "-c", "curl api.pay.svc"]}]},
        "shop",
        {("pay", "api")},
    )
    assert found == {("pay", "api"): "container c command[2] names api.pay.svc"}


_text = st.text(st.characters(codec="utf-8"), max_size=40)
_label = st.one_of(st.sampled_from(["app", "tier", "a.b/c", "x" * 64]), _text)
_good_labels = st.dictionaries(
    st.sampled_from(["app", "tier", "a.b/c"]),
    st.sampled_from(["api", "web", "db", ""]),
    min_size=1,
    max_size=2,
)
_labels = st.one_of(
    _good_labels,
    _good_labels,
    st.dictionaries(_label, st.one_of(st.sampled_from(["api", "web", ""]), _text), max_size=3),
)
_value = st.one_of(
    st.sampled_from(["api.pay.svc", "https://api.pay:443", "api", "db.pay.svc.cluster.local"]),
    _text,
)


_port_entry = st.fixed_dictionaries(
    {"containerPort": st.one_of(st.integers(1, 65535), st.integers(-5, 70_000), _text)},
    optional={"name": st.one_of(st.sampled_from(["https", "http"]), _text),
              "protocol": st.sampled_from(["TCP", "UDP", "SCTP", "ICMP"])},
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(st.sampled_from(["api", "web"]), _text.filter(bool)),
    labels=_labels,
    client_labels=_labels,
    env=st.lists(_value, max_size=4),
    args=st.lists(_value, max_size=3),
    ports=st.lists(_port_entry, max_size=3),
    port=st.one_of(st.integers(-5, 70_000), st.sampled_from(["https", "http", "8443"]), _text),
    trusted=_labels,
)
def test_fuzzed_specs_give_valid_objects_that_round_trip(
    name, labels, client_labels, env, args, ports, port, trusted
):
    inv = _inv(
        _ns("pay"),
        _ns("shop"),
        _deploy("pay", name, labels, ports=[HTTPS, *ports], env=[_env(v) for v in env]),
        _deploy("shop", "client", client_labels, env=[_env(v) for v in env], args=args),
        _svc("pay", "api", labels or {"app": "api"}, [{"port": 443, "targetPort": port}]),
        _svc("pay", "db", {"app": "db"}, [{"port": 5432}]),
    )
    earlier = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "trusted", "namespace": "pay"},
        "spec": {"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": trusted}, "podSelector": {"matchLabels": labels}}
        ], "ports": [{"port": port}]}]},
    }  # fmt: skip
    before = _inv(_ns("pay", **{"trust": "high"}), _ns("shop"), earlier)
    chosen = sorted(workloads(inv).values(), key=lambda w: w.key)
    out = fences(chosen, inv, before=before, api_users={f"system:serviceaccount:pay:{name}"})
    emitted = [o for f in out for o in f.objects]
    for obj in emitted:
        assert validate_object(obj) == []
    assert list(yaml.safe_load_all(to_yaml(out))) == emitted
    for fence in out:
        assert fence.objects or fence.problems
