"""`kforensics sql` and `kforensics queries`: rows from a case."""

from __future__ import annotations

from pathlib import Path

import click
import duckdb

from kforensics.case import CaseError, connect
from kforensics.cli.options import (
    case_option,
    format_option,
    output_format,
    output_option,
    parameter_option,
)
from kforensics.errors import KforensicsError, QueryError
from kforensics.output import print_rows
from kforensics.untrusted import visible

EMPTY_QUERY = "the query is empty: give one SQL statement"


@click.command("sql")
@click.argument("query")
@case_option("DuckDB case file (opened read-only).")
@format_option()
@output_option()
@click.option("--max-rows", default=50, show_default=True, help="Rows to show as a table.")
def sql_cmd(query: str, case: Path, fmt: str | None, output: Path | None, max_rows: int) -> None:
    """Run one read-only SQL statement QUERY against CASE (tables events, sources, rejects,
    loads, findings; views requests, audit_id_collisions)."""
    fmt = output_format(fmt, output)
    try:
        con = connect(case)
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        # One statement: a second one's rows would be lost (DuckDB returns the last's only).
        statements = con.extract_statements(query)
        if not statements:
            raise click.UsageError(EMPTY_QUERY)
        if len(statements) > 1:
            raise click.UsageError(
                f"the query has {len(statements)} statements; kforensics sql runs one "
                "statement at a time"
            )
        rel = con.sql(query)
        if rel is not None:
            print_rows(rel, fmt, max_rows, output)
        elif output is not None:
            raise click.ClickException(f"the statement returns no rows to write to {output}")
    except duckdb.Error as exc:
        raise click.ClickException(visible(str(exc).splitlines()[0])) from exc
    except KforensicsError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        con.close()


@click.command("queries")
@click.argument("name", required=False)
@case_option("DuckDB case file to run NAME on (opened read-only).", required=False)
@parameter_option("Set a parameter of the investigation (values are bound, never spliced).")
@format_option()
@output_option()
@click.option("--max-rows", default=50, show_default=True, help="Rows to show as a table.")
def queries_cmd(
    name: str | None,
    case: Path | None,
    parameters: tuple,
    fmt: str | None,
    output: Path | None,
    max_rows: int,
) -> None:
    """List the named investigations (with NAME: its parameters), or run NAME on CASE.

    Example: kforensics queries identity_timeline --case c.duckdb -p identity alice
    """
    from kforensics.investigate import canned

    try:
        if case is None:
            for query in [canned.get(name)] if name else canned.queries():
                click.echo(f"{query.name}: {query.description}")
                for p in query.params:
                    default = "required" if p.required else f"default {p.default}"
                    default = "optional" if p.default is None and not p.required else default
                    click.echo(f"    {p.name} ({p.type}, {default}): {p.description}")
            return
        fmt = output_format(fmt, output)
        con = connect(case)
        try:
            table = canned.run_query(con, name or "", dict(parameters))
            print_rows(duckdb.from_arrow(table), fmt, max_rows, output)
        finally:
            con.close()
    except (CaseError, QueryError, KforensicsError) as exc:
        raise click.ClickException(str(exc)) from exc
