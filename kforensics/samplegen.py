"""Deterministic generator of realistic Kubernetes audit logs: the sample incident and bench data."""

from __future__ import annotations

import gzip
import io
import json
import random
from bisect import bisect, bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from heapq import heappop, heappush
from itertools import islice
from pathlib import Path
from urllib.parse import urlencode

import orjson

from .sampleshapes import (
    WRITE_VERBS,
    epoch_us,
    native_line,
    to_aks_record,
    to_eks_export_line,
    to_eks_filter_events,
    to_gke_entry,
)

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

START = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
ATTACKER = "system:serviceaccount:shop:storefront"
NODES = {"ip-10-0-1-11": "10.0.1.11", "ip-10-0-1-12": "10.0.1.12", "ip-10-0-1-13": "10.0.1.13"}
CONTROL_PLANE_IP = "10.0.1.10"
ROTATED = "audit-2026-03-14T09-30-00.000.log.gz"
_US = 1_000_000
_T0 = int(START.timestamp()) * _US
_END = _T0 + 4 * 3600 * _US
_K = "v1.29.2 (linux/amd64) kubernetes/4b8e819"
_KUBECTL = f"kubectl/{_K}"
RBAC, NET, COORD, AUTHZ = "rbac.authorization.k8s.io", "networking.k8s.io", "coordination.k8s.io", "authorization.k8s.io"
_SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# fmt: off
_PODS = (  # ns, app, pod-template-hash, suffix, node, pod IP, service account, container, image, port
    ("shop", "storefront", "7d4b9c", "x2k8p", "ip-10-0-1-12", "10.244.1.23", "storefront", "storefront",
     "registry.acme.example/shop/storefront:1.14.2", 8080),
    ("shop", "storefront", "7d4b9c", "q9w2m", "ip-10-0-1-13", "10.244.2.14", "storefront", "storefront",
     "registry.acme.example/shop/storefront:1.14.2", 8080),
    ("shop", "cart", "6b8f5d", "tr4nz", "ip-10-0-1-11", "10.244.0.27", "default", "cart",
     "registry.acme.example/shop/cart:2.3.0", 8080),
    ("payments", "payments-api", "5f6c8d", "7hjkq", "ip-10-0-1-13", "10.244.2.17", "payments-api", "api",
     "registry.acme.example/payments/api:3.8.1", 8443),
    ("payments", "payments-api", "5f6c8d", "m4xzt", "ip-10-0-1-11", "10.244.0.31", "payments-api", "api",
     "registry.acme.example/payments/api:3.8.1", 8443),
    ("monitoring", "prometheus", "7c9d8f", "lk2vw", "ip-10-0-1-11", "10.244.0.40", "prometheus",
     "prometheus", "quay.io/prometheus/prometheus:v2.50.1", 9090),
    ("kube-system", "coredns", "5d78c9869d", "8xq2n", "ip-10-0-1-11", "10.244.0.2", "coredns", "coredns",
     "registry.k8s.io/coredns/coredns:v1.11.1", 8181),
    ("kube-system", "coredns", "5d78c9869d", "h7v4k", "ip-10-0-1-12", "10.244.1.2", "coredns", "coredns",
     "registry.k8s.io/coredns/coredns:v1.11.1", 8181),
)
# fmt: on
_NS_LABELS = {
    "shop": {"team": "storefront"},
    "payments": {"team": "payments", "trust": "high"},
    "monitoring": {"team": "platform", "trust": "high"},
    "ci": {"team": "platform"},
}


def _at(h: int, m: int, s: float = 0.0) -> int:
    return _T0 + ((h - 8) * 3600 + m * 60) * _US + int(s * _US)


_SEC: dict[int, str] = {}


def _ts(us: int) -> str:
    s, f = divmod(us, _US)
    p = _SEC.get(s)
    if p is None:
        if len(_SEC) > 50_000:
            _SEC.clear()
        p = _SEC[s] = datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{p}.{f:06d}Z"


def _sec(us: int) -> str:
    return _ts(us)[:19] + "Z"


def _rv(us: int) -> str:
    return str(1_843_000 + (us - _T0) // 1000)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _crb(binding: str, role: str, subject: str) -> str:
    return f'RBAC: allowed by ClusterRoleBinding "{binding}" of ClusterRole "{role}" to {subject}'


def _ctl_r(name: str) -> str:
    role = f"system:controller:{name}"
    return _crb(role, role, f'ServiceAccount "{name}/kube-system"')


_AUTHED = 'Group "system:authenticated"'
DISCOVERY_R = _crb("system:discovery", "system:discovery", _AUTHED)
BASIC_R = _crb("system:basic-user", "system:basic-user", _AUTHED)
KCM_R = _crb(*["system:kube-controller-manager"] * 2, 'User "system:kube-controller-manager"')
SCHED_R = _crb(*["system:kube-scheduler"] * 2, 'User "system:kube-scheduler"')
COREDNS_R = _crb("system:coredns", "system:coredns", 'ServiceAccount "coredns/kube-system"')
PROXY_R = _crb("kubeadm:node-proxier", "system:node-proxier", 'ServiceAccount "kube-proxy/kube-system"')
PROM_R = _crb("prometheus", "prometheus", 'ServiceAccount "prometheus/monitoring"')
CI_R = _crb("ci-deployer", "cluster-admin", 'ServiceAccount "deployer/ci"')
ALICE_R = _crb("sre-admins", "cluster-admin", 'Group "oidc:sre"')
BOB_R = 'RBAC: allowed by RoleBinding "dev-edit/shop" of ClusterRole "edit" to Group "oidc:dev"'
OPS_R = _crb("storefront-ops", "storefront-ops", 'ServiceAccount "storefront/shop"')
ADMIN_R = _crb("storefront-admin", "cluster-admin", 'ServiceAccount "storefront/shop"')


@dataclass
class _Pod:
    ns: str
    app: str
    hash: str
    suffix: str
    node: str
    ip: str
    sa: str
    container: str
    image: str
    port: int
    uid: str = ""
    vol: str = ""
    cid: str = ""

    @property
    def name(self) -> str:
        return "-".join(x for x in (self.app, self.hash, self.suffix) if x)

    @property
    def rs(self) -> str:
        return f"{self.app}-{self.hash}"

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.ns}/pods/{self.name}"


class _World:
    """Cluster inventory and identities; uids come from a seed-derived RNG."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(f"kforensics-world-{seed}")
        self.uids: dict[tuple, str] = {}
        self.pods = [_Pod(*row) for row in _PODS]
        for p in self.pods:
            p.uid, p.cid = _uuid(self.r), f"{self.r.getrandbits(256):064x}"
            p.vol = "kube-api-access-" + "".join(self.r.choices(_NAME_CHARS, k=5))
        self.apps = [p for p in self.pods if p.ns != "kube-system"]
        cp, victim, prom = [CONTROL_PLANE_IP], self.pods[0], self.pods[5]
        apiserver = {"username": "system:apiserver", "uid": self.uid("apiserver")}
        apiserver["groups"] = ["system:masters", "system:authenticated"]
        kcm, sched = self.user("system:kube-controller-manager"), self.user("system:kube-scheduler")
        attacker = self.sa("shop", "storefront", victim)
        a = {
            "kcm": (kcm, cp, f"kube-controller-manager/{_K}/leader-election"),
            "sched": (sched, cp, f"kube-scheduler/{_K}/leader-election"),
            "bind": (sched, cp, f"kube-scheduler/{_K}/scheduler"),
            "apiserver": (apiserver, ["::1"], f"kube-apiserver/{_K}"),
            "prometheus": (self.sa("monitoring", "prometheus", prom), [prom.ip], "Prometheus/2.50.1"),
            "helm": (self.sa("ci", "deployer"), ["192.0.2.50"], "Helm/3.14.2"),
            "ci": (self.sa("ci", "deployer"), ["192.0.2.50"], _KUBECTL),
            "alice": (
                self.user("alice@example.com", "oidc:sre"),
                ["203.0.113.10"],
                "kubectl/v1.29.2 (darwin/arm64) kubernetes/4b8e819",
            ),
            "bob": (
                self.user("bob@example.com", "oidc:dev"),
                ["198.51.100.7"],
                "kubectl/v1.28.4 (linux/amd64) kubernetes/bae2c62",
            ),
            "curl": (attacker, [victim.ip], "curl/8.5.0"),
            "attacker": (attacker, [victim.ip], _KUBECTL),
        }
        for name in (
            "deployment-controller",
            "replicaset-controller",
            "endpointslice-controller",
            "generic-garbage-collector",
            "job-controller",
            "root-ca-cert-publisher",
            "service-account-controller",
        ):
            ua = f"kube-controller-manager/{_K}/system:serviceaccount:kube-system:{name}"
            a[f"ctl:{name}"] = (self.sa("kube-system", name), cp, ua)
        for node, ip in NODES.items():
            kubelet = self.user(f"system:node:{node}", "system:nodes")
            a[f"kubelet:{node}"] = (kubelet, [ip], f"kubelet/{_K}")
            proxy = _Pod("kube-system", "kube-proxy", "", "", node, ip, "kube-proxy", "", "", 0)
            proxy.uid = _uuid(self.r)
            proxy.suffix = proxy.uid[:5]
            a[f"proxy:{node}"] = (self.sa("kube-system", "kube-proxy", proxy), [ip], f"kube-proxy/{_K}")
        for i, p in enumerate(self.pods[6:8]):
            ua = "coredns/v0.0.0 (linux/amd64) kubernetes/$Format"
            a[f"coredns:{i}"] = (self.sa("kube-system", "coredns", p), [p.ip], ua)
        self.actors = a

    def uid(self, *key: str) -> str:
        """Stable uid for an object key (allocated on first use)."""
        if key not in self.uids:
            self.uids[key] = _uuid(self.r)
        return self.uids[key]

    @staticmethod
    def user(name: str, *groups: str) -> dict:
        """A non-service-account user as the authenticator reports it."""
        return {"username": name, "groups": [*groups, "system:authenticated"]}

    def sa(self, ns: str, name: str, pod: _Pod | None = None) -> dict:
        """A service-account user; bound pod tokens carry the pod in `extra`."""
        u = {"username": f"system:serviceaccount:{ns}:{name}", "uid": self.uid("sa", ns, name)}
        u["groups"] = ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]
        if pod is not None:
            u["extra"] = {
                "authentication.kubernetes.io/pod-name": [pod.name],
                "authentication.kubernetes.io/pod-uid": [pod.uid],
            }
        return u


# ---------------------------------------------------------------- audit events


def _ref_args(uri: str) -> dict | None:
    """objectRef fields for a request URI, resolved like the API server's RequestInfo."""
    path = uri.split("?", 1)[0].strip("/").split("/")
    if path[0] == "api" and len(path) >= 3:
        group, version, parts = "", path[1], path[2:]
    elif path[0] == "apis" and len(path) >= 4:
        group, version, parts = path[1], path[2], path[3:]
    else:
        return None  # non-resource URL (/api, /apis, /version, ...)
    ns = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        ns = parts[1]
        if len(parts) > 2 and parts[2] not in ("status", "finalize"):
            parts = parts[2:]
    parts = [*parts, "", ""]
    return {"resource": parts[0], "ns": ns, "name": parts[1], "group": group, "sub": parts[2], "v": version}


def _ref(ra: dict, uid: str = "", rv: str = "") -> dict:
    r = {"resource": ra["resource"]}
    for k, v in (("namespace", ra["ns"]), ("name", ra["name"]), ("uid", uid), ("apiGroup", ra["group"])):
        if v:
            r[k] = v
    r["apiVersion"] = ra["v"]
    if rv:
        r["resourceVersion"] = rv
    if ra["sub"]:
        r["subresource"] = ra["sub"]
    return r


def _level(verb: str, ra: dict | None) -> str:
    """The cluster's audit policy (see data/samples/README.md)."""
    if ra is None or verb in ("get", "list", "watch"):
        return "Metadata"
    res, sub = ra["resource"], ra["sub"]
    if res in ("secrets", "configmaps", "events", "leases", "tokenreviews") or sub == "token":
        return "Metadata"
    if sub in ("exec", "attach", "portforward", "binding") or (res, sub) == ("nodes", "status"):
        return "Request"
    return "Request" if res in ("endpoints", "endpointslices") else "RequestResponse"


def _status(code: int, username: str, verb: str, ra: dict | None) -> dict:
    if code < 400 or ra is None:
        return {"metadata": {}, "code": code}
    res, group, name, sub = ra["resource"], ra["group"], ra["name"], ra["sub"]
    qual = f"{res}.{group}" if group else res
    details = ({"name": name} if name else {}) | ({"group": group} if group else {}) | {"kind": res}
    if code == 404:
        msg, reason = f'{qual} "{name}" not found', "NotFound"
    else:
        where = f'in the namespace "{ra["ns"]}"' if ra["ns"] else "at the cluster scope"
        head = f'{qual} "{name}"' if name else qual
        full = f"{res}/{sub}" if sub else res
        msg = f'{head} is forbidden: User "{username}" cannot {verb} resource "{full}" in API group '
        msg, reason = msg + f'"{group}" {where}', "Forbidden"
    return {"metadata": {}, "status": "Failure", "message": msg, "reason": reason} | {
        "details": details,
        "code": code,
    }


def _template(
    actor: tuple,
    verb: str,
    uri: str,
    reason: str,
    code: int = 200,
    req: dict | None = None,
    resp: dict | None = None,
    ann: dict | None = None,
    ms: tuple = (2, 20),
) -> tuple:
    """Precompute the stage events of one request (auditID and timestamps filled in later)."""
    user, src, ua = actor
    ra = _ref_args(uri)
    level = _level(verb, ra)
    head = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": ""}
    head |= {"stage": "RequestReceived", "requestURI": uri, "verb": verb, "user": user}
    head |= {"sourceIPs": src, "userAgent": ua}
    if ra is not None:
        head["objectRef"] = _ref(ra)
    times = {"requestReceivedTimestamp": "", "stageTimestamp": ""}
    a = {"authorization.k8s.io/decision": "forbid" if code == 403 else "allow"}
    a["authorization.k8s.io/reason"] = "" if code == 403 else reason
    a = dict(sorted((a | (ann or {})).items()))
    rs = None
    if verb == "watch" or code == 101:  # streaming responses also log ResponseStarted
        status = {"metadata": {}, "code": code if code == 101 else 200}
        rs = head | {"stage": "ResponseStarted", "responseStatus": status} | times | {"annotations": a}
    rc = head | {"stage": "ResponseComplete"}
    denied = code in (401, 403)
    if ra is not None and req is not None and verb in ("create", "update") and not denied:
        m = req.get("metadata", {})  # what audit.LogRequestObject copies into the objectRef
        filled = ra | {"ns": ra["ns"] or m.get("namespace", ""), "name": ra["name"] or m.get("name", "")}
        rc["objectRef"] = _ref(filled, m.get("uid", ""), m.get("resourceVersion", ""))
    rc["responseStatus"] = _status(code, user["username"], verb, ra)
    if level != "Metadata" and req is not None and not denied:
        rc["requestObject"] = req
    if level == "RequestResponse" and resp is not None:
        rc["responseObject"] = resp
    rc |= times | {"annotations": a}
    return head | times, rs, rc, int(ms[0] * 1000), int((ms[1] - ms[0]) * 1000)


def _stamp(ev: dict, aid: str, received: str, stage: str) -> dict:
    return ev | {"auditID": aid, "requestReceivedTimestamp": received, "stageTimestamp": stage}


def _emit(tp: tuple, aid: str, t0: int, dur: int) -> list[tuple[int, dict]]:
    """Instantiate a template: [(stage_us, event)] for each stage."""
    rr, rs, rc = tp[:3]
    a = _ts(t0)
    out = [(t0, _stamp(rr, aid, a, a))]
    if rs is not None:
        t1 = t0 + min(dur // 20, 4000) + 1
        out.append((t1, _stamp(rs, aid, a, _ts(t1))))
    out.append((t0 + dur, _stamp(rc, aid, a, _ts(t0 + dur))))
    return out


# ---------------------------------------------------------------- Kubernetes objects


def _meta(name: str = "", ns: str = "", **kw: object) -> dict:
    """ObjectMeta in API field order; kw: generateName, uid, resourceVersion, generation, ..."""
    m: dict = {}
    for k, v in (("name", name), ("generateName", kw.get("gen")), ("namespace", ns)):
        if v:
            m[k] = v
    for k in ("uid", "resourceVersion", "generation"):
        if kw.get(k):
            m[k] = kw[k]
    m["creationTimestamp"] = kw.get("created")  # null in requests, as Go clients send it
    for k in ("labels", "annotations"):
        if kw.get(k):
            m[k] = dict(sorted(kw[k].items()))  # type: ignore[attr-defined]
    for k in ("ownerReferences", "managedFields"):
        if kw.get(k):
            m[k] = kw[k]
    return m


def _helm_meta(name: str, ns: str, release: str, labels: dict | None = None, rel_ns: str = "") -> dict:
    ann = {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": rel_ns or ns}
    labels = (labels or {}) | {"app.kubernetes.io/managed-by": "Helm"}
    return _meta(name, ns, labels=labels, annotations=ann)


def _fields(d: dict) -> dict:
    """An approximate FieldsV1 set for an object body."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            sub = _fields(v)
            out[f"f:{k}"] = {".": {}, **sub} if k in ("labels", "annotations", "matchLabels") else sub
        elif isinstance(v, list) and v and all(isinstance(x, dict) and "name" in x for x in v):
            out[f"f:{k}"] = {f'k:{{"name":"{x["name"]}"}}': {".": {}, **_fields(x)} for x in v}
        else:
            out[f"f:{k}"] = {}
    return out


def _mf(manager: str, t: int, api_version: str, fields: dict, sub: str = "") -> dict:
    e = {"manager": manager, "operation": "Update", "apiVersion": api_version, "time": _sec(t)}
    e |= {"fieldsType": "FieldsV1", "fieldsV1": fields}
    return e | {"subresource": sub} if sub else e


def _copy(obj: object) -> object:
    return orjson.loads(orjson.dumps(obj))


def _persist(obj: dict, uid: str, t: int, manager: str, name: str = "", generation: int = 0) -> dict:
    """The object as stored: server-set metadata and managedFields added."""
    o: dict = _copy(obj)  # type: ignore[assignment]
    m = o["metadata"]
    mm = {k: v for k, v in m.items() if k in ("labels", "annotations", "ownerReferences")}
    body = {k: v for k, v in o.items() if k not in ("kind", "apiVersion", "metadata", "status")}
    managed = [_mf(manager, t, o["apiVersion"], _fields(({"metadata": mm} if mm else {}) | body))]
    o["metadata"] = _meta(
        name or m.get("name", ""),
        m.get("namespace", ""),
        gen=m.get("generateName"),
        uid=uid,
        resourceVersion=_rv(t),
        generation=generation,
        created=_sec(t),
        labels=m.get("labels"),
        annotations=m.get("annotations"),
        ownerReferences=m.get("ownerReferences"),
        managedFields=managed,
    )
    return o


def _owner(kind: str, name: str, uid: str) -> dict:
    ref = {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid}
    return ref | {"controller": True, "blockOwnerDeletion": True}


_TOLERATIONS = [
    {"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    for k in ("not-ready", "unreachable")
]
_TERM = {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
_TERM |= {"imagePullPolicy": "IfNotPresent"}
_LIMITS = {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}


def _api_vol(name: str) -> dict:
    ns_item = {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
    ca = {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    sources = [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": ca},
        {"downwardAPI": {"items": [ns_item]}},
    ]
    return {"name": name, "projected": {"sources": sources, "defaultMode": 420}}


def _podspec(p: _Pod, admitted: bool = False, node: str = "") -> dict:
    """A pod spec after defaulting; admitted adds what admission and the scheduler add."""
    scheme = "HTTPS" if p.port == 8443 else "HTTP"
    port = {"name": scheme.lower(), "containerPort": p.port, "protocol": "TCP"}
    c: dict = {"name": p.container, "image": p.image, "ports": [port]}
    if p.app == "payments-api":
        ref = {"secretKeyRef": {"name": "payments-db-credentials", "key": "password"}}
        c["env"] = [{"name": "DB_PASSWORD", "valueFrom": ref}]
    c["resources"] = _LIMITS
    if admitted:
        c["volumeMounts"] = [{"name": p.vol, "readOnly": True, "mountPath": _SA_MOUNT}]
    probe = {"httpGet": {"path": "/healthz", "port": p.port, "scheme": scheme}, "timeoutSeconds": 1}
    c["readinessProbe"] = probe | {"periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    s: dict = {"volumes": [_api_vol(p.vol)]} if admitted else {}
    s |= {"containers": [c | _TERM], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30}
    s |= {"dnsPolicy": "ClusterFirst", "serviceAccountName": p.sa, "serviceAccount": p.sa}
    if node:
        s["nodeName"] = node
    s |= {"securityContext": {}, "schedulerName": "default-scheduler"}
    if admitted:
        s |= {"tolerations": _TOLERATIONS, "priority": 0}
    s["enableServiceLinks"] = True
    if admitted:
        s["preemptionPolicy"] = "PreemptLowerPriority"
    return s


def _pod_status(p: _Pod, t: int, host_ip: str) -> dict:
    kinds = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    conds = [
        {"type": k, "status": "True", "lastProbeTime": None, "lastTransitionTime": _sec(t - 4 * _US)}
        for k in kinds
    ]
    conds[2]["lastTransitionTime"] = conds[3]["lastTransitionTime"] = _sec(t)
    cs = {"name": p.container, "state": {"running": {"startedAt": _sec(t - 2 * _US)}}, "lastState": {}}
    cs |= {"ready": True, "restartCount": 0, "image": p.image}
    cs |= {"imageID": f"{p.image.rsplit(':', 1)[0]}@sha256:{p.cid[::-1]}"}
    cs |= {"containerID": f"containerd://{p.cid}", "started": True}
    st = {"phase": "Running", "conditions": conds, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    st |= {"podIP": p.ip, "podIPs": [{"ip": p.ip}], "startTime": _sec(t - 5 * _US)}
    return st | {"containerStatuses": [cs], "qosClass": "Burstable"}


def _status_patch(uid: str, status: dict) -> dict:
    """The strategic-merge patch a kubelet sends for a pod status (keys sorted, like Go maps)."""
    body = {k: v for k, v in status.items() if k != "qosClass"}
    body["$setElementOrder/conditions"] = [{"type": c["type"]} for c in status["conditions"]]
    patch = {"metadata": {"uid": uid}, "status": body}
    return orjson.loads(orjson.dumps(patch, option=orjson.OPT_SORT_KEYS))


def _pod_objects(w: _World, p: _Pod, t: int) -> tuple[dict, dict, dict, dict]:
    """(create request, created pod, status patch, running pod) for a ReplicaSet pod created at t."""
    owner = _owner("ReplicaSet", p.rs, w.uid("rs", p.ns, p.rs))
    labels = {"app": p.app, "pod-template-hash": p.hash}
    meta = _meta(ns=p.ns, gen=f"{p.rs}-", labels=labels, ownerReferences=[owner])
    req = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": _podspec(p), "status": {}}
    created = _persist(req, p.uid, t, "kube-controller-manager", name=p.name)
    created["spec"], created["status"] = _podspec(p, True), {"phase": "Pending", "qosClass": "Burstable"}
    t_run = t + 6 * _US
    status = _pod_status(p, t_run, NODES[p.node])
    patch = _status_patch(p.uid, status)
    running: dict = _copy(created)  # type: ignore[assignment]
    running["metadata"]["resourceVersion"] = _rv(t_run)
    fields = _fields({"status": patch["status"]})
    running["metadata"]["managedFields"].append(_mf("kubelet", t_run, "v1", fields, "status"))
    running["spec"], running["status"] = _podspec(p, True, p.node), status
    return req, created, patch, running


def _binding(name: str, ns: str, uid: str, node: str) -> dict:
    target = {"kind": "Node", "name": node}
    return {"kind": "Binding", "apiVersion": "v1", "metadata": _meta(name, ns, uid=uid), "target": target}


def _deployment(p: _Pod, replicas: int, release: str) -> dict:
    tmpl = {"metadata": {"creationTimestamp": None, "labels": {"app": p.app}}, "spec": _podspec(p)}
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": p.app}}, "template": tmpl}
    spec |= {"strategy": rolling, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    meta = _helm_meta(p.app, p.ns, release, {"app": p.app})
    return {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": meta, "spec": spec, "status": {}}


def _replicaset(w: _World, p: _Pod, replicas: int) -> dict:
    labels = {"app": p.app, "pod-template-hash": p.hash}
    prefix = "deployment.kubernetes.io/"
    ann = {f"{prefix}desired-replicas": str(replicas), f"{prefix}max-replicas": str(replicas + 1)}
    ann[f"{prefix}revision"] = "1"
    owner = _owner("Deployment", p.app, w.uid("deploy", p.ns, p.app))
    meta = _meta(p.rs, p.ns, labels=labels, annotations=ann, ownerReferences=[owner])
    tmpl = {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": _podspec(p)}
    spec = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": tmpl}
    return {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": meta, "spec": spec} | {
        "status": {"replicas": 0}
    }


def _service(p: _Pod, release: str, cluster_ip: str = "") -> dict:
    tls = p.port == 8443
    port = {"name": "https" if tls else "http", "protocol": "TCP", "port": 443 if tls else 80}
    spec: dict = {"ports": [port | {"targetPort": p.port}], "selector": {"app": p.app}}
    if cluster_ip:
        spec |= {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip]}
    spec |= {"type": "ClusterIP", "sessionAffinity": "None"}
    if cluster_ip:
        spec |= {"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}
    spec["internalTrafficPolicy"] = "Cluster"
    meta = _helm_meta(p.app, p.ns, release)
    return {"kind": "Service", "apiVersion": "v1", "metadata": meta, "spec": spec} | {
        "status": {"loadBalancer": {}}
    }


def _netpols() -> list[dict]:
    """The four NetworkPolicies the platform chart installs."""
    deny = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns_pods = {"matchLabels": {"k8s-app": "kube-dns"}}
    kube_system = {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    to = [{"podSelector": dns_pods, "namespaceSelector": kube_system}]
    dns = {"podSelector": {}, "egress": [{"ports": ports, "to": to}], "policyTypes": ["Egress"]}
    trusted_from = [{"namespaceSelector": {"matchLabels": {"trust": "high"}}}]
    ingress = [{"ports": [{"protocol": "TCP", "port": 8443}], "from": trusted_from}]
    trusted = {"podSelector": {"matchLabels": {"app": "payments-api"}}, "ingress": ingress}
    trusted["policyTypes"] = ["Ingress"]
    specs = [
        ("shop", "default-deny", "storefront", deny),
        ("shop", "allow-dns", "storefront", dns),
        ("payments", "default-deny", "payments", deny),
        ("payments", "allow-from-trusted", "payments", trusted),
    ]
    return [
        {"kind": "NetworkPolicy", "apiVersion": f"{NET}/v1", "metadata": _helm_meta(n, ns, rel), "spec": s}
        for ns, n, rel, s in specs
    ]


def _rbac(kind: str, name: str, body: dict, release: str = "", ns: str = "") -> dict:
    meta = _helm_meta(name, "", release, rel_ns=ns) if release else _meta(name)
    return {"kind": kind, "apiVersion": f"{RBAC}/v1", "metadata": meta} | body


def _to_sa(role: str, sa_ns: str, sa: str) -> dict:
    subjects = [{"kind": "ServiceAccount", "name": sa, "namespace": sa_ns}]
    return {"subjects": subjects, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}}


_OPS_RULES = [
    {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]},
    {"verbs": ["get", "create"], "apiGroups": [""], "resources": ["pods", "pods/exec"]},
    {"verbs": ["create"], "apiGroups": [RBAC], "resources": ["clusterrolebindings"]},
    {"verbs": ["bind"], "apiGroups": [RBAC], "resources": ["clusterroles"]},
]
_REVIEWS = ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]
_BASIC_RULES = [{"verbs": ["create"], "apiGroups": [AUTHZ], "resources": _REVIEWS}]
_PUBLIC = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*"]
_NONRES_RULES = [{"verbs": ["get"], "nonResourceURLs": [*_PUBLIC, "/readyz", "/version", "/version/"]}]


def _review(kind: str, spec: dict, status: dict) -> dict:
    head = {"kind": kind, "apiVersion": f"{AUTHZ}/v1", "metadata": {"creationTimestamp": None}}
    return head | {"spec": spec, "status": status}


def _ssar(attrs: dict, reason: str) -> tuple[dict, dict]:
    spec = {"resourceAttributes": attrs}
    allowed = {"allowed": True, "reason": reason.removeprefix("RBAC: ")}
    kind = "SelfSubjectAccessReview"
    return _review(kind, spec, {"allowed": False}), _review(kind, spec, allowed)


def _exec_uri(p: _Pod, cmd: list[str]) -> str:
    q = [("command", c) for c in cmd] + [("container", p.container), ("stderr", "true")]
    return f"{p.path}/exec?{urlencode([*q, ('stdout', 'true')])}"


def _lease(name: str, ns: str, uid: str) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "uid": uid}}


def _node_patch(t: int) -> dict:
    kinds = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
    order = [{"type": k} for k in kinds]
    conds = [{"lastHeartbeatTime": _sec(t), "type": k} for k in kinds]
    return {"status": {"$setElementOrder/conditions": order, "conditions": conds}}


def _endpointslice(w: _World, p: _Pod) -> dict:
    name, uid = f"{p.app}-{w.uid('slice', p.app)[:5]}", w.uid("slice", p.app)
    labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    labels["kubernetes.io/service-name"] = p.app
    meta = _meta(name, p.ns, gen=f"{p.app}-", uid=uid, generation=3, labels=labels)
    meta["creationTimestamp"] = _sec(_T0 + 300 * _US)
    ready = {"ready": True, "serving": True, "terminating": False}
    eps = [
        {"addresses": [q.ip], "conditions": ready}
        | {"targetRef": {"kind": "Pod", "namespace": q.ns, "name": q.name, "uid": q.uid}, "nodeName": q.node}
        for q in w.apps
        if q.app == p.app
    ]
    ports = [{"name": "http", "protocol": "TCP", "port": p.port}]
    head = {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "metadata": meta}
    return head | {"addressType": "IPv4", "endpoints": eps, "ports": ports}
