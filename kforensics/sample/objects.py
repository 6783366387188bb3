"""Kubernetes objects of the simulated cluster: pods, workloads, services, policies and RBAC."""

from __future__ import annotations

import orjson

from .world import (
    AUTHZ,
    NET,
    NODES,
    RBAC,
    SA_MOUNT,
    T0,
    US,
    Pod,
    World,
    resource_version,
    ts_seconds,
)


def object_meta(name: str = "", ns: str = "", **kw: object) -> dict:
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


def helm_meta(
    name: str, ns: str, release: str, labels: dict | None = None, rel_ns: str = ""
) -> dict:
    """Return ObjectMeta of an object a Helm release installed (its labels and annotations)."""
    ann = {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": rel_ns or ns}
    labels = (labels or {}) | {"app.kubernetes.io/managed-by": "Helm"}
    return object_meta(name, ns, labels=labels, annotations=ann)


def fields_v1(d: dict) -> dict:
    """An approximate FieldsV1 set for an object body."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            sub = fields_v1(v)
            out[f"f:{k}"] = (
                {".": {}, **sub} if k in ("labels", "annotations", "matchLabels") else sub
            )
        elif isinstance(v, list) and v and all(isinstance(x, dict) and "name" in x for x in v):
            out[f"f:{k}"] = {f'k:{{"name":"{x["name"]}"}}': {".": {}, **fields_v1(x)} for x in v}
        else:
            out[f"f:{k}"] = {}
    return out


def managed_entry(manager: str, t: int, api_version: str, fields: dict, sub: str = "") -> dict:
    """Return one managedFields entry: an Update by manager at t of these fields."""
    e = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": api_version,
        "time": ts_seconds(t),
    }
    e |= {"fieldsType": "FieldsV1", "fieldsV1": fields}
    return e | {"subresource": sub} if sub else e


def deep_copy(obj: object) -> object:
    """Return a deep copy of a JSON-like object."""
    return orjson.loads(orjson.dumps(obj))


def persist(obj: dict, uid: str, t: int, manager: str, name: str = "", generation: int = 0) -> dict:
    """The object as stored: server-set metadata and managedFields added."""
    o: dict = deep_copy(obj)
    m = o["metadata"]
    mm = {k: v for k, v in m.items() if k in ("labels", "annotations", "ownerReferences")}
    body = {k: v for k, v in o.items() if k not in ("kind", "apiVersion", "metadata", "status")}
    managed = [
        managed_entry(
            manager, t, o["apiVersion"], fields_v1(({"metadata": mm} if mm else {}) | body)
        )
    ]
    o["metadata"] = object_meta(
        name or m.get("name", ""),
        m.get("namespace", ""),
        gen=m.get("generateName"),
        uid=uid,
        resourceVersion=resource_version(t),
        generation=generation,
        created=ts_seconds(t),
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


def _podspec(p: Pod, admitted: bool = False, node: str = "") -> dict:
    """A pod spec after defaulting; admitted adds what admission and the scheduler add."""
    scheme = "HTTPS" if p.port == 8443 else "HTTP"
    port = {"name": scheme.lower(), "containerPort": p.port, "protocol": "TCP"}
    c: dict = {"name": p.container, "image": p.image, "ports": [port]}
    if p.app == "payments-api":
        ref = {"secretKeyRef": {"name": "payments-db-credentials", "key": "password"}}
        c["env"] = [{"name": "DB_PASSWORD", "valueFrom": ref}]
    c["resources"] = _LIMITS
    if admitted:
        c["volumeMounts"] = [{"name": p.vol, "readOnly": True, "mountPath": SA_MOUNT}]
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


def pod_status(p: Pod, t: int, host_ip: str) -> dict:
    """Return a running pod's status as the kubelet reports it at t."""
    kinds = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    conds = [
        {
            "type": k,
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": ts_seconds(t - 4 * US),
        }
        for k in kinds
    ]
    conds[2]["lastTransitionTime"] = conds[3]["lastTransitionTime"] = ts_seconds(t)
    cs = {
        "name": p.container,
        "state": {"running": {"startedAt": ts_seconds(t - 2 * US)}},
        "lastState": {},
    }
    cs |= {"ready": True, "restartCount": 0, "image": p.image}
    cs |= {"imageID": f"{p.image.rsplit(':', 1)[0]}@sha256:{p.cid[::-1]}"}
    cs |= {"containerID": f"containerd://{p.cid}", "started": True}
    st = {"phase": "Running", "conditions": conds, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    st |= {"podIP": p.ip, "podIPs": [{"ip": p.ip}], "startTime": ts_seconds(t - 5 * US)}
    return st | {"containerStatuses": [cs], "qosClass": "Burstable"}


def status_patch(uid: str, status: dict) -> dict:
    """The strategic-merge patch a kubelet sends for a pod status (keys sorted, like Go maps)."""
    body = {k: v for k, v in status.items() if k != "qosClass"}
    body["$setElementOrder/conditions"] = [{"type": c["type"]} for c in status["conditions"]]
    patch = {"metadata": {"uid": uid}, "status": body}
    return orjson.loads(orjson.dumps(patch, option=orjson.OPT_SORT_KEYS))


def pod_objects(w: World, p: Pod, t: int) -> tuple[dict, dict, dict, dict]:
    """(create request, created pod, status patch, running pod) for a pod created at t."""
    kind = "Job" if p.ns == "ci" else "ReplicaSet"
    owner = _owner(kind, p.rs, w.uid(kind, p.ns, p.rs))
    labels = {"app": p.app, "pod-template-hash": p.hash}
    meta = object_meta(ns=p.ns, gen=f"{p.rs}-", labels=labels, ownerReferences=[owner])
    req = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": _podspec(p), "status": {}}
    created = persist(req, p.uid, t, "kube-controller-manager", name=p.name)
    created["spec"], created["status"] = (
        _podspec(p, True),
        {"phase": "Pending", "qosClass": "Burstable"},
    )
    t_run = t + 6 * US
    status = pod_status(p, t_run, NODES[p.node])
    patch = status_patch(p.uid, status)
    running: dict = deep_copy(created)
    running["metadata"]["resourceVersion"] = resource_version(t_run)
    fields = fields_v1({"status": patch["status"]})
    running["metadata"]["managedFields"].append(
        managed_entry("kubelet", t_run, "v1", fields, "status")
    )
    running["spec"], running["status"] = _podspec(p, True, p.node), status
    return req, created, patch, running


def pod_binding(name: str, ns: str, uid: str, node: str) -> dict:
    """Return the Binding the scheduler posts to put a pod on a node."""
    target = {"kind": "Node", "name": node}
    return {
        "kind": "Binding",
        "apiVersion": "v1",
        "metadata": object_meta(name, ns, uid=uid),
        "target": target,
    }


def deployment(p: Pod, replicas: int, release: str) -> dict:
    """Return the Deployment a Helm release creates for the pod's app."""
    tmpl = {"metadata": {"creationTimestamp": None, "labels": {"app": p.app}}, "spec": _podspec(p)}
    rolling = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": p.app}}, "template": tmpl}
    spec |= {"strategy": rolling, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    meta = helm_meta(p.app, p.ns, release, {"app": p.app})
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": meta,
        "spec": spec,
        "status": {},
    }


def replicaset(w: World, p: Pod, replicas: int) -> dict:
    """Return the ReplicaSet the deployment controller creates for the pod's app."""
    labels = {"app": p.app, "pod-template-hash": p.hash}
    prefix = "deployment.kubernetes.io/"
    ann = {f"{prefix}desired-replicas": str(replicas), f"{prefix}max-replicas": str(replicas + 1)}
    ann[f"{prefix}revision"] = "1"
    owner = _owner("Deployment", p.app, w.uid("Deployment", p.ns, p.app))
    meta = object_meta(p.rs, p.ns, labels=labels, annotations=ann, ownerReferences=[owner])
    tmpl = {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": _podspec(p)}
    spec = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": tmpl}
    return {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": meta, "spec": spec} | {
        "status": {"replicas": 0}
    }


def service(p: Pod, release: str, cluster_ip: str = "") -> dict:
    """Return the Service in front of the pod's app (cluster_ip once allocated)."""
    tls = p.port == 8443
    port = {"name": "https" if tls else "http", "protocol": "TCP", "port": 443 if tls else 80}
    spec: dict = {"ports": [port | {"targetPort": p.port}], "selector": {"app": p.app}}
    if cluster_ip:
        spec |= {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip]}
    spec |= {"type": "ClusterIP", "sessionAffinity": "None"}
    if cluster_ip:
        spec |= {"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}
    spec["internalTrafficPolicy"] = "Cluster"
    meta = helm_meta(p.app, p.ns, release)
    return {"kind": "Service", "apiVersion": "v1", "metadata": meta, "spec": spec} | {
        "status": {"loadBalancer": {}}
    }


def netpols() -> list[dict]:
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
            "metadata": helm_meta(n, ns, rel),
            "spec": s,
        }
        for ns, n, rel, s in specs
    ]


def rbac(kind: str, name: str, body: dict, release: str = "", ns: str = "") -> dict:
    """Return an RBAC object of kind with body (rules, or subjects and roleRef)."""
    meta = helm_meta(name, "", release, rel_ns=ns) if release else object_meta(name)
    return {"kind": kind, "apiVersion": f"{RBAC}/v1", "metadata": meta} | body


def to_sa(role: str, sa_ns: str, sa: str) -> dict:
    """Return the subjects and roleRef binding ClusterRole role to a service account."""
    subjects = [{"kind": "ServiceAccount", "name": sa, "namespace": sa_ns}]
    return {
        "subjects": subjects,
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
    }


OPS_RULES = [
    {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]},
    {"verbs": ["get", "create"], "apiGroups": [""], "resources": ["pods", "pods/exec"]},
    {"verbs": ["create"], "apiGroups": [RBAC], "resources": ["clusterrolebindings"]},
    {"verbs": ["bind"], "apiGroups": [RBAC], "resources": ["clusterroles"]},
]
_REVIEWS = ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]
BASIC_RULES = [{"verbs": ["create"], "apiGroups": [AUTHZ], "resources": _REVIEWS}]
_PUBLIC = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*"]
NONRES_RULES = [
    {"verbs": ["get"], "nonResourceURLs": [*_PUBLIC, "/readyz", "/version", "/version/"]}
]


def review(kind: str, spec: dict, status: dict) -> dict:
    """Return an authorization review object of kind with its spec and status."""
    head = {"kind": kind, "apiVersion": f"{AUTHZ}/v1", "metadata": {"creationTimestamp": None}}
    return head | {"spec": spec, "status": status}


def ssar(attrs: dict, reason: str) -> tuple[dict, dict]:
    """Return a SelfSubjectAccessReview as requested and as answered (allowed)."""
    spec = {"resourceAttributes": attrs}
    allowed = {"allowed": True, "reason": reason.removeprefix("RBAC: ")}
    kind = "SelfSubjectAccessReview"
    return review(kind, spec, {"allowed": False}), review(kind, spec, allowed)


def lease_object(name: str, ns: str, uid: str) -> dict:
    """Return the metadata-only request body of a Lease renewal."""
    return {"metadata": {"name": name, "namespace": ns, "uid": uid}}


def node_patch(t: int) -> dict:
    """Return the kubelet's node-status heartbeat patch at t."""
    kinds = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
    order = [{"type": k} for k in kinds]
    conds = [{"lastHeartbeatTime": ts_seconds(t), "type": k} for k in kinds]
    return {"status": {"$setElementOrder/conditions": order, "conditions": conds}}


def endpointslice(w: World, p: Pod) -> dict:
    """Return the EndpointSlice of the pod's app."""
    name, uid = f"{p.app}-{w.uid('slice', p.app)[:5]}", w.uid("slice", p.app)
    labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    labels["kubernetes.io/service-name"] = p.app
    meta = object_meta(name, p.ns, gen=f"{p.app}-", uid=uid, generation=3, labels=labels)
    meta["creationTimestamp"] = ts_seconds(T0 + 300 * US)
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


def debug_spec(p: Pod, admitted: bool, node: str = "") -> dict:
    """The attacker's privileged pod: host PID/network namespaces and the node's / mounted."""
    mounts = [{"name": "host", "mountPath": "/host"}]
    vols = [{"name": "host", "hostPath": {"path": "/", "type": ""}}]
    if admitted:
        mounts.append({"name": p.vol, "readOnly": True, "mountPath": SA_MOUNT})
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
