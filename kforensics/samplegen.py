"""Deterministic generator of realistic Kubernetes audit logs: the sample story and bench data."""

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
RBAC, NET, COORD, AUTHZ = (
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "coordination.k8s.io",
    "authorization.k8s.io",
)
_SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# The application and DNS pods: ns, app, pod-template-hash, suffix, node, IP, service account,
# container, port, image.
_PODS = [
    row.split()
    for row in """
    shop        storefront   7d4b9c     x2k8p ip-10-0-1-12 10.244.1.23 storefront   storefront 8080
    shop        storefront   7d4b9c     q9w2m ip-10-0-1-13 10.244.2.14 storefront   storefront 8080
    shop        cart         6b8f5d     tr4nz ip-10-0-1-11 10.244.0.27 default      cart       8080
    payments    payments-api 5f6c8d     7hjkq ip-10-0-1-13 10.244.2.17 payments-api api        8443
    payments    payments-api 5f6c8d     m4xzt ip-10-0-1-11 10.244.0.31 payments-api api        8443
    monitoring  prometheus   7c9d8f     lk2vw ip-10-0-1-11 10.244.0.40 prometheus   prometheus 9090
    kube-system coredns      5d78c9869d 8xq2n ip-10-0-1-11 10.244.0.2  coredns      coredns    8181
    kube-system coredns      5d78c9869d h7v4k ip-10-0-1-12 10.244.1.2  coredns      coredns    8181
    """.strip().splitlines()
]
_IMAGES = {
    "storefront": "registry.acme.example/shop/storefront:1.14.2",
    "cart": "registry.acme.example/shop/cart:2.3.0",
    "payments-api": "registry.acme.example/payments/api:3.8.1",
    "prometheus": "quay.io/prometheus/prometheus:v2.50.1",
    "coredns": "registry.k8s.io/coredns/coredns:v1.11.1",
}
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
PROXY_R = _crb(
    "kubeadm:node-proxier", "system:node-proxier", 'ServiceAccount "kube-proxy/kube-system"'
)
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
        self.pods = [_Pod(*r[:8], _IMAGES[r[1]], int(r[8])) for r in _PODS]
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
            "prometheus": (
                self.sa("monitoring", "prometheus", prom),
                [prom.ip],
                "Prometheus/2.50.1",
            ),
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
            a[f"proxy:{node}"] = (
                self.sa("kube-system", "kube-proxy", proxy),
                [ip],
                f"kube-proxy/{_K}",
            )
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
        u = {
            "username": f"system:serviceaccount:{ns}:{name}",
            "uid": self.uid("ServiceAccount", ns, name),
        }
        u["groups"] = [
            "system:serviceaccounts",
            f"system:serviceaccounts:{ns}",
            "system:authenticated",
        ]
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
    return {
        "resource": parts[0],
        "ns": ns,
        "name": parts[1],
        "group": group,
        "sub": parts[2],
        "v": version,
    }


def _ref(ra: dict, uid: str = "", rv: str = "") -> dict:
    r = {"resource": ra["resource"]}
    for k, v in (
        ("namespace", ra["ns"]),
        ("name", ra["name"]),
        ("uid", uid),
        ("apiGroup", ra["group"]),
    ):
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
        msg = (
            f'{head} is forbidden: User "{username}" cannot {verb} resource "{full}" in API group '
        )
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
        rs = (
            head
            | {"stage": "ResponseStarted", "responseStatus": status}
            | times
            | {"annotations": a}
        )
    rc = head | {"stage": "ResponseComplete"}
    denied = code in (401, 403)
    if ra is not None and req is not None and verb in ("create", "update") and not denied:
        m = req.get("metadata", {})  # what audit.LogRequestObject copies into the objectRef
        filled = ra | {
            "ns": ra["ns"] or m.get("namespace", ""),
            "name": ra["name"] or m.get("name", ""),
        }
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
    """ObjectMeta in API field order; kw: gen (generateName), uid, created, labels, ..."""
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
            m[k] = dict(sorted(kw[k].items()))
    for k in ("ownerReferences", "managedFields"):
        if kw.get(k):
            m[k] = kw[k]
    return m


def _helm_meta(
    name: str, ns: str, release: str, labels: dict | None = None, rel_ns: str = ""
) -> dict:
    ann = {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": rel_ns or ns}
    labels = (labels or {}) | {"app.kubernetes.io/managed-by": "Helm"}
    return _meta(name, ns, labels=labels, annotations=ann)


def _fields(d: dict) -> dict:
    """An approximate FieldsV1 set for an object body."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            sub = _fields(v)
            out[f"f:{k}"] = (
                {".": {}, **sub} if k in ("labels", "annotations", "matchLabels") else sub
            )
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


def _persist(
    obj: dict, uid: str, t: int, manager: str, name: str = "", generation: int = 0
) -> dict:
    """The object as stored: server-set metadata and managedFields added."""
    o: dict = _copy(obj)
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
    ref = {
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "kind": kind,
        "name": name,
        "uid": uid,
    }
    return ref | {"controller": True, "blockOwnerDeletion": True}


_TOLERATIONS = [
    {
        "key": f"node.kubernetes.io/{k}",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    for k in ("not-ready", "unreachable")
]
_TERM = {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
_TERM |= {"imagePullPolicy": "IfNotPresent"}
_LIMITS = {
    "limits": {"cpu": "500m", "memory": "256Mi"},
    "requests": {"cpu": "100m", "memory": "128Mi"},
}


def _api_vol(name: str) -> dict:
    ns_item = {
        "path": "namespace",
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
    }
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
    c["readinessProbe"] = probe | {
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
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
        {
            "type": k,
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": _sec(t - 4 * _US),
        }
        for k in kinds
    ]
    conds[2]["lastTransitionTime"] = conds[3]["lastTransitionTime"] = _sec(t)
    cs = {
        "name": p.container,
        "state": {"running": {"startedAt": _sec(t - 2 * _US)}},
        "lastState": {},
    }
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
    """(create request, created pod, status patch, running pod) for a pod created at t."""
    kind = "Job" if p.ns == "ci" else "ReplicaSet"
    owner = _owner(kind, p.rs, w.uid(kind, p.ns, p.rs))
    labels = {"app": p.app, "pod-template-hash": p.hash}
    meta = _meta(ns=p.ns, gen=f"{p.rs}-", labels=labels, ownerReferences=[owner])
    req = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": _podspec(p), "status": {}}
    created = _persist(req, p.uid, t, "kube-controller-manager", name=p.name)
    created["spec"], created["status"] = (
        _podspec(p, True),
        {"phase": "Pending", "qosClass": "Burstable"},
    )
    t_run = t + 6 * _US
    status = _pod_status(p, t_run, NODES[p.node])
    patch = _status_patch(p.uid, status)
    running: dict = _copy(created)
    running["metadata"]["resourceVersion"] = _rv(t_run)
    fields = _fields({"status": patch["status"]})
    running["metadata"]["managedFields"].append(_mf("kubelet", t_run, "v1", fields, "status"))
    running["spec"], running["status"] = _podspec(p, True, p.node), status
    return req, created, patch, running


def _binding(name: str, ns: str, uid: str, node: str) -> dict:
    target = {"kind": "Node", "name": node}
    return {
        "kind": "Binding",
        "apiVersion": "v1",
        "metadata": _meta(name, ns, uid=uid),
        "target": target,
    }


def _deployment(p: _Pod, replicas: int, release: str) -> dict:
    tmpl = {"metadata": {"creationTimestamp": None, "labels": {"app": p.app}}, "spec": _podspec(p)}
    rolling = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": p.app}}, "template": tmpl}
    spec |= {"strategy": rolling, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    meta = _helm_meta(p.app, p.ns, release, {"app": p.app})
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": meta,
        "spec": spec,
        "status": {},
    }


def _replicaset(w: _World, p: _Pod, replicas: int) -> dict:
    labels = {"app": p.app, "pod-template-hash": p.hash}
    prefix = "deployment.kubernetes.io/"
    ann = {f"{prefix}desired-replicas": str(replicas), f"{prefix}max-replicas": str(replicas + 1)}
    ann[f"{prefix}revision"] = "1"
    owner = _owner("Deployment", p.app, w.uid("Deployment", p.ns, p.app))
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
        {
            "kind": "NetworkPolicy",
            "apiVersion": f"{NET}/v1",
            "metadata": _helm_meta(n, ns, rel),
            "spec": s,
        }
        for ns, n, rel, s in specs
    ]


def _rbac(kind: str, name: str, body: dict, release: str = "", ns: str = "") -> dict:
    meta = _helm_meta(name, "", release, rel_ns=ns) if release else _meta(name)
    return {"kind": kind, "apiVersion": f"{RBAC}/v1", "metadata": meta} | body


def _to_sa(role: str, sa_ns: str, sa: str) -> dict:
    subjects = [{"kind": "ServiceAccount", "name": sa, "namespace": sa_ns}]
    return {
        "subjects": subjects,
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
    }


_OPS_RULES = [
    {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]},
    {"verbs": ["get", "create"], "apiGroups": [""], "resources": ["pods", "pods/exec"]},
    {"verbs": ["create"], "apiGroups": [RBAC], "resources": ["clusterrolebindings"]},
    {"verbs": ["bind"], "apiGroups": [RBAC], "resources": ["clusterroles"]},
]
_REVIEWS = ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]
_BASIC_RULES = [{"verbs": ["create"], "apiGroups": [AUTHZ], "resources": _REVIEWS}]
_PUBLIC = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*"]
_NONRES_RULES = [
    {"verbs": ["get"], "nonResourceURLs": [*_PUBLIC, "/readyz", "/version", "/version/"]}
]


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
        | {
            "targetRef": {"kind": "Pod", "namespace": q.ns, "name": q.name, "uid": q.uid},
            "nodeName": q.node,
        }
        for q in w.apps
        if q.app == p.app
    ]
    ports = [{"name": "http", "protocol": "TCP", "port": p.port}]
    head = {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "metadata": meta}
    return head | {"addressType": "IPv4", "endpoints": eps, "ports": ports}


def _debug_spec(p: _Pod, admitted: bool, node: str = "") -> dict:
    """The attacker's privileged pod: host PID/network namespaces and the node's / mounted."""
    mounts = [{"name": "host", "mountPath": "/host"}]
    vols = [{"name": "host", "hostPath": {"path": "/", "type": ""}}]
    if admitted:
        mounts.append({"name": p.vol, "readOnly": True, "mountPath": _SA_MOUNT})
        vols.append(_api_vol(p.vol))
    c = {"name": p.container, "image": p.image, "command": ["sleep", "infinity"], "resources": {}}
    c |= {"volumeMounts": mounts} | _TERM | {"securityContext": {"privileged": True}}
    s = {"volumes": vols, "containers": [c], "restartPolicy": "Always"}
    s |= {"terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"}
    s["nodeSelector"] = {"kubernetes.io/hostname": p.node}
    if admitted:
        s |= {"serviceAccountName": "default", "serviceAccount": "default"}
    if node:
        s["nodeName"] = node
    s |= {"hostNetwork": True, "hostPID": True, "securityContext": {}}
    s |= {"schedulerName": "default-scheduler", "tolerations": [{"operator": "Exists"}]}
    if admitted:
        s["priority"] = 0
    s["enableServiceLinks"] = True
    if admitted:
        s["preemptionPolicy"] = "PreemptLowerPriority"
    return s


# ---------------------------------------------------------------- background traffic

_CREATE_Q = "?fieldManager=kubectl-create&fieldValidation=Strict"
_PROXY_SEL = "%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name"


class _Templates:
    """Weighted request templates (cumulative weights for bisect)."""

    def __init__(self, w: _World) -> None:
        self.w, self.tmpls, self.cum, self.total = w, [], [], 0.0

    def add(
        self, weight: float, actor: str, verb: str, uri: str, reason: str, **kw: object
    ) -> None:
        """Add a request template with a relative weight."""
        self.tmpls.append(_template(self.w.actors[actor], verb, uri, reason, **kw))
        self.total += weight
        self.cum.append(self.total)

    def watch(self, weight: float, actor: str, path: str, reason: str, query: str = "") -> None:
        """Add a watch that runs for its timeoutSeconds."""
        r = self.w.r
        secs = r.randint(300, 599)
        q = f"allowWatchBookmarks=true{query}&resourceVersion={r.randint(1_700_000, 1_840_000)}"
        uri = f"{path}?{q}&timeout={secs // 60}m{secs % 60}s&timeoutSeconds={secs}&watch=true"
        self.add(weight, actor, "watch", uri, reason, ms=(secs * 1000, secs * 1000))


def _bg_templates(w: _World, story: bool) -> _Templates:
    """Benign traffic of controllers, kubelets, add-ons, CI and humans; bench adds pod churn."""
    T = _Templates(w)
    add, watch = T.add, T.watch
    for lease, actor, reason in (
        ("kube-controller-manager", "kcm", KCM_R),
        ("kube-scheduler", "sched", SCHED_R),
    ):
        uri = f"/apis/{COORD}/v1/namespaces/kube-system/leases/{lease}?timeout=5s"
        req = _lease(lease, "kube-system", w.uid("lease", lease))
        add(1.0, actor, "get", uri, reason, ms=(0.6, 2.5))
        add(1.0, actor, "update", uri, reason, req=req, ms=(2, 7))
    lease = "apiserver-" + w.uid("apiserver-lease").replace("-", "")[:26]
    req = _lease(lease, "kube-system", w.uid("lease", lease))
    add(
        0.6,
        "apiserver",
        "update",
        f"/apis/{COORD}/v1/namespaces/kube-system/leases/{lease}",
        "",
        req=req,
    )
    for path in ("/api", "/apis"):
        add(
            0.4,
            "ctl:generic-garbage-collector",
            "get",
            f"{path}?timeout=32s",
            DISCOVERY_R,
            ms=(0.5, 3),
        )
    for node in NODES:
        k, req = f"kubelet:{node}", _lease(node, "kube-node-lease", w.uid("lease", node))
        uri = f"/apis/{COORD}/v1/namespaces/kube-node-lease/leases/{node}?timeout=10s"
        add(1.0, k, "update", uri, "", req=req, ms=(2, 9))
        add(0.3, k, "get", f"/api/v1/nodes/{node}?resourceVersion=0&timeout=10s", "", ms=(0.5, 2))
        watch(0.03, k, "/api/v1/pods", "", f"&fieldSelector=spec.nodeName%3D{node}")
        watch(0.03, k, "/api/v1/nodes", "", f"&fieldSelector=metadata.name%3D{node}")
        if not story:  # the story sends node heartbeats on a schedule instead
            uri = f"/api/v1/nodes/{node}/status?timeout=10s"
            add(0.2, k, "patch", uri, "", req=_node_patch(_T0), ms=(4, 12))
    for p in w.apps:
        k = f"kubelet:{p.node}"
        add(0.12, k, "get", p.path, "", ms=(0.5, 2))
        ca = "&fieldSelector=metadata.name%3Dkube-root-ca.crt"
        watch(0.015, k, f"/api/v1/namespaces/{p.ns}/configmaps", "", ca)
        for _ in range(3):
            event = {
                "metadata": {"name": f"{p.name}.{w.r.getrandbits(64):016x}", "namespace": p.ns}
            }
            uri = f"/api/v1/namespaces/{p.ns}/events"
            add(0.03, k, "create", uri, "", code=201, req=event, ms=(1, 4))
        if not story:
            _, _, patch, running = _pod_objects(w, p, _T0)
            add(0.015, k, "patch", f"{p.path}/status", "", req=patch, resp=running, ms=(5, 15))
    for i in range(2):
        for path in (
            "/apis/discovery.k8s.io/v1/endpointslices",
            "/api/v1/services",
            "/api/v1/namespaces",
        ):
            watch(0.02, f"coredns:{i}", path, COREDNS_R)
    for node in NODES:
        path = "/apis/discovery.k8s.io/v1/endpointslices"
        watch(0.02, f"proxy:{node}", path, PROXY_R, f"&labelSelector={_PROXY_SEL}")
    for res in ("pods", "services", "endpoints"):
        add(
            0.12,
            "prometheus",
            "list",
            f"/api/v1/{res}?limit=500&resourceVersion=0",
            PROM_R,
            ms=(3, 18),
        )
        watch(0.01, "prometheus", f"/api/v1/{res}", PROM_R)
    for p in (w.pods[0], w.pods[3]):
        sl = _endpointslice(w, p)
        uri = f"/apis/discovery.k8s.io/v1/namespaces/{p.ns}/endpointslices/{sl['metadata']['name']}"
        add(
            0.08,
            "ctl:endpointslice-controller",
            "update",
            uri,
            _ctl_r("endpointslice-controller"),
            req=sl,
        )
    uri = "/api/v1/namespaces/shop/secrets?labelSelector=name%3Dstorefront%2Cowner%3Dhelm"
    add(0.05, "helm", "list", uri, CI_R)
    add(0.05, "ci", "get", "/apis/apps/v1/namespaces/shop/deployments/cart", CI_R)
    cart = w.apps[2]
    dep = _deployment(cart, 1, "storefront")
    dep = _persist(dep, w.uid("Deployment", "shop", "cart"), _T0 + 250 * _US, "helm", generation=1)
    ann = {"ci.acme.example/pipeline": "shop-nightly", "ci.acme.example/run": "8841"}
    dep["metadata"]["annotations"] |= ann
    uri = "/apis/apps/v1/namespaces/shop/deployments/cart?fieldManager=kubectl-annotate"
    add(
        0.03, "ci", "patch", uri, CI_R, req={"metadata": {"annotations": ann}}, resp=dep, ms=(6, 20)
    )
    cm = {"metadata": {"name": "storefront-flags", "namespace": "shop"}}
    add(
        0.03,
        "ci",
        "create",
        f"/api/v1/namespaces/shop/configmaps{_CREATE_Q}",
        CI_R,
        code=201,
        req=cm,
    )
    for actor, reason, pods, x in (
        ("alice", ALICE_R, w.apps[:5], 1.0),
        ("bob", BOB_R, w.apps[:3], 0.8),
    ):
        for p in pods:
            add(
                0.03 * x,
                actor,
                "list",
                f"/api/v1/namespaces/{p.ns}/pods?limit=500",
                reason,
                ms=(2, 9),
            )
            add(0.02 * x, actor, "get", p.path, reason)
            uri = f"{p.path}/log?container={p.container}&tailLines=200"
            add(0.02 * x, actor, "get", uri, reason, ms=(20, 120))
            sel = f"involvedObject.name%3D{p.name}%2CinvolvedObject.namespace%3D{p.ns}"
            uri = f"/api/v1/namespaces/{p.ns}/events?fieldSelector={sel}&limit=500"
            add(0.01 * x, actor, "list", uri, reason)
        add(0.01, actor, "get", "/api?timeout=32s", DISCOVERY_R)
    add(0.006, "bob", "list", "/api/v1/namespaces/payments/secrets?limit=500", "", code=403)
    add(0.006, "bob", "list", "/api/v1/namespaces/kube-system/pods?limit=500", "", code=403)
    if not story:  # bench-only churn: short-lived CI job pods with full pod specs
        r, image, ctl = w.r, "ghcr.io/acme/builder:2026.03", "ctl:job-controller"
        for _ in range(32):
            sfx, node = "".join(r.choices(_NAME_CHARS, k=5)), r.choice(list(NODES))
            ip = f"10.244.{r.randint(0, 2)}.{r.randint(100, 250)}"
            p = _Pod("ci", "build", "job", sfx, node, ip, "deployer", "build", image, 8080)
            p.uid, p.vol, p.cid = _uuid(r), f"kube-api-access-{sfx}", f"{r.getrandbits(256):064x}"
            req, created, patch, running = _pod_objects(w, p, _T0)
            kw = {"code": 201, "req": req, "resp": created, "ms": (8, 25)}
            add(0.005, ctl, "create", "/api/v1/namespaces/ci/pods", _ctl_r("job-controller"), **kw)
            binding = _binding(p.name, "ci", p.uid, p.node)
            add(0.005, "bind", "create", f"{p.path}/binding", SCHED_R, code=201, req=binding)
            add(0.005, f"kubelet:{node}", "patch", f"{p.path}/status", "", req=patch, resp=running)
    return T


def _stream(
    T: _Templates, rng: random.Random, t: int, gap_us: float
) -> Iterator[tuple[int, int, dict]]:
    """Endless time-ordered (stage_us, request_us, event) tuples from weighted templates."""
    heap: list = []
    seq = 0
    tmpls, cum, total = T.tmpls, T.cum, T.total
    rand, expo, bits, lam = rng.random, rng.expovariate, rng.getrandbits, 1.0 / gap_us
    while True:
        t += int(expo(lam)) + 1
        while heap and heap[0][0] <= t:
            us, _, t0, ev = heappop(heap)
            yield us, t0, ev
        rr, rs, rc, lo, span = tmpls[bisect(cum, rand() * total)]
        h = f"{bits(128):032x}"
        aid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
        a = _ts(t)
        yield t, t, rr | {"auditID": aid, "requestReceivedTimestamp": a, "stageTimestamp": a}
        dur = lo + int(rand() * span)
        if rs is not None:
            t1 = t + min(dur // 20, 4000) + 1
            heappush(heap, (t1, seq, t, _stamp(rs, aid, a, _ts(t1))))
            seq += 1
        heappush(heap, (t + dur, seq, t, _stamp(rc, aid, a, _ts(t + dur))))
        seq += 1


def background_events(n: int, seed: int, start: datetime, mean_gap: float = 0.02) -> Iterator[dict]:
    """Lazily yield n benign events in log order (nested dicts are shared: treat as read-only)."""
    T = _bg_templates(_World(seed), story=False)
    t = int(start.timestamp() * _US)
    for _, _, ev in islice(_stream(T, random.Random(seed), t, mean_gap * _US), n):
        yield ev


def write_native_lines(path: Path, n: int, seed: int = 1) -> int:
    """Write n background events as JSON lines (gzip if *.gz); return uncompressed bytes written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("wb") as raw:
        gz = path.name.endswith(".gz")
        f = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
            if gz
            else raw
        )
        buf: list[bytes] = []
        for ev in background_events(n, seed, START):
            buf.append(native_line(ev))
            if len(buf) == 8192:
                written += f.write(b"".join(buf))
                buf.clear()
        written += f.write(b"".join(buf))
        if gz:
            f.close()
    return written


# ---------------------------------------------------------------- the story

_PROBES = (  # what the attacker tries first with curl; all are denied
    "/api/v1/namespaces",
    "/api/v1/pods",
    "/api/v1/namespaces/kube-system/pods",
    "/api/v1/namespaces/shop/pods",
    "/api/v1/nodes",
    "/api/v1/nodes/ip-10-0-1-12",
    "/apis/apps/v1/deployments",
    "/api/v1/services",
    "/api/v1/namespaces/kube-system/configmaps",
    "/api/v1/serviceaccounts",
    f"/apis/{RBAC}/v1/clusterroles",
    f"/apis/{RBAC}/v1/clusterrolebindings",
    f"/apis/{RBAC}/v1/roles",
    f"/apis/{NET}/v1/networkpolicies",
    "/apis/apps/v1/daemonsets",
    "/api/v1/namespaces/shop/pods/storefront-7d4b9c-x2k8p/log",
)
_SSAR_PROBES = (
    {"namespace": "payments", "verb": "create", "resource": "pods", "subresource": "exec"},
    {"verb": "list", "resource": "secrets"},
    {"verb": "create", "group": RBAC, "resource": "clusterrolebindings"},
)
_STOLEN = (
    ("payments", "payments-db-credentials", 200),
    ("payments", "stripe-api-key", 200),
    ("payments", "db-password", 404),
    ("kube-system", "etcd-backup-s3", 200),
    ("kube-system", "bootstrap-token-9xk2lm", 200),
)
_RELEASES = (("storefront", "shop"), ("payments", "payments"), ("prometheus", "monitoring"))


class _Story:
    """Builds the sample story: setup, background, and the incident."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.w = _World(seed)
        self.events: list[tuple[int, int, dict]] = []
        self.steps: list[dict] = []
        self.objs: dict[str, dict] = {}
        self.cur: dict = {}
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

    def step(self, name: str, verb: str, resource: str, ns: str | None, obj: str | None) -> None:
        """Start recording an incident step."""
        self.cur = {"step": name, "actor": ATTACKER, "verb": verb, "resource": resource}
        self.cur |= {"namespace": ns, "name": obj, "audit_ids": [], "related_audit_ids": []}
        self.steps.append(self.cur)

    def act(
        self,
        t: int,
        verb: str,
        uri: str,
        code: int = 200,
        reason: str = "",
        actor: str = "attacker",
        related: bool = False,
        **kw: object,
    ) -> None:
        """An attacker request, recorded in the current step."""
        aid = self.req(t, actor, verb, uri, reason, code=code, **kw)
        self.cur["related_audit_ids" if related else "audit_ids"].append(aid)

    def incident(self) -> None:
        """10:28-10:53: the storefront service-account token is abused from its pod."""
        w, rng, authz = self.w, self.rng, f"/apis/{AUTHZ}/v1"
        self.step("discovery", "list", "*", None, None)
        t = _at(10, 28, 41.31)
        self.act(t, "get", "/api", 200, DISCOVERY_R, "curl", related=True)
        empty = {"resourceRules": None, "nonResourceRules": None, "incomplete": False}
        rules = {"resourceRules": _BASIC_RULES + _OPS_RULES, "nonResourceRules": _NONRES_RULES}
        ssrr = [_review("SelfSubjectRulesReview", {"namespace": "shop"}, s) for s in (empty, rules)]
        ssrr[1]["status"]["incomplete"] = False
        t += 3_200_000
        uri = f"{authz}/selfsubjectrulesreviews"
        self.act(t, "create", uri, 201, BASIC_R, "curl", req=ssrr[0], resp=ssrr[1])
        for uri in _PROBES:
            t += int(rng.uniform(2.5, 7.5) * _US)
            verb = "get" if _ref_args(uri)["name"] else "list"
            self.act(t, verb, uri, 403, actor="curl", ms=(0.6, 2))
        for attrs in _SSAR_PROBES:
            t += int(rng.uniform(3, 6) * _US)
            rq, rp = _ssar(attrs, OPS_R)
            uri = f"{authz}/selfsubjectaccessreviews"
            self.act(t, "create", uri, 201, BASIC_R, "curl", req=rq, resp=rp)
        t = _at(10, 31, 12.48)  # the attacker has fetched a kubectl binary
        for path in ("/api", "/apis"):
            self.act(t, "get", f"{path}?timeout=32s", 200, DISCOVERY_R, related=True)
            t += 41_000
        uri = f"{authz}/selfsubjectrulesreviews"
        self.act(t + 2 * _US, "create", uri, 201, BASIC_R, req=ssrr[0], resp=ssrr[1])
        for res in ("pods", "namespaces", "nodes"):
            t += int(rng.uniform(8, 20) * _US)
            self.act(t, "list", f"/api/v1/{res}?limit=500", 403, ms=(0.6, 2))

        self.step("exec", "create", "pods/exec", "payments", w.pods[3].name)
        t = _at(10, 33, 5.72)
        imds = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        token = ["cat", f"{_SA_MOUNT}/token"]
        for p, cmd, secs in (
            (w.pods[1], ["env"], 0.9),
            (w.pods[3], token, 1.3),
            (w.pods[3], ["curl", "-s", imds], 2.6),
        ):
            self.act(t, "get", p.path, 200, OPS_R, related=True)
            self.act(
                t + 60_000, "create", _exec_uri(p, cmd), 101, OPS_R, ms=(secs * 1e3, secs * 1.3e3)
            )
            t += int(rng.uniform(40, 75) * _US)

        self.step("secret-theft", "get", "secrets", None, None)
        t = _at(10, 36, 30.05)
        self.act(t, "list", "/api/v1/secrets?limit=500", 200, OPS_R, ms=(8, 20))
        for ns, name, code in _STOLEN:
            t += int(rng.uniform(9, 25) * _US)
            self.act(t, "get", f"/api/v1/namespaces/{ns}/secrets/{name}", code, OPS_R)

        self.step("rbac-escalation", "create", "clusterrolebindings", None, "storefront-admin")
        t = _at(10, 40, 12.9)
        body = _to_sa("cluster-admin", "shop", "storefront")
        crb = _rbac("ClusterRoleBinding", "storefront-admin", body)
        self.create(t, "attacker", OPS_R, crb, "kubectl-create", _CREATE_Q)
        self.cur["audit_ids"].append(self.last)
        rq, rp = _ssar({"namespace": "shop", "verb": "*", "resource": "*"}, ADMIN_R)
        uri = f"{authz}/selfsubjectaccessreviews"
        self.act(t + 17 * _US, "create", uri, 201, BASIC_R, related=True, req=rq, resp=rp)

        self.step("privileged-pod", "create", "pods", "kube-system", "node-debugger")
        self.privileged_pod(_at(10, 43, 5.4))

        self.step("netpol-delete", "delete", "networkpolicies", "payments", "default-deny")
        uid = self.objs["networkpolicies/payments/default-deny"]["metadata"]["uid"]
        opts = {
            "kind": "DeleteOptions",
            "apiVersion": "meta.k8s.io/v1",
            "propagationPolicy": "Background",
        }
        details = {"name": "default-deny", "group": NET, "kind": "networkpolicies", "uid": uid}
        done = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        uri = f"/apis/{NET}/v1/namespaces/payments/networkpolicies/default-deny"
        done["details"] = details
        self.act(_at(10, 47, 40.2), "delete", uri, 200, ADMIN_R, req=opts, resp=done, ms=(5, 12))

        self.step("namespace-label", "patch", "namespaces", "shop", "shop")
        t = _at(10, 49, 15.6)
        self.act(t, "get", "/api/v1/namespaces/shop", 200, ADMIN_R, related=True)
        t += 50_000
        patch = {"metadata": {"labels": {"trust": "high"}}}
        ns_obj: dict = _copy(self.objs["namespaces//shop"])
        meta = ns_obj["metadata"]
        meta["labels"] = dict(sorted((meta["labels"] | {"trust": "high"}).items()))
        meta["resourceVersion"] = _rv(t)
        meta["managedFields"].append(_mf("kubectl-label", t, "v1", _fields(patch)))
        uri = "/api/v1/namespaces/shop?fieldManager=kubectl-label"
        self.act(t, "patch", uri, 200, ADMIN_R, req=patch, resp=ns_obj, ms=(4, 9))

        self.step("delete-events", "deletecollection", "events", "shop", None)
        t = _at(10, 52, 31.4)
        for ns in ("shop", "kube-system"):
            uri = f"/api/v1/namespaces/{ns}/events"
            self.act(t, "deletecollection", uri, 200, ADMIN_R, ms=(20, 60))
            t += int(rng.uniform(6, 14) * _US)

    def privileged_pod(self, t: int) -> None:
        """Step 5: a privileged, host-namespace pod with / mounted; then a shell on the node."""
        w, node = self.w, "ip-10-0-1-12"
        image = "docker.io/library/alpine:3.19"
        p = _Pod(
            "kube-system",
            "node-debugger",
            "",
            "",
            node,
            NODES[node],
            "default",
            "debugger",
            image,
            0,
        )
        p.uid, p.cid = w.uid("pod", p.name), f"{self.rng.getrandbits(256):064x}"
        p.vol = "kube-api-access-" + "".join(self.rng.choices(_NAME_CHARS, k=5))
        meta = _meta(p.name, p.ns, labels={"run": p.name})
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": _debug_spec(p, False)}
        pod["status"] = {}
        stored = _persist(pod, p.uid, t, "kubectl-create")
        stored["spec"], stored["status"] = (
            _debug_spec(p, True),
            {"phase": "Pending", "qosClass": "BestEffort"},
        )
        ann = {"pod-security.kubernetes.io/enforce-policy": "privileged:latest"}
        uri = f"/api/v1/namespaces/kube-system/pods{_CREATE_Q}"
        self.act(t, "create", uri, 201, ADMIN_R, req=pod, resp=stored, ann=ann, ms=(9, 18))
        binding = _binding(p.name, p.ns, p.uid, node)
        self.req(t + 31_000, "bind", "create", f"{p.path}/binding", SCHED_R, code=201, req=binding)
        t_run = t + 7 * _US
        status = _pod_status(p, t_run, p.ip) | {"qosClass": "BestEffort"}
        running: dict = _copy(stored)
        running["metadata"]["resourceVersion"] = _rv(t_run)
        running["spec"], running["status"] = _debug_spec(p, True, node), status
        patch = _status_patch(p.uid, status)
        self.req(t_run, f"kubelet:{node}", "patch", f"{p.path}/status", "", req=patch, resp=running)
        cmd = ["chroot", "/host", "sh", "-c", "cat /etc/kubernetes/kubelet.conf; crictl ps"]
        uri = _exec_uri(p, cmd)
        self.act(t + 74 * _US, "create", uri, 101, ADMIN_R, related=True, ms=(3100, 3600))


@lru_cache(maxsize=4)
def _build(seed: int) -> tuple[tuple[bytes, ...], str]:
    """Run the story once: (native lines in log order, incident steps as JSON)."""
    st = _Story(seed)
    st.setup()
    st.incident()
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
    for s in st.steps:
        s["time"] = min(received[a] for a in s["audit_ids"])
    return tuple(lines), json.dumps(st.steps)


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
