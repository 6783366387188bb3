"""NetworkPolicy evaluation: netpol-analyzer's connlist corpus, and the semantics one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kforensics.netpol.comparison import compare
from kforensics.netpol.evaluate import (
    ConnSet,
    External,
    LabelGapError,
    allowed_connections,
    connection_map,
    connlist,
)
from kforensics.netpol.model import NAME_LABEL, build_cluster, parse_objects, read_objects
from tests.conftest import SHARED, corpus

_OUTPUTS = SHARED / "netpol-analyzer" / "test_outputs" / "connlist"
CASES = sorted(p.name.removesuffix("_connlist_output.txt") for p in _OUTPUTS.glob("*.txt"))


@pytest.mark.parametrize("case", CASES or ["(corpus absent)"])
def test_corpus_connlist(case: str) -> None:
    root = corpus("netpol-analyzer")
    expected = (root / "test_outputs" / "connlist" / f"{case}_connlist_output.txt").read_text()
    assert connlist(read_objects(root / "tests" / case)) == expected


def test_corpus_has_all_cases() -> None:
    corpus("netpol-analyzer")
    assert len(CASES) == 42


# ---- inline objects ---------------------------------------------------------------------


def pod(name: str, ns: str = "ns", labels: dict | None = None, ports: list | None = None) -> dict:
    containers = [{"name": "c", "ports": ports or []}]
    meta = {"name": name, "namespace": ns, "labels": labels or {"app": name}}
    return {"kind": "Pod", "metadata": meta, "spec": {"containers": containers}}


def policy(name: str, spec: dict, ns: str = "ns") -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def sel(app: str) -> dict:
    return {"matchLabels": {"app": app}}


def conns(objects: list) -> dict[tuple[str, str], str]:
    """Return {(src, dst): conns string} with short pod names, external peers included."""
    short = {}
    for c in allowed_connections(objects):
        src, dst = (s.split("/")[-1].split("[")[0] if "/" in s else s for s in (c.src, c.dst))
        short[src, dst] = str(c.conns)
    return short


ALL = "0.0.0.0-255.255.255.255[External]"


def test_no_policy_allows_everything() -> None:
    got = conns([pod("a"), pod("b")])
    assert got == {
        (ALL, "a"): "All Connections",
        (ALL, "b"): "All Connections",
        ("a", ALL): "All Connections",
        ("a", "b"): "All Connections",
        ("b", ALL): "All Connections",
        ("b", "a"): "All Connections",
    }


def test_isolation_is_per_direction() -> None:
    deny_in = policy("deny-in", {"podSelector": sel("b"), "policyTypes": ["Ingress"]})
    b = pod("b")
    b["spec"]["hostNetwork"] = True  # netpol-analyzer evaluates hostNetwork pods like others
    got = conns([pod("a"), b, deny_in])
    assert ("a", "b") not in got and (ALL, "b") not in got
    assert got[("b", "a")] == "All Connections"  # egress of b is not isolated
    assert got[("b", ALL)] == "All Connections"


def test_empty_ingress_list_allows_nothing_and_absent_from_allows_all() -> None:
    deny = policy("deny", {"podSelector": sel("b"), "ingress": []})
    assert ("a", "b") not in conns([pod("a"), pod("b"), deny])
    open_rule = policy("open", {"podSelector": sel("b"), "ingress": [{}]})
    got = conns([pod("a"), pod("b"), open_rule])
    assert got[("a", "b")] == got[(ALL, "b")] == "All Connections"


def test_default_policy_types_include_egress_only_with_egress_rules() -> None:
    only_egress_rules = policy("e", {"podSelector": sel("a"), "egress": [{"to": []}]})
    got = conns([pod("a"), pod("b"), only_egress_rules])
    assert ("b", "a") not in got  # Ingress is always a default type: isolated, no rule
    assert got[("a", "b")] == "All Connections"  # Egress isolated, the rule allows all


def test_named_port_resolved_on_destination_with_its_protocol() -> None:
    ports = [
        {"name": "http", "containerPort": 8080},
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
    ]
    rule = {
        "ports": [
            {"port": "http"},
            {"port": "dns", "protocol": "TCP"},  # declared for UDP: no match
            {"port": "missing"},
        ]
    }
    ingress = policy("in", {"podSelector": sel("b"), "ingress": [rule]})
    got = conns([pod("a"), pod("b", ports=ports), ingress])
    assert got[("a", "b")] == got[(ALL, "b")] == "TCP 8080"


def test_named_port_in_egress_rule_uses_the_destination_pod() -> None:
    egress = policy(
        "out",
        {
            "podSelector": sel("a"),
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": "web"}]}],
        },
    )
    objs = [pod("a"), pod("b", ports=[{"name": "web", "containerPort": 80}]), pod("c"), egress]
    got = conns(objs)
    assert got[("a", "b")] == "TCP 80"
    assert ("a", "c") not in got and ("a", ALL) not in got  # no such port there


def test_end_port_range_and_adjacent_ports_merge() -> None:
    rule = {
        "ports": [
            {"port": 1000, "endPort": 1999},
            {"port": 2000},
            {"port": 53, "protocol": "UDP"},
            {"port": 54, "protocol": "UDP"},
        ]
    }
    got = conns([pod("a"), pod("b"), policy("p", {"podSelector": sel("b"), "ingress": [rule]})])
    assert got[("a", "b")] == "TCP 1000-2000,UDP 53-54"


def test_sctp_and_protocol_order() -> None:
    rule = {"ports": [{"protocol": "UDP"}, {"protocol": "SCTP", "port": 9}, {"port": 1}]}
    got = conns([pod("a"), pod("b"), policy("p", {"podSelector": sel("b"), "ingress": [rule]})])
    assert got[("a", "b")] == "SCTP 9,TCP 1,UDP 1-65535"


def test_and_within_a_peer_or_across_peers() -> None:
    team = {"kind": "Namespace", "metadata": {"name": "ns", "labels": {"team": "x"}}}
    objs = [team, pod("a"), pod("b"), pod("c"), pod("a", ns="other"), pod("c", ns="other")]

    def sources(entries: list) -> set[str]:
        p = policy("p", {"podSelector": sel("b"), "ingress": [{"from": entries}]})
        return {c.src for c in allowed_connections([*objs, p]) if c.dst == "ns/b[Pod]"}

    both = {"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": sel("a")}
    assert sources([both]) == {"ns/a[Pod]"}  # other/a has the pod label, not the ns label
    other_ns = {"namespaceSelector": {"matchLabels": {NAME_LABEL: "other"}}}
    assert sources([{"podSelector": sel("a")}, other_ns]) == {
        "ns/a[Pod]",  # podSelector alone: the policy's namespace
        "other/a[Pod]",
        "other/c[Pod]",
    }


def test_missing_namespace_has_its_name_label() -> None:
    by_name = {"namespaceSelector": {"matchLabels": {NAME_LABEL: "other"}}}
    p = policy("p", {"podSelector": sel("b"), "ingress": [{"from": [by_name]}]})
    got = conns([pod("a", ns="other"), pod("b"), p])
    assert got[("a", "b")] == "All Connections"
    assert build_cluster([pod("a", ns="other")]).namespaces["other"].labels == {NAME_LABEL: "other"}


def test_ip_block_except_cuts_the_external_space_and_never_matches_pods() -> None:
    block = {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
    p = policy(
        "p", {"podSelector": sel("b"), "ingress": [{"from": [block], "ports": [{"port": 443}]}]}
    )
    a = pod("a")
    a["status"] = {"podIP": "10.2.0.1", "podIPs": [{"ip": "10.2.0.1"}]}  # inside the block
    got = conns([a, pod("b"), p])
    assert got == {
        ("0.0.0.0-9.255.255.255[External]", "a"): "All Connections",
        ("10.0.0.0-10.0.255.255[External]", "a"): "All Connections",
        ("10.0.0.0-10.0.255.255[External]", "b"): "TCP 443",
        ("10.1.0.0-10.1.255.255[External]", "a"): "All Connections",
        ("10.2.0.0-10.255.255.255[External]", "a"): "All Connections",
        ("10.2.0.0-10.255.255.255[External]", "b"): "TCP 443",
        ("11.0.0.0-255.255.255.255[External]", "a"): "All Connections",
        ("a", ALL): "All Connections",  # destinations are cut by egress ipBlocks only
        ("b", ALL): "All Connections",
        ("b", "a"): "All Connections",
    }


def test_egress_ip_block_to_external_destinations() -> None:
    to = [{"ipBlock": {"cidr": "192.168.0.0/24"}}]
    p = policy("p", {"podSelector": sel("a"), "policyTypes": ["Egress"], "egress": [{"to": to}]})
    got = conns([pod("a"), pod("b"), p])
    assert {k: v for k, v in got.items() if k[0] == "a"} == {
        ("a", "192.168.0.0-192.168.0.255[External]"): "All Connections"
    }


def test_pods_grouped_by_controller_owner() -> None:
    def owned(name: str, kind: str | None, controller: bool = True) -> dict:
        p = pod(name, labels={"app": "web"})
        ref = {"name": "web-7d9", "controller": controller}
        if kind:
            ref["kind"] = kind
        p["metadata"]["ownerReferences"] = [ref]
        return p

    objs = [owned("web-7d9-x", "ReplicaSet"), owned("web-7d9-y", "ReplicaSet")]
    objs += [owned("static", "Node"), owned("free", "ReplicaSet", controller=False)]
    objs += [owned("kindless", None)]
    deploy = {
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {"template": {"metadata": {"labels": {"app": "api"}}}},
    }
    peers = [p.workload for p in build_cluster([*objs, deploy]).peers]
    assert peers == [
        "ns/web-7d9[ReplicaSet]",
        "ns/static[Pod]",
        "ns/free[Pod]",
        "ns/web-7d9[Pod]",
        "default/api[Deployment]",
    ]


def test_label_gap_refused_only_when_a_selector_splits_the_owner() -> None:
    def member(name: str, tier: str) -> dict:
        p = pod(name, labels={"app": "x", "tier": tier})
        p["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x", "controller": True}]
        return p

    objs = [member("x-1", "a"), member("x-2", "b"), pod("other")]
    common = policy("common", {"podSelector": sel("x"), "ingress": []})
    got = conns([*objs, common])  # the policy reads the app label, shared by both pods
    assert ("other", "x") not in got and got[("x", "other")] == "All Connections"
    split = policy("split", {"podSelector": {"matchLabels": {"tier": "a"}}, "ingress": []})
    with pytest.raises(LabelGapError, match="ns/x\\[ReplicaSet\\]"):
        allowed_connections([*objs, split])


def test_match_expressions() -> None:
    exprs = {
        "matchExpressions": [
            {"key": "app", "operator": "In", "values": ["a", "c"]},
            {"key": "tier", "operator": "NotIn", "values": ["db"]},
            {"key": "env", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ]
    }
    p = policy("p", {"podSelector": sel("b"), "ingress": [{"from": [{"podSelector": exprs}]}]})
    objs = [
        pod("a", labels={"app": "a", "env": "x"}),
        pod("c", labels={"app": "c", "env": "x", "tier": "db"}),
        pod("d", labels={"app": "a", "env": "x", "legacy": "1"}),
        pod("e", labels={"app": "a"}),
        pod("b"),
        p,
    ]
    sources = {c.src for c in allowed_connections(objs) if c.dst == "ns/b[Pod]"}
    assert sources == {"ns/a[Pod]"}


def test_connset_algebra_and_format() -> None:
    web = ConnSet.port("TCP", 80) | ConnSet.port("TCP", 81) | ConnSet.port("UDP", 53)
    assert str(web) == "TCP 80-81,UDP 53"
    assert str(ConnSet.all()) == "All Connections" and ConnSet.all().is_all
    assert str(ConnSet.all() - ConnSet.port("UDP", 5353)) == (
        "SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535"
    )
    assert web & ConnSet.port("TCP", 81, 100) == ConnSet.port("TCP", 81)
    assert web - ConnSet.port("TCP", 1, 65535) == ConnSet.port("UDP", 53)
    assert not ConnSet.none() and str(ConnSet.none()) == "No Connections"
    assert ConnSet.port("TCP", 81) <= web and not web <= ConnSet.port("TCP", 80, 81)
    assert web.contains("tcp", 81) and not web.contains("UDP", 54)
    assert ConnSet.of({"TCP": [(1, 65535)], "UDP": [(1, 65535)], "SCTP": [(1, 65535)]}).is_all
    assert hash(web) == hash(ConnSet.port("UDP", 53) | ConnSet.port("TCP", 80, 81))


def test_compare_before_after_of_a_proposed_policy() -> None:
    objs = [pod("a"), pod("b", ports=[{"name": "http", "containerPort": 8080}])]
    proposed = policy(
        "only-a", {"podSelector": sel("b"), "ingress": [{"from": [{"podSelector": sel("a")}]}]}
    )
    changes = {(c.src, c.dst): c for c in compare(objs, [proposed])}
    assert set(changes) == {(ALL, "ns/b[Pod]")}
    assert changes[(ALL, "ns/b[Pod]")].removed.is_all and not changes[(ALL, "ns/b[Pod]")].added
    after = connection_map(allowed_connections([*objs, proposed]))
    assert after[("ns/a[Pod]", "ns/b[Pod]")].is_all


def test_read_objects_lists_and_kindless_items(tmp_path: Path) -> None:
    pods = {"kind": "PodList", "items": [{"metadata": {"name": "p1", "namespace": "n"}}]}
    (tmp_path / "pods.json").write_text(json.dumps(pods))
    (tmp_path / "report.json").write_text(json.dumps([{"src": "a", "dst": "b", "conn": "x"}]))
    (tmp_path / "notes.md").write_text("not a manifest")
    docs = "kind: List\nitems:\n- kind: Namespace\n  metadata: {name: n}\n---\n"
    docs += "kind: Service\nmetadata: {name: s}\n"
    (tmp_path / "more.yaml").write_text(docs)
    objs = read_objects(tmp_path)
    assert [type(o).__name__ for o in objs] == ["Namespace", "Pod"]
    assert (
        connlist(objs)
        == f"{ALL} => n/p1[Pod] : All Connections\nn/p1[Pod] => {ALL} : All Connections\n"
    )
    assert parse_objects([{"kind": "ConfigMap"}]) == []
    assert External(0, 255).workload == "0.0.0.0-0.0.0.255[External]"


def test_effective_policy_types_default_as_the_api_server_does() -> None:
    from kforensics.netpol.model import effective_policy_types

    ingress, both = frozenset({"Ingress"}), frozenset({"Ingress", "Egress"})
    assert effective_policy_types({}) == ingress
    assert effective_policy_types({"policyTypes": [], "egress": []}) == ingress
    assert effective_policy_types({"egress": [{}]}) == both
    assert effective_policy_types({"policyTypes": [], "egress": [{}]}) == both
    assert effective_policy_types({"policyTypes": ["Egress"], "ingress": [{}]}) == {"Egress"}
    assert effective_policy_types({"policyTypes": "Ingress"}) == frozenset()  # never stored


def test_connlist_names_a_file_that_is_not_a_manifest(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kforensics.cli import main

    (tmp_path / "ok.yaml").write_text("kind: Namespace\nmetadata: {name: n}\n")
    (tmp_path / "bad.json").write_bytes(b'{"kind": "Pod", "metadata": \xff}')
    out = CliRunner().invoke(main, ["netpol", "connlist", str(tmp_path)])
    assert out.exit_code == 1
    assert f"Error: {tmp_path / 'bad.json'}: not a YAML or JSON manifest: " in out.output
    assert "Traceback" not in out.output
    (tmp_path / "bad.json").write_text("[" * 200 + "]" * 200)
    out = CliRunner().invoke(main, ["netpol", "connlist", str(tmp_path)])
    assert out.exit_code == 1
    assert out.output == (
        f"Error: {tmp_path / 'bad.json'}: nested deeper than 100 levels: not a Kubernetes object\n"
    )
