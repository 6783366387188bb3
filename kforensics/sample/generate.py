"""The sample story (setup, background and incident) and data/samples in every shape."""

from __future__ import annotations

import gzip
import io
import json
import random
from bisect import bisect_left
from functools import lru_cache
from pathlib import Path

import orjson

from .background import _bg_templates, _stream, background_events, write_native_lines
from .incident import ATTACKER, play_incident
from .objects import (
    _OPS_RULES,
    _binding,
    _deployment,
    _helm_meta,
    _meta,
    _netpols,
    _node_patch,
    _persist,
    _pod_objects,
    _rbac,
    _replicaset,
    _service,
    _to_sa,
)
from .shapes import (
    WRITE_VERBS,
    epoch_us,
    native_line,
    to_aks_record,
    to_eks_export_line,
    to_eks_filter_events,
    to_gke_entry,
)
from .world import (
    _CREATE_Q,
    _T0,
    _US,
    ALICE_R,
    CI_R,
    NODES,
    SCHED_R,
    START,
    _at,
    _ctl_r,
    _emit,
    _Pod,
    _rv,
    _template,
    _uuid,
    _World,
)

# The public entry point: callers import the generator from here, not from its parts.
__all__ = [
    "ATTACKER",
    "START",
    "background_events",
    "incident_steps",
    "story_events",
    "to_aks_record",
    "to_eks_export_line",
    "to_eks_filter_events",
    "to_gke_entry",
    "write_native_lines",
    "write_samples",
]

ROTATED = "audit-2026-03-14T09-30-00.000.log.gz"
_END = _T0 + 4 * 3600 * _US
_NS_LABELS = {
    "shop": {"team": "storefront"},
    "payments": {"team": "payments", "trust": "high"},
    "monitoring": {"team": "platform", "trust": "high"},
    "ci": {"team": "platform"},
}
_RELEASES = (("storefront", "shop"), ("payments", "payments"), ("prometheus", "monitoring"))


class _Story:
    """Builds the sample story: cluster setup and background; sampleincident adds the attack."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.w = _World(seed)
        self.events: list[tuple[int, int, dict]] = []
        self.objs: dict[str, dict] = {}
        self.last = ""

    def req(self, t: int, actor: str, verb: str, uri: str, reason: str, **kw: object) -> str:
        """Emit one request received at t (µs); return its auditID."""
        ms: tuple = kw.pop("ms", (2, 15))
        tp = _template(self.w.actors[actor], verb, uri, reason, **kw)
        self.last = aid = _uuid(self.rng)
        dur = int(self.rng.uniform(*ms) * 1000)
        for us, ev in _emit(tp, aid, t + self.rng.randint(0, 999), dur):
            self.events.append((us, len(self.events), ev))
        return aid

    def create(
        self,
        t: int,
        actor: str,
        reason: str,
        obj: dict,
        manager: str,
        query: str = "",
        generation: int = 0,
        spec: dict | None = None,
    ) -> dict:
        """POST a named object; return it as stored (spec overrides the stored spec)."""
        m, api, kind = obj["metadata"], obj["apiVersion"], obj["kind"]
        res = "networkpolicies" if kind == "NetworkPolicy" else kind.lower() + "s"
        ns = m.get("namespace", "")
        uri = f"/apis/{api}" if "/" in api else f"/api/{api}"
        uri += f"/namespaces/{ns}/{res}{query}" if ns else f"/{res}{query}"
        stored = _persist(obj, self.w.uid(kind, ns, m["name"]), t, manager, generation=generation)
        if spec is not None:
            stored["spec"] = spec
        self.req(t, actor, "create", uri, reason, code=201, req=obj, resp=stored)
        self.objs[f"{res}/{ns}/{m['name']}"] = stored
        return stored

    def rollout(self, t: int, pods: list[_Pod]) -> None:
        """What controllers, the scheduler and kubelets do after a Deployment is created."""
        w, p = self.w, pods[0]
        rs = _replicaset(w, p, len(pods))
        reason, manager = _ctl_r("deployment-controller"), "kube-controller-manager"
        self.create(t + 30_000, "ctl:deployment-controller", reason, rs, manager, generation=1)
        for i, q in enumerate(pods):
            tc = t + 70_000 + i * 9_000
            req, created, patch, running = _pod_objects(w, q, tc)
            uri, reason = f"/api/v1/namespaces/{q.ns}/pods", _ctl_r("replicaset-controller")
            self.req(
                tc,
                "ctl:replicaset-controller",
                "create",
                uri,
                reason,
                code=201,
                req=req,
                resp=created,
                ms=(6, 14),
            )
            binding = _binding(q.name, q.ns, q.uid, q.node)
            self.req(
                tc + 25_000, "bind", "create", f"{q.path}/binding", SCHED_R, code=201, req=binding
            )
            self.req(
                tc + 6 * _US,
                f"kubelet:{q.node}",
                "patch",
                f"{q.path}/status",
                "",
                req=patch,
                resp=running,
                ms=(5, 12),
            )

    def setup(self) -> None:
        """08:00-08:08: alice creates namespaces and the CI identity; CI installs three charts."""
        t = _at(8, 0, 4.2)
        for ns, labels in _NS_LABELS.items():
            labels = labels | {"kubernetes.io/metadata.name": ns}  # set by defaulting
            obj = {"kind": "Namespace", "apiVersion": "v1", "metadata": _meta(ns, labels=labels)}
            obj |= {"spec": {}, "status": {"phase": "Active"}}
            fin = {"finalizers": ["kubernetes"]}
            self.create(t, "alice", ALICE_R, obj, "kubectl-create", _CREATE_Q, spec=fin)
            for i, (ctl, kind, name) in enumerate(
                (
                    ("root-ca-cert-publisher", "ConfigMap", "kube-root-ca.crt"),
                    ("service-account-controller", "ServiceAccount", "default"),
                )
            ):
                obj = {"kind": kind, "apiVersion": "v1", "metadata": _meta(name, ns)}
                manager = "kube-controller-manager"
                self.create(t + 40_000 + i * 7_000, f"ctl:{ctl}", _ctl_r(ctl), obj, manager)
            t += int(self.rng.uniform(0.3, 0.9) * _US)
        t = _at(8, 0, 41.7)
        sa = {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": _meta("deployer", "ci")}
        self.create(t, "alice", ALICE_R, sa, "kubectl-create", _CREATE_Q)
        crb = _rbac("ClusterRoleBinding", "ci-deployer", _to_sa("cluster-admin", "ci", "deployer"))
        self.create(t + 2 * _US, "alice", ALICE_R, crb, "kubectl-create", _CREATE_Q)
        t = _at(8, 2, 10.3)
        for release, ns in _RELEASES:
            t = self.helm_install(t, release, ns) + 95 * _US
        for i in range(48):  # kubelet node-status heartbeats every five minutes
            for j, node in enumerate(NODES):
                tn = _at(8, 3) + i * 300 * _US + j * 71 * _US + self.rng.randint(0, 900_000)
                uri = f"/api/v1/nodes/{node}/status?timeout=10s"
                self.req(tn, f"kubelet:{node}", "patch", uri, "", req=_node_patch(tn), ms=(4, 11))

    def helm_install(self, t: int, release: str, ns: str) -> int:
        """`helm install` by the CI deployer; returns the time it finished."""
        w = self.w
        sel = f"?labelSelector=name%3D{release}%2Cowner%3Dhelm"
        self.req(t, "helm", "list", f"/api/v1/namespaces/{ns}/secrets{sel}", CI_R)
        name = f"sh.helm.release.v1.{release}.v1"
        rel = {"kind": "Secret", "apiVersion": "v1", "metadata": _meta(name, ns)}
        self.create(t + 90_000, "helm", CI_R, rel, "helm", "?fieldManager=helm")
        apps: dict[str, list[_Pod]] = {}
        for p in w.apps:
            if p.ns == ns:
                apps.setdefault(p.app, []).append(p)
        objs = [o for o in _netpols() if o["metadata"]["namespace"] == ns]
        if release == "payments":
            for name in ("payments-db-credentials", "stripe-api-key"):
                objs.append({"kind": "Secret", "apiVersion": "v1", "metadata": _meta(name, ns)})
        for pods in apps.values():
            if pods[0].sa != "default":
                meta = _helm_meta(pods[0].sa, ns, release)
                objs.append({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": meta})
        if release == "storefront":
            body = _to_sa("storefront-ops", "shop", "storefront")
            objs.append(_rbac("ClusterRole", "storefront-ops", {"rules": _OPS_RULES}, release, ns))
            objs.append(_rbac("ClusterRoleBinding", "storefront-ops", body, release, ns))
        objs += [_service(pods[0], release) for pods in apps.values()]
        objs += [_deployment(pods[0], len(pods), release) for pods in apps.values()]
        t += 400_000
        for obj in objs:
            kind, name = obj["kind"], obj["metadata"]["name"]
            gen = 1 if kind in ("Deployment", "NetworkPolicy") else 0
            spec = None
            if kind == "Service":
                ip = f"10.96.{self.rng.randint(20, 250)}.{self.rng.randint(2, 250)}"
                spec = _service(apps[name][0], release, ip)["spec"]
            self.create(t, "helm", CI_R, obj, "helm", "?fieldManager=helm", gen, spec)
            if kind == "Deployment":
                self.rollout(t, apps[name])
            t += int(self.rng.uniform(0.05, 0.4) * _US)
        return t

    def background(self, gap_s: float) -> None:
        """Merge the benign template stream over the four hours."""
        T = _bg_templates(self.w, story=True)
        ready = _at(8, 6, 30)  # the applications, their users and CI exist from here on
        apps = {"shop", "payments", "monitoring", "ci", "alice@example.com", "bob@example.com"}
        for us, t0, ev in _stream(T, self.rng, _T0 + 500_000, gap_s * _US):
            if us > _END + 900 * _US:
                break
            ns = ev.get("objectRef", {}).get("namespace")
            who = ev["user"]["username"].removeprefix("system:serviceaccount:").split(":")[0]
            if t0 <= _END and (t0 >= ready or (ns not in apps and who not in apps)):
                self.events.append((us, len(self.events), ev))


@lru_cache(maxsize=4)
def _build(seed: int) -> tuple[tuple[bytes, ...], str]:
    """Run the story once: (native lines in log order, incident steps as JSON)."""
    st = _Story(seed)
    st.setup()
    steps = play_incident(st)
    st.background(gap_s=9.0)
    st.events.sort(key=lambda e: (e[0], e[1]))
    lines, received = [], {}
    for _, _, ev in st.events:
        ref = ev.get("objectRef")
        if ev["verb"] == "update" and ref and ev["stage"] == "ResponseComplete":
            rv = _rv(epoch_us(ev["requestReceivedTimestamp"]) - 1000)  # the version the client read
            ev = ev | {"objectRef": ref | {"resourceVersion": rv}}
        received.setdefault(ev["auditID"], ev["requestReceivedTimestamp"])
        lines.append(native_line(ev))
    for s in steps:
        s["time"] = min(received[a] for a in s["audit_ids"])
    return tuple(lines), json.dumps(steps)


def story_events(seed: int = 7) -> list[dict]:
    """The whole sample story as native audit.k8s.io/v1 Event dicts, in log order."""
    return [orjson.loads(line) for line in _build(seed)[0]]


def incident_steps(seed: int = 7) -> list[dict]:
    """The attack steps: step, actor, verb, resource, namespace, name, audit ids, time."""
    return json.loads(_build(seed)[1])


# ---------------------------------------------------------------- data/samples


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
            g.write(data)
        data = buf.getvalue()
    path.write_bytes(data)
    return path


def _go_escape(text: str) -> bytes:
    """Escape &, <, > inside JSON strings as Go's encoding/json does (they occur only there)."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").encode()


def _jsonl(rows: list) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows)


def write_samples(out: Path, seed: int = 7) -> list[Path]:
    """Write data/samples (native, eks, gke, aks) for the story; return the files written."""
    out, lines, events = Path(out), _build(seed)[0], story_events(seed)
    stamps = [e["stageTimestamp"] for e in events]

    def window(start: str, end: str) -> list[dict]:
        return events[
            bisect_left(stamps, f"2026-03-14T{start}") : bisect_left(stamps, f"2026-03-14T{end}")
        ]

    cut = bisect_left(stamps, "2026-03-14T09:30:00")
    overlap = 20  # the newer file repeats the older file's tail, as after an overlapping rotation
    first = next(i for i, e in enumerate(events) if e["user"]["username"] == ATTACKER)
    items = events[first : first + 50]
    eventlist = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": items,
    }
    eks_filter = to_eks_filter_events(window("10:25:00", "10:55:00"))
    export = "".join(to_eks_export_line(e) + "\n" for e in events).encode()
    gke = sorted((g for g in map(to_gke_entry, events) if g), key=lambda g: g["timestamp"])
    hour = window("10:00:00", "11:00:00")  # one hourly PT1H blob
    aks = [to_aks_record(e) for e in hour]
    admin = [to_aks_record(e, log_as_object=True) for e in hour if e["verb"] in WRITE_VERBS]
    n, eks, gcp, az = out / "native", out / "eks", out / "gke", out / "aks"
    return [
        _write(n / ROTATED, b"".join(lines[:cut])),
        _write(n / "audit.log", b"".join(lines[cut - overlap :])),
        _write(n / "webhook-eventlist.json", _go_escape(json.dumps(eventlist, indent=2)) + b"\n"),
        _write(eks / "kube-apiserver-audit.export.log.gz", export),
        _write(eks / "filter-log-events.json", json.dumps(eks_filter, indent=4).encode() + b"\n"),
        _write(
            gcp / "cloudaudit_activity.jsonl.gz",
            _jsonl([g for g in gke if "activity" in g["logName"]]),
        ),
        _write(
            gcp / "cloudaudit_data_access.jsonl.gz",
            _jsonl([g for g in gke if "data_access" in g["logName"]]),
        ),
        _write(
            az / "insights-logs-kube-audit.json",
            _jsonl([{"records": aks[i : i + 100]} for i in range(0, len(aks), 100)]),
        ),
        _write(az / "kube-audit-admin.jsonl", _jsonl(admin)),
    ]
