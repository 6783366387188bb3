"""Rotate: every credential an identity read, requested, or could take from where it was.

Secrets it read by name, and every secret the log names in a scope it listed; bootstrap tokens
(deleted: kubeadm makes new ones on demand); the service-account tokens of the pods it used or
entered (a pod-bound token dies with its pod); tokens it requested; the node credentials and
cloud instance credentials that a command it ran read. Secret values are never in the plan: it
says what to rotate, not what they were.
"""

from __future__ import annotations

import re

import duckdb

from kforensics.contain.evict import node_ips, pod_spec
from kforensics.contain.footprint import Footprint
from kforensics.contain.steps import Action, kubectl, say
from kforensics.investigate.canned import run_query
from kforensics.netpol.inventory import Inventory

_BOOTSTRAP = re.compile(r"bootstrap-token-([a-z0-9]{6})")
_NODE_FILES = re.compile(r"kubelet\.conf|/etc/kubernetes|/var/lib/kubelet|/pki/")
_METADATA = re.compile(r"169\.254\.169\.254|metadata\.google\.internal|fd00:ec2::254")


def _secret(ns: str, name: str, why: str, evidence: list[str], fp: Footprint) -> Action:
    """Return the action rotating one secret (a bootstrap token is deleted outright)."""
    boot = _BOOTSTRAP.fullmatch(name) if ns == "kube-system" else None
    action = Action(
        step="rotate",
        kind="rotate-bootstrap-token" if boot else "rotate-secret",
        name=f"rotate-{ns}-{name}",
        rationale=(
            f"Secret {say(ns)}/{say(name)}: {why}. "
            + (
                "A bootstrap token lets anyone join a node: delete it (kubeadm token delete)"
                if boot
                else "Rotate the credential it holds at its issuer (database, API provider), "
                "then update the secret and restart its users"
            )
        ),
        findings=[f for f in fp.findings if f.name == name] or fp.findings,
        evidence=evidence,
    )
    if boot:
        command = kubectl("delete", "secret", name, "--ignore-not-found", namespace=ns)
        if command:
            action.commands.append(command)
        action.records.append({
            "action": "rotate-bootstrap-token", "kind": "Secret", "namespace": ns, "name": name,
            "identity": f"system:bootstrap:{boot.group(1)}",
        })  # fmt: skip
    else:
        action.records.append(
            {"action": "rotate-secret", "kind": "Secret", "namespace": ns, "name": name}
        )
    return action


def _secrets(con: duckdb.DuckDBPyConnection, fp: Footprint) -> list[Action]:
    """Return the secret rotations: read by name, then those exposed by a list or watch."""
    out: dict[tuple[str, str], Action] = {}
    for row in fp.credentials:
        if row["what"] != "secret" or not row["name"] or not row["namespace"]:
            continue
        key = (row["namespace"], row["name"])
        if key not in out:
            verbs = "/".join(row["verbs"])
            out[key] = _secret(*key, f"{verbs} by {say(fp.identity)}", row["evidence"], fp)
    for row in fp.credentials:
        if row["what"] != "secret" or row["name"]:
            continue
        scope = f"namespace {say(row['namespace'])}" if row["namespace"] else "all namespaces"
        known = run_query(con, "secrets_known", {"namespace": row["namespace"]}).to_pylist()
        for s in known:
            key = (s["namespace"], s["name"])
            if s["present"] and key not in out:
                why = f"exposed when {say(fp.identity)} listed the secrets of {scope}"
                out[key] = _secret(*key, why, row["evidence"], fp)
    return list(out.values())


def _pod_token(ns: str, name: str, why: str, evidence: list[str], fp: Footprint,
               inv: Inventory) -> Action | None:  # fmt: skip
    """Return the action rotating the token of one pod's service account (None: pod gone)."""
    pod = inv.get("Pod", ns, name)
    if pod is None:
        return None
    sa = pod_spec(pod).get("serviceAccountName") or "default"
    identity = f"system:serviceaccount:{ns}:{sa}"
    action = Action(
        step="rotate",
        kind="rotate-token",
        name=f"rotate-token-{ns}-{name}",
        rationale=(
            f"The token of {say(identity)} in pod {say(ns)}/{say(name)} is exposed ({why}): "
            "a pod-bound token dies with its pod, so delete the pod once its evidence is "
            "captured (its owner starts a new one with a new token)"
        ),
        findings=[f for f in fp.findings if f.name == name] or fp.findings,
        evidence=evidence,
    )
    command = kubectl("delete", "pod", name, "--ignore-not-found", namespace=ns)
    if command:
        action.commands.append(f"# once its evidence is captured: {command}")
    uid = (pod.get("metadata") or {}).get("uid")
    ip = (pod.get("status") or {}).get("podIP")
    action.records.append({
        "action": "rotate-token", "kind": "ServiceAccount", "namespace": ns, "name": sa,
        "identity": identity,
        "object": {"pod_uids": [uid] if isinstance(uid, str) else [],
                   "pod_ips": [ip] if isinstance(ip, str) else []},
    })  # fmt: skip
    return action


def _tokens(fp: Footprint, inv: Inventory) -> list[Action]:
    """Return the token rotations: pods used or entered, and tokens requested."""
    reads = {
        (r["namespace"], r["name"]) for r in fp.credentials
        if r["what"] == "exec-read" and "token" in (r["command"] or "")
    }  # fmt: skip
    out = []
    for row in fp.pods:
        ns, name, how = row["namespace"], row["pod"], ", ".join(row["how"])
        if "created" in row["how"]:
            continue  # its own pod: deleted at step evict, its token with it
        why = f"{how} by {say(fp.identity)}" + (", which read it" if (ns, name) in reads else "")
        action = _pod_token(ns, name, why, row["evidence"], fp, inv)
        if action:
            out.append(action)
    for row in fp.credentials:
        if row["what"] != "token-request":
            continue
        identity = f"system:serviceaccount:{row['namespace']}:{row['name']}"
        action = Action(
            step="rotate",
            kind="rotate-token",
            name=f"rotate-requested-{row['namespace']}-{row['name']}",
            rationale=(
                f"{say(fp.identity)} requested a token for {say(identity)}: it stays valid "
                "until it expires unless the service account is recreated (delete it and "
                "create it again, then restart its pods)"
            ),
            findings=fp.findings,
            evidence=row["evidence"],
        )
        action.records.append({
            "action": "rotate-token", "kind": "ServiceAccount", "namespace": row["namespace"],
            "name": row["name"], "identity": identity,
            "object": {"pod_uids": [], "pod_ips": []},
        })  # fmt: skip
        out.append(action)
    return out


def _hosts(fp: Footprint, inv: Inventory) -> list[Action]:
    """Return node and cloud credential rotations for commands that read them."""
    out = []
    for row in fp.credentials:
        if row["what"] != "exec-read" or not row["name"]:
            continue
        pod = inv.get("Pod", row["namespace"], row["name"])
        node = pod_spec(pod).get("nodeName") if pod else None
        where = f"pod {say(row['namespace'])}/{say(row['name'])}"
        command = row["command"] or ""
        if _NODE_FILES.search(command) and isinstance(node, str):
            action = Action(
                step="rotate",
                kind="rotate-node-credentials",
                name=f"rotate-node-{node}",
                rationale=(
                    f"A command in {where} read node {say(node)}'s files "
                    f"({say(command)[:120]}): its kubelet credentials are exposed. Replace "
                    "the node, or revoke its client certificate and let the kubelet "
                    "bootstrap a new one"
                ),
                findings=fp.findings,
                evidence=row["evidence"],
            )
            action.records.append({
                "action": "rotate-node-credentials", "kind": "Node", "name": node,
                "identity": f"system:node:{node}", "object": {"node_ips": node_ips(inv, node)},
            })  # fmt: skip
            out.append(action)
        if _METADATA.search(command):
            on = f"node {say(node)}" if isinstance(node, str) else "its node"
            out.append(Action(
                step="rotate",
                kind="rotate-cloud-credentials",
                name=f"rotate-cloud-{row['namespace']}-{row['name']}",
                rationale=(
                    f"A command in {where} queried the cloud metadata service: the instance "
                    f"credentials of {on} may be taken. Revoke the instance role's active "
                    "sessions at the cloud provider (the egress block keeps pods away from it)"
                ),
                findings=fp.findings,
                evidence=row["evidence"],
            ))  # fmt: skip
    return out


def rotate(con: duckdb.DuckDBPyConnection, fp: Footprint, inv: Inventory) -> list[Action]:
    """Return the rotate actions for one identity: secrets, tokens, node and cloud credentials."""
    return [*_secrets(con, fp), *_tokens(fp, inv), *_hosts(fp, inv)]
