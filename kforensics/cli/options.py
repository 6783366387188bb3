"""The options several commands share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click


def case_option(help: str, required: bool = True):
    """Return the --case option every command takes."""
    return click.option(
        "--case",
        "case",
        required=required,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


def format_option(what: str = "rows"):
    """Return the --format option of the commands that print or export rows."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "jsonl", "parquet"]),
        default=None,
        help=f"Output: a table of the {what}, or CSV, JSON lines or Parquet with their real types "
        "(default: table, or what the --output suffix names).",
    )


def output_option():
    """Return the --output FILE option of the commands that export rows."""
    return click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write to this file (csv, jsonl, parquet) instead of standard output.",
    )


def output_format(fmt: str | None, output: Path | None) -> str:
    """Return the format to write: the one given, else the --output suffix's, else table."""
    from kforensics.investigate.export import PARQUET_NEEDS_A_FILE, ExportError, format_of

    if fmt is None:
        if output is None:
            return "table"
        try:
            return format_of(output)
        except ExportError as exc:
            raise click.BadParameter(str(exc), param_hint="--format") from exc
    if fmt == "table" and output is not None:
        raise click.UsageError("--output writes csv, jsonl or parquet; a table is only printed")
    if fmt == "parquet" and output is None:
        raise click.UsageError(PARQUET_NEEDS_A_FILE)
    return fmt


def parameter_option(help: str):
    """Return the repeatable -p NAME VALUE option."""
    return click.option(
        "-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE", help=help
    )


def when(value: str | None) -> datetime | None:
    """Return an ISO 8601 time as an aware datetime (naive means UTC)."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def engine_options(engine_help: str, parquet_help: str, exists: bool):
    """Return the --engine, --parquet DIR and --master options of load and detect."""
    options = [
        click.option(
            "--engine",
            type=click.Choice(["duckdb", "spark"]),
            default="duckdb",
            show_default=True,
            help=engine_help,
        ),
        click.option(
            "--parquet",
            "dataset",
            type=click.Path(file_okay=False, exists=exists, path_type=Path),
            help=parquet_help,
        ),
        click.option(
            "--master",
            help="Spark master URL (default local[2]; SPARK_REMOTE in the environment: Spark "
            "Connect).",
        ),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def rules_option(help: str):
    """Return the --rules option (folders of extra rules) of detect and rules."""
    return click.option(
        "--rules",
        "rule_dirs",
        multiple=True,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help=help,
    )


def sensitive_option():
    """Return the --sensitive FILE option of detect, netpol and report."""
    return click.option(
        "--sensitive",
        "sensitive",
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML file naming the sensitive namespaces, label selectors, secrets and workloads "
        "(default: sensitive.yaml beside the case, else what the case stored).",
    )


def sensitive_declaration(value: Path | None, case: Path):
    """Return the declaration --sensitive names (or sensitive.yaml beside the case), or None."""
    from kforensics.errors import SensitiveError
    from kforensics.sensitive.declare import from_value

    try:
        return from_value(value, case)
    except SensitiveError as exc:
        raise click.ClickException(str(exc)) from exc
