"""Terminal output of the `kforensics` command: tables and JSON lines showing log text literally."""

from __future__ import annotations

import os
import sys

import click
import duckdb
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kforensics.ingest.load import LoadResult
from kforensics.ingest.mapping import QUALITY_FLAGS
from kforensics.untrusted import BIDI, visible


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
    if result.collisions:
        console.print(
            f"warning: {result.collisions} audit ID(s) shared by different events "
            "(clients can set Audit-ID; see the audit_id_collisions view)",
            markup=False,
        )


def print_rows(rel: duckdb.DuckDBPyRelation, fmt: str, max_rows: int) -> None:
    """Print the relation's rows as a table (at most max_rows), JSON lines or CSV."""
    if fmt == "table":
        rel.show(max_rows=max_rows, max_width=1_000_000)
        return
    columns = rel.columns
    rows = rel.fetchall()
    if fmt == "jsonl":
        for row in rows:
            click.echo(json_line(dict(zip(columns, row, strict=True))))
    else:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)


# JSON allows these raw in strings, but str.splitlines() and JavaScript end a line at U+2028,
# U+2029 and U+0085, and a terminal obeys a bidi override: escaped, the value is the same.
JSON_ESCAPES = {c: f"\\u{c:04x}" for c in [*range(0x80, 0xA0), 0x2028, 0x2029, 0xFEFF, *BIDI]}


def json_line(value: object) -> str:
    """Return value as one JSON line that every line splitter reads as one line."""
    return orjson.dumps(value, default=str).decode().translate(JSON_ESCAPES)


def plain(value: object) -> Text:
    """Return a table cell that shows log text literally: no markup, control bytes escaped."""
    return Text(visible("" if value is None else str(value)))


LEVEL_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": ""}


def print_findings(findings: list, rules_run: int, console: Console | None = None) -> None:
    """Print findings as a table, most severe first."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    table = Table(title=f"{len(findings)} findings from {rules_run} rules", title_justify="left")
    for col in ("level", "rule", "actor", "target", "count", "first seen", "evidence"):
        table.add_column(col, overflow="fold", justify="right" if col == "count" else "left")
    for f in findings:
        target = "/".join(x for x in (f.namespace, f.resource, f.name) if x)
        first = f.evidence[0]
        seen = f.first_seen.strftime("%Y-%m-%d %H:%M:%S") if f.first_seen else "undated"
        # The file as given to load: two nodes' audit.log must not read the same.
        table.add_row(
            Text(f.level, style=LEVEL_STYLE[f.level]), plain(f.rule_id), plain(f.who),
            plain(target), str(f.count), seen,
            plain(f"{first['source_file']}:{first['source_line']}"),
        )  # fmt: skip
    console.print(table)
