"""The simulated cluster: clock, pods, clients, and the audit events a request produces."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

START = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
NODES = {"ip-10-0-1-11": "10.0.1.11", "ip-10-0-1-12": "10.0.1.12", "ip-10-0-1-13": "10.0.1.13"}
CONTROL_PLANE_IP = "10.0.1.10"
US = 1_000_000
T0 = int(START.timestamp()) * US
_K = "v1.29.2 (linux/amd64) kubernetes/4b8e819"
_KUBECTL = f"kubectl/{_K}"
CREATE_Q = "?fieldManager=kubectl-create&fieldValidation=Strict"
RBAC, NET, COORD, AUTHZ = (
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "coordination.k8s.io",
    "authorization.k8s.io",
)
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
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


def at(h: int, m: int, s: float = 0.0) -> int:
    """Return the µs timestamp of h:m:s on the sample day."""
    return T0 + ((h - 8) * 3600 + m * 60) * US + int(s * US)


_SEC: dict[int, str] = {}


def ts(us: int) -> str:
    """Return a µs timestamp as RFC 3339 with microseconds (`...T08:00:00.000000Z`)."""
    s, f = divmod(us, US)
    p = _SEC.get(s)
    if p is None:
        if len(_SEC) > 50_000:
            _SEC.clear()
        p = _SEC[s] = datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{p}.{f:06d}Z"


def ts_seconds(us: int) -> str:
    """Return a µs timestamp as RFC 3339 to the second."""
    return ts(us)[:19] + "Z"


def resource_version(us: int) -> str:
    """Return the resourceVersion an object written at us gets."""
    return str(1_843_000 + (us - T0) // 1000)


def uuid4(rng: random.Random) -> str:
    """Return a version-4 UUID drawn from rng."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _crb(binding: str, role: str, subject: str) -> str:
    return f'RBAC: allowed by ClusterRoleBinding "{binding}" of ClusterRole "{role}" to {subject}'


def controller_reason(name: str) -> str:
    """Return the RBAC allow reason of a kube-controller-manager controller."""
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
class Pod:
    """A pod of the simulated cluster and what the API server knows about it."""

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
        """Return the pod's name."""
        return "-".join(x for x in (self.app, self.hash, self.suffix) if x)

    @property
    def rs(self) -> str:
        """Return the name of the pod's ReplicaSet."""
        return f"{self.app}-{self.hash}"

    @property
    def path(self) -> str:
        """Return the pod's API path."""
        return f"/api/v1/namespaces/{self.ns}/pods/{self.name}"


class World:
    """Cluster inventory and identities; uids come from a seed-derived RNG."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(f"kforensics-world-{seed}")
        self.uids: dict[tuple, str] = {}
        self.pods = [Pod(*r[:8], _IMAGES[r[1]], int(r[8])) for r in _PODS]
        for p in self.pods:
            p.uid, p.cid = uuid4(self.r), f"{self.r.getrandbits(256):064x}"
            p.vol = "kube-api-access-" + "".join(self.r.choices(NAME_CHARS, k=5))
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
            proxy = Pod("kube-system", "kube-proxy", "", "", node, ip, "kube-proxy", "", "", 0)
            proxy.uid = uuid4(self.r)
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
            self.uids[key] = uuid4(self.r)
        return self.uids[key]

    @staticmethod
    def user(name: str, *groups: str) -> dict:
        """A non-service-account user as the authenticator reports it."""
        return {"username": name, "groups": [*groups, "system:authenticated"]}

    def sa(self, ns: str, name: str, pod: Pod | None = None) -> dict:
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


# ---------------------------------------------------------------- audit events of a request


def ref_args(uri: str) -> dict | None:
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


def _ref(ra: dict, uid: str = "") -> dict:
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


def template(
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
    ra = ref_args(uri)
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
        rc["objectRef"] = _ref(filled, m.get("uid", ""))
    rc["responseStatus"] = _status(code, user["username"], verb, ra)
    if level != "Metadata" and req is not None and not denied:
        rc["requestObject"] = req
    if level == "RequestResponse" and resp is not None:
        rc["responseObject"] = resp
    rc |= times | {"annotations": a}
    return head | times, rs, rc, int(ms[0] * 1000), int((ms[1] - ms[0]) * 1000)


def stamp(ev: dict, aid: str, received: str, stage: str) -> dict:
    """Return ev with its auditID and timestamps filled in."""
    return ev | {"auditID": aid, "requestReceivedTimestamp": received, "stageTimestamp": stage}


def emit(tp: tuple, aid: str, t0: int, dur: int) -> list[tuple[int, dict]]:
    """Instantiate a template: [(stage_us, event)] for each stage."""
    rr, rs, rc = tp[:3]
    a = ts(t0)
    out = [(t0, stamp(rr, aid, a, a))]
    if rs is not None:
        t1 = t0 + min(dur // 20, 4000) + 1
        out.append((t1, stamp(rs, aid, a, ts(t1))))
    out.append((t0 + dur, stamp(rc, aid, a, ts(t0 + dur))))
    return out
