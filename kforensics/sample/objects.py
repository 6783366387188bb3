"""Kubernetes objects of the simulated cluster: pods, workloads, services, policies and RBAC."""

from __future__ import annotations

import orjson

from .world import (
    _SA_MOUNT,
    _T0,
    _US,
    AUTHZ,
    NET,
    NODES,
    RBAC,
    _Pod,
    _rv,
    _sec,
    _World,
)


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
