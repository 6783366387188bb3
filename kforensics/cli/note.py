"""`kforensics note` and `kforensics notes`: an analyst's notes, kept in the case."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from kforensics.cli.options import case_option, rules_option
from kforensics.detection.false_positives import false_positives
from kforensics.detection.rule import load_rules
from kforensics.errors import KforensicsError
from kforensics.investigate.notes import COLUMNS, add_note, notes
from kforensics.output import plain
from kforensics.untrusted import visible


@click.command("note")
@case_option("DuckDB case file (the note is stored in it, table `notes`).")
@click.option("--event", "event", metavar="EVENT_ID", help="Note an event (its event_id).")
@click.option("--finding", "finding", metavar="FINDING_ID", help="Note a finding (finding_id).")
@click.option("--identity", "identity", metavar="NAME", help="Note an identity (a username).")
@click.option("--tag", help="A tag: a word of letters, digits and _ . : / - (lateral-movement).")
@click.option("--comment", help="Free text, up to 4096 characters.")
@click.option("--triaged", metavar="REASON", help="Mark the finding triaged, saying why.")
@click.option(
    "--false-positive",
    "false_positive",
    metavar="REASON",
    help="Mark the finding a false positive, saying why (`notes --exceptions` drops it then).",
)
@click.option("--author", help="Who writes the note (default: the OS user).")
def note_cmd(
    case: Path,
    event: str | None,
    finding: str | None,
    identity: str | None,
    tag: str | None,
    comment: str | None,
    triaged: str | None,
    false_positive: str | None,
    author: str | None,
) -> None:
    """Note an event, finding or identity: a tag, a comment, a triaged or false-positive mark."""
    targets = [(k, v) for k, v in (("event", event), ("finding", finding), ("identity", identity))]
    given = [(k, v) for k, v in targets if v is not None]
    if len(given) != 1:
        raise click.UsageError("give one of --event, --finding or --identity")
    if triaged is not None and false_positive is not None:
        raise click.UsageError("give --triaged or --false-positive, not both")
    mark, reason = (
        ("triaged", triaged)
        if triaged is not None
        else ("false_positive", false_positive)
        if false_positive is not None
        else (None, None)
    )
    kind, target = given[0]
    try:
        note_id = add_note(
            case, kind, target, tag=tag, comment=comment, mark=mark, reason=reason, author=author
        )
    except KforensicsError as exc:
        raise click.ClickException(visible(str(exc))) from exc
    click.echo(f"note {note_id} on {kind} {visible(target)} stored in {visible(str(case))}")


@click.command("notes")
@case_option("DuckDB case file.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="Output: a table, or one JSON note per line.",
)
@click.option(
    "--exceptions",
    is_flag=True,
    help="Print instead an exceptions YAML (for `detect --exceptions`) dropping the findings "
    "marked false positive.",
)
@rules_option("Folder of extra rules (YAML), as for detect: for --exceptions.")
def notes_cmd(case: Path, fmt: str, exceptions: bool, rule_dirs: tuple[Path, ...]) -> None:
    """List the notes of CASE, oldest first (or, with --exceptions, the false positives' YAML)."""
    try:
        if exceptions:
            found = false_positives(case, load_rules(list(rule_dirs)))
            click.echo(found.to_yaml(), nl=False)
            return
        rows = notes(case)
    except KforensicsError as exc:
        raise click.ClickException(visible(str(exc))) from exc
    if fmt == "jsonl":
        for row in rows:
            out = {c: row[c] for c in COLUMNS}
            out["created_at"] = row["created_at"].isoformat().replace("+00:00", "Z")
            click.echo(json.dumps(out, ensure_ascii=True))  # ASCII: one line for any splitter
        return
    table = Table(title=f"{len(rows)} notes", title_justify="left")
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for row in rows:
        cells = {c: "" if row[c] is None else str(row[c]) for c in COLUMNS}
        cells["created_at"] = row["created_at"].strftime("%Y-%m-%d %H:%M:%SZ")
        table.add_row(*(plain(cells[c]) for c in COLUMNS))
    Console(width=None if Console().is_terminal else 160).print(table)
