"""NetworkPolicy defaulting and validation against the API server's rules, and safe names."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kforensics.netpol.names import dns1123_label, dns1123_subdomain, label_value
from kforensics.netpol.validate import (
    default_network_policy,
    validate_network_policy,
    validate_object,
    validate_schema,
)

# Upstream's wording, spelled out here rather than imported so a drift in the module shows up.
SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
KEY_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
CIDR_RULE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
PORT_RANGE = "must be between 1 and 65535, inclusive"
SUBSET = "must be a strict subset of `cidr`"


def policy(spec: dict | None = None, **metadata: object) -> dict:
    """Return a NetworkPolicy in namespace prod selecting all pods, with spec fields added."""
    meta = {"name": "p", "namespace": "prod", **metadata}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {"podSelector": {}, **(spec or {})},
    }


def errors(spec: dict | None = None, **kwargs: object) -> list[str]:
    """Return the server's errors for policy(spec) after defaulting, as the server orders them."""
    return validate_network_policy(default_network_policy(policy(spec)), **kwargs)


def ingress_from(peer: dict) -> dict:
    return {"ingress": [{"from": [peer]}]}


def ingress_port(port: dict) -> dict:
    return {"ingress": [{"ports": [port]}]}


# --- valid policies -------------------------------------------------------------------------

VALID = {
    "default-deny": policy({"policyTypes": ["Ingress", "Egress"]}),
    "dns-egress": policy(
        {
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        }
    ),
    "ipblock-except": policy(
        ingress_from({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}})
    ),
    "ipv6-except": policy(
        ingress_from({"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}})
    ),
    "endport-range": policy(ingress_port({"protocol": "TCP", "port": 32000, "endPort": 32768})),
    "sctp": policy(ingress_port({"protocol": "SCTP", "port": 9899})),
    "named-port": policy(ingress_port({"port": "metrics"})),
    "selector-ops": policy(
        {
            "podSelector": {
                "matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["web", "api"]},
                    {"key": "example.com/quarantined", "operator": "DoesNotExist"},
                ]
            }
        }
    ),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_policies_pass_schema_and_server_validation(name: str) -> None:
    obj = VALID[name]
    assert validate_schema(obj) == []
    assert validate_network_policy(default_network_policy(obj)) == []
    assert validate_object(obj) == []
    assert validate_object(obj, version="1.37") == []


# --- defaulting -----------------------------------------------------------------------------


def test_defaulting_adds_policy_types_and_protocol_like_the_server() -> None:
    obj = policy({"ingress": [{"ports": [{"port": 80}, {"protocol": "UDP", "port": 53}]}]})
    out = default_network_policy(obj)
    assert out["spec"]["policyTypes"] == ["Ingress"]
    assert out["spec"]["ingress"][0]["ports"] == [
        {"port": 80, "protocol": "TCP"},
        {"protocol": "UDP", "port": 53},
    ]
    assert "policyTypes" not in obj["spec"]  # a copy, the input is untouched
    assert "protocol" not in obj["spec"]["ingress"][0]["ports"][0]


def test_defaulting_adds_egress_only_when_egress_rules_exist() -> None:
    with_egress = default_network_policy(policy({"egress": [{"ports": [{"port": 53}]}]}))
    assert with_egress["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert with_egress["spec"]["egress"][0]["ports"] == [{"port": 53, "protocol": "TCP"}]
    # upstream tests len(egress) != 0, so an empty list does not imply Egress
    assert default_network_policy(policy({"egress": []}))["spec"]["policyTypes"] == ["Ingress"]
    # an empty policyTypes is defaulted too; an explicit one is kept
    assert default_network_policy(policy({"policyTypes": []}))["spec"]["policyTypes"] == ["Ingress"]
    kept = default_network_policy(policy({"policyTypes": ["Egress"], "egress": [{}]}))
    assert kept["spec"]["policyTypes"] == ["Egress"]


# --- ipBlock --------------------------------------------------------------------------------

IPB = "spec.ingress[0].from[0].ipBlock"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"cidr": "999.1.1.1/33"}, [f'{IPB}.cidr: Invalid value: "999.1.1.1/33": {CIDR_RULE}']),
        ({"cidr": "10.0.0.0"}, [f'{IPB}.cidr: Invalid value: "10.0.0.0": {CIDR_RULE}']),
        ({"cidr": "fe80::/64%eth0"}, [f'{IPB}.cidr: Invalid value: "fe80::/64%eth0": {CIDR_RULE}']),
        ({"cidr": ""}, [f"{IPB}.cidr: Required value"]),
        (
            {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]},
            [f'{IPB}.except[0]: Invalid value: "192.168.0.0/16": {SUBSET}'],
        ),
        (
            {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]},
            [f'{IPB}.except[0]: Invalid value: "10.0.0.0/8": {SUBSET}'],
        ),
        (
            {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/8"]},
            [f'{IPB}.except[0]: Invalid value: "10.0.0.0/8": {SUBSET}'],
        ),
        (
            {"cidr": "10.0.0.0/8", "except": ["2001:db8::/64"]},
            [f'{IPB}.except[0]: Invalid value: "2001:db8::/64": {SUBSET}'],
        ),
        (
            {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "bogus"]},
            [f'{IPB}.except[1]: Invalid value: "bogus": {CIDR_RULE}'],
        ),
        # StrictIPCIDRValidation, on by default since 1.36
        (
            {"cidr": "10.0.0.1/8"},
            [f'{IPB}.cidr: Invalid value: "10.0.0.1/8": must not have bits set beyond the prefix '
             "length"],
        ),
        (
            {"cidr": "010.0.0.0/8"},
            [f'{IPB}.cidr: Invalid value: "010.0.0.0/8": must not have leading 0s in IP or prefix '
             "length"],
        ),
        (
            {"cidr": "::ffff:10.0.0.0/104"},
            [f'{IPB}.cidr: Invalid value: "::ffff:10.0.0.0/104": must not have an IPv4-mapped '
             "IPv6 address"],
        ),
    ],
)  # fmt: skip
def test_ip_block_errors(block: dict, expected: list[str]) -> None:
    assert errors(ingress_from({"ipBlock": block})) == expected


def test_sloppy_cidrs_pass_without_the_strict_gate() -> None:
    for cidr in ("10.0.0.1/8", "010.0.0.0/08", "::ffff:10.0.0.0/104", "00001::/16"):
        assert errors(ingress_from({"ipBlock": {"cidr": cidr}}), strict_cidr=False) == []
    assert errors(ingress_from({"ipBlock": {"cidr": "256.0.0.0/8"}}), strict_cidr=False) == [
        f'{IPB}.cidr: Invalid value: "256.0.0.0/8": {CIDR_RULE}'
    ]


# --- peers ----------------------------------------------------------------------------------


def test_peer_may_not_combine_ip_block_with_a_selector() -> None:
    peer = {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}
    assert errors(ingress_from(peer)) == [
        "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"
    ]
    both_selectors = {"podSelector": {}, "namespaceSelector": {}}
    assert errors(ingress_from(both_selectors)) == []


def test_empty_peer_is_rejected_in_both_directions() -> None:
    assert errors(ingress_from({})) == [
        "spec.ingress[0].from[0]: Required value: must specify a peer"
    ]
    assert errors({"egress": [{"to": [{"ipBlock": None}]}]}) == [
        "spec.egress[0].to[0]: Required value: must specify a peer"
    ]


# --- ports ----------------------------------------------------------------------------------

PORT = "spec.ingress[0].ports[0]"


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"protocol": "ICMP", "port": 1},
         [f'{PORT}.protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"']),
        ({"protocol": "tcp"},
         [f'{PORT}.protocol: Unsupported value: "tcp": supported values: "TCP", "UDP", "SCTP"']),
        ({"port": 8080, "endPort": 80},
         [f"{PORT}.endPort: Invalid value: 80: must be greater than or equal to `port`"]),
        ({"port": "http", "endPort": 90},
         [f"{PORT}.endPort: Invalid value: 90: may not be specified when `port` is non-numeric"]),
        ({"endPort": 90},
         [f"{PORT}.endPort: Invalid value: 90: may not be specified when `port` is not specified"]),
        ({"port": 80, "endPort": 70000}, [f"{PORT}.endPort: Invalid value: 70000: {PORT_RANGE}"]),
        ({"port": 0}, [f"{PORT}.port: Invalid value: 0: {PORT_RANGE}"]),
        ({"port": 65536}, [f"{PORT}.port: Invalid value: 65536: {PORT_RANGE}"]),
        ({"port": "abcdefghijklmnop"},
         [f'{PORT}.port: Invalid value: "abcdefghijklmnop": must be no more than 15 characters']),
        ({"port": "HTTP"},
         [f'{PORT}.port: Invalid value: "HTTP": must contain only alpha-numeric characters '
          "(a-z, 0-9), and hyphens (-)",
          f'{PORT}.port: Invalid value: "HTTP": must contain at least one letter (a-z)']),
        ({"port": "-a--b"},
         [f'{PORT}.port: Invalid value: "-a--b": must not contain consecutive hyphens',
          f'{PORT}.port: Invalid value: "-a--b": must not begin or end with a hyphen']),
        # a quoted number is a named port to the server
        ({"port": "80"},
         [f'{PORT}.port: Invalid value: "80": must contain at least one letter (a-z)']),
    ],
)  # fmt: skip
def test_port_errors(port: dict, expected: list[str]) -> None:
    assert errors(ingress_port(port)) == expected


# --- label selectors ------------------------------------------------------------------------

EXPR = "spec.podSelector.matchExpressions[0]"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "app", "operator": "Equals", "values": ["web"]},
         [f'{EXPR}.operator: Invalid value: "Equals": not a valid selector operator']),
        ({"key": "app", "operator": "In"},
         [f"{EXPR}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'"]),
        ({"key": "app", "operator": "NotIn", "values": []},
         [f"{EXPR}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'"]),
        ({"key": "app", "operator": "Exists", "values": ["web"]},
         [f"{EXPR}.values: Forbidden: may not be specified when `operator` is 'Exists' or "
          "'DoesNotExist'"]),
        ({"key": "app", "operator": "In", "values": ["-web"]},
         [f'{EXPR}.values[0]: Invalid value: "-web": {VALUE_RULE}']),
        ({"key": "bad key", "operator": "Exists"},
         [f'{EXPR}.key: Invalid value: "bad key": name part {KEY_RULE}']),
    ],
)  # fmt: skip
def test_label_selector_errors(expression: dict, expected: list[str]) -> None:
    assert errors({"podSelector": {"matchExpressions": [expression]}}) == expected


def test_match_labels_are_checked_in_peer_selectors() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"/team": "x" * 64}}}
    path = "spec.ingress[0].from[0].namespaceSelector.matchLabels"
    assert errors(ingress_from(peer)) == [
        f'{path}: Invalid value: "/team": prefix part must be non-empty',
        f'{path}: Invalid value: "{"x" * 64}": must be no more than 63 bytes',
    ]


# --- policyTypes ----------------------------------------------------------------------------


def test_policy_types_must_be_ingress_or_egress() -> None:
    assert errors({"policyTypes": ["Inbound"]}) == [
        'spec.policyTypes[0]: Unsupported value: "Inbound": supported values: "Ingress", "Egress"'
    ]


def test_duplicate_policy_types() -> None:
    # The server itself accepts a repeated type; only more than two entries is an error there.
    assert errors({"policyTypes": ["Ingress", "Ingress"]}) == []
    assert errors({"policyTypes": ["Ingress", "Ingress"]}, lint=True) == [
        'spec.policyTypes[1]: Duplicate value: "Ingress"'
    ]
    assert errors({"policyTypes": ["Ingress", "Egress", "Ingress"]}) == [
        'spec.policyTypes: Invalid value: []networking.PolicyType{"Ingress", "Egress", "Ingress"}: '
        "may not specify more than two policyTypes"
    ]
    # validate_object is the gate for what kforensics emits, so it lints
    assert validate_object(policy({"policyTypes": ["Egress", "Egress"]})) == [
        'spec.policyTypes[1]: Duplicate value: "Egress"'
    ]


# --- metadata -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"name": "Deny-All"}, [f'metadata.name: Invalid value: "Deny-All": {SUBDOMAIN_RULE}']),
        ({"name": "a" * 254},
         [f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters']),
        ({"name": ""}, ["metadata.name: Required value: name or generateName is required"]),
        ({"name": "deny..all"}, [f'metadata.name: Invalid value: "deny..all": {SUBDOMAIN_RULE}']),
        ({"name": "a\nb"}, [f'metadata.name: Invalid value: "a\\nb": {SUBDOMAIN_RULE}']),
        ({"name": "x\u200by"}, [f'metadata.name: Invalid value: "x\\u200by": {SUBDOMAIN_RULE}']),
        ({"name": "", "generateName": "deny-"}, []),
        ({"name": "", "generateName": "Deny-"},
         [f'metadata.generateName: Invalid value: "Deny-": {SUBDOMAIN_RULE}',
          f'metadata.name: Invalid value: "Deny-xxxxx": {SUBDOMAIN_RULE}']),
        ({"namespace": ""}, ["metadata.namespace: Required value"]),
        ({"namespace": "Prod"}, [f'metadata.namespace: Invalid value: "Prod": {LABEL_RULE}']),
        ({"namespace": "team.prod"},
         ['metadata.namespace: Invalid value: "team.prod": must not contain dots']),
        ({"labels": {"app": "web_"}}, [f'metadata.labels: Invalid value: "web_": {VALUE_RULE}']),
        ({"annotations": {"Example.COM/Owner": "ok", "a/b/c": "x"}},
         ['metadata.annotations: Invalid value: "a/b/c": a valid label key '
          f"{KEY_RULE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
        ({"annotations": {"big": "x" * (256 * 1024)}},
         ["metadata.annotations: Too long: must have at most 262144 bytes"]),
    ],
)  # fmt: skip
def test_metadata_errors(metadata: dict, expected: list[str]) -> None:
    obj = default_network_policy(policy(**metadata))
    assert validate_network_policy(obj) == expected


# --- schema and other kinds -----------------------------------------------------------------


def test_schema_rejects_unknown_fields_and_wrong_types() -> None:
    assert validate_schema(policy({"podSelectr": {}})) == [
        "spec: Additional properties are not allowed ('podSelectr' was unexpected)"
    ]
    assert validate_object(policy(ingress_port({"port": 1.5}))) == [
        "spec.ingress[0].ports[0].port: 1.5 is not valid under any of the given schemas",
        "spec.ingress[0].ports[0].port: Invalid type: expected integer or string",
    ]
    assert validate_schema({"kind": "NetworkPolicy"}) == ["apiVersion: Required value"]


def test_other_kinds_get_schema_and_metadata_checks() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quarantine"}}
    assert validate_object(namespace) == []
    namespace["metadata"] = {"name": "quarantine.x", "namespace": "default"}
    assert validate_object(namespace) == [
        'metadata.name: Invalid value: "quarantine.x": must not contain dots',
        "metadata.namespace: Forbidden: not allowed on this type",
    ]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"}
    assert validate_object({**role, "metadata": {"name": "system:deny"}}) == []
    assert validate_object({**role, "metadata": {"name": "a/b"}}) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evidence"}}
    assert validate_object(config) == ["metadata.namespace: Required value"]
    custom = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {}}
    assert validate_object(custom)[0] == (
        "Couldn't find schema for kind CiliumNetworkPolicy with api version cilium.io/v2 for "
        "kubernetes version 1.30"
    )


def test_hostile_structures_give_errors_not_exceptions() -> None:
    obj = policy({"ingress": "everything", "egress": [None, {"to": [[]], "ports": [7]}]})
    assert validate_network_policy(default_network_policy(obj)) == [
        "spec.ingress: Invalid type: expected array",
        "spec.egress[1].ports[0]: Invalid type: expected object",
        "spec.egress[1].to[0]: Invalid type: expected object",
        "spec.egress[1].to[0]: Required value: must specify a peer",
    ]
    huge = policy(ingress_from({"ipBlock": {"cidr": "1" * 200_000 + "/8"}}), name="a-" * 100_000)
    started = time.monotonic()
    assert len(validate_network_policy(huge)) == 3
    assert time.monotonic() - started < 2


# --- names from attacker-controlled text ----------------------------------------------------

HOSTILE = ["<script>", "ünïcødé", "Ünïcødé", "x" * 300, "x" * 301, "", "..", ".", "-a-", "a"]
HOSTILE += ["A", "a--b", "kube-system", "Kube System", "a.b", "a..b", "a" * 63, "\ud800", "日本"]


def test_name_helpers_give_valid_distinct_names() -> None:
    for helper, check, max_len in (
        (dns1123_label, "[a-z0-9]([-a-z0-9]*[a-z0-9])?", 63),
        (
            dns1123_subdomain,
            r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            253,
        ),
        (label_value, "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", 63),
    ):
        names = [helper(text) for text in HOSTILE]
        assert len(set(names)) == len(HOSTILE), helper.__name__
        for text, name in zip(HOSTILE, names, strict=True):
            assert re.fullmatch(check, name) and len(name) <= max_len, (helper.__name__, text)
            assert name or helper is label_value


def test_name_helpers_keep_valid_names_and_mark_rewritten_ones() -> None:
    assert dns1123_label("kube-system") == "kube-system"
    assert dns1123_subdomain("deny.kube-system") == "deny.kube-system"
    assert label_value("My_Value.1") == "My_Value.1"
    assert label_value("") == ""
    assert dns1123_label("Evil Pod", prefix="kf-deny-") == "kf-deny-evil-pod--e7ls4mvatn"
    assert dns1123_label("<script>") == "script--lnr6lmqjp7"
    assert dns1123_label("") == "x--4oymiquy7q"
    assert dns1123_subdomain("..") == "x--l3a7pzya6n"
    assert label_value("-a-") == "a--u5nendzm4u"
    assert len(dns1123_label("x" * 300)) == 63
    assert len(dns1123_subdomain("x" * 300, max_len=100)) == 100
    # a valid input that looks like a rewritten name is rewritten too, so it cannot collide
    taken = dns1123_label("<script>")
    assert dns1123_label(taken) != taken
    with pytest.raises(ValueError):
        dns1123_label("a", max_len=64)
    with pytest.raises(ValueError):
        dns1123_label("a", max_len=12)


def test_name_helpers_are_stable_across_processes() -> None:
    code = (
        "from kforensics.netpol.names import dns1123_label, dns1123_subdomain, label_value;"
        "print(dns1123_label('<script>'), dns1123_subdomain('Ünï..cødé'), label_value('x' * 80))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {
        f"{dns1123_label('<script>')} {dns1123_subdomain('Ünï..cødé')} {label_value('x' * 80)}\n"
    }
