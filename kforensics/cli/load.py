"""`kforensics load`: audit logs into a case."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from kforensics.case import CaseError
from kforensics.cli.options import case_option, engine_options
from kforensics.errors import DatasetError, InputError, SparkError
from kforensics.ingest.load import LoadResult, load
from kforensics.output import print_summary
from kforensics.untrusted import visible


@click.command("load")
@click.argument("paths", nargs=-1)
@case_option("DuckDB case file to create or add to.", required=False)
@engine_options(
    "duckdb: into CASE. spark: each file loaded in a Spark task, into a new Parquet dataset "
    "--parquet DIR (as `kforensics export` writes it).",
    "The dataset the Spark engine writes (new or empty, or an earlier one with --replace).",
    exists=False,
)
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
    help="Rebuild an existing CASE (or dataset) from these inputs alone (notebooks reading it "
    "switch over).",
)
def load_cmd(
    paths: tuple[str, ...],
    case: Path | None,
    engine: str,
    dataset: Path | None,
    master: str | None,
    as_json: bool,
    progress: bool | None,
    inventory: tuple[str, ...],
    replace: bool,
    cluster: str | None,
) -> None:
    """Load audit logs (files, folders, globs; gzip and every known shape) into CASE.

    Exits 0 when events were read, even with rejects; 1 when nothing could be read.
    With --engine spark every executor must see PATHS and DIR at the same paths.
    """
    if not paths and not inventory:
        raise click.UsageError("give audit log PATHS, or --inventory dumps, or both")
    if engine == "spark":
        if dataset is None or case is not None:
            raise click.UsageError("--engine spark takes --parquet DIR, not --case")
        _load_on_spark(dataset, master, paths, inventory, replace, cluster, progress, as_json)
        return
    if case is None:
        raise click.UsageError("Missing option '--case'.")
    if dataset is not None or master is not None:
        raise click.UsageError("--parquet and --master are for --engine spark")
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
    _show(result, as_json)
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


def _show(result: LoadResult, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(result)


def _load_on_spark(
    dataset: Path,
    master: str | None,
    paths: tuple[str, ...],
    inventory: tuple[str, ...],
    replace: bool,
    cluster: str | None,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Load on Spark into the dataset; print the summary as a DuckDB load does."""
    from kforensics.spark.load import load_spark
    from kforensics.spark.session import spark_session

    try:
        # not stopped here: getOrCreate may have handed over a session the caller still uses
        result = load_spark(
            spark_session(master), dataset, list(paths), cluster=cluster,
            inventory=list(inventory), replace=replace, arguments=sys.argv[1:],
            progress=progress,
        )  # fmt: skip
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    except (DatasetError, SparkError) as exc:
        raise click.ClickException(visible(str(exc))) from exc
    _show(result, as_json)
    if result.replaced:
        click.echo(f"replaced the earlier dataset {dataset}", err=True)
    if not result.anything_read:
        if replace and dataset.exists():
            click.echo(f"the earlier dataset {dataset} is kept as it was", err=True)
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
