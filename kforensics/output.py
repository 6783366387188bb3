"""Terminal output of the `kforensics` command: tables and JSON lines showing log text literally."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kforensics.ingest.load import LoadResult
from kforensics.ingest.mapping import QUALITY_FLAGS
from kforensics.investigate.export import export
from kforensics.untrusted import visible


def print_summary(result: LoadResult, console: Console | None = None) -> None:
    """Print the load summary: one row per file, totals, and the reasons for rejects."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    paths = [s.path for s in result.sources]
    try:
        base = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    except ValueError:  # absolute and relative paths given together: show them as given
        base = ""
    title = f"load {result.load_id} into {result.case}" + (f", files under {base}/" if base else "")
    table = Table(title=title, title_justify="left")
    for col in ("file", "format", "lines", "records", "loaded", "duplicates", "rejected"):
        left = col in ("file", "format")
        table.add_column(col, justify="left" if left else "right", overflow="fold")
    for s in result.sources:
        name = os.path.relpath(s.path, base) if base else s.path
        table.add_row(
            plain(name), s.format, f"{s.lines_read:,}", f"{s.records:,}", f"{s.events_loaded:,}",
            f"{s.duplicates:,}", f"{s.rejected:,}",
        )  # fmt: skip
    table.add_row(
        "total", "", f"{sum(s.lines_read for s in result.sources):,}",
        f"{sum(s.records for s in result.sources):,}", f"{result.events_loaded:,}",
        f"{result.duplicates:,}", f"{result.rejected:,}", style="bold",
    )  # fmt: skip
    console.print(table, markup=False)
    if result.skipped:
        console.print(
            "skipped, already in the case (the same bytes: size and SHA-256):", markup=False
        )
        for s in result.skipped:
            name = os.path.relpath(s.path, base) if base else s.path
            console.print(
                Text("  ") + plain(name) + Text(f": loaded by load {s.already_loaded}"),
                highlight=False,
            )
    unread = [s for s in result.sources if s.error]
    if unread:
        console.print("not read (see the sources table):", markup=False)
        for s in unread:
            console.print(Text("  ") + plain(s.path) + Text(": ") + plain(s.error), highlight=False)
    if result.reject_reasons:
        console.print("rejected (see the rejects table for file and line):", markup=False)
        for reason, n in result.reject_reasons[:10]:
            console.print(Text(f"  {n:>8,}  ") + plain(reason), highlight=False)
        if len(result.reject_reasons) > 10:
            console.print(f"  ... {len(result.reject_reasons) - 10} more reasons", markup=False)
    if result.quality:
        console.print(
            "kept with flags (what the events lack; column quality, findings.quality):",
            markup=False,
        )
        # In the flags' own order, each with what it means.
        for flag in [*QUALITY_FLAGS, *sorted(set(result.quality) - set(QUALITY_FLAGS))]:
            if result.quality.get(flag):
                meaning = QUALITY_FLAGS.get(flag, "")
                console.print(f"  {result.quality[flag]:>8,}  {flag}: {meaning}", markup=False)
    if result.inventory_objects:
        console.print(f"inventory: {result.inventory_objects} objects kept", markup=False)
    if result.unconfirmed_repeats:
        console.print(
            f"kept {result.unconfirmed_repeats} events that may repeat earlier ones (same audit "
            "ID, stage and time, other bytes): the earlier copies' source files are gone or "
            "changed, so they could not be compared (kforensics verify)",
            markup=False,
        )
    if result.collisions:
        console.print(
            f"warning: {result.collisions} audit ID(s) shared by different events "
            "(clients can set Audit-ID; see the audit_id_collisions view)",
            markup=False,
        )


def print_rows(rel: duckdb.DuckDBPyRelation, fmt: str, max_rows: int, output: Path | None) -> None:
    """Print the relation's rows as a table (at most max_rows), or export them (`export`) to
    output, standard output when None."""
    if fmt == "table":
        rel.show(max_rows=max_rows, max_width=1_000_000)
        return
    written = export(rel, sys.stdout if output is None else output, fmt)
    if output is not None:
        click.echo(f"wrote {written:,} rows to {visible(str(output))}", err=True)


def plain(value: object) -> Text:
    """Return a table cell that shows log text literally: no markup, control bytes escaped."""
    return Text(visible("" if value is None else str(value)))


LEVEL_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": ""}


def shown(stored: int, showing: int, min_level: str, verb: str = "showing") -> str:
    """Return how many findings were stored and how many are shown at or above min_level."""
    return f"stored {stored:,} findings; {verb} {showing:,} at or above {min_level}"


def print_findings(
    findings: list,
    rules_run: int,
    console: Console | None = None,
    *,
    stored: int | None = None,
    min_level: str = "info",
) -> None:
    """Print findings as a table, most severe first; the title says how many of the stored
    findings (all when stored is None) are at or above min_level."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    title = f"{len(findings)} findings from {rules_run} rules"
    if stored is not None and stored != len(findings):
        title = f"{shown(stored, len(findings), min_level)} (from {rules_run} rules)"
    table = Table(title=title, title_justify="left")
    for col in ("level", "rule", "actor", "target", "count", "first seen", "evidence"):
        table.add_column(col, overflow="fold", justify="right" if col == "count" else "left")
    for f in findings:
        target = "/".join(x for x in (f.namespace, f.resource, f.name) if x)
        if f.sensitive:  # why it ranks above the same request elsewhere
            target += " [sensitive]"
        level = f.level if f.raised_from is None else f"{f.level} (from {f.raised_from})"
        first = f.evidence[0]
        seen = f.first_seen.strftime("%Y-%m-%d %H:%M:%S") if f.first_seen else "undated"
        # The file as given to load: two nodes' audit.log must not read the same.
        table.add_row(
            Text(level, style=LEVEL_STYLE[f.level]), plain(f.rule_id), plain(f.who),
            plain(target), str(f.count), seen,
            plain(f"{first['source_file']}:{first['source_line']}"),
        )  # fmt: skip
    console.print(table)


# The findings as `export` writes them: Finding.to_json's fields, finding_id first.
FINDINGS_SCHEMA = pa.schema(
    [
        ("finding_id", pa.string()), ("rule_id", pa.string()), ("title", pa.string()),
        ("level", pa.string()), ("attack", pa.list_(pa.string())),
        ("tactics", pa.list_(pa.string())), ("first_seen", pa.timestamp("us", tz="UTC")),
        ("last_seen", pa.timestamp("us", tz="UTC")), ("actor", pa.string()),
        ("impersonated", pa.string()), ("source_ips", pa.list_(pa.string())),
        ("namespace", pa.string()), ("resource", pa.string()), ("name", pa.string()),
        ("count", pa.int64()),
        ("evidence", pa.list_(pa.struct([
            ("event_id", pa.string()), ("audit_id", pa.string()),
            ("source_file", pa.string()), ("source_line", pa.int64()),
        ]))),
        ("quality", pa.list_(pa.string())),
        ("sensitive", pa.list_(pa.string())), ("raised_from", pa.string()),
    ]
)  # fmt: skip


def findings_table(findings: list) -> pa.Table:
    """Return the findings as a typed table (FINDINGS_SCHEMA), in their order."""
    rows = []
    for f in findings:
        row = {"finding_id": f.finding_id, **f.to_json()}
        row["first_seen"], row["last_seen"] = f.first_seen, f.last_seen  # times, not text
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)
