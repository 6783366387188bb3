"""Check emitted Kubernetes objects the way the API server will, before anyone applies them.

`validate_network_policy` re-implements kube-apiserver's create-time validation of
networking.k8s.io/v1 NetworkPolicy (pkg/apis/networking/validation, apimachinery's ObjectMeta and
LabelSelector checks), worded as upstream master words it: older servers say "a qualified name"
for "a valid label key", and "characters" where label keys and values say "bytes". Wrong
JSON types, which the server rejects while decoding, come back as "Invalid type" errors.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable
from typing import Any

import kubernetes_validate

from kforensics.netpol.model import POLICY_TYPES, effective_policy_types
from kforensics.netpol.names import (
    PORT_RANGE_MSG,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    go_quote,
    label_key_errors,
    label_value_errors,
    path_segment_errors,
    port_name_errors,
    utf8_len,
)

# --- field errors, worded as apimachinery's field.Error -------------------------------------

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "integer"}


def field_value(value: Any) -> str:
    """Return a bad value as the server prints it: strings quoted (%q), []string as Go's %#v,
    numbers and booleans bare."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[]string{" + ", ".join(go_quote(str(v)) for v in value) + "}"
    return go_quote(value) if isinstance(value, str) else "null" if value is None else str(value)


def field_invalid(path: str, value: Any, detail: str) -> str:
    """Return a field.Invalid error."""
    return f"{path}: Invalid value: {field_value(value)}: {detail}"


def field_not_supported(path: str, value: Any, supported: tuple[str, ...]) -> str:
    """Return a field.NotSupported error."""
    listed = ", ".join(go_quote(s) for s in supported)
    return f"{path}: Unsupported value: {field_value(value)}: supported values: {listed}"


def field_typed(value: Any, want: type, path: str, errs: list[str]) -> Any:
    """Return value if it is null or of JSON type `want`; else record a type error, return None."""
    if value is None or (isinstance(value, want) and not isinstance(value, bool)):
        return value
    errs.append(f"{path}: Invalid type: expected {_JSON_TYPES[want]}")
    return None


def _items(value: Any, path: str, errs: list[str]) -> list[tuple[str, Any]]:
    """Return (path, item) pairs of a JSON array; a null item decodes as an empty struct."""
    items = field_typed(value, list, path, errs) or []
    return [(f"{path}[{i}]", {} if item is None else item) for i, item in enumerate(items)]


# --- CIDRs, as Go's forked net.ParseCIDR (sloppy) or netip.ParsePrefix (strict) read them ----

_V4_IN_V6 = bytes(10) + b"\xff\xff"


def _parse_cidr(text: str, strict: bool) -> tuple[bytes, bytes, bytes] | None:
    """Return (address, masked address, mask) as Go's net.IPNet holds them, or None."""
    addr, slash, bits = text.partition("/")
    if not strict:  # the sloppy parser reads any run of leading zeros in a field
        addr = re.sub("(^|[:.])0+(?=[0-9A-Fa-f])", r"\1", addr)
    try:  # Python accepts IPv6 zones; Go's CIDR parsers do not
        ip = ipaddress.ip_address(addr).packed if "%" not in addr else b""
    except ValueError:
        return None
    ones, width = bits.lstrip("0") or "0", len(ip) * 8
    if not (ip and slash and re.fullmatch("[0-9]+", bits)) or len(ones) > 3 or int(ones) > width:
        return None
    if strict and ones != bits:
        return None
    mask = (((1 << width) - 1) ^ ((1 << (width - int(ones))) - 1)).to_bytes(width // 8, "big")
    return ip, bytes(a & m for a, m in zip(ip, mask, strict=True)), mask


def _contains(net: bytes, mask: bytes, ip: bytes) -> bool:
    """Return Go's IPNet.Contains(ip), whose family mixing decides `except` subsets upstream."""
    net, ip = (x[12:] if x[:12] == _V4_IN_V6 else x for x in (net, ip))  # Go's IP.To4()
    mask = mask[12:] if len(mask) == 16 and len(net) == 4 else mask
    if not len(mask) == len(net) == len(ip):
        return False
    return all(n & m == a & m for n, m, a in zip(net, mask, ip, strict=True))


def _cidr_errors(path: str, value: str, strict: bool) -> list[str]:
    """Return IsValidCIDRForLegacyField's errors; strict is the StrictIPCIDRValidation gate."""
    if _parse_cidr(value, False) is None:
        detail = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        return [field_invalid(path, value, detail)]
    parsed = _parse_cidr(value, True) if strict else (b"", b"", b"")
    if parsed is None:  # the sloppy parser accepted it, so only leading zeros explain this
        return [field_invalid(path, value, "must not have leading 0s in IP or prefix length")]
    ip, masked, _ = parsed
    if len(ip) == 16 and ip[:12] == _V4_IN_V6:
        return [field_invalid(path, value, "must not have an IPv4-mapped IPv6 address")]
    if ip != masked:
        return [field_invalid(path, value, "must not have bits set beyond the prefix length")]
    return []


# --- ObjectMeta and LabelSelector -----------------------------------------------------------


def _validate_labels(labels: Any, path: str, errs: list[str]) -> None:
    """Append ValidateLabels' errors: keys must be label keys, values label values."""
    for key, value in (field_typed(labels, dict, path, errs) or {}).items():
        errs.extend(field_invalid(path, key, m) for m in label_key_errors(str(key)))
        if field_typed(value, str, f"{path}[{key}]", errs) is not None:
            errs.extend(field_invalid(path, value, m) for m in label_value_errors(value))


def _validate_object_meta(
    meta: Any, namespaced: bool, name_rule: Callable[[str], list[str]]
) -> list[str]:
    """Return ValidateObjectMeta's create-time errors (ownerReferences, finalizers unchecked)."""
    # generation is not checked: emitted objects leave it unset and NetworkPolicy's create resets it
    errs: list[str] = []
    meta = field_typed(meta, dict, "metadata", errs) or {}
    name, generate, namespace = (
        field_typed(meta.get(k), str, f"metadata.{k}", errs) or ""
        for k in ("name", "generateName", "namespace")
    )
    # maskTrailingDash: a generateName may end in '-' (upstream puts "a" for its last two chars)
    masked = generate[:-2] + "a" if len(generate) > 1 and generate.endswith("-") else generate
    for msg in name_rule(masked) if generate else []:
        errs.append(field_invalid("metadata.generateName", generate, msg))
    if generate and not name:  # the server generates the name before it validates
        name = generate[:58] + "xxxxx"
    if not name:
        errs.append("metadata.name: Required value: name or generateName is required")
    errs += [field_invalid("metadata.name", name, m) for m in (name_rule(name) if name else [])]
    if namespaced and not namespace:
        errs.append("metadata.namespace: Required value")
    elif namespaced:
        errs += [
            field_invalid("metadata.namespace", namespace, m)
            for m in dns1123_label_errors(namespace)
        ]
    elif namespace:
        errs.append("metadata.namespace: Forbidden: not allowed on this type")
    _validate_labels(meta.get("labels"), "metadata.labels", errs)
    annotations = field_typed(meta.get("annotations"), dict, "metadata.annotations", errs) or {}
    for key in annotations:  # the rule is a label key, except that case does not matter
        lowered = label_key_errors(str(key).lower())
        errs += [field_invalid("metadata.annotations", key, m) for m in lowered]
    if sum(utf8_len(str(k)) + utf8_len(str(v)) for k, v in annotations.items()) > 256 * 1024:
        errs.append("metadata.annotations: Too long: must have at most 262144 bytes")
    return errs


def _validate_selector(selector: Any, path: str, errs: list[str]) -> None:
    """Append ValidateLabelSelector's errors, label values included as on create."""
    selector = field_typed(selector, dict, path, errs) or {}
    _validate_labels(selector.get("matchLabels"), f"{path}.matchLabels", errs)
    for epath, expr in _items(selector.get("matchExpressions"), f"{path}.matchExpressions", errs):
        expr = field_typed(expr, dict, epath, errs) or {}
        operator = field_typed(expr.get("operator"), str, f"{epath}.operator", errs) or ""
        values = _items(expr.get("values"), f"{epath}.values", errs)
        if operator in ("In", "NotIn") and not values:
            detail = "must be specified when `operator` is 'In' or 'NotIn'"
            errs.append(f"{epath}.values: Required value: {detail}")
        elif operator in ("Exists", "DoesNotExist") and values:
            detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            errs.append(f"{epath}.values: Forbidden: {detail}")
        elif operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errs.append(
                field_invalid(f"{epath}.operator", operator, "not a valid selector operator")
            )
        key = field_typed(expr.get("key"), str, f"{epath}.key", errs) or ""
        errs.extend(field_invalid(f"{epath}.key", key, m) for m in label_key_errors(key))
        for vpath, value in values:
            if field_typed(value, str, vpath, errs) is not None:
                errs.extend(field_invalid(vpath, value, m) for m in label_value_errors(value))


# --- NetworkPolicy --------------------------------------------------------------------------

_PROTOCOLS = ("TCP", "UDP", "SCTP")


def default_network_policy(obj: dict) -> dict:
    """Return a deep copy of obj with the API server's NetworkPolicy defaulting applied."""
    out = copy.deepcopy(obj)
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return out
    if not spec.get("policyTypes"):  # upstream tests len() == 0, so [] is defaulted too
        types = effective_policy_types(spec)
        spec["policyTypes"] = [t for t in POLICY_TYPES if t in types]  # upstream's order
    for direction in ("ingress", "egress"):
        rules = spec.get(direction)
        for rule in rules if isinstance(rules, list) else []:
            ports = rule.get("ports") if isinstance(rule, dict) else None
            for port in ports if isinstance(ports, list) else []:
                if isinstance(port, dict) and port.get("protocol") is None:
                    port["protocol"] = "TCP"
    return out


def _validate_port(port: Any, path: str, errs: list[str]) -> None:
    """Append ValidateNetworkPolicyPort's errors."""
    port = field_typed(port, dict, path, errs) or {}
    protocol = field_typed(port.get("protocol"), str, f"{path}.protocol", errs)
    if protocol is not None and protocol not in _PROTOCOLS:
        errs.append(field_not_supported(f"{path}.protocol", protocol, _PROTOCOLS))
    number, end = port.get("port"), field_typed(port.get("endPort"), int, f"{path}.endPort", errs)
    if isinstance(number, int) and not isinstance(number, bool):
        if not 1 <= number <= 65535:
            errs.append(field_invalid(f"{path}.port", number, PORT_RANGE_MSG))
        if end is not None and end < number:
            errs.append(
                field_invalid(f"{path}.endPort", end, "must be greater than or equal to `port`")
            )
        if end is not None and not 1 <= end <= 65535:
            errs.append(field_invalid(f"{path}.endPort", end, PORT_RANGE_MSG))
    elif isinstance(number, str):
        if end is not None:
            detail = "may not be specified when `port` is non-numeric"
            errs.append(field_invalid(f"{path}.endPort", end, detail))
        errs.extend(field_invalid(f"{path}.port", number, m) for m in port_name_errors(number))
    elif number is not None:
        errs.append(f"{path}.port: Invalid type: expected integer or string")
    elif end is not None:
        detail = "may not be specified when `port` is not specified"
        errs.append(field_invalid(f"{path}.endPort", end, detail))


def _validate_ip_block(block: Any, path: str, strict_cidr: bool, errs: list[str]) -> None:
    """Append ValidateIPBlock's errors: valid CIDRs, each `except` a strict subset of `cidr`."""
    block = field_typed(block, dict, path, errs) or {}
    cidr = field_typed(block.get("cidr"), str, f"{path}.cidr", errs)
    if not cidr:
        errs.append(f"{path}.cidr: Required value")
        return
    errs += _cidr_errors(f"{path}.cidr", cidr, strict_cidr)
    net = _parse_cidr(cidr, False)
    for epath, text in _items(block.get("except"), f"{path}.except", errs) if net else []:
        if field_typed(text, str, epath, errs) is None:
            continue
        errs += _cidr_errors(epath, text, strict_cidr)
        inner = _parse_cidr(text, False)
        if inner is None:
            continue
        # Go compares prefix lengths, so the whole cidr again is not a strict subset
        outer_len, inner_len = (sum(bin(b).count("1") for b in m) for m in (net[2], inner[2]))
        if not _contains(net[1], net[2], inner[1]) or outer_len >= inner_len:
            errs.append(field_invalid(epath, text, "must be a strict subset of `cidr`"))


def _validate_peer(peer: Any, path: str, strict_cidr: bool, errs: list[str]) -> None:
    """Append ValidateNetworkPolicyPeer's errors: ipBlock alone, or one or both selectors."""
    peer = field_typed(peer, dict, path, errs) or {}
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            _validate_selector(peer[key], f"{path}.{key}", errs)
    if peer.get("ipBlock") is not None:
        _validate_ip_block(peer["ipBlock"], f"{path}.ipBlock", strict_cidr, errs)
    count = sum(peer.get(k) is not None for k in ("podSelector", "namespaceSelector", "ipBlock"))
    if count == 0:
        errs.append(f"{path}: Required value: must specify a peer")
    elif count > 1 and peer.get("ipBlock") is not None:
        errs.append(f"{path}: Forbidden: may not specify both ipBlock and another peer")


def validate_network_policy(
    obj: dict, *, strict_cidr: bool = True, lint: bool = False
) -> list[str]:
    """Return kube-apiserver's create-time errors for a NetworkPolicy ([] when it is valid)."""
    # The server validates after defaulting, so callers pass default_network_policy(obj).
    # strict_cidr mirrors the StrictIPCIDRValidation gate (on by default from 1.36; off, CIDRs
    # may carry leading zeros or host bits); lint adds a check the server lacks (duplicate
    # policyTypes), for objects kforensics itself emits.
    errs = _validate_object_meta(obj.get("metadata"), True, dns1123_subdomain_errors)
    spec = field_typed(obj.get("spec"), dict, "spec", errs) or {}
    _validate_selector(spec.get("podSelector"), "spec.podSelector", errs)
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for rpath, rule in _items(spec.get(direction), f"spec.{direction}", errs):
            rule = field_typed(rule, dict, rpath, errs) or {}
            for ppath, port in _items(rule.get("ports"), f"{rpath}.ports", errs):
                _validate_port(port, ppath, errs)
            for ppath, peer in _items(rule.get(peers), f"{rpath}.{peers}", errs):
                _validate_peer(peer, ppath, strict_cidr, errs)
    types = [t for _, t in _items(spec.get("policyTypes"), "spec.policyTypes", errs)]
    if len(types) > 2:  # upstream prints &spec.PolicyTypes with %#v
        shown = "[]networking.PolicyType{" + ", ".join(field_value(t) for t in types) + "}"
        detail = "may not specify more than two policyTypes"
        return [*errs, f"spec.policyTypes: Invalid value: {shown}: {detail}"]
    for i, ptype in enumerate(types):
        path = f"spec.policyTypes[{i}]"
        if field_typed(ptype, str, path, errs) is not None and ptype not in POLICY_TYPES:
            errs.append(field_not_supported(path, ptype, POLICY_TYPES))
        elif lint and ptype in types[:i]:
            errs.append(f"{path}: Duplicate value: {field_value(ptype)}")
    return errs


# --- schema and dispatch --------------------------------------------------------------------

_CLUSTER_SCOPED = frozenset(
    "Namespace Node PersistentVolume ClusterRole ClusterRoleBinding StorageClass PriorityClass "
    "IngressClass RuntimeClass CustomResourceDefinition APIService CSIDriver "
    "ValidatingWebhookConfiguration MutatingWebhookConfiguration ValidatingAdmissionPolicy "
    "ValidatingAdmissionPolicyBinding CertificateSigningRequest".split()
)
_NAME_RULES = {"Namespace": dns1123_label_errors} | dict.fromkeys(
    ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"), path_segment_errors
)


def validate_schema(obj: dict, version: str = "1.30") -> list[str]:
    """Return the first strict OpenAPI schema error for obj (unknown fields too), or []."""
    # kubernetes-validate ships its schemas, so this never touches the network.
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            return [f"{key}: Required value"]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path).lstrip(".")
        return [f"{path or '<root>'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:  # an unknown kind cannot be vouched for
        return [exc.message]
    return []


def validate_object(obj: dict, *, version: str = "1.30") -> list[str]:
    """Return the schema's and the API server's errors for obj ([] when both accept it)."""
    # Only NetworkPolicy has its spec re-implemented; other kinds get schema and ObjectMeta checks.
    if not isinstance(obj, dict):
        return ["<root>: Invalid type: expected object"]
    errs = validate_schema(obj, version)
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ""
    if kind == "NetworkPolicy" and obj.get("apiVersion") == "networking.k8s.io/v1":
        return errs + validate_network_policy(default_network_policy(obj), lint=True)
    rule = _NAME_RULES.get(kind, dns1123_subdomain_errors)
    return errs + _validate_object_meta(obj.get("metadata"), kind not in _CLUSTER_SCOPED, rule)


# The JSON types of the fields the inventory's readers use (remediation, simulation), as the
# schema has them: {field: type} ("*": every field), [item type]. A full schema check costs
# ~10 ms an object.
_OWNERS = {"ownerReferences": [{"kind": str, "name": str, "controller": bool}]}
_POD_SPEC = {
    "serviceAccountName": str,
    "nodeName": str,
    "hostNetwork": bool,
    "hostPID": bool,
    "hostIPC": bool,
    "containers": [{"ports": [{"containerPort": int, "protocol": str, "name": str}]}],
}
_TEMPLATE = {"metadata": {"labels": {"*": str}}, "spec": _POD_SPEC}
_SHAPES = {
    "Pod": {
        "metadata": _OWNERS,
        "spec": _POD_SPEC,
        "status": {"podIP": str, "hostIP": str, "podIPs": [{"ip": str}]},
    },
    "Service": {"spec": {"clusterIP": str}},
    **dict.fromkeys(
        ("RoleBinding", "ClusterRoleBinding"),
        {
            "roleRef": {"kind": str, "name": str, "apiGroup": str},
            "subjects": [{"kind": str, "name": str, "namespace": str, "apiGroup": str}],
        },
    ),
    "CronJob": {"spec": {"jobTemplate": {"spec": {"template": _TEMPLATE}}}},
    **dict.fromkeys(
        ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job"),
        {"spec": {"template": _TEMPLATE}},
    ),
}


def _shape_errors(value: Any, shape: Any, path: str, errs: list[str]) -> None:
    """Append an Invalid type error for each value in value that does not have shape's type."""
    if value is None:
        return
    if isinstance(shape, dict):
        for key, inner in (field_typed(value, dict, path, errs) or {}).items():
            if key in shape or "*" in shape:
                _shape_errors(
                    inner, shape.get(key, shape.get("*")), f"{path}.{key}".lstrip("."), errs
                )
    elif isinstance(shape, list):
        for ipath, item in _items(value, path, errs):
            _shape_errors(item, shape[0], ipath, errs)
    elif shape is bool:  # _typed refuses booleans where numbers are wanted, so not here
        if not isinstance(value, bool):
            errs.append(f"{path}: Invalid type: expected boolean")
    else:
        field_typed(value, shape, path, errs)


def storable_errors(obj: dict) -> list[str]:
    """Return why the API server could never have stored obj as a log records it ([]: it could).

    For objects read back from an audit log, where any field may be crafted: ObjectMeta, the
    JSON types of the fields kforensics reads, and for a NetworkPolicy its whole spec (CIDRs as
    lax as older servers were).
    """
    if not isinstance(obj, dict):
        return ["<root>: Invalid type: expected object"]
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ""
    if kind == "NetworkPolicy":
        return validate_network_policy(default_network_policy(obj), strict_cidr=False)
    rule = _NAME_RULES.get(kind, dns1123_subdomain_errors)
    errs = _validate_object_meta(obj.get("metadata"), kind not in _CLUSTER_SCOPED, rule)
    _shape_errors(obj, _SHAPES.get(kind, {}), "", errs)
    return errs
