"""Exceptions: known-good activity, by rule and field patterns, dropped from a rule's hits."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kforensics.detection.rule import load_rules
from kforensics.errors import ExceptionsError
from kforensics.untrusted import visible

# Fields an exception may match on (the anti-join), each an expression over a hit joined to ev.
EXCEPTION_FIELDS = {
    "actor": "h.actor",
    "impersonated": "ev.impersonated_user",
    "source_ip": "h.source_ip",
    "namespace": "h.namespace",
    "resource": "h.resource",
    "name": "h.name",
    "verb": "ev.verb",
    "subresource": "ev.subresource",
    "user_agent": "ev.user_agent",
    "user_group": None,  # any of the user's groups
    "image": None,  # every container image repository
}


@dataclass(frozen=True)
class Exception_:
    """One exception: a rule and field patterns (glob) that all must match to drop a hit."""

    rule_id: str
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    reason: str = ""
    file: str = field(default="", compare=False)  # the exceptions file it came from


def load_exceptions(path: Path) -> list[Exception_]:
    """Return the exceptions in a YAML file: {rule id: [{field: pattern(s), reason: ...}]}."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ExceptionsError(f"{path}: not readable YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ExceptionsError(f"{path}: expected a mapping of rule id to a list of entries")
    out = []
    for rule_id, entries in doc.items():
        if not isinstance(entries, list):
            raise ExceptionsError(f"{path}: {rule_id}: expected a list of entries")
        for n, entry in enumerate(entries, 1):
            if not isinstance(entry, dict):
                raise ExceptionsError(f"{path}: {rule_id} entry {n}: expected a mapping")
            reason = str(entry.get("reason", ""))
            fields = []
            for key, value in entry.items():
                if key == "reason":
                    continue
                if key not in EXCEPTION_FIELDS:
                    allowed = ", ".join(EXCEPTION_FIELDS)
                    raise ExceptionsError(
                        f"{path}: {rule_id} entry {n}: unknown field {key!r} (use {allowed})"
                    )
                values = value if isinstance(value, list) else [value]
                if not values or not all(isinstance(v, str | int) for v in values):
                    raise ExceptionsError(f"{path}: {rule_id} entry {n}: {key} needs strings")
                fields.append((key, tuple(str(v) for v in values)))
            if not fields:
                raise ExceptionsError(f"{path}: {rule_id} entry {n}: no field to match")
            out.append(Exception_(str(rule_id), tuple(fields), reason, str(path)))
    return out


def check_exceptions(exceptions: list[Exception_], rule_ids: list[str] | set[str]) -> None:
    """Raise ExceptionsError naming the file and the id of an exception for no known rule."""
    known = set(rule_ids)
    if any(e.rule_id not in known for e in exceptions):
        # a built-in rule not run (another status, or rules chosen by hand) is known too
        known |= {r.id for r in load_rules(statuses=None)}
    for exc in exceptions:
        if exc.rule_id in known:
            continue
        close = difflib.get_close_matches(exc.rule_id, sorted(known), n=3, cutoff=0.85)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        where = f"{exc.file}: " if exc.file else ""
        raise ExceptionsError(
            f"{where}{visible(exc.rule_id)}: no rule has this id ({hint}`kforensics rules` "
            "lists the known ids)"
        )


def exception_sql(exc: Exception_, params: dict) -> str:
    """Return a condition true when a hit matches the exception; patterns go to params."""
    parts = []
    for key, patterns in exc.fields:
        names = []
        for pattern in patterns:
            name = f"p{len(params)}"
            params[name] = pattern
            names.append(name)
        if key == "image":
            # A container without an image matches no pattern (NULL would be skipped by and).
            any_of = " OR ".join(f"coalesce(x, '') GLOB ${n}" for n in names)
            parts.append(
                f"(len(ev.image_repos) > 0 AND list_bool_and(list_transform(ev.image_repos, "
                f"lambda x: {any_of})))"
            )
        elif key == "user_group":
            any_of = " OR ".join(f"g GLOB ${n}" for n in names)
            parts.append(
                f"coalesce(list_bool_or(list_transform(ev.user_groups, lambda g: {any_of})), false)"
            )
        else:
            col = EXCEPTION_FIELDS[key]
            # A field the event lacks (NULL) matches no pattern: NULL would make NOT (...) NULL
            # and drop the hit, so an unknown actor would hide under any actor exception.
            parts.append("coalesce(" + " OR ".join(f"{col} GLOB ${n}" for n in names) + ", false)")
    return "(" + " AND ".join(parts) + ")"
