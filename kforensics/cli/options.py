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


def format_option():
    """Return the --format option of the commands that print rows."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "jsonl", "csv"]),
        default="table",
        show_default=True,
        help="Output format.",
    )


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


def rules_option(help: str):
    """Return the --rules option (folders of extra rules) of detect and rules."""
    return click.option(
        "--rules",
        "rule_dirs",
        multiple=True,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help=help,
    )
