"""Check emitted RBAC objects the way the API server will, before anyone applies them.

`validate_rbac` re-implements kube-apiserver's create-time validation of
rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding and ClusterRoleBinding
(pkg/apis/rbac/validation, after the v1 defaulting of pkg/apis/rbac/v1/defaults.go), worded as
upstream words it. ObjectMeta is netpol.validate's check with RBAC's path-segment name rule.
Wrong JSON types, which the server rejects while decoding, come back as "Invalid type" errors.

Upstream's rules, which this follows: a RoleBinding's roleRef has no namespace (a Role it names
is the one in the binding's own namespace), and a ServiceAccount subject needs a namespace only
in a ClusterRoleBinding (in a RoleBinding an empty one means the binding's namespace).
"""

from __future__ import annotations

from typing import Any

from kforensics.netpol.names import dns1123_subdomain_errors, path_segment_errors
from kforensics.netpol.validate import (
    field_invalid,
    field_not_supported,
    field_typed,
    storable_errors,
    validate_network_policy,
)

RBAC_GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{RBAC_GROUP}/v1"
ROLE_KINDS = ("Role", "ClusterRole")
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")
_RULE_LISTS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")


def _field(obj: dict, key: str, path: str, errs: list[str]) -> str:
    """Return a string field; a missing or null one decodes as Go's zero value, ""."""
    return field_typed(obj.get(key), str, f"{path}{key}", errs) or ""


def _strings(obj: dict, key: str, path: str, errs: list[str]) -> list[str]:
    """Return a []string field; a null item decodes as ""."""
    items = field_typed(obj.get(key), list, f"{path}{key}", errs) or []
    return [field_typed(v, str, f"{path}{key}[{i}]", errs) or "" for i, v in enumerate(items)]


def _dicts(value: Any, path: str, errs: list[str]) -> list[tuple[str, dict]]:
    """Return (path, item) of a JSON array of structs; a null item decodes as an empty struct."""
    items = field_typed(value, list, path, errs) or []
    return [
        (f"{path}[{i}]", field_typed(v, dict, f"{path}[{i}]", errs) or {})
        for i, v in enumerate(items)
    ]


def default_rbac(obj: dict) -> dict:
    """Return obj with the v1 defaulting applied: roleRef and subject apiGroups (a new dict)."""
    out = dict(obj)
    if isinstance(out.get("roleRef"), dict) and not out["roleRef"].get("apiGroup"):
        out["roleRef"] = {**out["roleRef"], "apiGroup": RBAC_GROUP}
    if isinstance(out.get("subjects"), list):
        out["subjects"] = [
            {**s, "apiGroup": RBAC_GROUP}
            if isinstance(s, dict) and not s.get("apiGroup") and s.get("kind") in ("User", "Group")
            else s
            for s in out["subjects"]
        ]
    return out


def _validate_rule(rule: dict, path: str, namespaced: bool, errs: list[str]) -> None:
    """Append ValidatePolicyRule's errors."""
    verbs, groups, resources, names, urls = (
        _strings(rule, k, f"{path}.", errs) for k in _RULE_LISTS
    )
    if not verbs:
        errs.append(f"{path}.verbs: Required value: verbs must contain at least one value")
    if urls:
        if namespaced:
            detail = "namespaced rules cannot apply to non-resource URLs"
            errs.append(field_invalid(f"{path}.nonResourceURLs", urls, detail))
        if groups or resources or names:
            detail = "rules cannot apply to both regular resources and non-resource URLs"
            errs.append(field_invalid(f"{path}.nonResourceURLs", urls, detail))
        return
    if not groups:
        detail = "resource rules must supply at least one api group"
        errs.append(f"{path}.apiGroups: Required value: {detail}")
    if not resources:
        detail = "resource rules must supply at least one resource"
        errs.append(f"{path}.resources: Required value: {detail}")


def _selector_errors(selector: dict, path: str) -> list[str]:
    """Return ValidateLabelSelector's errors for selector, reported at path."""
    # netpol.validate checks label selectors as upstream does; a policy carrying this one as its
    # podSelector gets exactly the selector's errors under spec.podSelector
    policy = {
        "metadata": {"name": "x", "namespace": "x"},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"]},
    }
    prefix = "spec.podSelector"
    errs = validate_network_policy(policy)
    return [path + e[len(prefix) :] for e in errs if e.startswith((prefix + ".", prefix + ":"))]


def _validate_aggregation(obj: dict, errs: list[str]) -> None:
    """Append ValidateClusterRole's aggregationRule errors."""
    rule = field_typed(obj.get("aggregationRule"), dict, "aggregationRule", errs)
    if rule is None:
        return
    path = "aggregationRule.clusterRoleSelectors"
    selectors = _dicts(rule.get("clusterRoleSelectors"), path, errs)
    if not selectors:
        detail = "at least one clusterRoleSelector required if aggregationRule is non-nil"
        errs.append(f"{path}: Required value: {detail}")
    for spath, selector in selectors:
        errs += _selector_errors(selector, spath)


def _validate_subject(subject: dict, path: str, namespaced: bool, errs: list[str]) -> None:
    """Append ValidateRoleBindingSubject's errors."""
    kind, name, group, namespace = (
        _field(subject, k, f"{path}.", errs) for k in ("kind", "name", "apiGroup", "namespace")
    )
    if not name:
        errs.append(f"{path}.name: Required value")
    if kind == "ServiceAccount":
        if name:
            errs += [field_invalid(f"{path}.name", name, m) for m in dns1123_subdomain_errors(name)]
        if group:
            errs.append(field_not_supported(f"{path}.apiGroup", group, ("",)))
        if not namespaced and not namespace:
            errs.append(f"{path}.namespace: Required value")
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            errs.append(field_not_supported(f"{path}.apiGroup", group, (RBAC_GROUP,)))
    else:
        errs.append(field_not_supported(f"{path}.kind", kind, SUBJECT_KINDS))


def _validate_binding(obj: dict, namespaced: bool, errs: list[str]) -> None:
    """Append ValidateRoleBinding's or ValidateClusterRoleBinding's roleRef and subject errors."""
    ref = field_typed(obj.get("roleRef"), dict, "roleRef", errs) or {}
    group, kind, name = (_field(ref, k, "roleRef.", errs) for k in ("apiGroup", "kind", "name"))
    # a roleRef of the wrong type decodes as an empty one, whose empty apiGroup is defaulted
    if group not in ("", RBAC_GROUP):
        errs.append(field_not_supported("roleRef.apiGroup", group, (RBAC_GROUP,)))
    kinds = ROLE_KINDS if namespaced else ("ClusterRole",)
    if kind not in kinds:
        errs.append(field_not_supported("roleRef.kind", kind, kinds))
    if not name:
        errs.append("roleRef.name: Required value")
    errs += [field_invalid("roleRef.name", name, m) for m in path_segment_errors(name)]
    for spath, subject in _dicts(obj.get("subjects"), "subjects", errs):
        _validate_subject(subject, spath, namespaced, errs)


def validate_rbac(obj: dict) -> list[str]:
    """Return kube-apiserver's create-time errors for an RBAC object ([] when it is valid)."""
    if not isinstance(obj, dict):
        return ["<root>: Invalid type: expected object"]
    errs: list[str] = []
    version = _field(obj, "apiVersion", "", errs)
    kind = _field(obj, "kind", "", errs)
    if errs or version != API_VERSION:
        return errs or [field_not_supported("apiVersion", version, (API_VERSION,))]
    if kind not in ROLE_KINDS + BINDING_KINDS:
        return [field_not_supported("kind", kind, ROLE_KINDS + BINDING_KINDS)]
    obj = default_rbac(obj)
    # ObjectMeta, with RBAC's name rule and the kind's scope; only the metadata is passed, so
    # that the type checks of storable_errors' other fields do not repeat ours
    errs += storable_errors({"kind": kind, "metadata": obj.get("metadata")})
    namespaced = kind in ("Role", "RoleBinding")
    if kind in ROLE_KINDS:
        for rpath, rule in _dicts(obj.get("rules"), "rules", errs):
            _validate_rule(rule, rpath, namespaced, errs)
        if kind == "ClusterRole":
            _validate_aggregation(obj, errs)
    else:
        _validate_binding(obj, namespaced, errs)
    return errs
