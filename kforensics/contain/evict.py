"""Evict: delete the workloads an identity created, and cordon the nodes it reached.

A workload it created is deleted whatever it runs. A pod it created or entered that runs
privileged or in a host namespace (PID, IPC, network) or mounts a host path reached its node:
the node is cordoned and investigated as compromised. A hostNetwork pod it entered cannot be
quarantined by a NetworkPolicy: it is deleted (its owner recreates it clean).
"""

from __future__ import annotations

from kforensics.contain.footprint import Footprint
from kforensics.contain.gitops import revert_note
from kforensics.contain.steps import Action, kubectl, say
from kforensics.netpol.inventory import KINDS, Inventory
from kforensics.netpol.inventory import WORKLOADS as WORKLOAD_KINDS

# resource -> kind of what runs pods: a pod, or a workload with a pod template
WORKLOADS = {r: k for r, k in KINDS.items() if k == "Pod" or k in WORKLOAD_KINDS}


def pod_spec(obj: dict) -> dict:
    """Return the pod spec of a pod or a workload's template ({} if none)."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if obj.get("kind") != "Pod":
        spec = ((spec.get("template") or {}).get("spec")) or {}
    return spec if isinstance(spec, dict) else {}


def host_access(obj: dict) -> list[str]:
    """Return how a pod (or template) reaches its node: privileged, hostPID, ... ([]: not)."""
    spec = pod_spec(obj)
    out = [k for k in ("hostPID", "hostIPC", "hostNetwork") if spec.get(k) is True]
    containers = [
        c
        for key in ("containers", "initContainers", "ephemeralContainers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    ]
    if any(((c.get("securityContext") or {}).get("privileged")) is True for c in containers):
        out.insert(0, "privileged")
    paths = [
        v["hostPath"].get("path")
        for v in spec.get("volumes") or []
        if isinstance(v, dict) and isinstance(v.get("hostPath"), dict)
    ]
    out += [f"hostPath {say(p)}" for p in paths if isinstance(p, str)]
    return out


def evict(fp: Footprint, inv: Inventory) -> list[Action]:
    """Return the evict actions for one identity: workload deletes, then node cordons."""
    actions: list[Action] = []
    nodes: dict[str, list[str]] = {}  # node -> why
    created: set[tuple[str, str, str]] = set()
    for row in fp.objects:
        kind = WORKLOADS.get(row["resource"])
        if kind is None or "create" not in row["verbs"] or not row["name"]:
            continue
        ns, name = row["namespace"], row["name"]
        obj = inv.get(kind, ns, name)
        created.add((kind, ns or "", name))
        if obj is None:
            continue  # deleted since
        access = host_access(obj)
        where = f"{kind} {say(ns)}/{say(name)}"
        action = Action(
            step="evict",
            kind="delete-workload",
            name=f"delete-{kind.lower()}-{name}",
            rationale=(
                f"Delete {where}, created by {say(fp.identity)}"
                + (f" ({', '.join(access)})" if access else "")
                + "; capture it first if you need its state (kubectl get -o yaml, logs)"
            ),
            findings=[f for f in fp.findings if f.name == name] or fp.findings,
            evidence=list(row["evidence"]),
        )
        command = kubectl("delete", kind.lower(), name, "--ignore-not-found", namespace=ns)
        if command:
            action.commands.append(command)
        else:
            action.notes.append(f"{where}: not a name safe to paste; delete by hand")
        note = revert_note(where, obj)
        if note:
            action.notes.append(note)
        action.records.append(
            {"action": "delete-workload", "kind": kind, "namespace": ns, "name": name}
        )
        actions.append(action)
        node = pod_spec(obj).get("nodeName")
        if access and isinstance(node, str):
            nodes.setdefault(node, []).append(f"{where} ran on it ({', '.join(access)})")
    for row in fp.pods:
        ns, name = row["namespace"], row["pod"]
        pod = inv.get("Pod", ns, name)
        if pod is None or ("Pod", ns, name) in created:
            continue
        access = host_access(pod)
        node = pod_spec(pod).get("nodeName")
        how = ", ".join(row["how"])
        if access and isinstance(node, str):
            nodes.setdefault(node, []).append(
                f"pod {say(ns)}/{say(name)} ({', '.join(access)}) was {say(how)}"
            )
        if "hostNetwork" in access:
            action = Action(
                step="evict",
                kind="delete-workload",
                name=f"delete-pod-{name}",
                rationale=(
                    f"Delete pod {say(ns)}/{say(name)} ({say(how)} by {say(fp.identity)}): "
                    "it uses the host network, which no NetworkPolicy contains; its owner "
                    "recreates it"
                ),
                findings=[f for f in fp.findings if f.name == name] or fp.findings,
                evidence=list(row["evidence"]),
            )
            command = kubectl("delete", "pod", name, "--ignore-not-found", namespace=ns)
            if command:
                action.commands.append(command)
            action.records.append(
                {"action": "delete-workload", "kind": "Pod", "namespace": ns, "name": name}
            )
            actions.append(action)
    for node, why in sorted(nodes.items()):
        actions.append(_cordon(node, why, fp, inv))
    return actions


def node_ips(inv: Inventory, node: str) -> list[str]:
    """Return the node's addresses as the pods' status recorded them (hostIP)."""
    ips = {
        (p.get("status") or {}).get("hostIP")
        for p in inv.of_kind("Pod")
        if pod_spec(p).get("nodeName") == node
    }
    return sorted(ip for ip in ips if isinstance(ip, str) and ip)


def _cordon(node: str, why: list[str], fp: Footprint, inv: Inventory) -> Action:
    """Return the action cordoning a node the attacker reached (then drain, then replace)."""
    action = Action(
        step="evict",
        kind="cordon-node",
        name=f"cordon-{node}",
        rationale=(
            f"Cordon node {say(node)} and treat it as compromised: "
            + "; ".join(why)
            + ". Capture its disk and memory, then drain and replace it"
        ),
        findings=fp.findings,
    )
    cordon = kubectl("cordon", node)
    drain = kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data")
    if cordon and drain:
        action.commands += [cordon, f"# once its evidence is captured: {drain}"]
    else:
        action.notes.append(f"node {say(node)}: not a name safe to paste; cordon it by hand")
    action.records.append({
        "action": "cordon-node", "kind": "Node", "name": node,
        "object": {"node_ips": node_ips(inv, node)},
    })  # fmt: skip
    return action
