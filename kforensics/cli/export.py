"""`kforensics export`: a case as a Parquet dataset, for Spark and any Parquet reader."""

from __future__ import annotations

from pathlib import Path

import click

from kforensics.case import CaseError
from kforensics.cli.options import case_option
from kforensics.dataset.export import export_case
from kforensics.errors import DatasetError


@click.command("export")
@case_option("DuckDB case file to export.")
@click.option(
    "--parquet",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the dataset to (new or empty, or an earlier dataset with --replace).",
)
@click.option("--replace", is_flag=True, help="Write over a dataset exported there before.")
def export_cmd(case: Path, folder: Path, replace: bool) -> None:
    """Write every table of CASE as Parquet under DIR, events partitioned by cluster and day.

    DIR/_kforensics.json names the schema version and each table's rows; the events are under
    DIR/events/cluster=NAME/day=YYYY-MM-DD/ (cluster only when a load named one; events without
    a time in Hive's default partition), each other table in DIR/TABLE/TABLE.parquet.
    """
    try:
        layout = export_case(case, folder, replace=replace)
    except (CaseError, DatasetError) as exc:
        raise click.ClickException(str(exc)) from exc
    by = " and ".join(layout.partitions) or "nothing (no events)"
    click.echo(
        f"{folder}: {layout.tables.get('events', 0):,} events partitioned by {by}, "
        f"{len(layout.tables)} tables, schema version {layout.schema_version}"
    )
