"""What pod specs and Services say about who talks to whom: DNS names in env values, args and
command, and the ports Services send traffic to. Values are attacker-controlled: they are split
in one linear pass, never matched by a backtracking pattern.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator

from kforensics.investigate.redact import clip
from kforensics.netpol.names import port_name_errors
from kforensics.untrusted import visible

CLUSTER_DOMAIN = ("svc", "cluster", "local")
PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_HOST = 253  # longer tokens are no DNS name: never split further
# One pass, no backtracking: a crafted megabyte value costs one linear split.
_SEPARATORS = re.compile(r"[^a-z0-9.-]+")


def shown(text: object, limit: int = 64) -> str:
    """Return log-derived text for a person: control characters escaped, cut to limit."""
    return clip(visible(str(text)), limit)


# --- Service references in pod specs --------------------------------------------------------


def containers(spec: dict) -> list[dict]:
    """Return the init, app and ephemeral containers of a pod spec (dicts only)."""
    out = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(key) if isinstance(spec, dict) else None
        out += [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []
    return out


def _texts(container: dict) -> Iterator[tuple[str, str]]:
    """Yield (where, value) of a container's env values, command and args."""
    cname = shown(str(container.get("name")), 63)
    env = container.get("env")
    for e in env if isinstance(env, list) else []:
        if isinstance(e, dict) and isinstance(e.get("value"), str):
            yield f"container {cname} env {shown(str(e.get('name')), 63)}", e["value"]
    for key in ("command", "args"):
        items = container.get(key)
        for i, value in enumerate(items if isinstance(items, list) else []):
            if isinstance(value, str):
                yield f"container {cname} {key}[{i}]", value


def _service_of(parts: tuple[str, ...], namespace: str) -> tuple[str, str] | None:
    """Return (namespace, name) of the Service a DNS name's labels name, or None."""
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 or (len(parts) in (3, 5) and parts[2:] == CLUSTER_DOMAIN[: len(parts) - 2]):
        return parts[1], parts[0]
    return None


def service_references(
    spec: dict, namespace: str, known: Collection[tuple[str, str]]
) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Return (the known Services (namespace, name) the pod spec names by DNS name -> where,
    the `.svc` names of Services not known -> where); a bare name is of its own namespace."""
    found: dict[tuple[str, str], str] = {}
    unknown: dict[str, str] = {}
    for container in containers(spec):
        for where, value in _texts(container):
            for token in _SEPARATORS.split(value.lower()):
                token = token.strip(".")  # an FQDN's trailing dot
                if not token or len(token) > MAX_HOST:
                    continue
                parts = tuple(token.split("."))
                ref = _service_of(parts, namespace)
                if ref in known:
                    found.setdefault(ref, f"{where} names {shown(token, 80)}")
                elif ref and len(parts) > 2:
                    unknown.setdefault(shown(token, 80), where)
    return found, unknown


# --- ports ----------------------------------------------------------------------------------


def container_ports(specs: list[dict]) -> list[tuple[str, int, str]]:
    """Return (protocol, port, name) of the containers' ports."""
    out = []
    for spec in specs:
        for c in containers(spec):
            for p in c.get("ports") if isinstance(c.get("ports"), list) else []:
                if not isinstance(p, dict):
                    continue
                num, proto = p.get("containerPort"), p.get("protocol") or "TCP"
                if type(num) is int and 1 <= num <= 65535 and proto in PROTOCOLS:
                    out.append(
                        (proto, num, p.get("name") if isinstance(p.get("name"), str) else "")
                    )
    return out


def target_ports(svc: dict, specs: list[dict], keep_named: bool) -> tuple[list[dict], list[str]]:
    """Return the NetworkPolicy ports of a Service's targetPorts (named ones resolved on the
    specs' container ports, or kept by name when keep_named) and the names not resolved."""
    ports, unresolved = [], []
    items = (svc.get("spec") or {}).get("ports")
    for p in items if isinstance(items, list) else []:
        if not isinstance(p, dict) or (p.get("protocol") or "TCP") not in PROTOCOLS:
            continue
        proto, target = p.get("protocol") or "TCP", p.get("targetPort", p.get("port"))
        if isinstance(target, str) and target.isascii() and target.isdigit():
            target = int(target)
        if isinstance(target, str):
            named = [n for pr, n, name in container_ports(specs) if name == target and pr == proto]
            if named:
                target = named[0]
            elif keep_named and not port_name_errors(target):
                ports.append({"protocol": proto, "port": target})
                continue
            else:
                unresolved.append(shown(target, 63))
                continue
        if type(target) is int and 1 <= target <= 65535:
            rule = {"protocol": proto, "port": target}
            if rule not in ports:
                ports.append(rule)
    return ports, unresolved


def port_text(rules: list[dict]) -> list[str]:
    """Return NetworkPolicy ports as a person reads them: "TCP 8443"."""
    out = []
    for r in rules:
        port = r.get("port")
        text = f"{r.get('protocol') or 'TCP'} {'all ports' if port is None else port}"
        out.append(text + (f"-{r['endPort']}" if r.get("endPort") else ""))
    return out
