"""The cluster as of a time T, rebuilt from the objects the audit log recorded.

Namespaces, pods, services, workloads, NetworkPolicies, service accounts and RBAC: the last
state each had at or before T (response objects of creates, updates and patches, merge patches
applied when only the request was logged), deletions applied. Objects from `kubectl get -o
json|yaml` dumps loaded with `kforensics load --inventory` fill in what the log never recorded.
What cannot be known (an audit level that logged no objects) is listed, not guessed.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
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
# about 10x that in Python objects; beyond it, bodies are parsed again at each call (one pass
# a remediation: the cache serves only a second call, as the sensitive view makes).
PARSED_CACHE_BYTES = 32 << 20
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


def timeline(con: duckdb.DuckDBPyConnection) -> Timeline:
    """Return the log's changes read once: `timeline(con)(at)` is the inventory as of at."""
    return Timeline(con)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsed bodies are trees of fresh dicts and lists,
    which it would scan again and again as they pile up (4x the parse itself, measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Timeline:
    """The log's changes, read and parsed once, replayed in one chronological pass per call.

    A remediation asks for the cluster as of the end and just before each change it restores:
    `snapshots(times)` gives them all from one pass, instead of one replay of the log each.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con  # each pass reads the changes again, in chunks: their bodies are most
        # of a log's memory (2.9 GB fetched at once for 10M events)
        self._parsed: dict[tuple, tuple | None] = {}  # row -> (request, response); None: deep
        self._budget = PARSED_CACHE_BYTES  # of logged text whose parse is kept: memory bounded
        self._dumps = _dump_rows(con)
        self._seen = con.execute(
            "SELECT namespace, min(ts) FROM events WHERE namespace IS NOT NULL GROUP BY namespace"
        ).fetchall()

    def __call__(self, at: datetime | None) -> Inventory:
        """Return the inventory as of a time (None: the end of the case), its own copy."""
        return self.snapshots([at])[at]

    def snapshots(self, times: Iterable[datetime | None]) -> dict[datetime | None, Inventory]:
        """Return {time: inventory as of it} (None: the end of the case) from one pass.

        No inventory shares an object with the timeline; inventories of one call share the
        objects that did not change between their times (copied once): read them, or copy
        what you change.
        """
        wanted = sorted({t for t in times if t is not None})
        wanted += [None] if None in set(times) else []
        replay = _Replay(self._load)
        _from_dumps(self._dumps, replay.inv)
        out: dict[datetime | None, Inventory] = {}
        copies: dict[int, tuple[dict, dict, list[str]]] = {}  # id(state) -> state, copy, errors
        changes = self._changes()
        row = next(changes, None)
        with _collector_paused():
            for at in wanted:
                # rows are in time order, undated last: an undated change counts only at the end
                while row is not None and (
                    at is None or (row[1][0] is not None and row[1][0] <= at)
                ):
                    replay.apply(*row)
                    row = next(changes, None)
                out[at] = self._snapshot(replay, at, copies)
        changes.close()
        return out

    def _changes(self) -> Iterator[tuple[int, tuple]]:
        """Return (number, row) of the logged changes in time order, fetched in chunks."""
        cursor = self._con.cursor()  # its own result: the caller's connection stays free
        try:
            result = cursor.execute(_changes_sql(), {"resources": list(KINDS)})
            i = 0
            while chunk := result.fetchmany(4096):
                for row in chunk:
                    yield i, row
                    i += 1
        finally:
            cursor.close()

    def _load(self, key: tuple, req: str | None, resp: str | None) -> tuple | None:
        if key in self._parsed:
            return self._parsed[key]
        try:
            bodies = (_load(req), _load(resp))
        except untrusted.TooDeep:
            bodies = None
        size = len(req or "") + len(resp or "")
        if size <= self._budget:
            self._parsed[key], self._budget = bodies, self._budget - size
        return bodies

    def _snapshot(self, replay: _Replay, at: datetime | None, copies: dict) -> Inventory:
        """Return the replay's state as an inventory of its own (copies shared within a call)."""
        state = replay.inv
        inv = Inventory(at, evidence=dict(state.evidence), refused=dict(state.refused))
        inv.unknown = [*state.unknown, *replay.summary()]
        for key, obj in state.objects.items():
            if id(obj) not in copies:  # the parsed bodies stay the timeline's own
                copies[id(obj)] = (obj, copy.deepcopy(obj), storable_errors(obj))
            inv.objects[key] = copies[id(obj)][1]
        named = {
            ns for ns, first in self._seen if at is None or (first is not None and first <= at)
        }
        _namespaces_seen(named, inv)
        _refuse_unstorable(inv, {key: copies[id(o)][2] for key, o in state.objects.items()})
        return inv


class _Replay:
    """The logged changes applied in time order to one inventory (`apply`, row by row)."""

    def __init__(self, load: Callable[[tuple, str | None, str | None], tuple | None]) -> None:
        self.inv = Inventory(at=None)
        self.load = load  # load(key, request, response): the parsed bodies, None when too deep
        self.unlogged: dict[str, int] = {}
        self.unreadable: dict[str, int] = {}

    def summary(self) -> list[str]:
        """Return what the changes so far could not tell, one line per kind."""
        out = [
            f"{n} change(s) to {kind} objects were logged without the object (audit level "
            "Metadata, or a patch to an object never seen whole): their state is unknown"
            for kind, n in sorted(self.unlogged.items())
        ]
        return out + [
            f"{n} change(s) to {kind} objects were logged with a body nested deeper than "
            f"{untrusted.MAX_DEPTH} levels (crafted?): not read, their state is unknown"
            for kind, n in sorted(self.unreadable.items())
        ]

    def apply(self, i: int, row: tuple) -> None:
        """Apply one logged change (row i) to the inventory.

        A stored state is never changed in place (a patch builds a new one): snapshots
        share the states that did not change.
        """
        inv, unlogged = self.inv, self.unlogged
        _ts, resource, sub, verb, ns, name, req, resp, file, line, audit_id, misnaming = row
        kind = KINDS[resource]
        if verb == "delete" and name:  # what a delete carries is not needed, so not parsed
            key = (kind, "" if kind == "Namespace" else (ns or ""), name)
            inv.objects.pop(key, None)
            inv.evidence[key] = f"deleted: {file}:{line} ({clip(audit_id or '')})"
            return
        bodies = self.load((i, file, line), req, resp)  # the same change in every pass
        if bodies is None:
            # Nothing of it can be trusted to rebuild the object (not even its name).
            self.unreadable[kind] = self.unreadable.get(kind, 0) + 1
            return
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
            return
        key = (kind, "" if kind == "Namespace" else (ns or ""), name)
        if verb == "delete":
            inv.objects.pop(key, None)
            inv.evidence[key] = f"deleted: {file}:{line} ({clip(audit_id or '')})"
            return
        if full is not None:
            state = full
        elif verb == "patch" and isinstance(req, dict) and key in inv.objects:
            state = merge_patch(inv.objects[key], req)
        else:
            unlogged[kind] = unlogged.get(kind, 0) + 1
            return
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
            return
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


def _refuse_unstorable(inv: Inventory, known: Mapping[tuple, list[str]]) -> None:
    """Drop objects the API server could never have stored (crafted records), saying why;
    known: the errors of objects already checked, by key."""
    for key, obj in list(inv.objects.items()):
        kind, ns, name = key
        errors = known[key] if key in known else storable_errors(obj)
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
