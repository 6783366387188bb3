"""Cut the access: revoke the RBAC an identity created or was granted, and give back the least.

For each contained identity: delete the roles and bindings it created or changed, delete the
bindings that granted it what it abused (system bindings and group-wide ones are reported, not
deleted), and for a service account propose the least-privilege Role(s) that cover what it did
before the incident (`least_privilege`, as audit2rbac does from a log).
"""

from __future__ import annotations

import duckdb

from kforensics.contain.footprint import Footprint, service_account
from kforensics.contain.gitops import revert_note
from kforensics.contain.least_privilege import least_privilege
from kforensics.contain.rbac_validate import BINDING_KINDS, ROLE_KINDS
from kforensics.contain.steps import Action, kubectl, say
from kforensics.investigate.redact import redact
from kforensics.netpol.inventory import KINDS, Inventory, clean

RBAC = {r: k for r, k in KINDS.items() if k in ROLE_KINDS + BINDING_KINDS}  # resource -> kind


def _where(kind: str, ns: str | None, name: str) -> str:
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def grants(binding: dict, identity: str) -> str | None:
    """Return how a binding grants identity ('subject', 'group NAME'), None if it does not."""
    sa = service_account(identity)
    ns = binding["metadata"].get("namespace")
    for s in binding.get("subjects") or []:
        kind, name = s.get("kind"), s.get("name")
        if sa and kind == "ServiceAccount" and (s.get("namespace") or ns, name) == sa:
            return "subject"
        if not sa and kind == "User" and name == identity:
            return "subject"
        if sa and kind == "Group" and name in ("system:serviceaccounts",
                                               f"system:serviceaccounts:{sa[0]}"):  # fmt: skip
            return f"group {name}"
        if kind == "Group" and name in ("system:authenticated", "system:unauthenticated"):
            return f"group {name}"
    return None


def _revoke(kind: str, ns: str | None, name: str, obj: dict, why: str, fp: Footprint) -> Action:
    """Return the action deleting one RBAC object, recorded for the watch."""
    resource = {v: k for k, v in RBAC.items()}[kind].rstrip("s")
    action = Action(
        step="cut-access",
        kind="revoke-binding" if kind in BINDING_KINDS else "revoke-role",
        name=f"revoke-{name}",
        rationale=f"Delete {_where(kind, ns, say(name))}: {why}",
        findings=[f for f in fp.findings if f.name == name] or fp.findings,
    )
    command = kubectl("delete", resource, name, "--ignore-not-found", namespace=ns)
    if command is None:
        action.notes.append(
            f"{_where(kind, ns, say(name))}: not a name safe to paste; delete by hand"
        )
    else:
        action.commands.append(command)
    note = revert_note(_where(kind, ns, say(name)), obj)
    if note:
        action.notes.append(note)
    action.records.append({
        "action": action.kind, "kind": kind, "namespace": ns, "name": name,
        "identity": fp.identity, "object": redact(clean(obj)),
    })  # fmt: skip
    return action


def cut_access(con: duckdb.DuckDBPyConnection, fp: Footprint, inv: Inventory) -> list[Action]:
    """Return the cut-access actions for one identity, in the order to run them."""
    actions = []
    done: set[tuple[str, str, str]] = set()
    for row in fp.objects:
        kind = RBAC.get(row["resource"])
        if kind is None or not row["name"]:
            continue
        key = (kind, row["namespace"] or "", row["name"])
        obj = inv.objects.get(key)
        if obj is None or key in done:
            continue  # deleted since, or already revoked
        done.add(key)
        verbs = "/".join(row["verbs"])
        action = _revoke(
            kind, row["namespace"], row["name"], obj, f"{verbs} by {say(fp.identity)}", fp
        )
        action.evidence += row["evidence"]
        actions.append(action)
    for kind in BINDING_KINDS:
        for binding in inv.of_kind(kind):
            meta = binding["metadata"]
            key = (kind, meta.get("namespace") or "", meta["name"])
            how = grants(binding, fp.identity)
            if how is None or key in done:
                continue
            done.add(key)
            where = _where(kind, meta.get("namespace"), say(meta["name"]))
            role = (binding.get("roleRef") or {}).get("name")
            if how != "subject" or meta["name"].startswith("system:"):
                actions.append(Action(
                    step="cut-access", kind="review-binding", name=f"review-{meta['name']}",
                    rationale=(
                        f"{where} grants {say(fp.identity)} (as {how}) the role {say(role)}: "
                        "shared with others, not deleted; narrow it by hand"
                    ),
                    findings=fp.findings, evidence=[inv.evidence.get(key, "")],
                ))  # fmt: skip
                continue
            action = _revoke(
                kind, meta.get("namespace"), meta["name"], binding,
                f"it grants {say(fp.identity)} the role {say(role)}, which the attack used", fp,
            )  # fmt: skip
            action.evidence.append(inv.evidence.get(key, "").split(" (")[0])
            actions.append(action)
    actions.append(_contain_identity(con, fp))
    return actions


def _contain_identity(con: duckdb.DuckDBPyConnection, fp: Footprint) -> Action:
    """Return the action recording the identity as contained, with its least-privilege grant."""
    who = say(fp.identity)
    action = Action(
        step="cut-access",
        kind="contain-identity",
        name=f"contain-{who}",
        rationale=f"{who} is contained: any later request by it is a finding (step watch)",
        findings=fp.findings,
    )
    action.records.append({"action": "contain-identity", "identity": fp.identity})
    if fp.service_account is None:
        action.notes.append(
            f"{who} is a person or an external identity: disable it at its identity provider "
            "and revoke its sessions; a client certificate cannot be revoked, so remove every "
            "binding that names it"
        )
        return action
    grant = least_privilege(con, fp.identity, fp.first_seen)
    action.objects += grant.objects
    action.notes += grant.notes
    if grant.objects:
        action.rationale += (
            f"; it gets back only what it did before the incident ({grant.requests} request(s))"
        )
    return action
