"""Shared lists and macros that rule SQL references by name (`{{ name }}`), Falco-style.

A rules folder may hold `_macros.yaml` (SHARED_FILE) with two mappings:

    lists:  {name: [literal, ...]}    # `{{ name }}`: 'a', 'b', ... (escaped string literals)
    macros: {name: SQL}               # `{{ name }}`: the SQL, itself expanded
            {name: {params: [p], columns: [c], sql: SQL}}    # `{{ name(list_or_macro, col) }}`

Inside a macro, `{{ p }}` is a params argument, which names a list or macro (expanded), and
`{{ c }}` a columns argument, a column name kept as written; params come first in a call.
Lists and macros are static text from the rule author: no value from a log is ever formatted
into SQL here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kforensics.errors import RuleError

SHARED_FILE = "_macros.yaml"
# libyaml when built in: issue 13 measured the rules parse in 0.08 s with it, 0.4 s without
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A column argument, such as x_before or hit.image_repos.
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?$")
_REF = re.compile(r"\{\{\s*([^{}()\s]+)\s*(?:\(([^{}()]*)\))?\s*\}\}")
_MAX_DEPTH = 20


@dataclass(frozen=True)
class Macro:
    """A named SQL expression or fragment, with the names of its parameters."""

    sql: str
    params: tuple[str, ...] = ()  # each argument names a list or macro
    columns: tuple[str, ...] = ()  # each argument is a column, kept as written


@dataclass(frozen=True)
class Shared:
    """The lists and macros rules may reference, and the files they came from."""

    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    macros: dict[str, Macro] = field(default_factory=dict)
    sources: tuple[Path, ...] = ()

    def merged(self, other: Shared) -> Shared:
        """Return these definitions with other's added; other's win on a shared name."""
        lists = {k: v for k, v in self.lists.items() if k not in other.macros}
        macros = {k: v for k, v in self.macros.items() if k not in other.lists}
        return Shared(
            {**lists, **other.lists}, {**macros, **other.macros}, self.sources + other.sources
        )


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _macro(path: Path, name: str, value: Any) -> Macro:
    if isinstance(value, str) and value.strip():
        return Macro(value.strip())
    if isinstance(value, dict) and set(value) <= {"params", "columns", "sql"} and "sql" in value:
        params, columns = value.get("params") or [], value.get("columns") or []
        if (
            isinstance(value["sql"], str)
            and value["sql"].strip()
            and isinstance(params, list)
            and isinstance(columns, list)
            and all(isinstance(p, str) and _NAME.match(p) for p in params + columns)
            and len(set(params + columns)) == len(params + columns)
        ):
            return Macro(value["sql"].strip(), tuple(params), tuple(columns))
    raise RuleError(
        f"{path}: macro {name!r} must be SQL text or "
        "{params: [names], columns: [names], sql: SQL text}"
    )


def load_shared(path: Path) -> Shared:
    """Return the lists and macros of a `_macros.yaml`, or raise RuleError saying what is wrong."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: not readable YAML: {exc}") from exc
    if not isinstance(doc, dict) or not set(doc) <= {"lists", "macros"}:
        raise RuleError(f"{path}: expected a mapping with `lists` and/or `macros`")
    lists_doc, macros_doc = doc.get("lists") or {}, doc.get("macros") or {}
    if not isinstance(lists_doc, dict) or not isinstance(macros_doc, dict):
        raise RuleError(f"{path}: `lists` and `macros` map names to definitions")
    for name in [*lists_doc, *macros_doc]:
        if not isinstance(name, str) or not _NAME.match(name):
            raise RuleError(f"{path}: {name!r} is not a name (lowercase, digits and _)")
    both = set(lists_doc) & set(macros_doc)
    if both:
        raise RuleError(f"{path}: both a list and a macro: {', '.join(sorted(both))}")
    lists = {}
    for name, values in lists_doc.items():
        # An empty list would make `IN ()`, a syntax error far from its cause.
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            raise RuleError(f"{path}: list {name!r} must be a non-empty list of strings")
        lists[name] = tuple(values)
    macros = {name: _macro(path, name, value) for name, value in macros_doc.items()}
    return Shared(lists, macros, (path,))


@cache
def builtin_shared() -> Shared:
    """Return the lists and macros that ship with kforensics (rules/_macros.yaml)."""
    folder = Path(str(resources.files("kforensics.detection").joinpath("rules")))
    return load_shared(folder / SHARED_FILE)


def expand(sql: str, shared: Shared, rule_path: Path) -> str:
    """Return sql with every `{{ reference }}` replaced, or raise RuleError naming the rule file."""
    out = _expand(sql, shared, rule_path, {}, ())
    if "{{" in out or "}}" in out:
        raise RuleError(
            f"{rule_path}: a reference is not of the form {{{{ name }}}} or {{{{ name(args) }}}}"
        )
    return out


def _expand(
    text: str, shared: Shared, where: Path, bindings: dict[str, str], stack: tuple[str, ...]
) -> str:
    if len(stack) > _MAX_DEPTH:
        raise RuleError(f"{where}: macros nest too deep: {' -> '.join(stack)}")

    def resolve(m: re.Match) -> str:
        name, args = m.group(1), m.group(2)
        if name in bindings:
            if args is not None:
                raise RuleError(f"{where}: {{{{ {name} }}}} is a parameter, not a macro to call")
            return bindings[name]
        if name in shared.lists:
            if args is not None:
                raise RuleError(f"{where}: {{{{ {name} }}}} is a list, not a macro to call")
            return ", ".join(_sql_literal(v) for v in shared.lists[name])
        if name not in shared.macros:
            raise RuleError(f"{where}: unknown list or macro {name!r}")
        if name in stack:
            raise RuleError(f"{where}: macro {name!r} refers to itself: {' -> '.join(stack)}")
        macro = shared.macros[name]
        given = [a.strip() for a in args.split(",")] if args and args.strip() else []
        wanted = macro.params + macro.columns
        if len(given) != len(wanted):
            raise RuleError(
                f"{where}: macro {name!r} takes {len(wanted)} argument(s) "
                f"({', '.join(wanted) or 'none'}), given {len(given)}"
            )
        values = {}
        for param, arg in zip(wanted, given, strict=True):
            if param in macro.columns:
                if not _COLUMN.match(arg):
                    raise RuleError(f"{where}: macro {name!r}: {arg!r} is not a column name")
                values[param] = arg
            elif arg in bindings or arg in shared.lists or arg in shared.macros:
                values[param] = _expand("{{ " + arg + " }}", shared, where, bindings, stack)
            else:
                raise RuleError(f"{where}: macro {name!r}: unknown list or macro {arg!r}")
        return _expand(macro.sql, shared, where, values, (*stack, name))

    return _REF.sub(resolve, text)
