"""The incident: a pod's service-account token abused up to cluster-admin, step by step."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from .objects import (
    BASIC_RULES,
    NONRES_RULES,
    OPS_RULES,
    debug_spec,
    deep_copy,
    fields_v1,
    managed_entry,
    object_meta,
    persist,
    pod_binding,
    pod_status,
    rbac,
    review,
    ssar,
    status_patch,
    to_sa,
)
from .world import (
    ADMIN_R,
    AUTHZ,
    BASIC_R,
    CREATE_Q,
    DISCOVERY_R,
    NAME_CHARS,
    NET,
    NODES,
    OPS_R,
    RBAC,
    SA_MOUNT,
    SCHED_R,
    US,
    Pod,
    at,
    ref_args,
    resource_version,
)

if TYPE_CHECKING:
    from .story import Story

ATTACKER = "system:serviceaccount:shop:storefront"
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


def _exec_uri(p: Pod, cmd: list[str]) -> str:
    q = [("command", c) for c in cmd] + [("container", p.container), ("stderr", "true")]
    return f"{p.path}/exec?{urlencode([*q, ('stdout', 'true')])}"


class _Incident:
    """The attack on a story's cluster, recorded as incident steps."""

    def __init__(self, st: Story) -> None:
        self.st = st
        self.steps: list[dict] = []
        self.cur: dict = {}

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
        aid = self.st.req(t, actor, verb, uri, reason, code=code, **kw)
        self.cur["related_audit_ids" if related else "audit_ids"].append(aid)

    def run(self) -> list[dict]:
        """Play 10:28-10:53, the storefront token abused from its pod; return the steps."""
        st = self.st
        w, rng, authz = st.w, st.rng, f"/apis/{AUTHZ}/v1"
        self.step("discovery", "list", "*", None, None)
        t = at(10, 28, 41.31)
        self.act(t, "get", "/api", 200, DISCOVERY_R, "curl", related=True)
        empty = {"resourceRules": None, "nonResourceRules": None, "incomplete": False}
        rules = {"resourceRules": BASIC_RULES + OPS_RULES, "nonResourceRules": NONRES_RULES}
        ssrr = [review("SelfSubjectRulesReview", {"namespace": "shop"}, s) for s in (empty, rules)]
        ssrr[1]["status"]["incomplete"] = False
        t += 3_200_000
        uri = f"{authz}/selfsubjectrulesreviews"
        self.act(t, "create", uri, 201, BASIC_R, "curl", req=ssrr[0], resp=ssrr[1])
        for uri in _PROBES:
            t += int(rng.uniform(2.5, 7.5) * US)
            verb = "get" if ref_args(uri)["name"] else "list"
            self.act(t, verb, uri, 403, actor="curl", ms=(0.6, 2))
        for attrs in _SSAR_PROBES:
            t += int(rng.uniform(3, 6) * US)
            rq, rp = ssar(attrs, OPS_R)
            uri = f"{authz}/selfsubjectaccessreviews"
            self.act(t, "create", uri, 201, BASIC_R, "curl", req=rq, resp=rp)
        t = at(10, 31, 12.48)  # the attacker has fetched a kubectl binary
        for path in ("/api", "/apis"):
            self.act(t, "get", f"{path}?timeout=32s", 200, DISCOVERY_R, related=True)
            t += 41_000
        uri = f"{authz}/selfsubjectrulesreviews"
        self.act(t + 2 * US, "create", uri, 201, BASIC_R, req=ssrr[0], resp=ssrr[1])
        for res in ("pods", "namespaces", "nodes"):
            t += int(rng.uniform(8, 20) * US)
            self.act(t, "list", f"/api/v1/{res}?limit=500", 403, ms=(0.6, 2))

        self.step("exec", "create", "pods/exec", "payments", w.pods[3].name)
        t = at(10, 33, 5.72)
        imds = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        token = ["cat", f"{SA_MOUNT}/token"]
        for p, cmd, secs in (
            (w.pods[1], ["env"], 0.9),
            (w.pods[3], token, 1.3),
            (w.pods[3], ["curl", "-s", imds], 2.6),
        ):
            self.act(t, "get", p.path, 200, OPS_R, related=True)
            self.act(
                t + 60_000, "create", _exec_uri(p, cmd), 101, OPS_R, ms=(secs * 1e3, secs * 1.3e3)
            )
            t += int(rng.uniform(40, 75) * US)

        self.step("secret-theft", "get", "secrets", None, None)
        t = at(10, 36, 30.05)
        self.act(t, "list", "/api/v1/secrets?limit=500", 200, OPS_R, ms=(8, 20))
        for ns, name, code in _STOLEN:
            t += int(rng.uniform(9, 25) * US)
            self.act(t, "get", f"/api/v1/namespaces/{ns}/secrets/{name}", code, OPS_R)

        self.step("rbac-escalation", "create", "clusterrolebindings", None, "storefront-admin")
        t = at(10, 40, 12.9)
        body = to_sa("cluster-admin", "shop", "storefront")
        crb = rbac("ClusterRoleBinding", "storefront-admin", body)
        st.create(t, "attacker", OPS_R, crb, "kubectl-create", CREATE_Q)
        self.cur["audit_ids"].append(st.last)
        rq, rp = ssar({"namespace": "shop", "verb": "*", "resource": "*"}, ADMIN_R)
        uri = f"{authz}/selfsubjectaccessreviews"
        self.act(t + 17 * US, "create", uri, 201, BASIC_R, related=True, req=rq, resp=rp)

        self.step("privileged-pod", "create", "pods", "kube-system", "node-debugger")
        self.privileged_pod(at(10, 43, 5.4))

        self.step("netpol-delete", "delete", "networkpolicies", "payments", "default-deny")
        uid = st.objs["networkpolicies/payments/default-deny"]["metadata"]["uid"]
        opts = {
            "kind": "DeleteOptions",
            "apiVersion": "meta.k8s.io/v1",
            "propagationPolicy": "Background",
        }
        details = {"name": "default-deny", "group": NET, "kind": "networkpolicies", "uid": uid}
        done = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        uri = f"/apis/{NET}/v1/namespaces/payments/networkpolicies/default-deny"
        done["details"] = details
        self.act(at(10, 47, 40.2), "delete", uri, 200, ADMIN_R, req=opts, resp=done, ms=(5, 12))

        self.step("namespace-label", "patch", "namespaces", "shop", "shop")
        t = at(10, 49, 15.6)
        self.act(t, "get", "/api/v1/namespaces/shop", 200, ADMIN_R, related=True)
        t += 50_000
        patch = {"metadata": {"labels": {"trust": "high"}}}
        ns_obj: dict = deep_copy(st.objs["namespaces//shop"])
        meta = ns_obj["metadata"]
        meta["labels"] = dict(sorted((meta["labels"] | {"trust": "high"}).items()))
        meta["resourceVersion"] = resource_version(t)
        meta["managedFields"].append(managed_entry("kubectl-label", t, "v1", fields_v1(patch)))
        uri = "/api/v1/namespaces/shop?fieldManager=kubectl-label"
        self.act(t, "patch", uri, 200, ADMIN_R, req=patch, resp=ns_obj, ms=(4, 9))

        self.step("delete-events", "deletecollection", "events", "shop", None)
        t = at(10, 52, 31.4)
        for ns in ("shop", "kube-system"):
            uri = f"/api/v1/namespaces/{ns}/events"
            self.act(t, "deletecollection", uri, 200, ADMIN_R, ms=(20, 60))
            t += int(rng.uniform(6, 14) * US)
        return self.steps

    def privileged_pod(self, t: int) -> None:
        """Step 5: a privileged, host-namespace pod with / mounted; then a shell on the node."""
        st = self.st
        w, node = st.w, "ip-10-0-1-12"
        image = "docker.io/library/alpine:3.19"
        p = Pod(
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
        p.uid, p.cid = w.uid("pod", p.name), f"{st.rng.getrandbits(256):064x}"
        p.vol = "kube-api-access-" + "".join(st.rng.choices(NAME_CHARS, k=5))
        meta = object_meta(p.name, p.ns, labels={"run": p.name})
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": debug_spec(p, False)}
        pod["status"] = {}
        stored = persist(pod, p.uid, t, "kubectl-create")
        stored["spec"], stored["status"] = (
            debug_spec(p, True),
            {"phase": "Pending", "qosClass": "BestEffort"},
        )
        ann = {"pod-security.kubernetes.io/enforce-policy": "privileged:latest"}
        uri = f"/api/v1/namespaces/kube-system/pods{CREATE_Q}"
        self.act(t, "create", uri, 201, ADMIN_R, req=pod, resp=stored, ann=ann, ms=(9, 18))
        binding = pod_binding(p.name, p.ns, p.uid, node)
        st.req(t + 31_000, "bind", "create", f"{p.path}/binding", SCHED_R, code=201, req=binding)
        t_run = t + 7 * US
        status = pod_status(p, t_run, p.ip) | {"qosClass": "BestEffort"}
        running: dict = deep_copy(stored)
        running["metadata"]["resourceVersion"] = resource_version(t_run)
        running["spec"], running["status"] = debug_spec(p, True, node), status
        patch = status_patch(p.uid, status)
        st.req(t_run, f"kubelet:{node}", "patch", f"{p.path}/status", "", req=patch, resp=running)
        cmd = ["chroot", "/host", "sh", "-c", "cat /etc/kubernetes/kubelet.conf; crictl ps"]
        uri = _exec_uri(p, cmd)
        self.act(t + 74 * US, "create", uri, 101, ADMIN_R, related=True, ms=(3100, 3600))


def play_incident(st: Story) -> list[dict]:
    """Add the attacker's requests to the story; return the incident steps (without times)."""
    return _Incident(st).run()
