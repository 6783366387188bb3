"""Named investigations: the queries of `kforensics.investigate.queries`, listed and run by name."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from kforensics.errors import QueryError
from kforensics.investigate import queries as inv


@dataclass(frozen=True)
class Param:
    """One parameter of a named investigation; `required` when it has no default."""

    name: str
    required: bool


@dataclass(frozen=True)
class Query:
    """A named investigation: its name, one-line description and parameters."""

    name: str
    description: str
    params: tuple[Param, ...]


def _describe(name: str) -> Query:
    fn = getattr(inv, name)
    params = tuple(
        Param(p.name, p.default is inspect.Parameter.empty)
        for p in list(inspect.signature(fn).parameters.values())[1:]
    )
    return Query(name, " ".join((fn.__doc__ or "").split("\n\n")[0].split()), params)


def queries() -> list[Query]:
    """Return every named investigation, by name."""
    return [_describe(n) for n in sorted(inv.__all__) if n not in ("as_time", "html_table")]


def get(name: str) -> Query:
    """Return the named investigation (QueryError naming the known ones if there is none)."""
    known = {q.name: q for q in queries()}
    if name not in known:
        raise QueryError(f"no investigation {name!r}; known: {', '.join(known)}")
    return known[name]


def run_query(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> pa.Table:
    """Return the rows of the named investigation run with params (all bound)."""
    query = get(name)
    names = {p.name for p in query.params}
    unknown = sorted(set(params) - names)
    if unknown:
        raise QueryError(f"{name} takes no parameter {unknown[0]!r}; it takes: {', '.join(names)}")
    missing = [p.name for p in query.params if p.required and p.name not in params]
    if missing:
        raise QueryError(f"{name} needs the parameter {missing[0]!r}")
    return getattr(inv, name)(con, **params)
