"""Least privilege from the log: the RBAC an identity needed, as audit2rbac derives it.

What the identity did before the incident, as the case's `requests` view holds it (successful
requests only), becomes a Role and RoleBinding per namespace it acted in, and a ClusterRole and
ClusterRoleBinding for what it did cluster-wide (cluster-scoped resources, namespaced ones
across all namespaces, non-resource URLs). Every value comes from the log, so a namespace,
group, resource, verb, object name or URL that is not a valid RBAC value is left out with a
note, never emitted; names are made valid with netpol.names.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from kforensics.contain.rbac_validate import API_VERSION, RBAC_GROUP
from kforensics.netpol.names import (
    dns1123_subdomain,
    is_dns1123_label,
    is_dns1123_subdomain,
    utf8_len,
)
from kforensics.untrusted import visible

NAME_PREFIX = "kforensics-least-privilege-"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kforensics"}
RATIONALE = "kforensics.io/rationale"
MAX_NAMES = 10  # more objects than this in one group and the rule names none (as audit2rbac)
NO_NAMES_VERBS = frozenset({"create", "list", "watch", "deletecollection"})  # no name to check
SA_PREFIX = "system:serviceaccount:"

# What the bootstrap ClusterRoles bound to every authenticated user (system:discovery,
# system:public-info-viewer, system:basic-user) already grant: never worth a grant of its own.
DISCOVERY_URLS = frozenset({"/api", "/apis", "/openapi", "/version", "/version/"})
DISCOVERY_URL_PREFIXES = ("/api/", "/apis/", "/openapi/")
PUBLIC_URLS = frozenset({"/healthz", "/livez", "/readyz"})
SELF_REVIEWS = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    }
)

_VERB = re.compile("[a-z]{1,63}")
_OBJECT_NAME = re.compile("[A-Za-z0-9]([-A-Za-z0-9_.:@]*[A-Za-z0-9])?")
_URL_SEGMENT = re.compile("[a-z0-9._~-]+")
_SHOWN = 10  # example values a note shows

# One row per distinct request shape: the query groups, Python judges the attacker's values.
_SQL = """
SELECT namespace, coalesce(api_group, '') AS api_group, resource, subresource, verb, name,
       CASE WHEN resource IS NULL THEN split_part(request_uri, '?', 1) END AS url,
       count(*) AS n
FROM requests
WHERE username = $identity
  AND (code < 400 OR (code IS NULL AND decision = 'allow'))
  AND (CAST($before AS TIMESTAMPTZ) IS NULL OR ts < CAST($before AS TIMESTAMPTZ))
GROUP BY ALL
"""


@dataclass
class Grant:
    """The least-privilege RBAC objects for one identity, why, and how many requests it read."""

    objects: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    requests: int = 0


@dataclass
class _Scope:
    """What one scope (a namespace, or the cluster: None) needs: rules and their requests."""

    # (api group, resource[/subresource], verb) -> object name -> requests; None: no name
    resource: dict[tuple[str, str, str], Counter] = field(default_factory=dict)
    # non-resource URL -> verbs
    urls: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    requests: int = 0


def _shown(value: object) -> str:
    """Return a log value as a note shows it: escaped, quoted, cut to 64 characters."""
    text = visible(str(value))
    return "'" + (text if len(text) <= 64 else text[:63] + "\u2026") + "'"


def _valid_name(name: str) -> bool:
    """Return whether an object name from the log may go into resourceNames."""
    return bool(_OBJECT_NAME.fullmatch(name)) and utf8_len(name) <= 253


def _valid_url(url: str | None) -> bool:
    """Return whether a non-resource URL from the log may go into nonResourceURLs (no '*')."""
    if not url or not url.startswith("/") or utf8_len(url) > 253:
        return False
    segments = url[1:].split("/")
    if segments[-1] == "":  # a trailing slash ("/version/") is a URL of its own
        segments.pop()
    return all(_URL_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments)


def _invalid_part(row: tuple) -> tuple[str, object] | None:
    """Return (what, value) of a resource request that is not a valid RBAC value, or None."""
    ns, group, resource, sub, verb, name = row[:6]
    checks = (
        (ns is not None and not is_dns1123_label(ns), "namespace", ns),
        (group != "" and not is_dns1123_subdomain(group), "API group", group),
        (not is_dns1123_label(resource), "resource", resource),
        (sub is not None and not is_dns1123_label(sub), "subresource", sub),
        (not _VERB.fullmatch(verb or ""), "verb", verb),
        # only a name that may go into resourceNames is judged: the others are never emitted
        (verb not in NO_NAMES_VERBS and name is not None and not _valid_name(name), "name", name),
    )
    return next(((what, value) for bad, what, value in checks if bad), None)


def _subject(identity: str) -> tuple[dict | None, str]:
    """Return the RBAC subject for identity and its name's stem, or (None, why not)."""
    if identity.startswith(SA_PREFIX):
        ns, _, name = identity[len(SA_PREFIX) :].partition(":")
        if is_dns1123_label(ns) and is_dns1123_subdomain(name):
            return {"kind": "ServiceAccount", "name": name, "namespace": ns}, f"{ns}.{name}"
        return None, f"{_shown(identity)} is not a valid service account name"
    if not identity or visible(identity) != identity or utf8_len(identity) > 1024:
        return None, f"{_shown(identity)} is not a user name a binding can hold"
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": identity}, identity


def _rules(scope: _Scope) -> list[dict]:
    """Return scope's PolicyRules, resources with the same group, names and verbs merged."""
    verbs: dict[tuple[str, str, tuple[str, ...]], set[str]] = defaultdict(set)
    for (group, resource, verb), names in scope.resource.items():
        named = verb not in NO_NAMES_VERBS and None not in names and len(names) <= MAX_NAMES
        verbs[group, resource, tuple(sorted(names)) if named else ()].add(verb)
    merged: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource, names), vs in sorted(verbs.items()):
        merged[group, names, tuple(sorted(vs))].append(resource)
    rules = []
    for (group, names, vs), resources in sorted(merged.items()):
        rule = {"apiGroups": [group], "resources": resources, "verbs": list(vs)}
        rules.append({**rule, "resourceNames": list(names)} if names else rule)
    by_verbs: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for url, vs in sorted(scope.urls.items()):
        by_verbs[tuple(sorted(vs))].append(url)
    rules += [{"nonResourceURLs": urls, "verbs": list(vs)} for vs, urls in sorted(by_verbs.items())]
    return rules


def _objects(ns: str | None, scope: _Scope, subject: dict, stem: str, when: str) -> list[dict]:
    """Return the Role and RoleBinding (ClusterRole and ClusterRoleBinding when ns is None)."""
    name = dns1123_subdomain(stem, prefix=NAME_PREFIX)
    rationale = f"derived from {scope.requests} requests {when}"[:253]
    kind = "Role" if ns else "ClusterRole"

    def meta() -> dict:
        """Return a fresh metadata (the objects share no dict a caller might change)."""
        return {
            "name": name,
            **({"namespace": ns} if ns else {}),
            "labels": dict(MANAGED_BY),
            "annotations": {RATIONALE: rationale},
        }

    role = {"apiVersion": API_VERSION, "kind": kind, "metadata": meta(), "rules": _rules(scope)}
    binding = {
        "apiVersion": API_VERSION,
        "kind": f"{kind}Binding",
        "metadata": meta(),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": name},
        "subjects": [dict(subject)],
    }
    return [role, binding]


class _LeftOut:
    """Requests left out, by reason, each with example values for its note."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.values: dict[str, dict[str, None]] = defaultdict(dict)

    def add(self, reason: str, value: str, n: int) -> None:
        """Record n requests left out for reason, value as a note shows it."""
        self.counts[reason] += n
        self.values[reason][value] = None

    def notes(self) -> list[str]:
        """Return one note a reason, with at most _SHOWN of its values."""
        out = []
        for reason, n in sorted(self.counts.items()):
            values = list(self.values[reason])
            more = f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else ""
            out.append(
                f"left out {n} requests whose {reason} is not a valid RBAC value: "
                f"{', '.join(values[:_SHOWN])}{more}"
            )
        return out


def least_privilege(
    con: duckdb.DuckDBPyConnection, identity: str, before: datetime | None
) -> Grant:
    """Return the RBAC objects granting identity what it did before `before` (all: None)."""
    if before is not None and before.tzinfo is None:
        before = before.replace(tzinfo=UTC)  # the case's times are UTC
    rows = con.execute(_SQL, {"identity": identity, "before": before}).fetchall()
    when = (
        f"before {before.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"
        if before
        else "(the whole log)"
    )
    grant = Grant(requests=sum(r[-1] for r in rows))
    scopes: dict[str | None, _Scope] = defaultdict(_Scope)
    left_out, discovery = _LeftOut(), 0
    for ns, group, resource, sub, verb, name, url, n in rows:
        if resource is None:
            verb, url = (verb or "").lower(), url or ""
            if verb == "get" and (
                url in DISCOVERY_URLS
                or url in PUBLIC_URLS
                or url.startswith(DISCOVERY_URL_PREFIXES)
            ):
                discovery += n
            elif not _valid_url(url):
                left_out.add("non-resource URL", _shown(url), n)
            elif not _VERB.fullmatch(verb):
                left_out.add("verb", _shown(verb), n)
            else:
                scopes[None].urls[url].add(verb)
                scopes[None].requests += n
            continue
        if verb == "create" and (group, resource) in SELF_REVIEWS and sub is None:
            discovery += n
            continue
        bad = _invalid_part((ns, group, resource, sub, verb, name))
        if bad:
            left_out.add(bad[0], _shown(bad[1]), n)
            continue
        key = (group, f"{resource}/{sub}" if sub else resource, verb)
        names = scopes[ns].resource.setdefault(key, Counter())
        names[name if verb not in NO_NAMES_VERBS else None] += n
        scopes[ns].requests += n
    subject, stem = _subject(identity)
    if subject is None:
        grant.notes.append(f"no objects: {stem}")
        scopes.clear()
    for ns in sorted(scopes, key=lambda s: (s is not None, s or "")):
        grant.objects += _objects(ns, scopes[ns], subject, stem, when)
    if discovery:
        grant.notes.append(
            f"left out {discovery} discovery and self-review requests (/api, /apis, /version, "
            "/openapi, health checks, selfsubject*reviews): every authenticated user may make "
            "them (system:discovery, system:public-info-viewer, system:basic-user)"
        )
    grant.notes += left_out.notes()
    if not grant.objects and subject is not None:
        grant.notes.append(_no_access_note(identity, grant.requests, when))
    return grant


def _no_access_note(identity: str, requests: int, when: str) -> str:
    """Return the note for an identity that needs no grant of its own."""
    if requests == 0:
        text = f"{_shown(identity)} made no successful API request {when}: it needs no API access"
        if identity.startswith(SA_PREFIX):
            text += (
                "; set automountServiceAccountToken: false on the service account (or its "
                "pods) so that no token is mounted"
            )
        return text
    return f"{_shown(identity)} needs no grant of its own {when}: nothing to bind"
