"""Where each element of a JSON document's event array lies, and JSON text minified."""

from __future__ import annotations

import re

# Possessive quantifiers: a string is consumed in runs, and an unterminated one cannot make the
# pattern backtrack.
_TOKENS = re.compile(rb'"(?:[^"\\\n]++|\\.)*+"|[{}\[\]:,\n]|[^\s"{}\[\]:,]+')
_MINIFY = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[^\s"]+')
_ENVELOPE_KEYS = {b"items", b"records", b"events"}


def element_spans(data: bytes) -> list[tuple[int, int, int]]:
    """Return (line, start, end) of each element of the text's event array.

    The event array is the root array, or the `items` / `records` / `events` array of the root
    object: the containers `classify_value` unwraps. Lines are 1-based; offsets are bytes.
    """
    line = 1
    stack: list[str] = []  # "o" object, "a" array, "t" the event array
    last_key: bytes | None = None
    prev: bytes | None = None
    spans: list[tuple[int, int, int]] = []
    current: tuple[int, int, int] | None = None  # line, start, depth of the open element
    expecting = True
    for m in _TOKENS.finditer(data):
        tok = m.group()
        if tok == b"\n":
            line += 1
            continue
        if stack and stack[-1] == "t" and expecting and tok not in (b"]", b","):
            current = (line, m.start(), len(stack))
            expecting = False
        if tok == b"{":
            stack.append("o")
        elif tok == b"[":
            root_list = not stack
            key_list = stack == ["o"] and last_key in _ENVELOPE_KEYS
            stack.append("t" if root_list or key_list else "a")
            expecting = True
        elif tok in (b"}", b"]"):
            if stack:
                stack.pop()
        elif tok == b",":
            expecting = True
        elif tok == b":":
            last_key = prev[1:-1].lower() if prev and prev.startswith(b'"') else None
        if current is not None and len(stack) == current[2] and tok not in (b"{", b"["):
            spans.append((current[0], current[1], m.end()))
            current = None
        prev = tok
    return spans


def minified(text: bytes) -> str:
    """Return JSON text without whitespace outside strings, escapes kept as written.

    An event pretty-printed in an EventList then matches the same event logged as one line,
    byte for byte, so the two count once.
    """
    return b"".join(_MINIFY.findall(text)).decode("utf-8")
