"""The sample story's cluster setup and background traffic; the incident plays over it."""

from __future__ import annotations

import random

from .background import background_templates, template_stream
from .objects import (
    OPS_RULES,
    deployment,
    helm_meta,
    netpols,
    node_patch,
    object_meta,
    persist,
    pod_binding,
    pod_objects,
    rbac,
    replicaset,
    service,
    to_sa,
)
from .world import (
    ALICE_R,
    CI_R,
    CREATE_Q,
    NODES,
    SCHED_R,
    T0,
    US,
    Pod,
    World,
    at,
    controller_reason,
    emit,
    template,
    uuid4,
)

_END = T0 + 4 * 3600 * US
_NS_LABELS = {
    "shop": {"team": "storefront"},
    "payments": {"team": "payments", "trust": "high"},
    "monitoring": {"team": "platform", "trust": "high"},
    "ci": {"team": "platform"},
}
_RELEASES = (("storefront", "shop"), ("payments", "payments"), ("prometheus", "monitoring"))


class Story:
    """The sample story: cluster setup and background (`incident.play_incident` adds the attack)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.w = World(seed)
        self.events: list[tuple[int, int, dict]] = []
        self.objs: dict[str, dict] = {}
        self.last = ""

    def req(self, t: int, actor: str, verb: str, uri: str, reason: str, **kw: object) -> str:
        """Emit one request received at t (µs); return its auditID."""
        ms: tuple = kw.pop("ms", (2, 15))
        tp = template(self.w.actors[actor], verb, uri, reason, **kw)
        self.last = aid = uuid4(self.rng)
        dur = int(self.rng.uniform(*ms) * 1000)
        for us, ev in emit(tp, aid, t + self.rng.randint(0, 999), dur):
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
        stored = persist(obj, self.w.uid(kind, ns, m["name"]), t, manager, generation=generation)
        if spec is not None:
            stored["spec"] = spec
        self.req(t, actor, "create", uri, reason, code=201, req=obj, resp=stored)
        self.objs[f"{res}/{ns}/{m['name']}"] = stored
        return stored

    def rollout(self, t: int, pods: list[Pod]) -> None:
        """What controllers, the scheduler and kubelets do after a Deployment is created."""
        w, p = self.w, pods[0]
        rs = replicaset(w, p, len(pods))
        reason, manager = controller_reason("deployment-controller"), "kube-controller-manager"
        self.create(t + 30_000, "ctl:deployment-controller", reason, rs, manager, generation=1)
        for i, q in enumerate(pods):
            tc = t + 70_000 + i * 9_000
            req, created, patch, running = pod_objects(w, q, tc)
            uri, reason = (
                f"/api/v1/namespaces/{q.ns}/pods",
                controller_reason("replicaset-controller"),
            )
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
            binding = pod_binding(q.name, q.ns, q.uid, q.node)
            self.req(
                tc + 25_000, "bind", "create", f"{q.path}/binding", SCHED_R, code=201, req=binding
            )
            self.req(
                tc + 6 * US,
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
        t = at(8, 0, 4.2)
        for ns, labels in _NS_LABELS.items():
            labels = labels | {"kubernetes.io/metadata.name": ns}  # set by defaulting
            obj = {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": object_meta(ns, labels=labels),
            }
            obj |= {"spec": {}, "status": {"phase": "Active"}}
            fin = {"finalizers": ["kubernetes"]}
            self.create(t, "alice", ALICE_R, obj, "kubectl-create", CREATE_Q, spec=fin)
            for i, (ctl, kind, name) in enumerate(
                (
                    ("root-ca-cert-publisher", "ConfigMap", "kube-root-ca.crt"),
                    ("service-account-controller", "ServiceAccount", "default"),
                )
            ):
                obj = {"kind": kind, "apiVersion": "v1", "metadata": object_meta(name, ns)}
                manager = "kube-controller-manager"
                self.create(
                    t + 40_000 + i * 7_000, f"ctl:{ctl}", controller_reason(ctl), obj, manager
                )
            t += int(self.rng.uniform(0.3, 0.9) * US)
        t = at(8, 0, 41.7)
        sa = {
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": object_meta("deployer", "ci"),
        }
        self.create(t, "alice", ALICE_R, sa, "kubectl-create", CREATE_Q)
        crb = rbac("ClusterRoleBinding", "ci-deployer", to_sa("cluster-admin", "ci", "deployer"))
        self.create(t + 2 * US, "alice", ALICE_R, crb, "kubectl-create", CREATE_Q)
        t = at(8, 2, 10.3)
        for release, ns in _RELEASES:
            t = self.helm_install(t, release, ns) + 95 * US
        for i in range(48):  # kubelet node-status heartbeats every five minutes
            for j, node in enumerate(NODES):
                tn = at(8, 3) + i * 300 * US + j * 71 * US + self.rng.randint(0, 900_000)
                uri = f"/api/v1/nodes/{node}/status?timeout=10s"
                self.req(tn, f"kubelet:{node}", "patch", uri, "", req=node_patch(tn), ms=(4, 11))

    def helm_install(self, t: int, release: str, ns: str) -> int:
        """`helm install` by the CI deployer; returns the time it finished."""
        w = self.w
        sel = f"?labelSelector=name%3D{release}%2Cowner%3Dhelm"
        self.req(t, "helm", "list", f"/api/v1/namespaces/{ns}/secrets{sel}", CI_R)
        name = f"sh.helm.release.v1.{release}.v1"
        rel = {"kind": "Secret", "apiVersion": "v1", "metadata": object_meta(name, ns)}
        self.create(t + 90_000, "helm", CI_R, rel, "helm", "?fieldManager=helm")
        apps: dict[str, list[Pod]] = {}
        for p in w.apps:
            if p.ns == ns:
                apps.setdefault(p.app, []).append(p)
        objs = [o for o in netpols() if o["metadata"]["namespace"] == ns]
        if release == "payments":
            for name in ("payments-db-credentials", "stripe-api-key"):
                objs.append(
                    {"kind": "Secret", "apiVersion": "v1", "metadata": object_meta(name, ns)}
                )
        for pods in apps.values():
            if pods[0].sa != "default":
                meta = helm_meta(pods[0].sa, ns, release)
                objs.append({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": meta})
        if release == "storefront":
            body = to_sa("storefront-ops", "shop", "storefront")
            objs.append(rbac("ClusterRole", "storefront-ops", {"rules": OPS_RULES}, release, ns))
            objs.append(rbac("ClusterRoleBinding", "storefront-ops", body, release, ns))
        objs += [service(pods[0], release) for pods in apps.values()]
        objs += [deployment(pods[0], len(pods), release) for pods in apps.values()]
        t += 400_000
        for obj in objs:
            kind, name = obj["kind"], obj["metadata"]["name"]
            gen = 1 if kind in ("Deployment", "NetworkPolicy") else 0
            spec = None
            if kind == "Service":
                ip = f"10.96.{self.rng.randint(20, 250)}.{self.rng.randint(2, 250)}"
                spec = service(apps[name][0], release, ip)["spec"]
            self.create(t, "helm", CI_R, obj, "helm", "?fieldManager=helm", gen, spec)
            if kind == "Deployment":
                self.rollout(t, apps[name])
            t += int(self.rng.uniform(0.05, 0.4) * US)
        return t

    def background(self, gap_s: float) -> None:
        """Merge the benign template stream over the four hours."""
        T = background_templates(self.w, story=True)
        ready = at(8, 6, 30)  # the applications, their users and CI exist from here on
        apps = {"shop", "payments", "monitoring", "ci", "alice@example.com", "bob@example.com"}
        for us, t0, ev in template_stream(T, self.rng, T0 + 500_000, gap_s * US):
            if us > _END + 900 * US:
                break
            ns = ev.get("objectRef", {}).get("namespace")
            who = ev["user"]["username"].removeprefix("system:serviceaccount:").split(":")[0]
            if t0 <= _END and (t0 >= ready or (ns not in apps and who not in apps)):
                self.events.append((us, len(self.events), ev))
