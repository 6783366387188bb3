"""Whether SQL text is exactly one SELECT statement: rules, investigations and Case.sql ask."""

from __future__ import annotations

from functools import cache

import duckdb

NOT_ONE_SELECT = "must be one SELECT statement"


@cache
def _parser() -> duckdb.DuckDBPyConnection:
    # Only parses (extract_statements runs nothing): one in-memory connection serves every check.
    return duckdb.connect()


def select_problem(sql: str) -> str | None:
    """Return why sql is not one SELECT (or WITH ... SELECT) statement, None when it is one."""
    try:
        statements = _parser().extract_statements(sql)
    except duckdb.Error as exc:
        return f"does not parse: {str(exc).splitlines()[0]}"
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        return NOT_ONE_SELECT
    return None
