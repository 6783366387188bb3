"""Named investigations: one SELECT per file of investigations/, run by name, values bound.

A file `investigations/NAME.sql` is the investigation NAME. Its leading comments say what it is:

    -- description: one line, what the rows are
    -- (more comment lines: notes for whoever reads the file)
    -- param NAME TYPE[?][ = DEFAULT]: what the parameter is
    -- redact: COLUMN, ...    (text columns passed through `redact` before anyone sees them)

TYPE is `text`, `int`, `time` (ISO 8601, UTC if no zone) or `level` (a finding level, checked
against kforensics.levels); `?` makes it optional (absent or
empty: NULL), a default makes it optional too. The SQL may use the constant fragments of
`kforensics.investigate.sql` (`@W(col)`, the time window on col; `@MINE`, ...) and the values
`$quality_flags` and `$quality_meanings` (mapping.QUALITY_FLAGS). Every file is checked when
first listed: one SELECT, every `$name` declared or built in, every declared parameter used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa

from kforensics.errors import QueryError
from kforensics.ingest.mapping import QUALITY_FLAGS
from kforensics.investigate.sql import FRAGMENTS, as_time, redact_columns, window
from kforensics.levels import LEVELS
from kforensics.sqlcheck import select_problem
from kforensics.untrusted import visible

TYPES = ("text", "int", "time", "level")
BUILT_IN = {
    "quality_flags": list(QUALITY_FLAGS),
    "quality_meanings": list(QUALITY_FLAGS.values()),
}
_PARAM = re.compile(r"(\w+)\s+(\w+)(\?)?(?:\s*=\s*(\S+))?\s*:\s*(.+)")
_PLACEHOLDER = re.compile(r"\$([A-Za-z_]\w*)")
_FRAGMENT = re.compile(r"@W\((\w+)\)|@([A-Z][A-Z_]*)\b")


@dataclass(frozen=True)
class Param:
    """One parameter of an investigation: its type, whether it is required, its default."""

    name: str
    type: str
    required: bool
    default: Any
    description: str

    def value(self, query: str, given: Any) -> Any:
        """Return given as this parameter's bound value (QueryError if it is not one)."""
        if given is None or (given == "" and not self.required):
            if self.required:
                raise QueryError(f"{query} needs the parameter {self.name!r}: {self.description}")
            return self.default
        try:
            if self.type == "int":
                if isinstance(given, bool) or not isinstance(given, int | str):
                    raise ValueError
                return int(given)
            if self.type == "time":
                return as_time(given)
        except (AttributeError, TypeError, ValueError) as exc:  # a date has no tzinfo
            what = "an integer" if self.type == "int" else "an ISO 8601 time"
            raise QueryError(
                f"{query}: {self.name} must be {what}, not {visible(repr(given))}"
            ) from exc
        if not isinstance(given, str):
            raise QueryError(f"{query}: {self.name} must be text, not {visible(repr(given))}")
        if self.type == "level" and given not in LEVELS:
            raise QueryError(
                f"{query}: {self.name} {visible(repr(given))} is not a level: {', '.join(LEVELS)}"
            )
        return given


@dataclass(frozen=True)
class Query:
    """A named investigation: name, one-line description, parameters, and its expanded SQL."""

    name: str
    description: str
    params: tuple[Param, ...]
    sql: str
    redact: tuple[str, ...] = ()

    def bind(self, given: dict[str, Any]) -> dict[str, Any]:
        """Return the bound values for the given parameters (QueryError if one is unknown)."""
        names = [p.name for p in self.params]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise QueryError(
                f"{self.name} takes no parameter {visible(repr(unknown[0]))}; "
                f"it takes: {', '.join(names) or 'none'}"
            )
        values = {p.name: p.value(self.name, given.get(p.name)) for p in self.params}
        used = set(_PLACEHOLDER.findall(self.sql))
        return values | {k: v for k, v in BUILT_IN.items() if k in used}


def expand(sql: str) -> str:
    """Return sql with its `@W(col)` and `@NAME` fragments (investigate.sql) written out."""

    def one(m: re.Match) -> str:
        if m.group(1):
            return window(m.group(1))
        if m.group(2) not in FRAGMENTS:
            raise ValueError(f"unknown fragment @{m.group(2)}")
        return FRAGMENTS[m.group(2)]

    for _ in range(3):  # fragments may hold fragments (@EXEC holds @W and @IDENTITY)
        sql = _FRAGMENT.sub(one, sql)
    return sql


def _param(text: str) -> Param:
    m = _PARAM.fullmatch(text.strip())
    if not m or m.group(2) not in TYPES:
        raise ValueError(f"not `NAME TYPE[?][ = DEFAULT]: what` (TYPE: {', '.join(TYPES)})")
    name, kind, optional, default, description = m.groups()
    if default is not None and kind == "int":
        default = int(default)
    return Param(name, kind, not optional and default is None, default, description.strip())


def parse(name: str, text: str) -> Query:
    """Return the investigation in the text of investigations/NAME.sql (see the module)."""
    lines = text.splitlines()
    header = [line[2:].strip() for line in _header(lines)]
    fields: dict[str, list[str]] = {"description": [], "param": [], "redact": []}
    for line in header:
        key, _, rest = line.partition(":")
        word = key.split(" ", 1)[0]
        if word == "param":
            fields["param"].append(line[len("param") :])
        elif key in ("description", "redact"):
            fields[key].append(rest.strip())
    if len(fields["description"]) != 1 or not fields["description"][0]:
        raise ValueError("needs one `-- description:` line")
    params = tuple(_param(p) for p in fields["param"])
    redact = tuple(c.strip() for r in fields["redact"] for c in r.split(",") if c.strip())
    body = "\n".join(lines[len(header) :]).strip().rstrip(";")
    sql = expand(body)
    problem = select_problem(sql)
    if problem:
        raise ValueError(f"the SQL {problem}")
    code = re.sub(r"--[^\n]*", "", sql)  # a `$name` in a comment binds nothing
    used, declared = set(_PLACEHOLDER.findall(code)), {p.name for p in params}
    if used - declared - set(BUILT_IN):
        raise ValueError(f"${sorted(used - declared - set(BUILT_IN))[0]} is not a declared param")
    if declared - used:
        raise ValueError(f"param {sorted(declared - used)[0]} is declared but not used")
    return Query(name, fields["description"][0], params, sql, redact)


def _header(lines: list[str]) -> list[str]:
    header = []
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line)
    return header


@cache
def _queries() -> dict[str, Query]:
    found = {}
    folder = resources.files("kforensics.investigate").joinpath("investigations")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            name = entry.name.removesuffix(".sql")
            try:
                found[name] = parse(name, entry.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise QueryError(f"investigations/{entry.name}: {exc}") from exc
    return found


def queries() -> list[Query]:
    """Return every named investigation, by name."""
    return list(_queries().values())


def get(name: str) -> Query:
    """Return the named investigation (QueryError naming the known ones if there is none)."""
    known = _queries()
    if name not in known:
        raise QueryError(
            f"no investigation {visible(repr(name))}; `kforensics queries` lists them: "
            + ", ".join(known)
        )
    return known[name]


def run_query(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any]) -> pa.Table:
    """Return the rows of the named investigation with params bound (never formatted in)."""
    query = get(name)
    values = query.bind(params)
    try:
        table = con.sql(query.sql, params=values).to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(f"{name}: {visible(str(exc).splitlines()[0])}") from exc
    return redact_columns(table, list(query.redact)) if query.redact else table
