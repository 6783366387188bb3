"""RBAC object validation against the API server's rules (pkg/apis/rbac/validation)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kforensics.contain.rbac_validate import default_rbac, validate_rbac
from kforensics.netpol.names import go_quote, path_segment_errors

# Upstream's wording, spelled out here rather than imported so a drift in the module shows up.
SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
RBAC = "rbac.authorization.k8s.io"
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
NEED_VERBS = "Required value: verbs must contain at least one value"
NEED_GROUPS = "Required value: resource rules must supply at least one api group"
NEED_RESOURCES = "Required value: resource rules must supply at least one resource"
NOT_BOTH = "rules cannot apply to both regular resources and non-resource URLs"
ONLY_RBAC = 'supported values: "rbac.authorization.k8s.io"'
SUBJECT_KINDS = 'supported values: "ServiceAccount", "User", "Group"'


def role(*rules: dict, kind: str = "Role", top: dict | None = None, **metadata: object) -> dict:
    """Return a Role (a ClusterRole without namespace) named r holding rules, top's fields added."""
    meta = {"name": "r", **({"namespace": "shop"} if kind == "Role" else {}), **metadata}
    obj = {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": meta, "rules": list(rules)}
    return {**obj, **(top or {})}


def binding(*subjects: dict, kind: str = "RoleBinding", ref: dict | None = None) -> dict:
    """Return a RoleBinding (or ClusterRoleBinding) named b to the ClusterRole view."""
    meta = {"name": "b", **({"namespace": "shop"} if kind == "RoleBinding" else {})}
    ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view", **(ref or {})}
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": ref,
        "subjects": list(subjects),
    }


PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
SA = {"kind": "ServiceAccount", "name": "web", "namespace": "shop"}
USER = {"kind": "User", "apiGroup": RBAC, "name": "alice@example.com"}
GROUP = {"kind": "Group", "apiGroup": RBAC, "name": "oidc:sre"}


@pytest.mark.parametrize(
    "obj",
    [
        role(PODS, {**PODS, "resourceNames": ["web-1"], "resources": ["pods/exec"]}),
        role(
            PODS,
            {"nonResourceURLs": ["/healthz", "/metrics/*"], "verbs": ["get"]},
            kind="ClusterRole",
        ),
        role(
            kind="ClusterRole",
            top={"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}},
        ),
        binding(SA, USER, GROUP),
        binding({"kind": "ServiceAccount", "name": "web"}),  # the binding's namespace
        binding(SA, kind="ClusterRoleBinding"),
        binding({"kind": "User", "name": "bob"}, kind="ClusterRoleBinding", ref={"apiGroup": ""}),
        binding(SA, ref={"name": "system:controller:x"}),  # path segments allow ':'
    ],
    ids=["role", "clusterrole", "aggregated", "binding", "sa-no-ns", "crb", "defaulted", "colon"],
)
def test_valid_objects_pass(obj):
    assert validate_rbac(obj) == []


def test_defaulting_fills_api_groups_and_leaves_the_input_alone():
    obj = binding(
        {"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}, ref={"apiGroup": ""}
    )
    out = default_rbac(obj)
    assert out["roleRef"]["apiGroup"] == RBAC
    assert out["subjects"] == [
        {"kind": "User", "name": "u", "apiGroup": RBAC},
        {"kind": "ServiceAccount", "name": "s"},
    ]
    assert obj["roleRef"]["apiGroup"] == "" and "apiGroup" not in obj["subjects"][0]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            role({"apiGroups": [""], "resources": ["pods"]}),
            [f"rules[0].verbs: {NEED_VERBS}"],
        ),
        (
            role({"resources": ["pods"], "verbs": ["get"]}),
            [f"rules[0].apiGroups: {NEED_GROUPS}"],
        ),
        (
            role({"apiGroups": [""], "verbs": ["get"]}),
            [f"rules[0].resources: {NEED_RESOURCES}"],
        ),
        (
            role(PODS, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}),
            [
                'rules[1].nonResourceURLs: Invalid value: []string{"/healthz"}: '
                "namespaced rules cannot apply to non-resource URLs"
            ],
        ),
        (
            role({**PODS, "nonResourceURLs": ["/a", "/b"]}, kind="ClusterRole"),
            [f'rules[0].nonResourceURLs: Invalid value: []string{{"/a", "/b"}}: {NOT_BOTH}'],
        ),
        (
            role(
                {"resourceNames": ["x"], "nonResourceURLs": ["/a"], "verbs": ["get"]},
                kind="ClusterRole",
            ),
            [f'rules[0].nonResourceURLs: Invalid value: []string{{"/a"}}: {NOT_BOTH}'],
        ),
        (
            role(kind="ClusterRole", top={"aggregationRule": {"clusterRoleSelectors": []}}),
            [
                "aggregationRule.clusterRoleSelectors: Required value: at least one "
                "clusterRoleSelector required if aggregationRule is non-nil"
            ],
        ),
        (
            role(
                kind="ClusterRole",
                top={
                    "aggregationRule": {
                        "clusterRoleSelectors": [
                            {"matchExpressions": [{"key": "a", "operator": "In"}]}
                        ]
                    }
                },
            ),
            [
                "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].values: "
                "Required value: must be specified when `operator` is 'In' or 'NotIn'"
            ],
        ),
        (
            binding(SA, ref={"apiGroup": "rbac"}),
            [f'roleRef.apiGroup: Unsupported value: "rbac": {ONLY_RBAC}'],
        ),
        (
            binding(SA, kind="RoleBinding", ref={"kind": "Pod"}),
            ['roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"'],
        ),
        (
            binding(SA, kind="ClusterRoleBinding", ref={"kind": "Role"}),
            ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'],
        ),
        (binding(SA, ref={"name": ""}), ["roleRef.name: Required value"]),
        (
            binding(SA, ref={"name": "a/b%"}),
            [
                "roleRef.name: Invalid value: \"a/b%\": may not contain '/'",
                "roleRef.name: Invalid value: \"a/b%\": may not contain '%'",
            ],
        ),
        (binding(SA, ref={"name": ".."}), ["roleRef.name: Invalid value: \"..\": may not be '..'"]),
        (
            binding({"kind": "ServiceAccount", "namespace": "shop"}),
            ["subjects[0].name: Required value"],
        ),
        (
            binding({**SA, "name": "Web"}),
            [f'subjects[0].name: Invalid value: "Web": {SUBDOMAIN_RULE}'],
        ),
        (
            binding({**SA, "apiGroup": RBAC}),
            [f'subjects[0].apiGroup: Unsupported value: "{RBAC}": supported values: ""'],
        ),
        (
            binding({"kind": "ServiceAccount", "name": "web"}, kind="ClusterRoleBinding"),
            ["subjects[0].namespace: Required value"],
        ),
        (
            binding({**USER, "apiGroup": "v1"}),
            [f'subjects[0].apiGroup: Unsupported value: "v1": {ONLY_RBAC}'],
        ),
        (
            binding({**GROUP, "apiGroup": "x"}),
            [f'subjects[0].apiGroup: Unsupported value: "x": {ONLY_RBAC}'],
        ),
        (
            binding({"kind": "Robot", "name": "r"}),
            [f'subjects[0].kind: Unsupported value: "Robot": {SUBJECT_KINDS}'],
        ),
        (role(PODS, name="a/b"), ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]),
        (
            role(PODS, namespace="Shop"),
            [f'metadata.namespace: Invalid value: "Shop": {LABEL_RULE}'],
        ),
        (role(PODS, namespace=None), ["metadata.namespace: Required value"]),
        (
            role(PODS, kind="ClusterRole", namespace="shop"),
            ["metadata.namespace: Forbidden: not allowed on this type"],
        ),
        (
            role(PODS, name=None),
            ["metadata.name: Required value: name or generateName is required"],
        ),
        (
            role(PODS, labels={"a": "b c"}),
            [f'metadata.labels: Invalid value: "b c": {VALUE_RULE}'],
        ),
        (
            role({**PODS, "verbs": "get"}),
            [
                "rules[0].verbs: Invalid type: expected array",
                f"rules[0].verbs: {NEED_VERBS}",
            ],
        ),
        (role({**PODS, "verbs": [1]}), ["rules[0].verbs[0]: Invalid type: expected string"]),
        (
            role(7),
            [
                "rules[0]: Invalid type: expected object",
                f"rules[0].verbs: {NEED_VERBS}",
                f"rules[0].apiGroups: {NEED_GROUPS}",
                f"rules[0].resources: {NEED_RESOURCES}",
            ],
        ),
        (
            {**binding(SA), "roleRef": "view"},
            [
                "roleRef: Invalid type: expected object",
                'roleRef.kind: Unsupported value: "": supported values: "Role", "ClusterRole"',
                "roleRef.name: Required value",
            ],
        ),
        (
            {**role(PODS), "apiVersion": "rbac.authorization.k8s.io/v1beta1"},
            [f'apiVersion: Unsupported value: "{RBAC}/v1beta1": supported values: "{RBAC}/v1"'],
        ),
        (
            {**role(PODS), "kind": "Pod"},
            [
                'kind: Unsupported value: "Pod": supported values: '
                '"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"'
            ],
        ),
        ({**role(PODS), "kind": 3}, ["kind: Invalid type: expected string"]),
        ([], ["<root>: Invalid type: expected object"]),
    ],
)
def test_each_rule_has_its_message(obj, expected):
    assert validate_rbac(obj) == expected


def test_values_print_as_go_quotes_them():
    assert validate_rbac(binding({"kind": "Bot\n\u202e", "name": "x"})) == [
        f'subjects[0].kind: Unsupported value: "Bot\\n\\u202e": {SUBJECT_KINDS}'
    ]
    assert go_quote('a"\\\x00é') == '"a\\"\\\\\\x00é"'


def test_path_segment_names():
    assert path_segment_errors("system:node:a") == []
    assert path_segment_errors(".") == ["may not be '.'"]
    assert path_segment_errors("a%2F") == ["may not contain '%'"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "metadata",
        "rules",
        "roleRef",
        "subjects",
        "aggregationRule",
        "verbs",
        "name",
        "kind",
        "apiGroup",
        "namespace",
        "labels",
        "clusterRoleSelectors",
        "nonResourceURLs",
    ]
)
SHAPED = st.recursive(
    JSON,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]),
    body=st.dictionaries(FIELDS, SHAPED, max_size=5),
)
def test_arbitrary_json_never_raises(kind, body):
    errs = validate_rbac({"apiVersion": f"{RBAC}/v1", "kind": kind, **body})
    assert isinstance(errs, list) and all(isinstance(e, str) for e in errs)
