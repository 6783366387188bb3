"""The `kforensics` command: a thin shell over the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import duckdb
import orjson
from rich.console import Console
from rich.table import Table

from kforensics.case import CaseError, connect
from kforensics.load import LoadResult, load
from kforensics.reader import InputError


def case_option(help: str):
    """Return the --case option every command takes."""
    return click.option(
        "--case", "case", required=True, type=click.Path(dir_okay=False, path_type=Path), help=help
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kforensics")
def main() -> None:
    """Investigate Kubernetes security incidents from API-server audit logs."""


@main.command("load")
@click.argument("paths", nargs=-1, required=True)
@case_option("DuckDB case file to create or add to.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: on a terminal, for big inputs).",
)
def load_cmd(paths: tuple[str, ...], case: Path, as_json: bool, progress: bool | None) -> None:
    """Load audit logs (files, folders, globs; gzip and every known shape) into CASE.

    Exits 0 when events were read, even with rejects; 1 when nothing could be read.
    """
    try:
        result = load(case, list(paths), progress=progress, arguments=sys.argv[1:])
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(result)
    if not result.anything_read:
        click.echo("error: no audit event could be read from the input", err=True)
        sys.exit(1)


def print_summary(result: LoadResult, console: Console | None = None) -> None:
    """Print the load summary: one row per file, totals, and the reasons for rejects."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    paths = [s.path for s in result.sources]
    base = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    title = f"load {result.load_id} into {result.case}" + (f", files under {base}/" if base else "")
    table = Table(title=title, title_justify="left")
    for col in ("file", "format", "lines", "records", "loaded", "duplicates", "rejected"):
        left = col in ("file", "format")
        table.add_column(col, justify="left" if left else "right", overflow="fold")
    for s in result.sources:
        name = os.path.relpath(s.path, base) if base else s.path
        table.add_row(
            name, s.format, f"{s.lines_read:,}", f"{s.records:,}", f"{s.events_loaded:,}",
            f"{s.duplicates:,}", f"{s.rejected:,}",
        )  # fmt: skip
    table.add_row(
        "total", "", f"{sum(s.lines_read for s in result.sources):,}",
        f"{sum(s.records for s in result.sources):,}", f"{result.events_loaded:,}",
        f"{result.duplicates:,}", f"{result.rejected:,}", style="bold",
    )  # fmt: skip
    console.print(table, markup=False)
    if result.reject_reasons:
        console.print("rejected (see the rejects table for file and line):", markup=False)
        for reason, n in result.reject_reasons[:10]:
            console.print(f"  {n:>8,}  {reason}", markup=False, highlight=False)
        if len(result.reject_reasons) > 10:
            console.print(f"  ... {len(result.reject_reasons) - 10} more reasons", markup=False)
    if result.collisions:
        console.print(
            f"warning: {result.collisions} audit ID(s) shared by different events "
            "(clients can set Audit-ID; see the audit_id_collisions view)",
            markup=False,
        )


@main.command("sql")
@click.argument("query")
@case_option("DuckDB case file (opened read-only).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--max-rows", default=50, show_default=True, help="Rows to show as a table.")
def sql_cmd(query: str, case: Path, fmt: str, max_rows: int) -> None:
    """Run a read-only SQL QUERY against CASE (tables events, sources, rejects, loads;
    views requests, audit_id_collisions)."""
    try:
        con = connect(case)
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        rel = con.sql(query)
        if rel is None:
            return
        if fmt == "table":
            rel.show(max_rows=max_rows, max_width=1_000_000)
        else:
            columns = rel.columns
            rows = rel.fetchall()
            if fmt == "jsonl":
                for row in rows:
                    click.echo(orjson.dumps(dict(zip(columns, row, strict=True)), default=str))
            else:
                import csv

                writer = csv.writer(sys.stdout)
                writer.writerow(columns)
                writer.writerows(rows)
    except duckdb.Error as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc
    finally:
        con.close()


@main.command("sample")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same bytes).")
@click.option(
    "--background",
    type=int,
    default=None,
    metavar="N",
    help="Instead of the story, write N benign background events to OUT/audit.log.",
)
def sample_cmd(out: Path, seed: int, background: int | None) -> None:
    """Write the synthetic sample story (native, EKS, GKE and AKS shapes) to OUT."""
    from kforensics import samplegen

    if background is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "audit.log"
        size = samplegen.write_native_lines(path, background, seed=seed)
        click.echo(f"{path}: {background:,} events, {size:,} bytes")
        return
    for path in samplegen.write_samples(out, seed=seed):
        click.echo(path)
