"""`kforensics report`: a notebook run as a report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kforensics.cli.options import (
    case_option,
    parameter_option,
    sensitive_declaration,
    sensitive_option,
)
from kforensics.levels import LEVELS
from kforensics.untrusted import visible


@click.command("report")
@click.argument("notebook", required=False)
@case_option("DuckDB case file the notebook investigates (opened read-only).", required=False)
@parameter_option(
    "Set a notebook parameter (typed by its default; the notebook runs in --out, so "
    "relative paths are relative to it)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the executed notebook and the HTML report.",
)
@click.option(
    "--fail-on",
    type=click.Choice(LEVELS),
    help="Exit 1 when findings at or above this level exist (alerting from cron).",
)
@sensitive_option()
@click.option("--list", "list_", is_flag=True, help="List the notebooks and their parameters.")
def report_cmd(
    notebook: str | None,
    case: Path | None,
    parameters: tuple[tuple[str, str], ...],
    out: Path | None,
    fail_on: str | None,
    sensitive: Path | None,
    list_: bool,
) -> None:
    """Run an investigation NOTEBOOK with papermill; write it executed and as offline HTML."""
    from kforensics.reporting.run import ReportError, list_notebooks, run_report

    if list_:
        for info in list_notebooks():
            click.echo(info.name)
            for p in info.parameters:
                click.echo(f"    {p.name}: {p.type} = {p.default}")
        return
    if not notebook or case is None or out is None:
        raise click.UsageError("kforensics report needs NOTEBOOK, --case and --out (or --list)")
    params = dict(parameters)
    if sensitive is not None:
        sensitive_declaration(sensitive, case)  # a bad file is named before a kernel starts
        params["sensitive"] = str(sensitive.resolve())
    try:
        result = run_report(notebook, case, params, out, fail_on=fail_on)
    except ReportError as exc:
        raise click.ClickException(visible(str(exc))) from exc  # a cell's error may quote the log
    click.echo(result.ipynb)
    click.echo(result.html)
    if result.failed:
        click.echo(f"{result.findings_at_or_above} finding(s) at or above {fail_on}", err=True)
        sys.exit(1)
