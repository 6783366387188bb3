"""HTML tables for notebook output in which log text can never become markup.

Lists show as text ("a, b, c"), a mapping as "key: value, ...": a reader sees values, not a
Python or JSON repr. A column may link its values (`links`): the link is built by a function
of the value and its row and kept only when it is an anchor of the same page (`#...`) or an
ATT&CK technique page; a row may carry an id (`row_id`), the target of such an anchor.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from kforensics.untrusted import visible

# What a link in a table may point to: an element of the same page, or an ATT&CK technique.
SAFE_HREF = re.compile(
    r"#[A-Za-z][\w.:-]*|https://attack\.mitre\.org/techniques/T\d{4}/(?:\d{3}/)?"
)
Link = Callable[[Any, dict], "str | None"]


def as_text(value: Any) -> str:
    """Return a value as a reader sees it: lists joined by ", ", mappings as "key: value"."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {as_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(f"({as_text(v)})" if isinstance(v, Mapping) else as_text(v) for v in value)
    return str(value)


def escape(value: Any) -> str:
    """Return a value as HTML text: as_text, control characters shown, markup escaped."""
    return html.escape(visible(as_text(value)), quote=True)


def escape_block(text: str) -> str:
    """Return multi-line text (YAML, a listing) for a <pre>: each line escaped, breaks kept."""
    return "\n".join(escape(line) for line in text.split("\n"))


def _escaped(text: str, max_chars: int) -> str:
    text = visible(text)  # a line break, an ANSI escape or U+202E is shown, not obeyed
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return html.escape(text, quote=True)


def _cell(value: Any, max_chars: int) -> str:
    return _escaped(as_text(value), max_chars)


def _linked(value: Any, row: dict, link: Link, max_chars: int) -> str:
    """Return the cell with each item (of a list) or the value linked where link gives a href."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        text = _cell(item, max_chars)
        href = link(item, row) if item is not None else None
        if href and SAFE_HREF.fullmatch(href):
            out.append(f'<a href="{html.escape(href, quote=True)}">{text}</a>')
        else:
            out.append(text)
    return ", ".join(out)


def html_table(
    table: pa.Table | list[dict],
    max_rows: int = 50,
    max_chars: int = 200,
    *,
    links: Mapping[str, Link] | None = None,
    row_id: Callable[[dict], str] | None = None,
    hidden: tuple[str, ...] = (),
) -> str:
    """Return an HTML table of the rows with every header and cell escaped and long cells cut.

    `hidden` columns are not shown: a link or a row id may still read them.
    """
    if isinstance(table, pa.Table):
        names, rows, total = table.column_names, table.slice(0, max_rows).to_pylist(), len(table)
    else:
        names = list(table[0]) if table else []
        rows, total = table[:max_rows], len(table)
    names = [n for n in names if n not in hidden]
    links = links or {}
    head = "".join(f"<th>{_cell(n, max_chars)}</th>" for n in names)

    def td(r: dict, n: str) -> str:
        if n in links:
            return f"<td>{_linked(r.get(n), r, links[n], max_chars)}</td>"
        return f"<td>{_cell(r.get(n), max_chars)}</td>"

    def tr(r: dict) -> str:
        ident = row_id(r) if row_id else None
        attr = f' id="{html.escape(ident, quote=True)}"' if ident else ""
        return f"<tr{attr}>" + "".join(td(r, n) for n in names) + "</tr>"

    body = "".join(tr(r) for r in rows)
    more = (
        f"<caption>{total - len(rows)} more rows not shown</caption>" if total > len(rows) else ""
    )
    if not total:
        return "<p><em>no rows</em></p>"
    return (
        f'<table class="kforensics">{more}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
