"""Detection rules as data: one YAML file per rule, validated before anything runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kforensics.detection.macros import (
    SAFE_LOADER,
    SHARED_FILE,
    Shared,
    builtin_shared,
    expand,
    load_shared,
)
from kforensics.errors import RuleError
from kforensics.levels import LEVELS, rank
from kforensics.sqlcheck import NOT_ONE_SELECT, select_problem

STATUSES = ("stable", "test", "experimental", "deprecated")
DEFAULT_STATUSES = ("stable", "test")
# MITRE ATT&CK tactics (Enterprise and Containers matrices), as Sigma spells them in tags.
TACTICS = (
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
)  # fmt: skip
# What a finding is about; rules choose which of these make two events the same finding.
SUBJECT_FIELDS = ("actor", "source_ip", "namespace", "resource", "name")
DEFAULT_GROUP_BY = ("actor", "namespace", "resource", "name")

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TECHNIQUE = re.compile(r"^T\d{4}(?:\.\d{3})?$")
REQUIRED = ("id", "title", "description", "level", "status", "attack", "sql", "tests")


@dataclass(frozen=True)
class Rule:
    """One detection: metadata, a DuckDB SQL body over `ev`, and its own test events."""

    id: str
    title: str
    description: str
    level: str
    status: str
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    sql: str
    path: Path
    references: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    falco: tuple[str, ...] = ()
    sigma: tuple[str, ...] = ()
    tests: dict[str, Any] = field(default_factory=dict, compare=False)
    # the level of a finding whose evidence targets a sensitive workload (rule YAML `sensitive:
    # {level: ...}`); None: the level stays
    sensitive_level: str | None = None

    @property
    def severity(self) -> int:
        """Return the level's rank: 0 for info up to 4 for critical."""
        return rank(self.level)


def builtin_dir() -> Path:
    """Return the folder of the rules that ship with kforensics."""
    return Path(str(resources.files("kforensics.detection").joinpath("rules")))


def _strings(value: Any, what: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError(f"{path}: {what} must be a list of strings")
    return tuple(value)


# What a rule's self-test may put in the case besides its events (`tests.given`): rows of the
# table remediations, its columns as schema.sql defines them. Times are offsets from the test
# events' T0, so a test reads as a story; the NOT NULL columns without a test meaning get defaults.
REMEDIATION_ACTIONS = (
    "quarantine-pod", "policy", "revoke-binding", "revoke-role", "contain-identity",
    "delete-workload", "cordon-node", "rotate-secret", "rotate-token", "rotate-bootstrap-token",
    "rotate-node-credentials",
)  # fmt: skip
MAX_OFFSET_SECONDS = 1e9  # the ±1e9 of the error message
GIVEN_TEXT_COLUMNS = ("remediation_id", "step", "kind", "namespace", "name", "identity")
GIVEN_LIST_COLUMNS = ("finding_ids", "evidence")
GIVEN_COLUMNS = (
    *GIVEN_TEXT_COLUMNS, *GIVEN_LIST_COLUMNS, "action", "labels", "object",
    "effective_from_offset_seconds", "generated_at_offset_seconds",
)  # fmt: skip


def _check_given(given: Any, path: Path) -> None:
    """Raise RuleError unless given is {remediations: [row, ...]} with well-typed columns."""
    keys = {"remediations", "sensitive_targets", "baseline_until_offset_seconds"}
    if not isinstance(given, dict) or not given or not set(given) <= keys:
        raise RuleError(
            f"{path}: tests.given takes remediations and sensitive_targets (lists of rows of "
            "those tables) and baseline_until_offset_seconds"
        )
    if "sensitive_targets" in given:
        _check_given_targets(given["sensitive_targets"], path)
    offset = given.get("baseline_until_offset_seconds")
    if offset is not None and (
        isinstance(offset, bool) or not isinstance(offset, int | float)
        or not abs(offset) <= MAX_OFFSET_SECONDS
    ):  # fmt: skip
        raise RuleError(f"{path}: tests.given.baseline_until_offset_seconds must be seconds (±1e9)")
    if "remediations" not in given:
        return
    rows = given["remediations"]
    if not isinstance(rows, list) or not rows:
        raise RuleError(f"{path}: tests.given.remediations must be a non-empty list of rows")
    for n, row in enumerate(rows, 1):
        where = f"{path}: tests.given.remediations row {n}"
        if not isinstance(row, dict):
            raise RuleError(f"{where}: a row is a mapping of the table's columns")
        unknown = sorted(str(k) for k in set(row) - set(GIVEN_COLUMNS))
        if unknown:
            raise RuleError(
                f"{where}: unknown columns {', '.join(unknown)} (use {', '.join(GIVEN_COLUMNS)})"
            )
        if row.get("action") not in REMEDIATION_ACTIONS:
            raise RuleError(f"{where}: action must be one of {', '.join(REMEDIATION_ACTIONS)}")
        for col in GIVEN_TEXT_COLUMNS:
            # remediation_id and step are NOT NULL in the table: they take text or their default
            nullable = col not in ("remediation_id", "step")
            if col in row and not isinstance(row[col], str | None if nullable else str):
                raise RuleError(f"{where}: {col} must be text{' or null' if nullable else ''}")
        for col in GIVEN_LIST_COLUMNS:
            if col in row and not (
                isinstance(row[col], list) and all(isinstance(v, str) for v in row[col])
            ):
                raise RuleError(f"{where}: {col} must be a list of strings")
        labels = row.get("labels")
        if labels is not None and not (
            isinstance(labels, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        ):
            raise RuleError(f"{where}: labels must map strings to strings")
        try:
            json.dumps(row.get("object"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise RuleError(f"{where}: object must be plain JSON ({exc})") from None
        for col in ("effective_from_offset_seconds", "generated_at_offset_seconds"):
            value = row.get(col)
            # bounded: a datetime holds about ±3e11 seconds, and NaN is no time
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | None)
                or (value is not None and not abs(value) <= MAX_OFFSET_SECONDS)
            ):
                raise RuleError(f"{where}: {col} must be a number of seconds (±1e9) or null")


TARGET_COLUMNS = ("workload", "namespace", "resource", "name", "name_regex", "priority")


def _check_given_targets(rows: Any, path: Path) -> None:
    """Raise RuleError unless tests.given.sensitive_targets are rows of sensitive_targets."""
    where = f"{path}: tests.given.sensitive_targets"
    if not isinstance(rows, list) or not rows:
        raise RuleError(f"{where} must be a non-empty list of rows")
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not set(row) <= set(TARGET_COLUMNS):
            raise RuleError(f"{where} row {n}: a mapping of {', '.join(TARGET_COLUMNS)}")
        texts = [row.get(c) for c in TARGET_COLUMNS[:5]]
        if not all(v is None or isinstance(v, str) for v in texts) or not row.get("namespace"):
            raise RuleError(f"{where} row {n}: text columns, namespace required")
        if row.get("priority", 0) not in (0, 1, 2) or isinstance(row.get("priority"), bool):
            raise RuleError(f"{where} row {n}: priority is 0, 1 or 2")


def _one_select(sql: str, path: Path) -> str:
    """Return sql if it is one SELECT statement, else raise RuleError saying what it is."""
    problem = select_problem(sql)
    if problem == NOT_ONE_SELECT:
        raise RuleError(f"{path}: sql {NOT_ONE_SELECT} over ev")
    if problem:
        raise RuleError(f"{path}: sql {problem}")
    return sql


def parse_rule(path: Path, shared: Shared | None = None) -> Rule:
    """Return the rule in a YAML file, or raise RuleError saying what is wrong with it.

    Its SQL's `{{ references }}` are expanded from shared (default: the built-in lists and macros).
    """
    shared = builtin_shared() if shared is None else shared
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: not readable YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RuleError(f"{path}: a rule is a YAML mapping")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise RuleError(f"{path}: missing {', '.join(missing)}")
    unknown = set(doc) - set(REQUIRED) - {
        "references", "falsepositives", "group_by", "falco", "sigma", "author", "date",
        "sensitive",
    }  # fmt: skip
    if unknown:
        raise RuleError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    rule_id = doc["id"]
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise RuleError(f"{path}: id must be lowercase words joined by '-'")
    if rule_id != path.stem:
        raise RuleError(f"{path}: id {rule_id!r} differs from the file name")
    if doc["level"] not in LEVELS:
        raise RuleError(f"{path}: level must be one of {', '.join(LEVELS)}")
    if doc["status"] not in STATUSES:
        raise RuleError(f"{path}: status must be one of {', '.join(STATUSES)}")
    attack = doc["attack"]
    if not isinstance(attack, dict):
        raise RuleError(f"{path}: attack must map techniques and tactics")
    techniques = _strings(attack.get("techniques"), "attack.techniques", path)
    tactics = _strings(attack.get("tactics"), "attack.tactics", path)
    if not techniques or not tactics:
        raise RuleError(f"{path}: attack needs at least one technique and one tactic")
    bad = [t for t in techniques if not _TECHNIQUE.match(t)]
    if bad:
        raise RuleError(f"{path}: not ATT&CK technique IDs: {', '.join(bad)}")
    bad = [t for t in tactics if t not in TACTICS]
    if bad:
        raise RuleError(f"{path}: not ATT&CK tactics: {', '.join(bad)}")
    group_by = _strings(doc.get("group_by"), "group_by", path) or DEFAULT_GROUP_BY
    bad = [g for g in group_by if g not in SUBJECT_FIELDS]
    if bad:
        raise RuleError(f"{path}: group_by takes {', '.join(SUBJECT_FIELDS)}, not {bad}")
    if not isinstance(doc["sql"], str) or not doc["sql"].strip():
        raise RuleError(f"{path}: sql must be a SELECT over ev")
    tests = doc["tests"]
    kinds = ("match", "no_match")
    if (
        not isinstance(tests, dict)
        or not set(kinds) <= set(tests) <= {*kinds, "given"}
        or not all(isinstance(tests[k], list) and tests[k] for k in kinds)
        or not all(isinstance(e, dict) for k in kinds for e in tests[k])
    ):
        raise RuleError(
            f"{path}: tests needs non-empty match and no_match lists of events (and may have given)"
        )
    if "given" in tests:
        _check_given(tests["given"], path)
    sensitive_level = _sensitive_level(doc.get("sensitive"), doc["level"], path)
    for what in ("title", "description"):
        if not isinstance(doc[what], str) or not doc[what].strip():
            raise RuleError(f"{path}: {what} must be text")
    return Rule(
        id=rule_id,
        title=doc["title"].strip(),
        description=" ".join(doc["description"].split()),
        level=doc["level"],
        status=doc["status"],
        techniques=techniques,
        tactics=tactics,
        sql=_one_select(expand(doc["sql"].strip().rstrip(";"), shared, path), path),
        path=path,
        references=_strings(doc.get("references"), "references", path),
        falsepositives=_strings(doc.get("falsepositives"), "falsepositives", path),
        group_by=group_by,
        falco=_strings(doc.get("falco"), "falco", path),
        sigma=_strings(doc.get("sigma"), "sigma", path),
        tests=tests,
        sensitive_level=sensitive_level,
    )


def _sensitive_level(value: Any, level: str, path: Path) -> str | None:
    """Return the level a sensitive target raises the rule to (`sensitive: {level: high}`)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"level"} or value["level"] not in LEVELS:
        raise RuleError(f"{path}: sensitive takes {{level: one of {', '.join(LEVELS)}}}")
    if rank(value["level"]) <= rank(level):
        raise RuleError(
            f"{path}: sensitive.level {value['level']} must be above the rule's level {level}"
        )
    return value["level"]


def load_rules(
    extra_dirs: list[Path] | tuple[Path, ...] = (),
    *,
    statuses: tuple[str, ...] | None = DEFAULT_STATUSES,
    builtin: bool = True,
) -> list[Rule]:
    """Return the built-in rules plus those in extra_dirs, filtered by status, sorted by id.

    A user rule with the id of a built-in rule replaces it (that is how a team tunes one). A
    folder's `_macros.yaml` adds lists and macros every rule may use (a name already defined is
    replaced, built-in rules included); files starting with `_` are not rules.
    """
    extra = [Path(d) for d in extra_dirs]
    dirs = ([builtin_dir()] if builtin else []) + extra
    for folder in dirs:
        if not folder.is_dir():
            raise RuleError(f"{folder}: no such rules folder")
    # The built-in lists and macros serve user rules too, even with builtin=False.
    shared = builtin_shared()
    for folder in extra:
        if (folder / SHARED_FILE).is_file():
            shared = shared.merged(load_shared(folder / SHARED_FILE))
    by_id: dict[str, Rule] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            if not path.name.startswith("_"):
                rule = parse_rule(path, shared)
                by_id[rule.id] = rule
    rules = sorted(by_id.values(), key=lambda r: r.id)
    if statuses is not None:
        rules = [r for r in rules if r.status in statuses]
    return rules
