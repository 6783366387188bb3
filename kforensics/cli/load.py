"""`kforensics load`: audit logs into a case."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from kforensics.case import CaseError
from kforensics.cli.options import case_option
from kforensics.errors import InputError
from kforensics.ingest.load import load
from kforensics.output import print_summary


@click.command("load")
@click.argument("paths", nargs=-1)
@case_option("DuckDB case file to create or add to.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: on a terminal, for big inputs).",
)
@click.option(
    "--inventory",
    "inventory",
    multiple=True,
    metavar="FILE",
    help="kubectl get -o json|yaml dump of cluster objects to keep beside the log.",
)
@click.option(
    "--cluster",
    metavar="NAME",
    help="The cluster these logs are of: kept with the load, and the partition of an export.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Rebuild an existing CASE from these inputs alone (notebooks reading it switch over).",
)
def load_cmd(
    paths: tuple[str, ...],
    case: Path,
    as_json: bool,
    progress: bool | None,
    inventory: tuple[str, ...],
    replace: bool,
    cluster: str | None,
) -> None:
    """Load audit logs (files, folders, globs; gzip and every known shape) into CASE.

    Exits 0 when events were read, even with rejects; 1 when nothing could be read.
    """
    if not paths and not inventory:
        raise click.UsageError("give audit log PATHS, or --inventory dumps, or both")
    try:
        result = load(
            case,
            list(paths),
            progress=progress,
            arguments=sys.argv[1:],
            inventory=list(inventory),
            replace=replace,
            cluster=cluster,
        )
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(result)
    if result.replaced:
        # said, so that nobody's open notebook changes under them unannounced
        click.echo(
            f"replaced the earlier case {result.case}; notebooks reading it see this one from "
            "their next query",
            err=True,
        )
        if result.notes_kept:
            click.echo(f"kept {result.notes_kept} notes of the earlier case", err=True)
        for lost in result.notes_lost:
            click.echo(f"note {lost} (not kept)", err=True)
    if not result.anything_read:
        if replace and Path(case).exists():
            click.echo(f"the earlier case {case} is kept as it was", err=True)
        click.echo("error: no audit event could be read from the input", err=True)
        sys.exit(1)


@click.command("sample")
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
    from kforensics.sample import generate as samplegen

    if background is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "audit.log"
        size = samplegen.write_native_lines(path, background, seed=seed)
        click.echo(f"{path}: {background:,} events, {size:,} bytes")
        return
    for path in samplegen.write_samples(out, seed=seed):
        click.echo(path)
