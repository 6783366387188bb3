"""The sensitive-workloads file: every shape it takes, every mistake named by file and line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics.errors import SensitiveError
from kforensics.sensitive.declare import (
    MAX_BYTES,
    Declaration,
    Selector,
    from_value,
    load_file,
    load_text,
)
from kforensics.untrusted import visible

# Upstream's wording, spelled out here rather than imported so a drift in names.py shows up.
NS_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
NAME_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
KEY_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
USE = "(use namespaces, selectors, secrets, workloads)"
KINDS = "Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod"
NO_ALIASES = (
    "YAML anchors and aliases are not accepted in a sensitive-workloads file: write the names out"
)
DB = Selector({"matchLabels": {"tier": "database"}})
PCI_IN_SHOP = Selector(
    {"matchExpressions": [{"key": "pci", "operator": "In", "values": ["true"]}]}, "shop"
)
SAMPLE = """\
namespaces: [payments]
selectors:
  - tier: database
  - {namespace: shop, matchExpressions: [{key: pci, operator: In, values: ["true"]}]}
secrets: [payments/payments-db-credentials]
workloads: [kube-system/DaemonSet/kube-proxy]
"""


def refused(text: str, source: str = "f.yaml") -> str:
    """Return the message load_text raises for text (failing the test when it loads)."""
    with pytest.raises(SensitiveError) as info:
        load_text(text, source)
    return str(info.value)


def raw_controls(message: str) -> bool:
    """Return whether message holds a character `visible` would escape."""
    return visible(message) != message


# --- the good shapes ---------------------------------------------------------------------------


def test_the_docstring_example_loads_every_section() -> None:
    got = load_text(SAMPLE, "sensitive.yaml")
    assert got.namespaces == ("payments",)
    assert got.selectors == (DB, PCI_IN_SHOP)
    assert got.secrets == (("payments", "payments-db-credentials"),)
    assert got.workloads == (("kube-system", "DaemonSet", "kube-proxy"),)
    assert got.source == "sensitive.yaml"
    assert not got.empty


def test_shorthand_selector_is_its_match_labels_all_of_them() -> None:
    got = load_text("selectors:\n  - {tier: database, app: db}\n  - {team: ''}")
    assert got.selectors == (
        Selector({"matchLabels": {"tier": "database", "app": "db"}}),
        Selector({"matchLabels": {"team": ""}}),  # an empty label value is a valid one
    )


def test_shorthand_may_carry_a_label_called_namespace_beside_others() -> None:
    got = load_text("selectors: [{namespace: shop, tier: db}]")
    assert got.selectors == (Selector({"matchLabels": {"namespace": "shop", "tier": "db"}}),)


def test_full_label_selector_with_both_terms_and_a_namespace() -> None:
    text = """\
selectors:
  - namespace: shop
    matchLabels: {example.com/tier: database}
    matchExpressions:
      - {key: pci, operator: NotIn, values: ["false", "no"]}
      - {key: legacy, operator: DoesNotExist}
      - {key: owner, operator: Exists}
"""
    (got,) = load_text(text).selectors
    assert got == Selector(
        {
            "matchLabels": {"example.com/tier": "database"},
            "matchExpressions": [
                {"key": "pci", "operator": "NotIn", "values": ["false", "no"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "owner", "operator": "Exists"},
            ],
        },
        "shop",
    )


def test_label_selector_without_namespace_selects_in_every_namespace() -> None:
    (got,) = load_text("selectors: [{matchLabels: {app: api}}]").selectors
    assert got == Selector({"matchLabels": {"app": "api"}}, None)


def test_secrets_and_workloads_split_on_slashes_and_dotted_names_are_fine() -> None:
    got = load_text(
        "secrets: [payments/db.credentials, kube-system/etcd-backup-s3]\n"
        "workloads: [shop/Deployment/api.v2, shop/CronJob/nightly, default/Pod/debug-0]"
    )
    assert got.secrets == (("payments", "db.credentials"), ("kube-system", "etcd-backup-s3"))
    assert got.workloads == (
        ("shop", "Deployment", "api.v2"),
        ("shop", "CronJob", "nightly"),
        ("default", "Pod", "debug-0"),
    )


def test_repeated_names_are_kept_once_in_first_order() -> None:
    got = load_text(
        "namespaces: [b, a, b]\nsecrets: [a/x, a/x]\nworkloads: [a/Job/j, a/Job/j, a/Pod/j]"
    )
    assert got.namespaces == ("b", "a")
    assert got.secrets == (("a", "x"),)
    assert got.workloads == (("a", "Job", "j"), ("a", "Pod", "j"))


@pytest.mark.parametrize(
    "text",
    ["", "\n", "# nothing declared yet\n", "{}", "secrets:", "secrets: ~", "namespaces: []"],
)
def test_nothing_declared_is_an_empty_declaration(text: str) -> None:
    got = load_text(text, "empty.yaml")
    assert got == Declaration()
    assert got.empty
    assert got.source == "empty.yaml"


def test_a_byte_order_mark_and_crlf_lines_are_read() -> None:
    assert load_text("\ufeffnamespaces:\r\n  - payments\r\n").namespaces == ("payments",)


def test_a_str_tag_makes_a_number_text() -> None:
    assert load_text("selectors: [{port: !!str 5432}]").selectors == (
        Selector({"matchLabels": {"port": "5432"}}),
    )


def test_equality_ignores_the_source() -> None:
    assert load_text(SAMPLE, "a.yaml") == load_text(SAMPLE, "b.yaml")
    assert load_text(SAMPLE) != load_text("namespaces: [payments]")


def test_round_trip_through_to_yaml() -> None:
    declared = load_text(
        SAMPLE.replace("selectors:", "selectors:\n  - {pci: 'true', port: '5432', a: ''}")
    )
    assert len(declared.selectors) == 3
    again = load_text(declared.to_yaml(), "again.yaml")
    assert again == declared
    assert [s.selector for s in again.selectors] == [s.selector for s in declared.selectors]


def test_to_yaml_quotes_what_would_read_as_another_type() -> None:
    declared = Declaration(selectors=(Selector({"matchLabels": {"pci": "true", "port": "5432"}}),))
    assert declared.to_yaml() == "selectors:\n- matchLabels:\n    pci: 'true'\n    port: '5432'\n"
    assert load_text(declared.to_yaml()) == declared


def test_to_dict_is_the_file_shape_and_empty_is_an_empty_mapping() -> None:
    assert load_text(SAMPLE).to_dict() == {
        "namespaces": ["payments"],
        "selectors": [
            {"matchLabels": {"tier": "database"}},
            {
                "matchExpressions": [{"key": "pci", "operator": "In", "values": ["true"]}],
                "namespace": "shop",
            },
        ],
        "secrets": ["payments/payments-db-credentials"],
        "workloads": ["kube-system/DaemonSet/kube-proxy"],
    }
    assert Declaration().to_yaml() == "{}\n"
    assert load_text(Declaration().to_yaml()) == Declaration()


# --- Selector.matches and describe ----------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        ("any", {"tier": "database"}, True),
        ("any", {"tier": "database", "app": "x"}, True),
        ("any", {"tier": "web"}, False),
        ("any", {}, False),
    ],
)
def test_match_labels_selector_matches(namespace: str, labels: dict, expected: bool) -> None:
    assert DB.matches(namespace, labels) is expected


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        ("shop", {"pci": "true"}, True),
        ("shop", {"pci": "false"}, False),
        ("shop", {}, False),
        ("payments", {"pci": "true"}, False),  # the right labels in another namespace
    ],
)
def test_namespaced_expression_selector_matches(
    namespace: str, labels: dict, expected: bool
) -> None:
    assert PCI_IN_SHOP.matches(namespace, labels) is expected


def test_exists_notin_and_doesnotexist_match_as_kubernetes_does() -> None:
    (sel,) = load_text(
        "selectors: [{matchExpressions: [{key: owner, operator: Exists},"
        " {key: env, operator: NotIn, values: [dev]}, {key: legacy, operator: DoesNotExist}]}]"
    ).selectors
    assert sel.matches("a", {"owner": "x"}) is True
    assert sel.matches("a", {"owner": "x", "env": "prod"}) is True
    assert sel.matches("a", {"owner": "x", "env": "dev"}) is False
    assert sel.matches("a", {"owner": "x", "legacy": ""}) is False
    assert sel.matches("a", {"env": "prod"}) is False


def test_describe_writes_selectors_as_a_person_does() -> None:
    assert DB.describe() == "tier=database"
    assert PCI_IN_SHOP.describe() == "pci In (true) in shop"
    both = Selector(
        {
            "matchLabels": {"tier": "db", "app": "pay"},
            "matchExpressions": [
                {"key": "env", "operator": "NotIn", "values": ["dev", "test"]},
                {"key": "owner", "operator": "Exists"},
            ],
        },
        "payments",
    )
    assert both.describe() == "app=pay, tier=db, env NotIn (dev,test), owner Exists in payments"


# --- mistakes, each with its file and line ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: []", f"f.yaml: line 1: unknown key 'bogus' {USE}"),
        ("namespaces: [a]\nNamespaces: [b]", f"f.yaml: line 2: unknown key 'Namespaces' {USE}"),
        (
            "namespaces: []\n\nnamespaces: [a]",
            "f.yaml: line 3: the file: namespaces is given twice",
        ),
        ("- payments", "f.yaml: line 1: the file must be a mapping, not a list"),
        ("payments", "f.yaml: line 1: the file must be a mapping, not a text"),
        ("42", "f.yaml: line 1: the file must be a mapping, not a number or boolean"),
        ("? [a]\n: b", "f.yaml: line 1: a key of the file must be text, not a list"),
        ("1: [a]", "f.yaml: line 1: a key of the file must be text: quote it ('1' reads as int)"),
        ("namespaces: payments", "f.yaml: line 1: namespaces must be a list, not a text"),
        ("secrets:\n  a: b", "f.yaml: line 2: secrets must be a list, not a mapping"),
        ("workloads: 3", "f.yaml: line 1: workloads must be a list, not a number or boolean"),
        ("selectors: {tier: db}", "f.yaml: line 1: selectors must be a list, not a mapping"),
        ("namespaces: [[a]]", "f.yaml: line 1: namespaces entry 1 must be text, not a list"),
        (
            "namespaces:\n  - a\n  - 1",
            "f.yaml: line 3: namespaces entry 2 must be text: quote it ('1' reads as int)",
        ),
        (
            "namespaces: [~]",
            "f.yaml: line 1: namespaces entry 1 must be text: quote it ('~' reads as null)",
        ),
        (
            "namespaces: [Payments]",
            f"f.yaml: line 1: namespaces entry 1 'Payments' is no namespace name: {NS_RULE}",
        ),
        (
            "namespaces: [a.b]",
            "f.yaml: line 1: namespaces entry 1 'a.b' is no namespace name: must not contain dots",
        ),
        (
            "namespaces: [" + "a" * 64 + "]",
            f"f.yaml: line 1: namespaces entry 1 '{'a' * 64}' is no namespace name: "
            "must be no more than 63 characters",
        ),
    ],
)
def test_file_and_list_mistakes(text: str, message: str) -> None:
    assert refused(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "selectors:\n  - pci: true",
            "f.yaml: line 2: selectors entry 1: the value of pci must be text: "
            "quote it ('true' reads as bool)",
        ),
        (
            "selectors:\n  - {tier: db}\n  - port: 5432",
            "f.yaml: line 3: selectors entry 2: the value of port must be text: "
            "quote it ('5432' reads as int)",
        ),
        (
            "selectors: [{matchLabels: {pci: yes}}]",
            "f.yaml: line 1: selectors entry 1: matchLabels: the value of pci must be text: "
            "quote it ('yes' reads as bool)",
        ),
        (
            "selectors: [{tier: [a]}]",
            "f.yaml: line 1: selectors entry 1: the value of tier must be text, not a list",
        ),
        (
            "selectors:\n  - 'bad key!': x",
            f"f.yaml: line 2: selectors entry 1: 'bad key!' is no label key: {KEY_RULE}",
        ),
        (
            "selectors:\n  - tier: 'bad value!'",
            f"f.yaml: line 2: selectors entry 1: 'bad value!' is no label value: {VALUE_RULE}",
        ),
        (
            "selectors: [{tier: a, tier: b}]",
            "f.yaml: line 1: selectors entry 1: tier is given twice",
        ),
        (
            "selectors: [tier]",
            "f.yaml: line 1: selectors entry 1 must be a mapping, not a text",
        ),
        (
            "selectors:\n  - {}",
            "f.yaml: line 2: selectors entry 1 is empty: it would select every pod "
            "(name the namespace)",
        ),
        (
            "selectors:\n  - {namespace: shop}",
            "f.yaml: line 2: selectors entry 1 has no term: it would select every pod "
            "(list the namespace under namespaces)",
        ),
        (
            "selectors:\n  - {namespace: shop, matchLabels: {}}",
            "f.yaml: line 2: selectors entry 1 has no term: it would select every pod",
        ),
        (
            "selectors:\n  - {namespace: shop, matchLabels: {}, matchExpressions: []}",
            "f.yaml: line 2: selectors entry 1 has no term: it would select every pod",
        ),
        (
            "selectors: [{matchLabels: {a: b}, namespace: Shop}]",
            f"f.yaml: line 1: selectors entry 1: namespace 'Shop' is no namespace name: {NS_RULE}",
        ),
        (
            "selectors: [{matchLabels: {a: b}, foo: 1}]",
            "f.yaml: line 1: selectors entry 1: unknown key 'foo' "
            "(a LabelSelector takes matchLabels, matchExpressions and namespace)",
        ),
        (
            "selectors: [{matchLabels: null, matchExpressions: [{key: a, operator: Exists}]}]",
            "f.yaml: line 1: selectors entry 1: matchLabels must be a mapping, "
            "not a number or boolean",
        ),
        (
            "selectors: [{matchExpressions: {key: a}}]",
            "f.yaml: line 1: selectors entry 1: matchExpressions must be a list, not a mapping",
        ),
    ],
)
def test_selector_mistakes(text: str, message: str) -> None:
    assert refused(text) == message


EXPR = "f.yaml: line 3: selectors entry 1: matchExpressions entry 1"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("{key: a, operator: In}", f"{EXPR}: In needs values"),
        ("{key: a, operator: NotIn, values: []}", f"{EXPR}: NotIn needs values"),
        ("{key: a, operator: Exists, values: [x]}", f"{EXPR}: Exists takes no values"),
        ("{key: a, operator: DoesNotExist, values: [x]}", f"{EXPR}: DoesNotExist takes no values"),
        (
            "{key: a, operator: Like}",
            f"{EXPR}: operator must be one of In, NotIn, Exists, DoesNotExist",
        ),
        (
            "{key: a, operator: in, values: [x]}",
            f"{EXPR}: operator must be one of In, NotIn, Exists, DoesNotExist",
        ),
        ("{key: a}", f"{EXPR}: needs key and operator"),
        ("{operator: Exists}", f"{EXPR}: needs key and operator"),
        ("{key: a, operator: Exists, value: x}", f"{EXPR}: unknown key 'value'"),
        ("{key: a, operator: In, values: x}", f"{EXPR}: values must be a list, not a text"),
        (
            "{key: a, operator: In, values: [true]}",
            f"{EXPR}: a value must be text: quote it ('true' reads as bool)",
        ),
        ("{key: 'a b', operator: Exists}", f"{EXPR}: 'a b' is no label key: {KEY_RULE}"),
        ("{key: a, operator: In, values: ['-x']}", f"{EXPR}: '-x' is no label value: {VALUE_RULE}"),
        ("{key: a, key: b, operator: Exists}", f"{EXPR}: key is given twice"),
        ("[a, Exists]", f"{EXPR} must be a mapping, not a list"),
    ],
)
def test_match_expression_mistakes(expression: str, message: str) -> None:
    assert refused(f"selectors:\n  - matchExpressions:\n      - {expression}") == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("secrets: [nons]", "f.yaml: line 1: secrets entry 1 'nons': write NAMESPACE/NAME"),
        (
            "secrets:\n  - a/b\n  - [a, b]",
            "f.yaml: line 3: secrets entry 2 must be text, not a list",
        ),
        (
            "secrets: [Bad/x]",
            f"f.yaml: line 1: secrets entry 1: namespace 'Bad' is no namespace name: {NS_RULE}",
        ),
        (
            "secrets: [/x]",
            f"f.yaml: line 1: secrets entry 1: namespace '' is no namespace name: {NS_RULE}",
        ),
        (
            "secrets: [ns/Bad_Name]",
            f"f.yaml: line 1: secrets entry 1: 'Bad_Name' is no secret name: {NAME_RULE}",
        ),
        (
            "secrets: [ns/a/b]",
            f"f.yaml: line 1: secrets entry 1: 'a/b' is no secret name: {NAME_RULE}",
        ),
        (
            "workloads: [ns/Pod]",
            "f.yaml: line 1: workloads entry 1 'ns/Pod': write NAMESPACE/KIND/NAME",
        ),
        (
            "workloads: [ns/Pod/a/b]",
            "f.yaml: line 1: workloads entry 1 'ns/Pod/a/b': write NAMESPACE/KIND/NAME",
        ),
        (
            "workloads:\n  - ns/Deploy/x",
            f"f.yaml: line 2: workloads entry 1: kind 'Deploy' is not one of {KINDS}",
        ),
        (
            "workloads: [ns/deployment/x]",
            f"f.yaml: line 1: workloads entry 1: kind 'deployment' is not one of {KINDS}",
        ),
        (
            "workloads: [NS/Pod/x]",
            f"f.yaml: line 1: workloads entry 1: namespace 'NS' is no namespace name: {NS_RULE}",
        ),
        (
            "workloads: [ns/Pod/Bad_N]",
            f"f.yaml: line 1: workloads entry 1: 'Bad_N' is no Pod name: {NAME_RULE}",
        ),
    ],
)
def test_secret_and_workload_mistakes(text: str, message: str) -> None:
    assert refused(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "namespaces: [a\nsecrets: b",
            "f.yaml: line 2: not readable YAML: while parsing a flow sequence, "
            "expected ',' or ']', but got ':'",
        ),
        (
            "namespaces:\n  - a\n  b: :",
            "f.yaml: line 3: not readable YAML: while parsing a block collection, "
            "expected <block end>, but found '?'",
        ),
        (
            "namespaces:\n\t- a",
            "f.yaml: line 2: not readable YAML: while scanning for the next token, "
            "found character '\\t' that cannot start any token",
        ),
        (
            "namespaces: [a]\n---\nsecrets: [a/b]",
            "f.yaml: line 2: not readable YAML: expected a single document in the stream, "
            "but found another document",
        ),
        (
            'namespaces: ["a\\q"]',
            "f.yaml: line 1: not readable YAML: while scanning a double-quoted scalar, "
            "found unknown escape character 'q'",
        ),
        ("namespaces: [a]\n\n\x00", "f.yaml: line 3: not readable YAML: #x0000 is not allowed"),
        ("namespaces: [a]\r\n\x1b[2J", "f.yaml: line 2: not readable YAML: #x001b is not allowed"),
        ("[" * 50000, "f.yaml: line 1: nested more than 100 levels deep: not a declaration"),
    ],
)
def test_unreadable_yaml_names_the_line(text: str, message: str) -> None:
    assert refused(text) == message


def test_anchors_and_aliases_are_refused_where_they_start() -> None:
    assert refused("namespaces: &ns [a]\nsecrets: [a/b]") == f"f.yaml: line 1: {NO_ALIASES}"
    assert refused("namespaces: [a]\nsecrets: *ns") == f"f.yaml: line 2: {NO_ALIASES}"
    assert refused("namespaces:\n  - &n a") == f"f.yaml: line 2: {NO_ALIASES}"


def test_billion_laughs_is_refused_before_anything_expands() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    started = time.perf_counter()
    assert refused("\n".join(lines)) == f"f.yaml: line 1: {NO_ALIASES}"
    assert time.perf_counter() - started < 1.0


def test_aliases_hidden_past_the_first_entries_are_still_refused() -> None:
    text = "namespaces: [" + ", ".join(["a"] * 500) + ", &x b]\nsecrets: *x"
    assert refused(text) == f"f.yaml: line 1: {NO_ALIASES}"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100000,  # unclosed: the scanner once spent 216 s here
        "[" * 100000 + "]" * 100000,
        "namespaces: " + "{a: " * 100000,
        "- " * 100000,
    ],
)
def test_deep_nesting_is_refused_quickly_without_recursion_error(text: str) -> None:
    started = time.perf_counter()
    assert refused(text) == "f.yaml: line 1: nested more than 100 levels deep: not a declaration"
    assert time.perf_counter() - started < 5.0


def test_deep_block_nesting_names_the_line_past_the_limit() -> None:
    text = "".join(" " * i + "a:\n" for i in range(150))
    assert refused(text) == "f.yaml: line 101: nested more than 100 levels deep: not a declaration"


def test_nesting_at_the_limit_reaches_the_shape_check() -> None:
    assert (
        refused("[" * 100 + "]" * 100) == "f.yaml: line 1: the file must be a mapping, not a list"
    )


def test_max_entries_in_a_list_is_accepted_one_more_refused() -> None:
    names = [f"ns{i}" for i in range(10_000)]
    assert load_text(f"namespaces: [{', '.join(names)}]").namespaces == tuple(names)
    text = f"secrets: []\nnamespaces: [{', '.join(names)}, one-more]"
    assert refused(text) == "f.yaml: line 2: more than 10000 entries in one list or mapping"


def test_max_entries_counts_mapping_pairs_too() -> None:
    labels = ", ".join(f"k{i}: v" for i in range(10_001))
    message = "f.yaml: line 2: more than 10000 entries in one list or mapping"
    assert refused(f"selectors:\n  - {{{labels}}}") == message


def test_a_megabyte_list_is_refused_while_parsing_not_after() -> None:
    started = time.perf_counter()
    text = "namespaces: [" + ",".join(["a"] * 500_000) + "]"
    assert refused(text) == "f.yaml: line 1: more than 10000 entries in one list or mapping"
    assert time.perf_counter() - started < 3.0


# --- hostile names: shown escaped, never raw ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"\\e[2Jx": []', f"f.yaml: line 1: unknown key '\\x1b[2Jx' {USE}"),
        # a key that really holds a backslash is told apart from one holding ESC
        ("'\\x1b[2Jx': []", f"f.yaml: line 1: unknown key '\\\\x1b[2Jx' {USE}"),
        (
            'namespaces: ["pay\\u202eyap"]',
            f"f.yaml: line 1: namespaces entry 1 'pay\\u202eyap' is no namespace name: {NS_RULE}",
        ),
        (
            'namespaces: ["a\\u2028b"]',
            f"f.yaml: line 1: namespaces entry 1 'a\\u2028b' is no namespace name: {NS_RULE}",
        ),
        (
            'selectors:\n  - "a\\nb": x',
            f"f.yaml: line 2: selectors entry 1: 'a\\nb' is no label key: {KEY_RULE}",
        ),
        (
            'selectors: [{"a\\e": x, "a\\e": y}]',
            "f.yaml: line 1: selectors entry 1: a\\x1b is given twice",
        ),
        (
            'selectors: [{tier: "db\\u202e"}]',
            f"f.yaml: line 1: selectors entry 1: 'db\\u202e' is no label value: {VALUE_RULE}",
        ),
        (
            'selectors: [{matchLabels: {a: b}, "\\e]0;x\\a": 1}]',
            "f.yaml: line 1: selectors entry 1: unknown key '\\x1b]0;x\\x07' "
            "(a LabelSelector takes matchLabels, matchExpressions and namespace)",
        ),
        (
            'selectors: [{matchExpressions: [{key: a, operator: Exists, "\\N": 1}]}]',
            "f.yaml: line 1: selectors entry 1: matchExpressions entry 1: unknown key '\\x85'",
        ),
        (
            'workloads: ["ns/Dep\\u202eloyment/x"]',
            f"f.yaml: line 1: workloads entry 1: kind 'Dep\\u202eloyment' is not one of {KINDS}",
        ),
        (
            'secrets: ["ns\\ufeff"]',
            "f.yaml: line 1: secrets entry 1 'ns\\ufeff': write NAMESPACE/NAME",
        ),
        # %-escapes in a verbatim tag decode to any character, ESC included
        (
            "namespaces: [!<%1B%5B31m> x]",
            "f.yaml: line 1: namespaces entry 1 must be text: quote it ('x' reads as \\x1b[31m)",
        ),
    ],
)
def test_hostile_names_are_escaped_in_messages(text: str, message: str) -> None:
    got = refused(text)
    assert got == message
    assert not raw_controls(got)


def test_source_name_is_escaped_and_never_rewritten() -> None:
    assert (
        refused("bogus: 1", "evil\x1b[2J.yaml")
        == f"evil\\x1b[2J.yaml: line 1: unknown key 'bogus' {USE}"
    )
    assert refused("bogus: 1", "a:: b") == f"a:: b: line 1: unknown key 'bogus' {USE}"
    assert refused("[", "x\n.yaml").startswith("x\\x0a.yaml: line 1: not readable YAML: ")


def test_a_key_holding_double_colons_is_shown_as_written() -> None:
    assert refused("'a:: b': 1") == f"f.yaml: line 1: unknown key 'a:: b' {USE}"


def test_python_tags_are_never_constructed() -> None:
    assert refused("namespaces:\n  - !!python/object/apply:os.system [echo hi]") == (
        "f.yaml: line 2: namespaces entry 1 must be text, not a list"
    )
    assert refused("namespaces: [!!python/name:os.system x]") == (
        "f.yaml: line 1: namespaces entry 1 must be text: quote it ('x' reads as os.system)"
    )


# --- load_file ----------------------------------------------------------------------------------


def test_load_file_reads_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sensitive.yaml"
    path.write_text(SAMPLE)
    got = load_file(path)
    assert got == load_text(SAMPLE)
    assert got.source == str(path)
    assert load_file(str(path)) == got


def test_load_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("namespaces: [a]\nbogus: 1\n")
    with pytest.raises(SensitiveError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: line 2: unknown key 'bogus' {USE}"


def test_a_file_of_exactly_max_bytes_is_read(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    head = "namespaces: [a]\n# "
    path.write_text(head + "x" * (MAX_BYTES - len(head) - 1) + "\n")
    assert path.stat().st_size == MAX_BYTES == 1 << 20
    assert load_file(path).namespaces == ("a",)


def test_a_file_larger_than_a_mib_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.truncate(1 << 40)  # sparse: reading it all would exhaust memory
    started = time.perf_counter()
    with pytest.raises(SensitiveError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: larger than 1 MiB: not a declaration"
    assert time.perf_counter() - started < 2.0


def test_one_byte_past_max_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(SensitiveError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: larger than 1 MiB: not a declaration"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"namespaces: [a]\n\xff\n", "line 2: not UTF-8 text"),
        (b"namespaces: [caf\xe9]", "line 1: not UTF-8 text"),
        (b"a: 1\n\n\n\xed\xa0\x80", "line 4: not UTF-8 text"),  # an encoded surrogate
        (b"namespaces: [a]\n\x00\n", "line 2: a NUL byte: not YAML text"),
        (b"namespaces:\n  - a\n  - b\x00", "line 3: a NUL byte: not YAML text"),
        (b"namespaces: [a]\n\x1b[2J\n", "line 2: not readable YAML: #x001b is not allowed"),
    ],
)
def test_bad_bytes_name_the_line(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    with pytest.raises(SensitiveError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: {message}"


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SensitiveError) as info:
        load_file(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"


def test_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SensitiveError) as info:
        load_file(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read: Is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_a_file_without_read_permission(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("namespaces: [a]\n")
    path.chmod(0)
    try:
        with pytest.raises(SensitiveError) as info:
            load_file(path)
    finally:
        path.chmod(0o600)
    assert str(info.value) == f"{path}: cannot read: Permission denied"


def test_a_path_with_a_nul_byte_or_control_characters(tmp_path: Path) -> None:
    with pytest.raises(SensitiveError) as info:
        load_file("sens\x00itive.yaml")
    assert str(info.value) == "sens\\x00itive.yaml: cannot read: embedded null byte"
    path = tmp_path / "a\x1b[31m\nb.yaml"
    path.write_text("bogus: 1")
    with pytest.raises(SensitiveError) as info:
        load_file(path)
    assert str(info.value) == f"{tmp_path}/a\\x1b[31m\\x0ab.yaml: line 1: unknown key 'bogus' {USE}"


# --- from_value ---------------------------------------------------------------------------------


def test_from_value_passes_a_declaration_through() -> None:
    declared = load_text(SAMPLE)
    assert from_value(declared) is declared


def test_from_value_reads_a_dict_in_the_file_shape() -> None:
    got = from_value({"namespaces": ["payments"], "selectors": [{"tier": "database"}]})
    assert got == Declaration(namespaces=("payments",), selectors=(DB,))
    assert got.source == "the sensitive parameter"


def test_from_value_dict_mistakes_name_the_parameter() -> None:
    with pytest.raises(SensitiveError) as info:
        from_value({"selectors": [{"pci": True}]})
    assert str(info.value) == (
        "the sensitive parameter: line 2: selectors entry 1: the value of pci must be text: "
        "quote it ('true' reads as bool)"
    )


def test_from_value_dict_may_reuse_one_list() -> None:
    shared = [{"tier": "database"}]
    got = from_value({"selectors": shared + shared, "namespaces": ["a"]})
    assert got == Declaration(namespaces=("a",), selectors=(DB, DB))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"namespaces": [object()]},
            "the sensitive parameter: holds a value of type object: not a declaration",
        ),
        (
            {"namespaces": {"a"}},
            "the sensitive parameter: line 1: namespaces must be a list, not a mapping",
        ),
        (
            {"namespaces": [b"a"]},
            "the sensitive parameter: line 2: namespaces entry 1 must be "
            "text: quote it ('YQ==\\n' reads as binary)",
        ),
    ],
)
def test_from_value_dict_of_values_that_are_no_names(value: dict, message: str) -> None:
    with pytest.raises(SensitiveError) as info:
        from_value(value)
    assert str(info.value) == message


def test_from_value_dict_holding_itself_or_nested_deep() -> None:
    looped: dict = {}
    looped["namespaces"] = [looped]
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for value in (looped, {"namespaces": deep}):
        with pytest.raises(SensitiveError) as info:
            from_value(value)
        assert str(info.value) == "the sensitive parameter: nested too deeply"


def test_from_value_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("namespaces: [payments]\n")
    for value in (path, str(path)):
        got = from_value(value, tmp_path / "case.duckdb")
        assert got == Declaration(namespaces=("payments",))
        assert got.source == str(path)


def test_from_value_a_missing_path_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    (tmp_path / "sensitive.yaml").write_text("namespaces: [beside]\n")
    with pytest.raises(SensitiveError) as info:
        from_value(str(tmp_path / "nope.yaml"), tmp_path / "case.duckdb")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"


@pytest.mark.parametrize("empty", [None, ""])
def test_from_value_empty_reads_sensitive_yaml_beside_the_case(
    tmp_path: Path, empty: str | None
) -> None:
    beside = tmp_path / "sensitive.yaml"
    beside.write_text("secrets: [payments/db]\n")
    got = from_value(empty, tmp_path / "case.duckdb")
    assert got == Declaration(secrets=(("payments", "db"),))
    assert got.source == str(beside)
    assert from_value(empty, str(tmp_path / "case.duckdb")) == got


def test_from_value_empty_with_nothing_beside_is_none(tmp_path: Path) -> None:
    assert from_value(None, tmp_path / "case.duckdb") is None
    assert from_value("", tmp_path / "case.duckdb") is None
    assert from_value(None) is None
    (tmp_path / "sensitive.yaml").mkdir()  # a directory of that name is not a declaration
    assert from_value(None, tmp_path / "case.duckdb") is None


def test_from_value_a_broken_file_beside_the_case_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sensitive.yaml").write_text("namespaces: [Bad]\n")
    with pytest.raises(SensitiveError) as info:
        from_value(None, tmp_path / "case.duckdb")
    assert str(info.value) == (
        f"{tmp_path / 'sensitive.yaml'}: line 1: namespaces entry 1 'Bad' is no namespace name: "
        f"{NS_RULE}"
    )


# --- fuzz ---------------------------------------------------------------------------------------

WORDS = st.one_of(
    st.sampled_from(
        "namespaces selectors secrets workloads namespace matchLabels matchExpressions key "
        "operator values In NotIn Exists DoesNotExist payments shop/api ns/Pod/x Bad true".split()
    ),
    st.text(max_size=12),
)
SCALARS = st.one_of(WORDS, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(WORDS, inner, max_size=4)),
    max_leaves=24,
)
DOCUMENTS = st.one_of(VALUES, st.dictionaries(WORDS, VALUES, max_size=5))
# near-valid declarations, so that loading and the round trip are exercised and not only refusal
NS = st.one_of(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?", fullmatch=True), WORDS)
LABEL = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?", fullmatch=True)
EXPRESSION = st.fixed_dictionaries(
    {"key": LABEL, "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"])},
    optional={"values": st.lists(st.one_of(LABEL, st.just("")), max_size=3)},
)
SELECTOR = st.one_of(
    st.dictionaries(LABEL, st.one_of(LABEL, st.just(""), SCALARS), min_size=1, max_size=3),
    st.fixed_dictionaries(
        {},
        optional={
            "namespace": NS,
            "matchLabels": st.dictionaries(LABEL, LABEL, max_size=2),
            "matchExpressions": st.lists(EXPRESSION, max_size=2),
        },
    ),
)
KINDS_OR_NOT = st.sampled_from(["Deployment", "Pod", "CronJob", "Service", "pod"])
DECLARED = st.fixed_dictionaries(
    {},
    optional={
        "namespaces": st.lists(NS, max_size=3),
        "selectors": st.lists(SELECTOR, max_size=3),
        "secrets": st.lists(st.builds("{}/{}".format, NS, NS), max_size=3),
        "workloads": st.lists(st.builds("{}/{}/{}".format, NS, KINDS_OR_NOT, NS), max_size=3),
    },
)
PUNCTUATION = "[ ] { } : , - &a *a !! ' \" # ? | > % \\ a ns/Pod/x selectors".split()


def check_outcome(text: str, source: str) -> Declaration | None:
    """Return what text declares (checking it round-trips), or None when it is refused with a
    message naming source and holding no raw control character; fail on any other exception."""
    try:
        declared = load_text(text, source)
    except SensitiveError as exc:
        message = str(exc)
        assert message.startswith(visible(source) + ":")
        assert not raw_controls(message)
        return None
    assert isinstance(declared, Declaration)
    assert load_text(declared.to_yaml()) == declared
    return declared


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200), source=st.text(max_size=10))
def test_fuzz_arbitrary_text(text: str, source: str) -> None:
    check_outcome(text, source)


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from([*PUNCTUATION, " ", "\n", "\t"]), max_size=60).map("".join))
def test_fuzz_yaml_punctuation(text: str) -> None:
    check_outcome(text, "p.yaml")


@settings(max_examples=200, deadline=None)
@given(document=st.one_of(DOCUMENTS, DECLARED))
def test_fuzz_yaml_structures(document: object) -> None:
    declared = check_outcome(yaml.safe_dump(document), "s.yaml")
    if isinstance(document, dict):
        try:
            got = from_value(document)
        except SensitiveError as exc:
            assert declared is None
            assert str(exc).startswith("the sensitive parameter:")
            assert not raw_controls(str(exc))
        else:
            assert got == declared


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200))
def test_fuzz_file_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "b.yaml"
    path.write_bytes(data)
    try:
        declared = load_file(path)
    except SensitiveError as exc:
        assert str(exc).startswith(f"{path}:")
        assert not raw_controls(str(exc))
    else:
        assert declared == load_text(data.decode("utf-8"))
        assert declared.source == str(path)


def test_the_near_valid_strategy_does_load_some() -> None:
    """Guard the fuzz above: a strategy that never loads would test refusal alone."""
    loaded = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(document=DECLARED)
    def sample(document: dict) -> None:
        loaded.append(check_outcome(yaml.safe_dump(document), "s.yaml") is not None)

    sample()
    assert sum(loaded) >= 10


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "sensitive.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SensitiveError) as err:
        load_file(fifo)
    assert str(err.value) == f"{fifo}: not a regular file"
