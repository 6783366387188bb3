"""From a declaration to the workloads it covers, and the candidates the case suggests.

The workloads come from the inventory rebuilt from the log (`netpol.inventory`): controllers
with their pod templates, and pods grouped under the controller that owns them. What each one
holds (the secrets and configmaps its pods mount or read into their environment, the Services
that select it) is read from the pod specs the log recorded. A declared workload the log never
recorded whole is still a target: its pods are recognised by the names its controller gives them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kforensics.detection.sensitive import RESOURCES
from kforensics.netpol.inventory import Inventory
from kforensics.sensitive.declare import Declaration

CONTROLLERS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
# The names controllers give what they create (a pod the log names but never recorded whole is
# recognised by them): Deployment -> ReplicaSet NAME-HASH -> pod NAME-HASH-XXXXX, and so on.
_SUFFIX = "[a-z0-9]{5}"
_HASH = "[a-z0-9]{1,10}"
POD_NAMES = {
    "Deployment": f"-{_HASH}-{_SUFFIX}",
    "ReplicaSet": f"-{_SUFFIX}",
    "StatefulSet": "-[0-9]{1,9}",
    "DaemonSet": f"-{_SUFFIX}",
    "Job": f"-{_SUFFIX}",
    "CronJob": f"-[0-9]{{8,}}-{_SUFFIX}",
}
CHILD_NAMES = {"Deployment": ("replicasets", f"-{_HASH}"), "CronJob": ("jobs", "-[0-9]{8,}")}
MANY_SECRETS = 3  # a pod that mounts this many secrets holds the keys to several systems
SYSTEM_NAMESPACE = "kube-system"


@dataclass
class Workload:
    """One workload (or bare pod), what its pods hold, and why it is sensitive."""

    namespace: str
    kind: str
    name: str
    why: list[str] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)  # pod names the log recorded
    labels: dict[str, str] = field(default_factory=dict)  # its pods' labels
    secrets: list[str] = field(default_factory=list)  # names, in its namespace
    configmaps: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)  # Services selecting its pods
    service_account: str | None = None
    spec: dict = field(default_factory=dict, repr=False)  # a pod spec (template or pod)
    evidence: str = ""  # where its state came from
    recorded: bool = True  # False: declared, but the log never recorded it whole

    @property
    def key(self) -> str:
        """Return `namespace/Kind/name`, how findings and tables name it."""
        return f"{self.namespace}/{self.kind}/{self.name}"


def _template(obj: dict) -> tuple[dict, dict]:
    """Return (labels, pod spec) of a workload object or pod."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "Pod":
        return dict((obj.get("metadata") or {}).get("labels") or {}), spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    tmpl = spec.get("template") or {}
    return dict((tmpl.get("metadata") or {}).get("labels") or {}), tmpl.get("spec") or {}


def _names(items: object, *path: str) -> list[str]:
    out = []
    for item in items if isinstance(items, list) else []:
        for key in path:
            item = item.get(key) if isinstance(item, dict) else None
        if isinstance(item, str) and item:
            out.append(item)
    return out


def held(spec: dict) -> tuple[list[str], list[str]]:
    """Return the (secrets, configmaps) a pod spec mounts or reads into its environment."""
    secrets, configmaps = [], []
    volumes = spec.get("volumes") if isinstance(spec.get("volumes"), list) else []
    secrets += _names(volumes, "secret", "secretName")
    configmaps += _names(volumes, "configMap", "name")
    for vol in volumes:
        sources = (
            ((vol or {}).get("projected") or {}).get("sources") if isinstance(vol, dict) else None
        )
        secrets += _names(sources, "secret", "name")
        configmaps += _names(sources, "configMap", "name")
    containers = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        if isinstance(spec.get(key), list):
            containers += [c for c in spec[key] if isinstance(c, dict)]
    for c in containers:
        secrets += _names(c.get("env"), "valueFrom", "secretKeyRef", "name")
        configmaps += _names(c.get("env"), "valueFrom", "configMapKeyRef", "name")
        secrets += _names(c.get("envFrom"), "secretRef", "name")
        configmaps += _names(c.get("envFrom"), "configMapRef", "name")
    secrets += _names(spec.get("imagePullSecrets"), "name")
    return sorted(set(secrets)), sorted(set(configmaps))


def _owner(meta: dict) -> tuple[str, str] | None:
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None


def workloads(inv: Inventory) -> dict[str, Workload]:
    """Return every workload the inventory holds, by key, its pods grouped under it."""
    out: dict[str, Workload] = {}
    parent: dict[tuple[str, str, str], tuple[str, str]] = {}  # child -> owner (kind, name)
    for kind in CONTROLLERS:
        for obj in inv.of_kind(kind):
            meta = obj["metadata"]
            ns = meta.get("namespace") or ""
            owner = _owner(meta)
            if owner and owner[0] in CONTROLLERS:
                parent[(kind, ns, meta["name"])] = owner
            labels, spec = _template(obj)
            w = Workload(ns, kind, meta["name"], labels=labels, spec=spec)
            w.evidence = inv.evidence.get((kind, ns, meta["name"]), "")
            out[w.key] = w

    def top(kind: str, ns: str, name: str) -> tuple[str, str]:
        for _ in range(4):  # pod -> ReplicaSet -> Deployment; pod -> Job -> CronJob
            up = parent.get((kind, ns, name))
            if up is None and kind == "ReplicaSet" and "-" in name:
                # a Deployment's ReplicaSet the log never recorded: NAME-HASH
                base = name.rsplit("-", 1)[0]
                if f"{ns}/Deployment/{base}" in out:
                    up = ("Deployment", base)
            if up is None:
                break
            kind, name = up
        return kind, name

    for pod in inv.of_kind("Pod"):
        meta = pod["metadata"]
        ns = meta.get("namespace") or ""
        owner = _owner(meta)
        if owner:
            kind, name = top(owner[0], ns, owner[1])
        else:
            kind, name = "Pod", meta["name"]
        key = f"{ns}/{kind}/{name}"
        if key not in out:
            labels, spec = _template(pod)
            labels.pop("pod-template-hash", None)
            labels.pop("controller-revision-hash", None)
            out[key] = Workload(ns, kind, name, labels=labels, spec=spec)
            out[key].evidence = inv.evidence.get(("Pod", ns, meta["name"]), "")
        w = out[key]
        w.pods.append(meta["name"])
        if not w.spec:
            w.spec = pod.get("spec") or {}
    # A ReplicaSet or Job owned by a recorded controller is part of it, not a workload of its own.
    for (kind, ns, name), _ in parent.items():
        owner_kind, owner_name = top(kind, ns, name)
        if f"{ns}/{owner_kind}/{owner_name}" in out and (owner_kind, owner_name) != (kind, name):
            out.pop(f"{ns}/{kind}/{name}", None)
    services = inv.of_kind("Service")
    for w in out.values():
        w.secrets, w.configmaps = held(w.spec)
        sa = w.spec.get("serviceAccountName") or w.spec.get("serviceAccount")
        w.service_account = sa if isinstance(sa, str) and sa else "default"
        for svc in services:
            sel = (svc.get("spec") or {}).get("selector")
            if (
                svc["metadata"].get("namespace") == w.namespace
                and isinstance(sel, dict)
                and sel
                and all(w.labels.get(k) == v for k, v in sel.items())
            ):
                w.services.append(svc["metadata"]["name"])
    return out


def resolve(decl: Declaration, inv: Inventory) -> list[Workload]:
    """Return the sensitive workloads, each with why, sorted by key; then the declared secrets
    no recorded workload holds (kind Secret), and declared workloads never recorded."""
    known = workloads(inv)
    chosen: dict[str, Workload] = {}

    def add(w: Workload, why: str) -> None:
        w = chosen.setdefault(w.key, w)
        if why not in w.why:
            w.why.append(why)

    declared_secrets = set(decl.secrets)
    for w in known.values():
        if w.namespace in decl.namespaces:
            add(w, f"namespace {w.namespace} is declared sensitive")
        for sel in decl.selectors:
            if w.labels and sel.matches(w.namespace, w.labels):
                add(w, f"its pods' labels match {sel.describe()}")
        for name in w.secrets:
            if (w.namespace, name) in declared_secrets:
                add(w, f"its pods hold secret {w.namespace}/{name}, declared sensitive")
    for ns, kind, name in decl.workloads:
        key = f"{ns}/{kind}/{name}"
        w = known.get(key) or Workload(ns, kind, name, recorded=False)
        add(w, "declared by name")
    held_secrets = {(w.namespace, s) for w in chosen.values() for s in w.secrets}
    for ns, name in decl.secrets:
        if (ns, name) not in held_secrets:
            w = Workload(ns, "Secret", name, secrets=[name], recorded=False)
            add(w, "secret declared sensitive (no recorded workload holds it)")
    return sorted(chosen.values(), key=lambda w: (w.kind == "Secret", w.key))


def _privileged(spec: dict) -> list[str]:
    out = []
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            sc = (c or {}).get("securityContext") or {} if isinstance(c, dict) else {}
            if isinstance(sc, dict) and sc.get("privileged") is True:
                out.append("runs privileged")
    for key, what in (
        ("hostPID", "host PID"),
        ("hostNetwork", "host network"),
        ("hostIPC", "host IPC"),
    ):
        if spec.get(key) is True:
            out.append(f"uses the {what}")
    if any(isinstance(v, dict) and v.get("hostPath") for v in spec.get("volumes") or []):
        out.append("mounts a host path")
    return sorted(set(out))


@dataclass(frozen=True)
class Candidate:
    """A workload the case suggests is sensitive, and why; the analyst confirms it."""

    workload: str  # namespace/Kind/name, as `workloads:` in sensitive.yaml takes it
    reasons: tuple[str, ...]


def candidates(inv: Inventory, already: list[Workload] = ()) -> list[Candidate]:
    """Return workloads worth declaring: many secrets, privileged, kube-system, LoadBalancer."""
    taken = {w.key for w in already}
    balancers = [
        s for s in inv.of_kind("Service") if (s.get("spec") or {}).get("type") == "LoadBalancer"
    ]
    out = []
    for w in workloads(inv).values():
        if w.key in taken:
            continue
        reasons = []
        if len(w.secrets) >= MANY_SECRETS:
            reasons.append(f"its pods hold {len(w.secrets)} secrets ({', '.join(w.secrets)})")
        reasons += _privileged(w.spec)
        if w.namespace == SYSTEM_NAMESPACE:
            reasons.append("runs in kube-system")
        for svc in balancers:
            if (
                svc["metadata"].get("namespace") == w.namespace
                and svc["metadata"]["name"] in w.services
            ):
                reasons.append(f"backs LoadBalancer Service {svc['metadata']['name']}")
        if reasons:
            out.append(Candidate(w.key, tuple(reasons)))
    return sorted(out, key=lambda c: c.workload)


def target_rows(
    chosen: list[Workload], inv: Inventory, namespaces: tuple[str, ...] = ()
) -> list[dict]:
    """Return the rows of the `sensitive_targets` table: what a request may name to target a
    sensitive workload, most specific first (priority 0 exact name, 1 a controller's naming
    pattern, 2 anything in a sensitive namespace); known pods of other workloads have workload
    None, so no pattern claims them."""
    rows: list[dict] = []

    def row(w: str | None, ns: str, resource: str | None, name: str | None = None,
            regex: str | None = None) -> None:  # fmt: skip
        priority = 0 if name else 1 if regex else 2
        rows.append({"workload": w, "namespace": ns, "resource": resource, "name": name,
                     "name_regex": regex, "priority": priority})  # fmt: skip

    mine = {w.key for w in chosen}
    for w in chosen:
        if w.kind != "Secret":
            row(w.key, w.namespace, RESOURCES[w.kind], w.name)
            for pod in w.pods:
                row(w.key, w.namespace, "pods", pod)
            if w.kind in POD_NAMES:
                row(w.key, w.namespace, "pods", regex=re.escape(w.name) + POD_NAMES[w.kind])
            if w.kind in CHILD_NAMES:
                resource, suffix = CHILD_NAMES[w.kind]
                row(w.key, w.namespace, resource, regex=re.escape(w.name) + suffix)
            for svc in w.services:
                row(w.key, w.namespace, "services", svc)
        for name in w.secrets:
            row(w.key, w.namespace, "secrets", name)
        for name in w.configmaps:
            row(w.key, w.namespace, "configmaps", name)
    for ns in sorted(set(namespaces)):
        row(f"{ns}/Namespace/{ns}", ns, None)
    for w in workloads(inv).values():
        if w.key not in mine:
            for pod in w.pods:
                row(None, w.namespace, "pods", pod)
    return rows
