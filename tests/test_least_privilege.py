"""Least-privilege RBAC derived from what an identity did, as audit2rbac derives it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kforensics as kf
from kforensics.contain.least_privilege import least_privilege
from kforensics.contain.rbac_validate import validate_rbac
from kforensics.detection.selftest import T0, expand

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
WEB = "system:serviceaccount:shop:web"
USER = {"username": WEB, "groups": ["system:serviceaccounts", "system:authenticated"]}
BEFORE = T0 + timedelta(seconds=100)
LABELS = {"app.kubernetes.io/managed-by": "kforensics"}
DISCOVERY_NOTE = (
    "left out {} discovery and self-review requests (/api, /apis, /version, /openapi, health "
    "checks, selfsubject*reviews): every authenticated user may make them (system:discovery, "
    "system:public-info-viewer, system:basic-user)"
)


def ref(resource: str, namespace: str | None = None, name: str | None = None, **more: str) -> dict:
    """Return an objectRef (core group unless apiGroup is given)."""
    out = {"resource": resource, "apiVersion": "v1", **more}
    return out | ({"namespace": namespace} if namespace else {}) | ({"name": name} if name else {})


def by_web(verb: str, at: float, **fields: object) -> dict:
    """Return a test event of web's at `at` seconds after T0."""
    return {"user": USER, "verb": verb, "x-offset-seconds": at, **fields}


def load_events(folder: Path, items: list[dict]) -> duckdb.DuckDBPyConnection:
    """Return a read-only connection to a case the real loader made of items' events."""
    events = [e for n, item in enumerate(items) for e in expand(item, f"lp-{n}")]
    log = folder / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    kf.load(folder / "case.duckdb", [log], progress=False)
    return kf.connect(folder / "case.duckdb")


@pytest.fixture
def case_of(tmp_path):
    """`case_of(items)`: a case of items' events, its connection closed after the test."""
    opened = []

    def make(items: list[dict]) -> duckdb.DuckDBPyConnection:
        opened.append(load_events(tmp_path, items))
        return opened[-1]

    yield make
    for con in opened:
        con.close()


@pytest.fixture
def small_case(tmp_path):
    """A case where web used pods, configmaps, services, nodes, /metrics; and more besides."""
    configmaps = [
        by_web("get", 20 + i, objectRef=ref("configmaps", "shop", f"cm-{i}")) for i in range(11)
    ]
    items = [
        by_web("get", 1, objectRef=ref("pods", "shop", "web-1"), **{"x-repeat": 2}),
        by_web("get", 4, objectRef=ref("pods", "shop", "web-2")),
        by_web("list", 5, objectRef=ref("pods", "shop")),
        by_web("create", 6, objectRef=ref("pods", "shop", "web-1", subresource="exec")),
        by_web("watch", 7, objectRef=ref("services")),
        by_web("list", 8, objectRef=ref("services")),
        by_web("get", 9, objectRef=ref("nodes", name="node-a")),
        by_web("get", 10, requestURI="/metrics?format=text"),
        by_web("get", 11, requestURI="/api?timeout=32s"),
        by_web("get", 12, requestURI="/apis/apps/v1"),
        by_web("get", 13, requestURI="/version"),
        by_web(
            "create", 14, objectRef=ref("selfsubjectaccessreviews", apiGroup="authorization.k8s.io")
        ),
        # no response status, but allowed: the request was authorized
        by_web(
            "patch",
            15,
            objectRef=ref("deployments", "shop", "web", apiGroup="apps"),
            responseStatus=None,
        ),
        # refused or failed: nothing to grant
        by_web("get", 16, objectRef=ref("secrets", "shop", "db"), responseStatus={"code": 403}),
        by_web("get", 17, objectRef=ref("secrets", "shop", "gone"), responseStatus={"code": 404}),
        *configmaps,
        # after the incident began, and someone else's
        by_web("delete", 200, objectRef=ref("pods", "shop", "web-1")),
        {"verb": "delete", "x-offset-seconds": 18, "objectRef": ref("pods", "shop", "web-1")},
    ]
    con = load_events(tmp_path, items)
    yield con
    con.close()


def test_rules_come_from_what_was_done_before(small_case):
    grant = least_privilege(small_case, WEB, BEFORE)
    name = "kforensics-least-privilege-shop.web"
    meta = {"name": name, "labels": LABELS}
    subjects = [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]
    assert grant.requests == 25
    assert grant.notes == [DISCOVERY_NOTE.format(4)]
    cluster_why = {"kforensics.io/rationale": "derived from 4 requests before 2026-03-14T10:01:40Z"}
    shop_why = {"kforensics.io/rationale": "derived from 17 requests before 2026-03-14T10:01:40Z"}
    cluster_meta = {**meta, "annotations": cluster_why}
    shop_meta = {**meta, "namespace": "shop", "annotations": shop_why}
    assert grant.objects == [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": LABELS, "annotations": cluster_why},
            "rules": [
                {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]},
                {
                    "apiGroups": [""],
                    "resources": ["nodes"],
                    "verbs": ["get"],
                    "resourceNames": ["node-a"],
                },
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": cluster_meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": subjects,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {
                "name": name,
                "namespace": "shop",
                "labels": LABELS,
                "annotations": shop_why,
            },
            "rules": [
                {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},  # 11 names
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["get"],
                    "resourceNames": ["web-1", "web-2"],
                },
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments"],
                    "verbs": ["patch"],
                    "resourceNames": ["web"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": shop_meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects,
        },
    ]
    for obj in grant.objects:
        assert validate_rbac(obj) == []
        assert yaml.safe_load(yaml.safe_dump(obj)) == obj


def test_no_cutoff_reads_the_whole_log(small_case):
    grant = least_privilege(small_case, WEB, None)
    assert grant.requests == 26
    role = grant.objects[2]
    assert role["metadata"]["annotations"] == {
        "kforensics.io/rationale": "derived from 18 requests (the whole log)"
    }
    assert {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["delete"],
        "resourceNames": ["web-1"],
    } in role["rules"]


def test_a_naive_cutoff_is_utc_and_a_user_gets_a_user_subject(small_case):
    assert least_privilege(small_case, WEB, BEFORE.replace(tzinfo=None)).requests == 25
    grant = least_privilege(small_case, "alice@example.com", None)  # selftest's default user
    assert grant.requests == 1
    assert [o["kind"] for o in grant.objects] == ["Role", "RoleBinding"]
    assert (
        grant.objects[0]["metadata"]["name"]
        == "kforensics-least-privilege-alice-example.com--fcpihodz23"
    )
    assert grant.objects[1]["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@example.com"}
    ]


def test_nothing_before_means_no_access(small_case):
    grant = least_privilege(small_case, WEB, T0)
    assert (grant.objects, grant.requests) == ([], 0)
    assert grant.notes == [
        "'system:serviceaccount:shop:web' made no successful API request before "
        "2026-03-14T10:00:00Z: it needs no API access; set automountServiceAccountToken: false "
        "on the service account (or its pods) so that no token is mounted"
    ]


def test_only_discovery_needs_no_grant(case_of):
    items = [
        by_web("get", 1, requestURI="/api"),
        by_web("get", 2, requestURI="/openapi/v3/apis/apps/v1?hash=x"),
        by_web("get", 3, requestURI="/livez"),
        by_web(
            "create", 4, objectRef=ref("selfsubjectrulesreviews", apiGroup="authorization.k8s.io")
        ),
    ]
    grant = least_privilege(case_of(items), WEB, None)
    assert (grant.objects, grant.requests) == ([], 4)
    assert grant.notes == [
        DISCOVERY_NOTE.format(4),
        "'system:serviceaccount:shop:web' needs no grant of its own (the whole log): "
        "nothing to bind",
    ]


HOSTILE = [
    by_web("get", 1, objectRef=ref("pods/../secrets", "shop", "x")),
    by_web("*", 2, objectRef=ref("pods", "shop", "x")),
    by_web("get", 3, objectRef=ref("pods", "shop", "a" * 300)),
    by_web("get", 4, objectRef=ref("pods", "Shop", "x")),
    by_web("get", 5, objectRef=ref("pods", "shop", "x\ny")),
    by_web("get", 6, objectRef=ref("secrets", "shop", "x", apiGroup="*")),
    by_web("get", 7, requestURI="/metrics/*?x=1"),
    by_web("get", 8, requestURI="/a/../b"),
    by_web("list", 9, objectRef=ref("pods", "shop", "\u202e")),  # a list never names: kept
    by_web("get", 10, objectRef=ref("pods", "shop", "web-1")),
]


def test_hostile_values_are_left_out_with_notes(case_of):
    grant = least_privilege(case_of(HOSTILE), WEB, None)
    assert grant.requests == 10
    assert grant.notes == [
        "left out 1 requests whose API group is not a valid RBAC value: '*'",
        f"left out 2 requests whose name is not a valid RBAC value: '{'a' * 63}\u2026', 'x\\x0ay'",
        "left out 1 requests whose namespace is not a valid RBAC value: 'Shop'",
        "left out 2 requests whose non-resource URL is not a valid RBAC value: "
        "'/metrics/*', '/a/../b'",
        "left out 1 requests whose resource is not a valid RBAC value: 'pods/../secrets'",
        "left out 1 requests whose verb is not a valid RBAC value: '*'",
    ]
    assert [o["kind"] for o in grant.objects] == ["Role", "RoleBinding"]
    assert grant.objects[0]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["web-1"]},
    ]
    for obj in grant.objects:
        assert validate_rbac(obj) == []
        assert yaml.safe_load(yaml.safe_dump(obj)) == obj


@pytest.mark.parametrize(
    ("identity", "note"),
    [
        (
            "system:serviceaccount:Shop:web",
            "no objects: 'system:serviceaccount:Shop:web' is not a valid service account name",
        ),
        ("evil\x1b[2J", "no objects: 'evil\\x1b[2J' is not a user name a binding can hold"),
    ],
)
def test_an_identity_no_binding_can_name_gets_no_objects(case_of, identity, note):
    con = case_of(
        [{**by_web("get", 1, objectRef=ref("pods", "shop", "x")), "user": {"username": identity}}]
    )
    grant = least_privilege(con, identity, None)
    assert (grant.objects, grant.notes, grant.requests) == ([], [note], 1)


TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12
) | st.sampled_from(["pods", "shop", "get", "*", "..", "/", "a/b", "", "exec"])


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(TEXT, TEXT, TEXT, TEXT | st.none(), TEXT | st.none(), TEXT | st.none(), TEXT),
        min_size=1,
        max_size=6,
    )
)
def test_any_logged_values_give_valid_objects(tmp_path_factory, fields):
    items = []
    for n, (verb, resource, namespace, name, sub, group, uri) in enumerate(fields):
        objref = {
            "resource": resource,
            "namespace": namespace,
            "name": name,
            "subresource": sub,
            "apiGroup": group,
        }
        items.append(by_web(verb, n, objectRef={k: v for k, v in objref.items() if v is not None}))
        items.append(by_web(verb, n + 0.5, requestURI="/" + uri))
    folder = tmp_path_factory.mktemp("fuzz")
    con = load_events(folder, items)
    try:
        grant = least_privilege(con, WEB, None)
    finally:
        con.close()
    for obj in grant.objects:
        assert validate_rbac(obj) == []
        assert yaml.safe_load(yaml.safe_dump(obj)) == obj


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample incident's case, loaded by the real loader."""
    case = tmp_path_factory.mktemp("sample") / "case.duckdb"
    kf.load(case, [SAMPLES / "native"], progress=False)
    con = kf.connect(case)
    yield con
    con.close()


def test_the_sample_attacker_needed_nothing_before_the_incident(sample):
    before = datetime(2026, 3, 14, 10, 28, 41, tzinfo=UTC)
    grant = least_privilege(sample, "system:serviceaccount:shop:storefront", before)
    assert (grant.objects, grant.requests) == ([], 0)
    assert grant.notes == [
        "'system:serviceaccount:shop:storefront' made no successful API request before "
        "2026-03-14T10:28:41Z: it needs no API access; set automountServiceAccountToken: false "
        "on the service account (or its pods) so that no token is mounted"
    ]


def test_the_sample_prometheus_lists_and_watches(sample):
    grant = least_privilege(sample, "system:serviceaccount:monitoring:prometheus", None)
    name = "kforensics-least-privilege-monitoring.prometheus"
    why = {"kforensics.io/rationale": "derived from 55 requests (the whole log)"}
    meta = {"name": name, "labels": LABELS, "annotations": why}
    assert (grant.requests, grant.notes) == (55, [])
    assert grant.objects == [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "pods", "services"],
                    "verbs": ["list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}
            ],
        },
    ]
    assert all(validate_rbac(o) == [] for o in grant.objects)
