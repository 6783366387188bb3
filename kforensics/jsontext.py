"""JSON text escaped as Go's encoding/json writes it: <, >, &, U+2028 and U+2029 as \\u escapes.

The API server writes its logs with encoding/json, which escapes these five even inside strings
(U+2028 and U+2029 with HTML escaping off too). JSON written the same way hashes and compares
like the logged text, and is also safe inside an HTML `<script>`: no string can close the
element, open a comment, or end a line in old JavaScript. The five occur only inside strings
in JSON text, so escaping the whole text escapes exactly them.
"""

from __future__ import annotations

GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_TABLE = str.maketrans(GO_ESCAPES)
_BYTES = tuple((char.encode(), esc.encode()) for char, esc in GO_ESCAPES.items())


def go_escape(text: str) -> str:
    """Return JSON text with Go's escapes for `<`, `>`, `&`, U+2028 and U+2029."""
    return text.translate(_TABLE)


def go_escape_bytes(data: bytes) -> bytes:
    """Return UTF-8 JSON text with Go's escapes (as `go_escape`, without decoding it)."""
    for char, esc in _BYTES:
        if char in data:  # most lines hold none of them: a search is cheaper than a copy
            data = data.replace(char, esc)
    return data
