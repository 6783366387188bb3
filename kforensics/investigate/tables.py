"""HTML tables for notebook output in which log text can never become markup."""

from __future__ import annotations

import html
import json
from datetime import date, datetime

import pyarrow as pa

from kforensics.untrusted import visible


def _cell(value, max_chars: int) -> str:
    if value is None:
        text = ""
    elif isinstance(value, datetime | date):
        text = value.isoformat()
    elif isinstance(value, list | dict | tuple):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    text = visible(text)  # a line break, an ANSI escape or U+202E is shown, not obeyed
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return html.escape(text, quote=True)


def html_table(table: pa.Table | list[dict], max_rows: int = 50, max_chars: int = 200) -> str:
    """Return an HTML table of the rows with every header and cell escaped and long cells cut."""
    if isinstance(table, pa.Table):
        names, rows, total = table.column_names, table.slice(0, max_rows).to_pylist(), len(table)
    else:
        names = list(table[0]) if table else []
        rows, total = table[:max_rows], len(table)
    head = "".join(f"<th>{_cell(n, max_chars)}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(n), max_chars)}</td>" for n in names) + "</tr>"
        for r in rows
    )
    more = (
        f"<caption>{total - len(rows)} more rows not shown</caption>" if total > len(rows) else ""
    )
    if not total:
        return "<p><em>no rows</em></p>"
    return (
        f'<table class="kforensics">{more}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
