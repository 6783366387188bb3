"""A rule's DuckDB SQL as Spark SQL: sqlglot's dialects, plus the few macros the rules use.

Rules stay written once, in DuckDB SQL over `ev`. sqlglot translates the SQL; what it cannot
know is filled in here: the helper macros of `detection.ev.MACROS` (`has`, `has_any`,
`has_all`, `jstr`, `jget`), `len` of a list (sqlglot reads it as a string's length), and the
list aggregates. A rule that uses what Spark SQL has no equivalent for, or reads a table the
Spark engine does not build, raises Untranslatable with the reason: it stays DuckDB-only.
"""

from __future__ import annotations

from functools import cache

import sqlglot
from sqlglot import exp

from kforensics.errors import KforensicsError

# DuckDB functions with no Spark SQL equivalent of the same meaning.
DUCKDB_ONLY = {
    "json_each": "a table function over a JSON value's members",
    "json_tree": "a table function over a JSON value's members",
    "json_exists": "true for a member whose value is null, unlike get_json_object",
    "json_merge_patch": "no JSON merge in Spark SQL",
    "json_group_object": "no JSON aggregate in Spark SQL",
    "map_entries": "a map's entries as structs",
    "to_json": "DuckDB's JSON text of any value",
}
# The tables the Spark engine builds: ev, and the rule's own CTEs.
SPARK_TABLES = {"ev"}


class Untranslatable(KforensicsError):
    """A rule the Spark engine cannot run: the message says why (it stays DuckDB-only)."""


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _false_if_null(e: exp.Expression) -> exp.Expression:
    return exp.Coalesce(this=e, expressions=[exp.false()])


@cache
def list_columns() -> frozenset[str]:
    """Return the names of ev's list columns (where `len` means a list's size)."""
    import pyarrow as pa

    from kforensics.spark.ev import ev_schema

    return frozenset(f.name for f in ev_schema() if pa.types.is_list(f.type))


def _lambda(body: exp.Expression) -> exp.Lambda:
    """Return `kf_x -> body` (a name no rule uses, so no column of ev is shadowed)."""
    return exp.Lambda(this=body, expressions=[exp.to_identifier("kf_x")])


def _wildcard(node: exp.Expression) -> bool:
    """Return whether node reads a JSON path with a wildcard: a list in DuckDB, text in Spark."""
    if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
        path = node.expression
    elif isinstance(node, exp.Anonymous) and node.name.lower() in ("jstr", "jget"):
        path = node.expressions[1] if len(node.expressions) > 1 else None
    else:
        return False
    return "[*]" in (path.sql() if path is not None else "")


def _rewrite(node: exp.Expression, lists: frozenset[str]) -> exp.Expression:
    """Return node with the macros and DuckDB list functions in Spark's terms."""
    if isinstance(node, exp.Anonymous):
        name, args = node.name.lower(), node.expressions
        if name in DUCKDB_ONLY:
            raise Untranslatable(f"uses {name}: {DUCKDB_ONLY[name]}")
        if name == "has" and len(args) == 2:
            return _false_if_null(exp.ArrayContains(this=args[0], expression=args[1]))
        if name == "has_any" and len(args) == 2:
            return _false_if_null(_fn("arrays_overlap", *args))  # sqlglot writes &&, not Spark
        if name == "has_all" and len(args) == 2:
            missing = _fn("array_except", args[1], args[0])
            return _false_if_null(
                exp.EQ(this=_fn("size", missing), expression=exp.Literal.number(0))
            )
        if name in ("jstr", "jget") and len(args) == 2:
            return _fn("get_json_object", *args)
        if name in ("list_bool_and", "list_bool_or") and len(args) == 1:
            # DuckDB: NULL for an empty list, NULL items ignored
            known = _lambda(exp.Not(this=exp.Is(this=exp.column("kf_x"), expression=exp.null())))
            items = _fn("filter", args[0], known)
            test = "forall" if name == "list_bool_and" else "exists"
            value = _fn(test, items.copy(), _lambda(exp.column("kf_x")))
            empty = exp.EQ(this=_fn("size", items), expression=exp.Literal.number(0))
            return exp.If(this=empty, true=exp.null(), false=value)
    if (
        isinstance(node, exp.Window)
        and isinstance(node.this, exp.Count)
        and isinstance(node.this.this, exp.Distinct)
        and len(node.this.this.expressions) == 1
    ):
        # Spark has no distinct window aggregates: the size of the window's set (both skip NULL)
        window = node.copy()
        window.set("this", _fn("collect_set", node.this.this.expressions[0].copy()))
        return _fn("size", window)
    if isinstance(node, exp.Length):
        arg = node.this
        if isinstance(arg, exp.Column) and arg.name in lists:
            return _fn("size", arg)
    return node


def to_spark(sql: str) -> str:
    """Return the Spark SQL of a rule's (expanded) DuckDB SQL, or raise Untranslatable."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise Untranslatable(f"sqlglot cannot read it: {str(exc).splitlines()[0]}") from None
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if table.name and table.name not in SPARK_TABLES | ctes:
            raise Untranslatable(f"reads {table.name}, which the Spark engine does not build")
    if any(_wildcard(n) for n in tree.walk()):
        raise Untranslatable(
            "reads a JSON path with [*]: a list in DuckDB, text in Spark's get_json_object"
        )
    if tree.find(exp.JSONType):
        raise Untranslatable("uses json_type: a JSON value's type, which Spark SQL lacks")
    lists = list_columns()
    tree = tree.transform(lambda n: _rewrite(n, lists))
    try:
        return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as exc:
        raise Untranslatable(f"sqlglot: {str(exc).splitlines()[0]}") from None
