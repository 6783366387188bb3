"""Peer classes: evaluating one pod per class gives what evaluating every pod pair gives."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics.netpol.classes import peer_classes
from kforensics.netpol.comparison import compare_clusters
from kforensics.netpol.evaluate import Evaluator, allowed_connections, pairwise_connections
from kforensics.netpol.model import build_cluster

NAMESPACES = ("a", "b", "c")
APPS = ("web", "db", "job")
PORT_NAMES = ("http", "dns")


def _listed(connections) -> list[tuple[str, str, str]]:
    return [(c.src, c.dst, str(c.conns)) for c in connections]


# ---- strategies: small clusters that reach every part of a policy ------------------------

labels_st = st.fixed_dictionaries(
    {},
    optional={"app": st.sampled_from(APPS), "tier": st.sampled_from(("front", "back"))},
)
ns_labels_st = st.fixed_dictionaries(
    {}, optional={"team": st.sampled_from(("x", "y")), "env": st.just("prod")}
)
container_port_st = st.fixed_dictionaries(
    {"containerPort": st.sampled_from((53, 80, 8080, 9090))},
    optional={
        "name": st.sampled_from(PORT_NAMES),
        "protocol": st.sampled_from(("TCP", "UDP")),
    },
)
requirement_st = st.one_of(
    st.builds(
        lambda k, op, v: {"key": k, "operator": op, "values": v},
        st.sampled_from(("app", "tier", "team")),
        st.sampled_from(("In", "NotIn")),
        st.lists(st.sampled_from((*APPS, "front", "x", "y")), min_size=1, max_size=2, unique=True),
    ),
    st.builds(
        lambda k, op: {"key": k, "operator": op},
        st.sampled_from(("app", "tier", "team", "env")),
        st.sampled_from(("Exists", "DoesNotExist")),
    ),
)
# mostly one term, so that a selector tells some pods apart (random pairs of terms rarely do)
selector_st = st.one_of(
    st.just({}),
    st.builds(
        lambda k, v: {"matchLabels": {k: v}},
        st.sampled_from(("app", "tier", "team")),
        st.sampled_from((*APPS, "front", "x")),
    ),
    st.builds(lambda r: {"matchExpressions": [r]}, requirement_st),
    st.builds(
        lambda k, v, r: {"matchLabels": {k: v}, "matchExpressions": [r]},
        st.sampled_from(("app", "env")),
        st.sampled_from((*APPS, "prod")),
        requirement_st,
    ),
)
ip_block_st = st.fixed_dictionaries(
    {
        "cidr": st.sampled_from(
            ("0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/24", "fd00::/8")
        )
    },
    optional={
        "except": st.lists(
            st.sampled_from(("10.1.2.0/24", "10.0.0.0/16", "192.168.1.128/25")),
            max_size=2,
            unique=True,
        )
    },
)
peer_st = st.one_of(
    st.fixed_dictionaries({"podSelector": selector_st}),
    st.fixed_dictionaries({"namespaceSelector": selector_st}),
    st.fixed_dictionaries({"podSelector": selector_st, "namespaceSelector": selector_st}),
    st.fixed_dictionaries({"ipBlock": ip_block_st}),
)
policy_port_st = st.one_of(
    st.fixed_dictionaries({}, optional={"protocol": st.sampled_from(("TCP", "UDP", "SCTP"))}),
    st.fixed_dictionaries(
        {"port": st.sampled_from((53, 80, 8080))},
        optional={
            "protocol": st.sampled_from(("TCP", "UDP")),
            "endPort": st.sampled_from((80, 8081, 9090)),
        },
    ),
    st.fixed_dictionaries(
        {"port": st.sampled_from(PORT_NAMES)},
        optional={"protocol": st.sampled_from(("TCP", "UDP"))},
    ),
)


def rule_st(peers_key: str):
    return st.fixed_dictionaries(
        {},
        optional={
            peers_key: st.lists(peer_st, min_size=1, max_size=2),
            "ports": st.lists(policy_port_st, max_size=2),
        },
    )


@st.composite
def policy_st(draw, index: int) -> dict:
    spec: dict = {"podSelector": draw(selector_st)}
    types = draw(st.sampled_from((None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    for direction, key in (("ingress", "from"), ("egress", "to")):
        rules = draw(st.lists(rule_st(key), max_size=2))
        if rules:
            spec[direction] = rules
    meta = {"name": f"p{index}", "namespace": draw(st.sampled_from(NAMESPACES))}
    return {"kind": "NetworkPolicy", "metadata": meta, "spec": spec}


@st.composite
def cluster_st(draw) -> tuple[list[dict], list[dict]]:
    """Return (namespaces and pods, policies)."""
    objects: list[dict] = [
        {"kind": "Namespace", "metadata": {"name": ns, "labels": draw(ns_labels_st)}}
        for ns in NAMESPACES
    ]
    for i in range(draw(st.integers(1, 8))):
        ports = draw(st.lists(container_port_st, max_size=2))
        meta = {"name": f"pod{i}", "namespace": draw(st.sampled_from(NAMESPACES))}
        meta["labels"] = draw(labels_st)
        spec = {"containers": [{"name": "c", "ports": ports}]}
        objects.append({"kind": "Pod", "metadata": meta, "spec": spec})
    policies = [draw(policy_st(i)) for i in range(draw(st.integers(0, 5)))]
    return objects, policies


_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(cluster_st())
def test_classes_give_what_every_pair_gives(drawn) -> None:
    objects, policies = drawn
    cluster = build_cluster([*objects, *policies])
    assert _listed(allowed_connections(cluster)) == _listed(pairwise_connections(cluster))


@_SETTINGS
@given(cluster_st(), st.integers(0, 3))
def test_a_class_comparison_gives_the_pairwise_diff(drawn, split) -> None:
    objects, policies = drawn
    before = build_cluster([*objects, *policies[:split]])
    after = build_cluster([*objects, *policies])
    cut = [*before.policies, *after.policies]
    old = {(c.src, c.dst): c.conns for c in pairwise_connections(before, cut_with=cut)}
    new = {(c.src, c.dst): c.conns for c in pairwise_connections(after, cut_with=cut)}
    expected = [
        (src, dst, str(old.get((src, dst), "-")), str(new.get((src, dst), "-")))
        for src, dst in sorted(old.keys() | new.keys())
        if old.get((src, dst)) != new.get((src, dst))
    ]
    changes = compare_clusters(before, after).changes
    assert [
        (c.src, c.dst, str(c.before) if c.before else "-", str(c.after) if c.after else "-")
        for c in changes
    ] == expected


# ---- what a class is ------------------------------------------------------------------


def _pod(name: str, ns: str, app: str, http: int | None = None) -> dict:
    ports = [] if http is None else [{"name": "http", "containerPort": http}]
    meta = {"name": name, "namespace": ns, "labels": {"app": app}}
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "ports": ports}]},
    }


def _web_only(ns: str) -> dict:
    spec = {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                "ports": [{"port": "http"}],
            }
        ],
    }
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "web-only", "namespace": ns},
        "spec": spec,
    }


def test_a_hundred_pods_are_as_many_classes_as_the_policies_tell_apart() -> None:
    pods = [_pod(f"w{i}", ns, app, 8080) for i, (ns, app) in enumerate(
        [(ns, app) for ns in ("a", "b") for app in ("web", "api")] * 25
    )]  # fmt: skip
    classes = peer_classes([Evaluator(build_cluster([*pods, _web_only("a")]))])
    # a/web is isolated, a/api is its allowed source, nothing tells b's web from b's api
    assert sorted(len(c.names) for c in classes) == [25, 25, 50]
    # without policies nothing tells the namespaces apart: every pod is alike
    assert [len(c.names) for c in peer_classes([Evaluator(build_cluster(pods))])] == [100]


def test_a_named_port_resolved_differently_splits_a_class() -> None:
    objects = [_pod("api", "a", "api"), _pod("w1", "a", "web", 8080), _pod("w2", "a", "web", 9090)]
    objects.append(_web_only("a"))
    classes = peer_classes([Evaluator(build_cluster(objects))])
    assert sorted(c.names for c in classes) == [("a/api[Pod]",), ("a/w1[Pod]",), ("a/w2[Pod]",)]
    into_web = [
        (c.src, c.dst, str(c.conns))
        for c in allowed_connections(objects)
        if c.dst.startswith("a/w")
    ]
    assert into_web == [
        ("a/api[Pod]", "a/w1[Pod]", "TCP 8080"),
        ("a/api[Pod]", "a/w2[Pod]", "TCP 9090"),
    ]


@_SETTINGS
@given(cluster_st(), st.integers(0, 3), st.integers(0, 7))
def test_what_a_peer_keeps_after_is_the_pairwise_answer(drawn, split, which) -> None:
    objects, policies = drawn
    before = build_cluster([*objects, *policies[:split]])
    after = build_cluster([*objects, *policies])
    peer = after.peers[which % len(after.peers)].workload
    cut = [*before.policies, *after.policies]
    expected = [c for c in pairwise_connections(after, cut_with=cut) if peer in (c.src, c.dst)]
    got = compare_clusters(before, after).after_of(peer)
    assert _listed(got) == _listed(expected)
