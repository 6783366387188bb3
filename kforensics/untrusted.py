"""Values from the log are attacker-controlled: parse them within bounds, show them literally.

A request or response object nested 5000 levels deep loads into DuckDB (which reads JSON
without recursion) but makes `json.loads`, `copy.deepcopy`, YAML serializers and every
recursive walk raise RecursionError. Code that must parse such text in Python goes through
`loads`, which refuses anything deeper than MAX_DEPTH with `TooDeep`.

Text shown to a person (a terminal, a Markdown report, an HTML table, a chart label) goes
through `visible`: control characters would move the cursor or recolour a terminal, line
breaks would forge lines of a report, and bidirectional overrides (U+202E) display
`gnp.exe` as `exe.png`. Each is replaced by its escape, so what is shown is what was logged.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Kubernetes objects nest a few dozen levels at most (managedFields mirror the object); deepcopy
# and the YAML serializer spend about three frames a level of Python's 1000.
MAX_DEPTH = 100
TOO_DEEP = "(too deeply nested to display)"

BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES |= {c: f"\\u{c:04x}" for c in [*BIDI, 0x2028, 0x2029, 0xFEFF]}


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH."""


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Return whether lists and dicts in value nest deeper than limit (no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return False


def loads(text: str | bytes, limit: int = MAX_DEPTH) -> Any:
    """Return parsed JSON; ValueError when it is not JSON, TooDeep when it nests past limit."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        # what orjson refuses and json reads (NaN, integers past 64 bits, lone surrogates) is
        # read as before, and so is what nests past orjson's 1024 levels
        try:
            value = json.loads(text)
        except RecursionError as exc:  # the C scanner stops cleanly at the interpreter's limit
            raise TooDeep(f"JSON nested deeper than {limit} levels") from exc
    # no deeper than its count of opening brackets (most objects): no walk needed
    opened = text.count("{") + text.count("[") if isinstance(text, str) else limit + 1
    if opened > limit and too_deep(value, limit):
        raise TooDeep(f"JSON nested deeper than {limit} levels")
    return value


def visible(text: str) -> str:
    """Return text with control, line-separator and bidi characters as escapes (`\\x1b`)."""
    return text.translate(_ESCAPES)


# Markdown and HTML punctuation: escaped in log text, a name cannot become a link, a tag or a
# table, nor a backtick end the code span around it.
_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_{}[]<>|~&!#"})


def markdown(text: object) -> str:
    """Return log-derived text for Markdown: one line (escapes shown), no Markdown in it."""
    return visible(str(text)).translate(_MARKDOWN)
