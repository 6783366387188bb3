"""NetworkPolicies from findings: what a responder would apply, each citing its evidence.

Five kinds of remedy, each built from the findings and the inventory rebuilt from the log:
quarantine of compromised pods, restore of a deleted or weakened NetworkPolicy, namespace
selectors pinned to the immutable `kubernetes.io/metadata.name` after a relabel evasion, egress
blocks for workloads whose service account was abused, and default-deny for touched namespaces.
Objects are dicts serialized with a YAML serializer; every name is made DNS-1123 whatever the
log held.
"""

from __future__ import annotations

import copy
import ipaddress
import shlex
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import yaml

from kforensics.detection.run import Finding
from kforensics.investigate.redact import clip
from kforensics.levels import at_or_above
from kforensics.netpol.inventory import Inventory, clean
from kforensics.netpol.model import effective_policy_types, parse_selector, selector_matches
from kforensics.netpol.names import (
    dns1123_subdomain,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label,
    label_value,
)

QUARANTINE_LABEL = "kforensics.io/quarantine"
METADATA_IPS = ("169.254.169.254/32", "fd00:ec2::254/128")
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease"}
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
ATTACK_LEVELS = at_or_above("medium")
_JUST = timedelta(microseconds=1)


@dataclass
class Remedy:
    """One thing to apply: objects, the commands that go with them, and why."""

    kind: str
    name: str
    rationale: str
    findings: list[Finding]
    objects: list[dict] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Pods to relabel with QUARANTINE_LABEL, as (namespace, name), for the simulation.
    quarantine: list[tuple[str, str]] = field(default_factory=list)

    def evidence(self, limit: int = 8) -> list[str]:
        """Return `file:line (auditID)` of the events behind it, earliest first, at most limit."""
        seen: dict[str, None] = {}
        for f in self.findings:
            for e in f.evidence:
                # Clients choose audit IDs: a 100 KB one would burst the annotations' 256 KB.
                audit_id = clip(e["audit_id"] or "")
                # the file as given to load: two nodes' audit.log must not read the same
                seen[f"{e['source_file']}:{e['source_line']} ({audit_id})"] = None
        out = list(seen)
        return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def _annotate(obj: dict, remedy: Remedy) -> dict:
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    # A restored object keeps its owner's managed-by (Helm adopts by it).
    labels.setdefault("app.kubernetes.io/managed-by", "kforensics")
    labels["kforensics.io/remedy"] = label_value(remedy.kind)
    if remedy.findings:
        labels["kforensics.io/finding"] = label_value(remedy.findings[0].finding_id)
    annotations = meta.setdefault("annotations", {})
    annotations["kforensics.io/rationale"] = remedy.rationale
    annotations["kforensics.io/findings"] = ", ".join(
        f"{f.rule_id} ({f.finding_id})" for f in remedy.findings
    )
    annotations["kforensics.io/evidence"] = "; ".join(remedy.evidence())
    return obj


def _policy(name: str, namespace: str, spec: dict) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": dns1123_subdomain(name), "namespace": namespace},
        "spec": spec,
    }


def _service_account(actor: str | None) -> tuple[str, str] | None:
    if actor and actor.startswith("system:serviceaccount:"):
        parts = actor.split(":")
        if len(parts) == 4 and parts[2] and parts[3]:
            return parts[2], parts[3]
    return None


def _pod_ip(pod: dict) -> str | None:
    return (pod.get("status") or {}).get("podIP")


def _workload_labels(pods: list[dict]) -> dict[str, str]:
    """Return the labels all the pods share, without per-ReplicaSet hashes."""
    common: dict[str, str] | None = None
    for pod in pods:
        labels = dict((pod.get("metadata") or {}).get("labels") or {})
        labels.pop("pod-template-hash", None)
        labels.pop("controller-revision-hash", None)
        common = (
            labels if common is None else {k: v for k, v in common.items() if labels.get(k) == v}
        )
    # Labels go into a selector as they are: a rewritten value would select nothing.
    return {k: v for k, v in (common or {}).items() if is_label(k, v)}


def compromised(findings: list[Finding], inv: Inventory) -> dict[tuple[str, str], dict]:
    """Return abused service accounts: (namespace, name) -> their pods, IPs and findings."""
    out: dict[tuple[str, str], dict] = {}
    for f in findings:
        sa = _service_account(f.actor)
        if sa is None or f.level not in ATTACK_LEVELS:
            continue
        entry = out.setdefault(sa, {"findings": [], "ips": set(), "pods": [], "sources": []})
        entry["findings"].append(f)
        entry["ips"].update(f.source_ips)
    for (ns, sa), entry in out.items():
        pods = [
            p for p in inv.of_kind("Pod")
            if p["metadata"].get("namespace") == ns
            and ((p.get("spec") or {}).get("serviceAccountName") or "default") == sa
        ]  # fmt: skip
        entry["pods"] = pods
        # The pods whose IP made the requests are the ones the attacker is in.
        entry["sources"] = [p for p in pods if _pod_ip(p) in entry["ips"]] or pods
    return out


def quarantine(
    findings: list[Finding],
    inv: Inventory,
    forensics_ns: str | None,
    touched: Mapping[tuple[str, str], str] | None = None,
) -> list[Remedy]:
    """Return a deny-all quarantine per namespace of compromised pods, with the label commands.

    The pods are those whose service account token was used in the attack and those in
    `touched` ((namespace, pod) -> why: exec'd into, attached to, ...). A hostNetwork pod is
    left out with a note: NetworkPolicies do not apply to the node's network.
    """
    if forensics_ns is not None and not is_dns1123_label(forensics_ns):
        raise ValueError(f"{forensics_ns!r} is not a valid namespace name")
    remedies = []
    by_ns: dict[str, dict[str, str]] = defaultdict(dict)
    why: dict[str, list[Finding]] = defaultdict(list)
    for (ns, sa), entry in compromised(findings, inv).items():
        for pod in entry["sources"]:
            by_ns[ns][pod["metadata"]["name"]] = f"runs as {ns}/{sa}, whose token was abused"
        why[ns].extend(entry["findings"])
    for (ns, name), reason in (touched or {}).items():
        by_ns[ns].setdefault(name, reason)
        why[ns].extend(
            f for f in findings if f.namespace == ns and f.name == name and f not in why[ns]
        )
    for ns, pods in sorted(by_ns.items()):
        if not _valid_namespace(ns):
            continue
        ingress = []
        if forensics_ns:
            ingress = [{"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": forensics_ns}}}]}]  # fmt: skip
        remedy = Remedy(
            kind="quarantine",
            name=f"quarantine-{ns}",
            rationale=(
                "Deny all ingress and egress of the pods the attack used or touched "
                f"({len(pods)} pod(s)); label them to apply"
                + (f", only {forensics_ns} may connect in" if forensics_ns else "")
            ),
            findings=why[ns] or [f for f in findings if f.namespace == ns],
        )
        spec = {
            "podSelector": {"matchLabels": {QUARANTINE_LABEL: "true"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [],
        }
        for name, reason in sorted(pods.items()):
            pod = inv.get("Pod", ns, name)
            if not is_dns1123_subdomain(name) or not is_dns1123_label(ns):
                remedy.notes.append(f"pod {name!r} in {ns!r}: not a valid name, not labelled")
                continue
            if pod is None:
                remedy.notes.append(f"pod {ns}/{name} ({reason}): gone by the end of the log")
                continue
            if (pod.get("spec") or {}).get("hostNetwork") is True:
                remedy.notes.append(
                    f"pod {ns}/{name} ({reason}) uses the host network: no NetworkPolicy "
                    "contains it; it is evicted and its node cordoned (step evict)"
                )
                continue
            remedy.notes.append(f"pod {ns}/{name}: {reason}")
            remedy.quarantine.append((ns, name))
            remedy.commands.append(
                f"kubectl label pod --namespace {shlex.quote(ns)} {shlex.quote(name)} "
                f"{QUARANTINE_LABEL}=true --overwrite"
            )
        if remedy.quarantine:
            remedy.objects.append(_annotate(_policy("kforensics-quarantine", ns, spec), remedy))
        remedies.append(remedy)
    return remedies


# The findings whose remedy rebuilds the cluster as it was just before them
_RESTORED = ("k8s-networkpolicy-deleted-or-modified", "k8s-namespace-relabel-netpol-selector")


def before_times(findings: list[Finding]) -> list[datetime]:
    """Return the times `plan` asks inv_at for besides the end: just before each restored change."""
    return [f.first_seen - _JUST for f in findings if f.rule_id in _RESTORED and f.first_seen]


def _before(f: Finding, inv_at) -> Inventory | None:
    """Return the inventory just before the finding's first event (None when it is undated)."""
    return None if f.first_seen is None else inv_at(f.first_seen - _JUST)


def restore(findings: list[Finding], inv_at) -> list[Remedy]:
    """Return NetworkPolicies as the log recorded them before they were deleted or modified."""
    remedies = []
    seen = set()
    # A dated change first: an undated one (no timestamp logged) has no "before" to restore.
    for f in sorted(findings, key=lambda f: f.first_seen is None):
        if f.rule_id != _RESTORED[0] or not f.namespace or not f.name:
            continue
        if (f.namespace, f.name) in seen:
            continue
        seen.add((f.namespace, f.name))
        inv_before = _before(f, inv_at)
        before = inv_before and inv_before.get("NetworkPolicy", f.namespace, f.name)
        refused = inv_before and inv_before.refused.get(("NetworkPolicy", f.namespace, f.name))
        remedy = Remedy(
            kind="restore",
            name=f"restore-{f.namespace}-{f.name}",
            rationale=(
                f"Restore NetworkPolicy {f.namespace}/{f.name} as last recorded before "
                f"{clip(f.actor or 'an unknown actor', 253)} deleted or changed it"
            ),
            findings=[f],
        )
        if inv_before is None:
            remedy.notes.append(
                f"{f.namespace}/{f.name}: the change is undated, so is what came before it; "
                "restore it from version control"
            )
        elif refused is not None:
            # A state the API server would have refused is crafted: never proposed for apply.
            remedy.notes.append(
                f"{f.namespace}/{f.name}: its recorded state is not a policy the API server "
                f"accepts ({refused}); restore it from version control"
            )
        elif before is None:
            remedy.notes.append(
                f"{f.namespace}/{f.name}: no earlier state in the log (audit level too low); "
                "restore it from version control"
            )
        else:
            obj = clean(before)
            obj["apiVersion"] = "networking.k8s.io/v1"
            remedy.objects.append(_annotate(obj, remedy))
        remedies.append(remedy)
    return remedies


def pin_namespaces(findings: list[Finding], inv_at) -> list[Remedy]:
    """Return policies whose namespaceSelectors select by kubernetes.io/metadata.name instead."""
    remedies = []
    for f in findings:
        if f.rule_id != _RESTORED[1] or not f.namespace or not f.name:
            continue
        before_inv = _before(f, inv_at)
        policy = before_inv and before_inv.get("NetworkPolicy", f.namespace, f.name)
        remedy = Remedy(
            kind="pin-namespaces",
            name=f"pin-{f.namespace}-{f.name}",
            rationale=(
                f"A namespace relabel made {f.namespace}/{f.name} trust a namespace it did not; "
                "select the namespaces it trusted before by their immutable name"
            ),
            findings=[f],
        )
        if policy is None:
            why = "policy not recorded" if before_inv else "the relabel is undated"
            remedy.notes.append(f"{f.namespace}/{f.name}: {why}; rewrite by hand")
            remedies.append(remedy)
            continue
        obj = clean(policy)
        names = sorted(
            n["metadata"]["name"] for n in before_inv.of_kind("Namespace")
        )  # fmt: skip
        for direction, peer_key in (("ingress", "from"), ("egress", "to")):
            for rule in obj.get("spec", {}).get(direction) or []:
                for peer in rule.get(peer_key) or []:
                    sel = peer.get("namespaceSelector")
                    selector = None if sel is None else parse_selector(sel)
                    if selector is None or selector.selects_all:
                        continue
                    trusted = [n for n in names if selector.matches(before_inv.namespace_labels(n))]
                    peer["namespaceSelector"] = {"matchExpressions": [{
                        "key": "kubernetes.io/metadata.name", "operator": "In",
                        "values": trusted or ["kforensics-none"],
                    }]}  # fmt: skip
        remedy.objects.append(_annotate(obj, remedy))
        remedies.append(remedy)
    return remedies


def egress_blocks(findings: list[Finding], inv: Inventory) -> list[Remedy]:
    """Return egress limits for workloads of abused service accounts: no metadata service, no
    API server, no attacker addresses; DNS and other traffic keep working."""
    remedies = []
    api = api_server_ips(inv)
    for (ns, sa), entry in sorted(compromised(findings, inv).items()):
        if not _valid_namespace(ns):
            continue
        pods = entry["pods"]
        labels = _workload_labels(pods)
        external = sorted(ip for ip in entry["ips"] if ip and not _private(ip))
        except_ = sorted(
            {METADATA_IPS[0], *(f"{ip}/32" for ip in api), *(f"{ip}/32" for ip in external)}
        )
        remedy = Remedy(
            kind="egress-block",
            name=f"egress-{ns}-{sa}",
            rationale=(
                f"Pods running as {ns}/{sa} (token abused): block the cloud metadata address, "
                "the API server and the attacker's addresses; keep DNS"
            ),
            findings=entry["findings"],
        )
        if not pods or not labels:
            remedy.notes.append(f"{ns}/{sa}: no pod labels recorded; select its pods by hand")
            remedies.append(remedy)
            continue
        isolating = _egress_isolating(inv, ns, pods)
        if isolating:
            # An allow-list policy cannot subtract: on pods already egress-isolated it would
            # only widen what they may reach. The simulation shows what the others allow.
            remedy.notes.append(
                f"pods of {ns}/{sa} are already egress-isolated by "
                + ", ".join(isolating)
                + ": no new policy (it could only allow more); check the simulation for "
                "metadata and API server access"
            )
            remedies.append(remedy)
            continue
        if not api:
            remedy.notes.append("API server address unknown from the log: add it to `except`")
        spec = {
            # Not the quarantined pods: this policy allows egress, and allows are additive.
            "podSelector": {
                "matchLabels": dict(sorted(labels.items())),
                "matchExpressions": [{"key": QUARANTINE_LABEL, "operator": "DoesNotExist"}],
            },
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [DNS_PEER], "ports": DNS_PORTS},
                {"to": [{"namespaceSelector": {}}]},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": except_}}]},
            ],
        }
        name = f"kforensics-egress-block-{sa}"
        remedy.objects.append(_annotate(_policy(name, ns, spec), remedy))
        remedies.append(remedy)
    return remedies


def default_deny(findings: list[Finding], inv: Inventory, planned: list[Remedy]) -> list[Remedy]:
    """Return default-deny (with DNS) for namespaces the incident touched that lack one."""
    touched: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        if f.level in ATTACK_LEVELS and f.namespace and f.namespace not in SYSTEM_NAMESPACES:
            touched[f.namespace].append(f)
    denied = {
        o["metadata"].get("namespace")
        for o in [*inv.of_kind("NetworkPolicy"), *(o for r in planned for o in r.objects)]
        if o.get("kind") == "NetworkPolicy" and _denies_all(o)
    }
    remedies = []
    for ns, why in sorted(touched.items()):
        if ns in denied or inv.get("Namespace", "", ns) is None or not _valid_namespace(ns):
            continue
        remedy = Remedy(
            kind="default-deny",
            name=f"default-deny-{ns}",
            rationale=(
                f"Namespace {ns} was touched by the incident and no policy isolates its pods: "
                "deny by default, keep DNS; the policies it already has keep their allows"
            ),
            findings=why,
        )
        spec = {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [{"to": [DNS_PEER], "ports": DNS_PORTS}],
        }
        remedy.objects.append(_annotate(_policy("kforensics-default-deny", ns, spec), remedy))
        remedies.append(remedy)
    return remedies


def _valid_namespace(ns: str | None) -> bool:
    """True when a namespace from the log is a valid name (a policy must land where it says)."""
    return bool(ns) and is_dns1123_label(ns)


def _egress_isolating(inv: Inventory, ns: str, pods: list[dict]) -> list[str]:
    """Return the policies in ns that select any of the pods for egress."""
    out = []
    for p in inv.of_kind("NetworkPolicy"):
        spec = p.get("spec") or {}
        if p["metadata"].get("namespace") != ns or "Egress" not in effective_policy_types(spec):
            continue
        if any(
            selector_matches(spec.get("podSelector") or {}, (pod["metadata"].get("labels") or {}))
            for pod in pods
        ):
            out.append(p["metadata"]["name"])
    return sorted(out)


def _denies_all(policy: dict) -> bool:
    """True when the policy isolates every pod of its namespace both ways (its allows apart)."""
    spec = policy.get("spec") or {}
    types = effective_policy_types(spec)
    return spec.get("podSelector") in ({}, None) and {"Ingress", "Egress"} <= types


def api_server_ips(inv: Inventory) -> list[str]:
    """Return the API server addresses the log shows (the clusterIP of default/kubernetes)."""
    svc = inv.get("Service", "default", "kubernetes")
    ips = []
    if svc:
        ip = (svc.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            ips.append(ip)
    return ips


# Addresses that are inside a cluster's reach, never "the attacker's address" to block. Not
# `ip_address(...).is_private`: it also covers the documentation and benchmark ranges
# (192.0.2.0/24, 198.18.0.0/15, ...), where test attackers live, and misses CGNAT (100.64/10).
_INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
              "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8")
)  # fmt: skip


def _private(ip: str) -> bool:
    """True for RFC 1918, CGNAT, loopback and link-local addresses (and IPv6, non-addresses)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True  # not an address: never put it into a policy
    return addr.version != 4 or any(addr in net for net in _INTERNAL)


def plan(
    findings: list[Finding],
    inv_at,
    *,
    forensics_namespace: str | None = None,
    touched: Mapping[tuple[str, str], str] | None = None,
) -> list[Remedy]:
    """Return the remedies for the findings; inv_at(t) gives the inventory as of t (None: end).

    `touched` adds pods to quarantine: (namespace, pod) -> why."""
    inv = inv_at(None)
    remedies = quarantine(findings, inv, forensics_namespace, touched)
    remedies += restore(findings, inv_at)
    remedies += pin_namespaces(findings, inv_at)
    remedies += egress_blocks(findings, inv)
    remedies += default_deny(findings, inv, remedies)
    return remedies


def to_yaml(objects: list[dict]) -> str:
    """Return objects as a multi-document YAML stream (a serializer, never templates)."""
    return yaml.safe_dump_all(copy.deepcopy(objects), sort_keys=False, default_flow_style=False)
