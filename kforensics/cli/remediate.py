"""`kforensics remediate` (and its old name `netpol`, with `netpol connlist`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kforensics.case import CaseError
from kforensics.cli.options import (
    case_option,
    sensitive_declaration,
    sensitive_option,
    when,
)
from kforensics.detection.rule import RuleError
from kforensics.detection.run import RuleSQLError
from kforensics.investigate.redact import redact_text
from kforensics.untrusted import visible


def _remediation_options(f):
    """Add the options `remediate` and `netpol` share."""
    f = sensitive_option()(f)
    f = click.option(
        "--no-record",
        is_flag=True,
        help="Do not record the plan in the case (the watch rules then do not know it).",
    )(f)
    f = click.option("--forensics-namespace", help="Namespace allowed into quarantined pods.")(f)
    f = click.option(
        "--at", help="Rebuild the cluster as of this time (ISO 8601; default: the end)."
    )(f)
    f = click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder for the YAML, apply.sh and REPORT.md.",
    )(f)
    return case_option("DuckDB case file whose findings to contain.", required=False)(f)


def _remediate(
    case: Path | None,
    out: Path | None,
    at: str | None,
    forensics_namespace: str | None,
    no_record: bool,
    command: str,
    sensitive: Path | None = None,
) -> None:
    """Write and record the containment plan; exit 1 when an object is invalid."""
    if case is None or out is None:
        raise click.UsageError(f"kforensics {command} needs --case and --out")
    from kforensics.contain.remediate import remediate_case

    declaration = sensitive_declaration(sensitive, case) if sensitive else None

    try:
        result = remediate_case(
            case, out, at=when(at), forensics_namespace=forensics_namespace, record=not no_record
        )
    except (CaseError, RuleError, RuleSQLError, ValueError) as exc:
        raise click.ClickException(visible(str(exc))) from exc
    # Names and messages quote the log: escaped, they cannot drive the terminal.
    for step, actions in result.plan.by_step():
        click.echo(f"{step}:")
        for a in actions:
            n = f" ({len(a.objects)} object(s))" if a.objects else ""
            click.echo(f"  {a.kind:24} {visible(redact_text(a.name))}{n}")
    for p in result.plan.simulation.problems:
        click.echo(f"warning: {visible(p)}", err=True)
    for e in result.errors:
        click.echo(f"invalid (kept in {out / 'invalid'}, not applied): {visible(e)}", err=True)
    if result.record_error:
        click.echo(
            f"not recorded, so not watched: {visible(result.record_error)}; run "
            "`kforensics remediate` again when nothing else has the case open",
            err=True,
        )
    elif result.remediation_id:
        click.echo(f"recorded as remediation {result.remediation_id} (watched by detect)")
    for p in result.paths:
        click.echo(p)
    for p in _fences(case, out, declaration):
        click.echo(p)
    # a plan the watch does not know is a silent gap: the exit code says so
    if result.errors or result.record_error:
        sys.exit(1)


def _fences(case: Path, out: Path, declaration: object) -> list[Path]:
    """Write the fences around the sensitive workloads (given, stored, or beside the case)."""
    from kforensics.case import connect
    from kforensics.contain.fences import write_fences
    from kforensics.errors import KforensicsError
    from kforensics.sensitive.view import sensitive_view

    try:
        con = connect(case)
        try:
            view = sensitive_view(con, case, declaration)
        finally:
            con.close()
    except KforensicsError as exc:
        raise click.ClickException(visible(str(exc))) from exc
    if view.declaration is None:
        return []
    for fence in view.fences:
        for p in fence.problems:
            click.echo(f"fence {visible(fence.workload)}: {visible(redact_text(p))}", err=True)
    return write_fences(view, out)


@click.command("remediate")
@_remediation_options
def remediate_cmd(
    case: Path | None,
    out: Path | None,
    at: str | None,
    forensics_namespace: str | None,
    no_record: bool,
    sensitive: Path | None,
) -> None:
    """Write the containment of CASE's findings (network, access, eviction, rotation) as
    validated YAML, apply.sh and REPORT.md, and record it in the case for the watch rules;
    with sensitive workloads declared, the fences around them in OUT/fences/."""
    _remediate(case, out, at, forensics_namespace, no_record, "remediate", sensitive)


@click.group("netpol", invoke_without_command=True)
@_remediation_options
@click.pass_context
def netpol_cmd(
    ctx: click.Context,
    case: Path | None,
    out: Path | None,
    at: str | None,
    forensics_namespace: str | None,
    no_record: bool,
    sensitive: Path | None,
) -> None:
    """The containment plan, as `kforensics remediate` (its old name); or a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    _remediate(case, out, at, forensics_namespace, no_record, "netpol", sensitive)


@netpol_cmd.command("connlist")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def connlist_cmd(paths: tuple[Path, ...]) -> None:
    """Print the allowed connections of Kubernetes objects (files or folders), in np-guard
    netpol-analyzer's connlist format."""
    from kforensics.errors import ManifestError
    from kforensics.netpol.evaluate import connlist
    from kforensics.netpol.model import read_objects

    try:
        click.echo(connlist(read_objects(list(paths))), nl=False)
    except (ManifestError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
