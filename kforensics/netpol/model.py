"""Kubernetes objects for NetworkPolicy evaluation: namespaces, pod-like peers and policies.

`read_objects(paths)` reads YAML (multi-document) and JSON files, or the folders holding them,
with the dump reader of `kforensics.ingest.manifests`; `parse_objects(docs)` turns
already-loaded dicts (an audit-log inventory) into the same typed objects. `kind: List`, `items`
lists and `*List` kinds are flattened; documents that are not Kubernetes objects (a JSON report
beside the manifests) are skipped, as are other kinds.

Peers follow np-guard netpol-analyzer:

- a workload (Deployment, ReplicaSet, ReplicationController, DaemonSet, StatefulSet, Job,
  CronJob) is one peer built from its pod template; a missing namespace means `default`;
- a bare Pod belongs to the workload of its controller ownerReference (`controller: true`,
  any kind but Node): pods of one ReplicaSet print as `ns/<replicaset>[ReplicaSet]`; an owner
  reference without a kind prints as `[Pod]`; a pod without a controller is its own peer;
- pods of one owner are one peer represented by the first pod read: when their labels differ,
  `Cluster.gaps` keeps every member so the evaluator can refuse policies whose selectors tell
  them apart (netpol-analyzer refuses such input too);
- a namespace used by a peer or policy but never defined exists with the single label
  `kubernetes.io/metadata.name`, which the API server also sets on every defined namespace;
- a later NetworkPolicy with the namespace and name of an earlier one replaces it, as
  `kubectl apply` would (so proposed policies can supersede live ones; netpol-analyzer
  rejects duplicates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kforensics.ingest.manifests import flatten, read_manifests

NAME_LABEL = "kubernetes.io/metadata.name"
WORKLOAD_KINDS = frozenset(
    (
        "Deployment",
        "ReplicaSet",
        "ReplicationController",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "CronJob",
    )
)
POLICY_TYPES = ("Ingress", "Egress")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class ContainerPort:
    """One container port: number, protocol (TCP when unset) and optional name."""

    port: int
    protocol: str = "TCP"
    name: str = ""


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Pod:
    """A pod-like peer: a bare pod, or a workload's pod template (one peer per owner)."""

    namespace: str
    name: str
    owner_kind: str  # display kind: Pod, Deployment, ReplicaSet, ...
    owner_name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[ContainerPort, ...] = ()
    host_network: bool = False
    ips: tuple[str, ...] = ()
    host_ip: str = ""

    @property
    def workload(self) -> str:
        """Return the peer as netpol-analyzer prints it: `ns/owner[Kind]`."""
        return f"{self.namespace}/{self.owner_name}[{self.owner_kind}]"

    def named_port(self, name: str) -> ContainerPort | None:
        """Return the container port with this name, or None."""
        return next((p for p in self.ports if p.name == name), None)


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """metav1.LabelSelector: matchLabels AND matchExpressions; empty selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the labels satisfy every term of the selector."""
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In":
                ok = present and labels[req.key] in req.values
            elif req.operator == "NotIn":
                ok = not present or labels[req.key] not in req.values
            elif req.operator == "Exists":
                ok = present
            else:  # DoesNotExist (validated at parse time)
                ok = not present
            if not ok:
                return False
        return True

    @property
    def selects_all(self) -> bool:
        """Return whether the selector has no term (it selects every object)."""
        return not (self.match_labels or self.match_expressions)

    @property
    def keys(self) -> set[str]:
        """Return the label keys the selector reads."""
        return {k for k, _ in self.match_labels} | {r.key for r in self.match_expressions}


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyPeer:
    """One `from`/`to` entry: selectors (ANDed) or an ipBlock."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """One `ports` entry: port None means every port of the protocol; str is a named port."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule: empty `peers` means all peers, empty `ports` all ports."""

    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector = LabelSelector()
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    policy_types: frozenset[str] = frozenset({"Ingress"})  # effective (defaults applied)


K8sObject = Namespace | Pod | NetworkPolicy


@dataclass
class Cluster:
    """Objects ready for evaluation: peers grouped by owner, every used namespace defined."""

    namespaces: dict[str, Namespace]
    peers: list[Pod]
    policies: list[NetworkPolicy]
    gaps: dict[str, list[Pod]] = field(default_factory=dict)  # workload -> differing members


def read_objects(paths: Iterable[str | Path] | str | Path) -> list[K8sObject]:
    """Return the objects in the files, and in the manifests of the folders, in path order."""
    return parse_objects(read_manifests(paths))


def parse_objects(docs: Iterable[object]) -> list[K8sObject]:
    """Return typed objects from loaded documents (lists and `items` flattened, others skipped)."""
    out: list[K8sObject] = []
    for doc in flatten(docs):
        obj = parse_object(doc)
        if obj is not None:
            out.append(obj)
    return out


def parse_object(doc: Mapping) -> K8sObject | None:
    """Return the typed object of one manifest, or None for a kind that plays no part."""
    kind = doc.get("kind")
    meta = doc.get("metadata") or {}
    if kind == "Namespace":
        return Namespace(meta.get("name", ""), _labels(meta))
    if kind == "NetworkPolicy":
        return parse_policy(doc)
    if kind == "Pod":
        return _pod(doc)
    if kind in WORKLOAD_KINDS:
        return _workload(doc)
    return None


def _pod(doc: Mapping) -> Pod:
    meta, spec, status = (doc.get(k) or {} for k in ("metadata", "spec", "status"))
    owner_kind, owner_name = "Pod", meta.get("name", "")
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            # a static pod's controller is its Node: netpol-analyzer shows it as a bare pod
            if ref.get("kind") != "Node":
                owner_kind, owner_name = ref.get("kind") or "Pod", ref.get("name", "")
            break
    ips = tuple(i["ip"] for i in status.get("podIPs") or [] if i.get("ip"))
    if not ips and status.get("podIP"):
        ips = (status["podIP"],)
    return Pod(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name", ""),
        owner_kind=owner_kind,
        owner_name=owner_name,
        labels=_labels(meta),
        ports=_ports(spec),
        host_network=bool(spec.get("hostNetwork")),
        ips=ips,
        host_ip=status.get("hostIP") or "",
    )


def _workload(doc: Mapping) -> Pod:
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") or {}
    name = meta.get("name", "")
    return Pod(
        namespace=meta.get("namespace") or "default",
        name=name,
        owner_kind=doc["kind"],
        owner_name=name,
        labels=_labels(template.get("metadata") or {}),
        ports=_ports(template.get("spec") or {}),
        host_network=bool((template.get("spec") or {}).get("hostNetwork")),
    )


def _labels(meta: Mapping) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}


def _ports(pod_spec: Mapping) -> tuple[ContainerPort, ...]:
    return tuple(
        ContainerPort(
            int(p.get("containerPort") or 0), p.get("protocol") or "TCP", p.get("name") or ""
        )
        for c in pod_spec.get("containers") or []
        for p in c.get("ports") or []
    )


def parse_policy(doc: Mapping) -> NetworkPolicy:
    """Return a NetworkPolicy from its manifest (policyTypes defaulted as the API server does)."""
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    name = f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"
    ingress = tuple(_rule(r, "from", name) for r in spec.get("ingress") or [])
    egress = tuple(_rule(r, "to", name) for r in spec.get("egress") or [])
    return NetworkPolicy(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name", ""),
        pod_selector=_selector(spec.get("podSelector") or {}, name),
        ingress=ingress,
        egress=egress,
        policy_types=effective_policy_types(spec),
    )


def effective_policy_types(spec: Mapping) -> frozenset[str]:
    """Return the policy types the API server gives a NetworkPolicy spec (defaults applied)."""
    types = spec.get("policyTypes")
    if not types:  # absent or empty (upstream tests len() == 0)
        # a policy without policyTypes isolates for egress only when it has egress rules
        return frozenset(POLICY_TYPES if spec.get("egress") else POLICY_TYPES[:1])
    if not isinstance(types, list):
        return frozenset()  # the server stores nothing else: such a policy isolates nothing
    return frozenset(t for t in types if isinstance(t, str))


def _rule(rule: Mapping, peers_key: str, policy: str) -> PolicyRule:
    rule = rule or {}
    peers = tuple(_peer(p or {}, policy) for p in rule.get(peers_key) or [])
    ports = tuple(
        PolicyPort(
            protocol=(p.get("protocol") or "TCP").upper(),
            port=p.get("port"),
            end_port=p.get("endPort"),
        )
        for p in rule.get("ports") or []
        if p is not None
    )
    return PolicyRule(peers, ports)


def _peer(peer: Mapping, policy: str) -> PolicyPeer:
    pod, ns, ipb = (peer.get(k) for k in ("podSelector", "namespaceSelector", "ipBlock"))
    if ipb is not None and (pod is not None or ns is not None):
        raise ValueError(f"NetworkPolicy {policy}: ipBlock combined with a selector in one peer")
    if ipb is not None:
        return PolicyPeer(ip_block=IPBlock(ipb.get("cidr", ""), tuple(ipb.get("except") or ())))
    if pod is None and ns is None:
        raise ValueError(f"NetworkPolicy {policy}: a peer needs a selector or an ipBlock")
    return PolicyPeer(
        pod_selector=None if pod is None else _selector(pod, policy),
        namespace_selector=None if ns is None else _selector(ns, policy),
    )


def _selector(sel: Mapping, policy: str) -> LabelSelector:
    reqs = []
    for e in sel.get("matchExpressions") or []:
        if e.get("operator") not in _OPERATORS:
            raise ValueError(f"NetworkPolicy {policy}: unknown operator {e.get('operator')!r}")
        reqs.append(Requirement(e.get("key", ""), e["operator"], tuple(e.get("values") or ())))
    labels = tuple(sorted((str(k), str(v)) for k, v in (sel.get("matchLabels") or {}).items()))
    return LabelSelector(labels, tuple(reqs))


def parse_selector(selector: Mapping) -> LabelSelector:
    """Return the LabelSelector of a selector as written in a manifest."""
    return _selector(selector, "selector")


def selector_matches(selector: Mapping, labels: Mapping[str, str]) -> bool:
    """Return whether a label selector (as written in a manifest) matches the labels."""
    return parse_selector(selector).matches(labels)


def build_cluster(objects: Iterable[K8sObject | Mapping]) -> Cluster:
    """Return the objects grouped for evaluation (dicts are parsed first)."""
    typed: list[K8sObject] = []
    for obj in objects:
        if isinstance(obj, Mapping):
            typed.extend(parse_objects([obj]))
        else:
            typed.append(obj)
    namespaces = {o.name: o for o in typed if isinstance(o, Namespace)}
    members: dict[str, list[Pod]] = {}
    for pod in (o for o in typed if isinstance(o, Pod)):
        members.setdefault(pod.workload, []).append(pod)
    peers = [group[0] for group in members.values()]
    gaps = {w: g for w, g in members.items() if any(p.labels != g[0].labels for p in g)}
    # a later policy of the same namespace/name replaces the earlier one, as `kubectl apply`
    policies = list(
        {(o.namespace, o.name): o for o in typed if isinstance(o, NetworkPolicy)}.values()
    )
    for ns in {p.namespace for p in peers} | {p.namespace for p in policies}:
        namespaces.setdefault(ns, Namespace(ns, {}))
    namespaces = {
        name: Namespace(name, {**ns.labels, NAME_LABEL: ns.labels.get(NAME_LABEL, name)})
        for name, ns in namespaces.items()
    }
    return Cluster(namespaces, peers, policies, gaps)
