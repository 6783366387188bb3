"""Findings marked false positive (kforensics note) as an `--exceptions` file that drops them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kforensics.case import connect
from kforensics.detection.rule import Rule, load_rules
from kforensics.investigate.notes import latest_marks, read_notes

HEADER = (
    "# Findings marked false positive in the case (kforensics note --false-positive), as\n"
    "# `kforensics detect --exceptions` entries: each matches one finding's rule and subject.\n"
)
_GLOB = str.maketrans({c: f"[{c}]" for c in "*?[\\"})


def glob_literal(text: str) -> str:
    """Return a GLOB pattern that matches exactly text (its *, ?, [ and \\ taken literally)."""
    return text.translate(_GLOB)


@dataclass
class FalsePositives:
    """The exceptions a case's false-positive marks make, and the marks no entry can express."""

    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # `finding_id: why`
    # `finding_id: other ids`: stored findings an entry matches too (alice's entry matches
    # alice impersonating someone: the format cannot say "not impersonating")
    broader: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """Return the entries as an exceptions file (the format load_exceptions reads)."""
        text = HEADER
        for line in self.skipped:
            text += f"# not expressible, left out: {line}\n"
        for line in self.broader:
            text += f"# the entry for {line}\n"
        body = yaml.safe_dump(self.entries, sort_keys=False, allow_unicode=False, width=100)
        return text + ("" if not self.entries else body)


def _entry(
    subject: dict[str, Any], rule: Rule, note: dict[str, Any]
) -> tuple[dict[str, Any] | None, str]:
    """Return the exceptions entry for one finding's subject, or None and why it cannot be."""
    entry: dict[str, Any] = {}
    for name in rule.group_by:
        if name == "source_ip":
            ips = subject.get("source_ips") or []
            if len(ips) != 1:
                return None, "its source IP is not one address"
            entry["source_ip"] = glob_literal(ips[0])
            continue
        value = subject.get(name)
        if value is None:
            # An exception never matches a missing field: such a finding cannot be excepted.
            return None, f"its {name} is unknown"
        entry[name] = glob_literal(value)
        if name == "actor" and subject.get("impersonated") is not None:
            entry["impersonated"] = glob_literal(subject["impersonated"])
    if not entry:
        return None, "its rule groups by no field"
    entry["reason"] = (
        f"finding {note['target']} marked false positive by {note['author']} at "
        f"{note['created_at'].isoformat().replace('+00:00', 'Z')}: {note['reason']}"
    )
    return entry, ""


def _also_matched(con: Any, rule_id: str, finding_id: str, subject: dict, entry: dict) -> list:
    """Return the ids of the rule's other findings (the last detect's) the entry matches too."""
    where, params = ["rule_id = $rule", "finding_id <> $fid"], {"rule": rule_id, "fid": finding_id}
    for name in ("actor", "impersonated", "namespace", "resource", "name"):
        if name in entry:
            where.append(f"{name} = ${name}")
            params[name] = subject[name]
    if "source_ip" in entry:
        where.append("list_contains(source_ips, $ip)")
        params["ip"] = subject["source_ips"][0]
    rows = con.execute(
        f"SELECT finding_id FROM findings WHERE {' AND '.join(where)} ORDER BY finding_id",  # noqa: S608
        params,
    ).fetchall()
    return [r[0] for r in rows]


def false_positives(
    case: str | Path, rules: list[Rule] | None = None, *, rule_dirs: list[Path] | tuple = ()
) -> FalsePositives:
    """Return the exceptions for the case's findings whose latest mark is false_positive.

    Each entry matches the rule's grouping fields of the finding as it was noted (rules: the
    built-in ones plus rule_dirs unless given), so a re-detect with it drops that finding.
    """
    if rules is None:
        rules = load_rules([Path(d) for d in rule_dirs])
    by_id = {r.id: r for r in rules}
    con = connect(case)
    try:
        return _false_positives(con, by_id)
    finally:
        con.close()


def _false_positives(con: Any, by_id: dict[str, Rule]) -> FalsePositives:
    marks = latest_marks(read_notes(con, "finding"))
    dropped = {fid for fid, note in marks.items() if note["mark"] == "false_positive"}
    out = FalsePositives()
    for finding_id, note in sorted(marks.items(), key=lambda kv: kv[1]["subject"]["rule_id"]):
        if note["mark"] != "false_positive":
            continue
        subject = note["subject"]
        rule = by_id.get(subject["rule_id"])
        if rule is None:  # detect refuses an entry for a rule it does not run
            out.skipped.append(
                f"{finding_id}: its rule {subject['rule_id']} is not loaded (--rules)"
            )
            continue
        entry, why = _entry(subject, rule, note)
        if entry is None:
            out.skipped.append(f"{finding_id}: {why}")
            continue
        out.entries.setdefault(subject["rule_id"], []).append(entry)
        others = [
            f
            for f in _also_matched(con, subject["rule_id"], finding_id, subject, entry)
            if f not in dropped  # marked too: dropping it is meant
        ]
        if others:
            out.broader.append(f"{finding_id} also matches finding {', '.join(others)}")
    return out
