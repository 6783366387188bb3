"""REPORT.md: the plan step by step, each action with its evidence, then the checks.

Every value from the log is redacted, then goes through `untrusted.markdown` (no Markdown or
HTML structure can come from it); commands are in fenced blocks, one per line, and a command
is one line that starts with `kubectl` or `#`, so none can close its fence.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kforensics.contain.plan import Plan
from kforensics.contain.steps import STEP_TITLES, say, say_md
from kforensics.netpol.plan import QUARANTINE_LABEL
from kforensics.version import __version__

_md = say_md


def _action(action, names: dict[int, str], applied: dict[int, str]) -> list[str]:
    lines = [f"### {_md(action.kind)}: {_md(action.name)}", ""]
    lines += [_md(action.rationale) + ".", ""]
    if id(action) in applied:
        lines.append(f"- file: {applied[id(action)]}")
    if id(action) in names and id(action) not in applied:
        lines.append(f"- NOT WRITTEN: invalid/{names[id(action)]} (see Validation)")
    lines += [f"- evidence: {_md(e)}" for e in action.cited()]
    lines += [f"- note: {_md(n)}" for n in action.notes]
    if action.commands:
        lines += ["", "```sh", *action.commands, "```"]
    lines.append("")
    return lines


def report(
    plan: Plan,
    names: dict[int, str],
    applied: dict[int, str],
    *,
    case: str = "",
    recorded: str = "",
) -> str:
    """Return the Markdown report of a plan whose files are `names` (written: `applied`)."""
    inv = plan.inventory
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    lines = ["# Containment plan", ""]
    if case:
        lines.append(f"- case: {_md(case)}")
    lines += [
        f"- cluster as of: {inv.at or 'the end of the case'}",
        f"- generated: {now} by kforensics {__version__}",
        "- contained identities: " + (", ".join(f"{_md(i)}" for i in plan.identities) or "none"),
        "",
        "Review every step, capture the evidence (pod and node state) before the evict and "
        "rotate steps delete it, then run `sh apply.sh` (all steps in order) or one step at a "
        "time: `sh apply.sh contain`, `cut-access`, `evict`, `rotate`.",
        "",
    ]
    for n, (step, actions) in enumerate(plan.by_step(), 1):
        lines += [f"## {n}. {STEP_TITLES[step]} ({step})", ""]
        for action in actions:
            lines += _action(action, names, applied)
    if recorded:
        lines += ["## Recorded for the watch", "", _md(recorded), ""]
    lines += ["## Validation", ""]
    errors = plan.errors
    lines += [f"- INVALID {_md(e)}" for e in errors] or [
        "Every object passes the Kubernetes schema (strict) and the API server's validation "
        "(NetworkPolicy, RBAC)."
    ]
    sim = plan.simulation
    lines += ["", "## Simulation of the NetworkPolicies", ""]
    if sim.error:
        lines.append(_md(sim.error))
    lines += [f"- PROBLEM: {_md(p)}" for p in sim.problems]
    if sim.fixes:
        lines.append(
            "- the fix-quarantine-defeats action narrows those policies to pods without "
            f"`{QUARANTINE_LABEL}` (included in the simulation)."
        )
    lines += ["", "Connections that change (before => after):", "", "```text"]
    # In a code block Markdown is inert; escapes keep every peer on its line, so none can
    # close the block.
    changes = [f"- {say(c.src)} => {say(c.dst)}: {c.before} => {c.after}" for c in sim.changes]
    lines += [*(changes or ["- none"]), "```"]
    lines += ["", "## What the log could not tell", ""]
    lines += [f"- {_md(u)}" for u in inv.unknown] or ["- nothing"]
    return "\n".join(lines) + "\n"
