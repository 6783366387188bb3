"""`kforensics verify` and `kforensics original`: the case proven against its source files."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from kforensics.case import CaseError, connect
from kforensics.cli.options import case_option
from kforensics.ingest.original import Verification, originals, verify
from kforensics.output import plain
from kforensics.untrusted import visible

SOURCES_HELP = (
    "A folder to look for source files in when they are no longer where they were loaded "
    "from (by name, then by content: a rotated audit.log is found as audit.log.1). Repeatable."
)


@click.command("verify")
@case_option("DuckDB case file to prove against its sources.")
@click.option("--sources", "search", multiple=True, metavar="DIR", help=SOURCES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: on a terminal, for big sources).",
)
def verify_cmd(case: Path, search: tuple[str, ...], as_json: bool, progress: bool | None) -> None:
    """Prove every event of CASE against the files it was loaded from.

    A native line's bytes stay in its source file: the case keeps its offset and SHA-256, and
    each file's SHA-256. This re-reads each source (found by that SHA-256), checks every
    event's bytes, and exits 0 when all are proven, 1 when a source is missing or changed.
    """
    try:
        proof = verify(case, [Path(d) for d in search], progress=progress)
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(_as_dict(proof), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(proof)
    if not proof.ok:
        sys.exit(1)


def _as_dict(proof: Verification) -> dict:
    return {
        "case": proof.case,
        "ok": proof.ok,
        "events": proof.events,
        "verified": proof.verified,
        "held_in_case": proof.held,
        "sources": [asdict(s) for s in proof.sources],
    }


def _print(proof: Verification) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    table = Table(title=f"verify {proof.case}", title_justify="left")
    for col in ("load", "file", "events", "verified", "found at"):
        table.add_column(col, justify="left" if col in ("file", "found at") else "right",
                         overflow="fold")  # fmt: skip
    for s in proof.sources:
        where = "" if s.found_at in (None, s.path) else s.found_at
        if s.grown:
            where = (where + " " if where else "") + f"(grown by {s.grown:,} bytes since)"
        table.add_row(str(s.load_id), plain(s.path), f"{s.events:,}", f"{s.verified:,}",
                      plain(where))  # fmt: skip
    console.print(table, markup=False)
    if proof.held:
        console.print(
            f"{proof.held:,} events are held in the case itself (records of documents and "
            "envelopes: their text is the raw column)",
            markup=False,
        )
    for s in proof.sources:
        for problem in s.problems:
            click.echo(visible(f"{s.path} (load {s.load_id}): {problem}"))
    if proof.ok:
        line = f"proven: all {proof.events:,} events against their sources"
    else:
        line = (
            f"NOT proven: {proof.events - proof.verified:,} of {proof.events:,} events could "
            "not be checked against their sources (see above)"
        )
    click.echo(line)


@click.command("original")
@click.argument("event_ids", nargs=-1, required=True)
@case_option("DuckDB case file.")
@click.option("--sources", "search", multiple=True, metavar="DIR", help=SOURCES_HELP)
def original_cmd(event_ids: tuple[str, ...], case: Path, search: tuple[str, ...]) -> None:
    """Print the original bytes of events, one line each, proven by their SHA-256.

    Exits 1 when an event is not in the case or its source is gone or changed. On a
    terminal, control and bidi characters are shown as escapes; piped, the bytes are exact.
    """
    try:
        with connect(case) as con:
            found = originals(con, event_ids, [Path(d) for d in search])
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    out = sys.stdout.buffer
    terminal = sys.stdout.isatty()
    missing = []
    for event_id in event_ids:
        text = found.get(event_id)
        if text is None:
            missing.append(event_id)
        elif terminal:
            click.echo(visible(text.decode("utf-8", "replace")))
        else:
            out.write(text + b"\n")
    out.flush()
    for event_id in missing:
        click.echo(
            f"{visible(event_id)}: not in the case, or its source is gone or changed "
            "(kforensics verify says which)",
            err=True,
        )
    if missing:
        sys.exit(1)
