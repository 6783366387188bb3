"""The cluster as of a time T, rebuilt from the objects the audit log recorded.

Namespaces, pods, services, workloads, NetworkPolicies, service accounts and RBAC: the last
state each had at or before T (response objects of creates, updates and patches, merge patches
applied when only the request was logged), deletions applied. Objects from `kubectl get -o
json|yaml` dumps loaded with `kforensics load --inventory` fill in what the log never recorded.
What cannot be known (an audit level that logged no objects) is listed, not guessed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

import duckdb

from kforensics import untrusted
from kforensics.detection.macros import SHARED_FILE, builtin_shared, expand
from kforensics.investigate.redact import clip
from kforensics.netpol.names import is_dns1123_label
from kforensics.netpol.validate import storable_errors

KINDS = {
    "namespaces": "Namespace",
    "pods": "Pod",
    "services": "Service",
    "networkpolicies": "NetworkPolicy",
    "deployments": "Deployment",
    "replicasets": "ReplicaSet",
    "daemonsets": "DaemonSet",
    "statefulsets": "StatefulSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    # what the containment revokes: who may do what (Secrets are left out: their bodies are
    # credentials)
    "serviceaccounts": "ServiceAccount",
    "roles": "Role",
    "clusterroles": "ClusterRole",
    "rolebindings": "RoleBinding",
    "clusterrolebindings": "ClusterRoleBinding",
}
WORKLOADS = {"Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob"}
# How much logged text (request and response bodies) a timeline keeps parsed between calls:
# about 10x that in Python objects; beyond it, bodies are parsed again at each call.
PARSED_CACHE_BYTES = 128 << 20
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation",
                  "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")  # fmt: skip

_CHANGES = """
SELECT ts, resource, subresource, verb, namespace, name, request_object, response_object,
       source_file, source_line, audit_id,
       CASE WHEN {{ body_names_another(request_object) }} THEN request_object
            WHEN {{ body_names_another(response_object) }} THEN response_object
       END AS misnaming_body
FROM requests
WHERE resource IN (SELECT unnest($resources))
  AND (subresource IS NULL OR (resource = 'pods' AND subresource = 'status'))
  AND verb IN ('create', 'update', 'patch', 'delete')
  AND coalesce(code, 200) < 400
ORDER BY ts NULLS LAST, source_file, source_line
"""


@dataclass
class Inventory:
    """Objects as of `at`, where each state came from, and what the log could not tell."""

    at: datetime | None
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    evidence: dict[tuple[str, str, str], str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    refused: dict[tuple[str, str, str], str] = field(default_factory=dict)  # key -> why

    def of_kind(self, kind: str) -> list[dict]:
        """Return the objects of one kind, sorted by namespace and name."""
        return [o for (k, _, _), o in sorted(self.objects.items()) if k == kind]

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        """Return one object, or None."""
        return self.objects.get((kind, namespace or "", name))

    def namespace_labels(self, name: str) -> dict[str, str]:
        """Return a namespace's labels (always with the immutable kubernetes.io/metadata.name)."""
        ns = self.get("Namespace", "", name) or {}
        labels = dict((ns.get("metadata") or {}).get("labels") or {})
        labels["kubernetes.io/metadata.name"] = name
        return labels


def merge_patch(target: object, patch: object) -> object:
    """Return target with an RFC 7386 JSON merge patch applied (null deletes a key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def clean(obj: dict) -> dict:
    """Return the object without the fields the server sets (fit to re-apply)."""
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata") or {}
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not annotations:
        meta.pop("annotations", None)
    if obj.get("kind") != "Pod":  # a pod's status holds its IP, which the simulation needs
        obj.pop("status", None)
    return obj


@cache
def _changes_sql() -> str:
    """Return _CHANGES with the rules' macro written out (one definition of a misnaming body)."""
    return expand(_CHANGES, builtin_shared(), Path(SHARED_FILE))


def _named(body: str, namespace: str | None, name: str) -> str:
    """Return `namespace/name` as the body's metadata gives them (the request's where absent)."""
    try:
        meta = untrusted.loads(body).get("metadata")
        other_ns, other = meta.get("namespace") or namespace, meta.get("name") or name
    except (ValueError, AttributeError):  # not a mapping, or too deep for Python to read
        return "another object"
    return f"{untrusted.visible(str(other_ns))}/{untrusted.visible(str(other))}"


def _load(value: str | None) -> object:
    return untrusted.loads(value) if value else None


def reconstruct(con: duckdb.DuckDBPyConnection, at: datetime | None = None) -> Inventory:
    """Return the inventory as of `at` (None: the end of the case)."""
    return timeline(con)(at)


def timeline(con: duckdb.DuckDBPyConnection) -> Callable[[datetime | None], Inventory]:
    """Return a function giving the inventory as of a time (None: the end of the case).

    The log is read and each logged body parsed once; each call replays the changes up to its
    time, and hands out its own copy of the objects (no two inventories share one), instead of
    querying and parsing every change again: a remediation asks for one inventory per finding
    it restores.
    """
    rows = con.execute(_changes_sql(), {"resources": list(KINDS)}).fetchall()
    parsed: dict[int, tuple | None] = {}  # row index -> (request, response); None: too deep
    budget = [PARSED_CACHE_BYTES]  # of logged text whose parse is kept: memory stays bounded

    def load(i: int, req: str | None, resp: str | None) -> tuple | None:
        if i in parsed:
            return parsed[i]
        try:
            bodies = (_load(req), _load(resp))
        except untrusted.TooDeep:
            bodies = None
        size = len(req or "") + len(resp or "")
        if size <= budget[0]:
            parsed[i], budget[0] = bodies, budget[0] - size
        return bodies

    dumps = _dump_rows(con)
    seen = con.execute(
        "SELECT namespace, min(ts) FROM events WHERE namespace IS NOT NULL GROUP BY namespace"
    ).fetchall()

    def inventory_at(at: datetime | None) -> Inventory:
        inv = Inventory(at=at)
        _from_dumps(dumps, inv)
        # rows are in time order, undated last: an undated change counts only at the end
        upto = [
            (i, r) for i, r in enumerate(rows) if at is None or (r[0] is not None and r[0] <= at)
        ]
        _replay(upto, inv, load)
        inv.objects = copy.deepcopy(inv.objects)  # the parsed bodies stay the timeline's own
        named = {ns for ns, first in seen if at is None or (first is not None and first <= at)}
        _namespaces_seen(named, inv)
        _refuse_unstorable(inv)
        return inv

    return inventory_at


def _replay(rows: list[tuple[int, tuple]], inv: Inventory, load: Callable) -> None:
    """Apply the logged changes (in time order) to the inventory; load(i, request, response)
    gives a row's parsed bodies (None: nested too deep to read)."""
    unlogged: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    for i, (_ts, resource, sub, verb, ns, name, req, resp, file, line, audit_id, misnaming) in rows:
        kind = KINDS[resource]
        if verb == "delete" and name:  # what a delete carries is not needed, so not parsed
            key = (kind, "" if kind == "Namespace" else (ns or ""), name)
            inv.objects.pop(key, None)
            inv.evidence[key] = f"deleted: {file}:{line} ({clip(audit_id or '')})"
            continue
        bodies = load(i, req, resp)
        if bodies is None:
            # Nothing of it can be trusted to rebuild the object (not even its name).
            unreadable[kind] = unreadable.get(kind, 0) + 1
            continue
        req, resp = bodies
        full = resp if isinstance(resp, dict) and resp.get("kind") == kind else None
        if full is None and verb in ("create", "update") and isinstance(req, dict):
            if req.get("kind") in (kind, None) and sub is None:
                full = req
        meta = (full or {}).get("metadata")
        name = name or (meta.get("name") if isinstance(meta, dict) else None)
        if not isinstance(name, str) or not name:
            if verb == "create" and full is None:
                unlogged[kind] = unlogged.get(kind, 0) + 1
            continue
        key = (kind, "" if kind == "Namespace" else (ns or ""), name)
        if verb == "delete":
            inv.objects.pop(key, None)
            inv.evidence[key] = f"deleted: {file}:{line} ({clip(audit_id or '')})"
            continue
        if full is not None:
            state = full
        elif verb == "patch" and isinstance(req, dict) and key in inv.objects:
            state = merge_patch(inv.objects[key], req)
        else:
            unlogged[kind] = unlogged.get(kind, 0) + 1
            continue
        state = dict(state)
        state.setdefault("kind", kind)
        meta = state.setdefault("metadata", {})
        if misnaming is not None:
            # The API server stores no such object: the body is evidence, not a template.
            other = _named(misnaming, ns, name)
            where = f"{ns}/{name}" if kind != "Namespace" else name
            inv.objects.pop(key, None)  # what it was is now unknown
            inv.refused[key] = f"its body logged at {file}:{line} names {other}"
            inv.unknown.append(
                f"{kind} {where}: the body logged at {file}:{line} names {other}; not "
                "used (finding k8s-object-body-names-another-object)"
            )
            continue
        if isinstance(meta, dict):  # else refused below, with the reason
            state["metadata"] = meta = dict(meta)
            meta["name"] = name  # from the request (objectRef), never from the body
            if ns and kind != "Namespace":
                meta["namespace"] = ns
            else:  # cluster-scoped: a namespace's request names the namespace itself
                meta.pop("namespace", None)
        inv.objects[key] = state
        inv.refused.pop(key, None)  # a later truthful record is the state again
        inv.evidence[key] = f"{file}:{line} ({clip(audit_id or '')})"
    for kind, n in sorted(unlogged.items()):
        inv.unknown.append(
            f"{n} change(s) to {kind} objects were logged without the object (audit level "
            "Metadata, or a patch to an object never seen whole): their state is unknown"
        )
    for kind, n in sorted(unreadable.items()):
        inv.unknown.append(
            f"{n} change(s) to {kind} objects were logged with a body nested deeper than "
            f"{untrusted.MAX_DEPTH} levels (crafted?): not read, their state is unknown"
        )


def _refuse_unstorable(inv: Inventory) -> None:
    """Drop objects the API server could never have stored (crafted records), saying why."""
    for key, obj in list(inv.objects.items()):
        kind, ns, name = key
        errors = storable_errors(obj)
        if errors:
            del inv.objects[key]
            why = f"{_short(errors[0])}; {len(errors)} error(s)"
            inv.refused[key] = why
            where = f"{ns}/{name}" if ns else name
            inv.unknown.append(
                f"{kind} {_short(where)}: the log's record is not an object the API server "
                f"accepts ({why}): not used"
            )


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dump_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Return the objects of `kubectl get` dumps (table inventory), in load order."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'inventory'"
    ).fetchone()[0]
    if not exists:
        return []
    return con.execute(
        "SELECT kind, namespace, name, object, source_file FROM inventory ORDER BY load_id"
    ).fetchall()


def _from_dumps(dumps: list[tuple], inv: Inventory) -> None:
    """Seed the inventory with objects from `kubectl get` dumps."""
    for kind, ns, name, obj, file in dumps:
        if kind in KINDS.values():
            key = (kind, "" if kind == "Namespace" else (ns or ""), name)
            try:
                inv.objects[key] = untrusted.loads(obj)
            except untrusted.TooDeep:
                inv.refused[key] = f"nested deeper than {untrusted.MAX_DEPTH} levels"
                inv.unknown.append(f"{kind} {_short(name)} in {file}: {inv.refused[key]}")
                continue
            inv.evidence[key] = f"inventory dump {file}"


def _namespaces_seen(named: set[str], inv: Inventory) -> None:
    """Add namespaces the log names but never recorded, with only their immutable label."""
    seen = {ns for (_, ns, _) in inv.objects if ns} | named
    for ns in sorted(seen):
        key = ("Namespace", "", ns)
        if not is_dns1123_label(ns):
            continue  # no namespace can have that name: nothing to rebuild
        if key not in inv.objects:
            inv.objects[key] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            }
            inv.unknown.append(f"namespace {ns}: never recorded whole; its labels are unknown")
