"""Top-level scalars: the text between a document's top-level values, read as JSON scalars.

Between values there is mostly whitespace; what else is there (numbers, strings, `true`...)
is taken whole with regexes, so that text which is no value is found before the scan goes on.
"""

from __future__ import annotations

import re

from kforensics.ingest.jsonscan import QUOTE

# A string's body up to its closing quote or the end of the text so far; it can resume at
# any position it reached, as it never stops inside an escape.
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)
_BARE = re.compile(rb'[^ \t\r\n"{}\[\],]+')
_SCALAR = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
_SPACE = re.compile(rb"[ \t\r\n]*")


class TopLevelText:
    """Text between top-level values not taken yet: from its first non-blank byte on."""

    __slots__ = ("text", "start", "line", "resume")

    def __init__(self, text: bytearray, start: int, line: int) -> None:
        self.text = text
        self.start = start  # document offset of text[0]
        self.line = line  # line of text[0]
        self.resume = 0  # how far the unterminated string at text[0] was already matched

    def take(
        self, final: bool, limit: int
    ) -> tuple[list[tuple[int, bytes | None, str | None]], tuple[int, int] | None]:
        """Return the scalars taken from the text, and (line, offset) of text that is no value.

        A scalar is (line, its bytes, None), or (line, None, why) when over `limit` bytes.
        Taken scalars leave `text`; an unfinished one stays for more text, unless `final`.
        Text that is no value ends the taking: the caller resynchronises at its offset.
        """
        g = self.text
        n = len(g)
        pos = 0
        line = self.line
        found: list[tuple[int, bytes | None, str | None]] = []
        resume, self.resume = self.resume, 0
        while True:
            blank = _SPACE.match(g, pos).end()
            line += g.count(b"\n", pos, blank)
            pos = blank
            if pos == n:
                break
            if g[pos] == QUOTE:
                end = _STRING_BODY.match(g, max(pos + 1, resume)).end()
                if end == n or g[end] != QUOTE:
                    self.resume = end - pos
                    break
                end += 1
                ok = True
            else:
                end = max(pos + 1, _BARE.match(g, pos).end())
                if end == n and not final:
                    break
                ok = _SCALAR.fullmatch(g, pos, end) is not None
            resume = 0
            if not ok:
                return found, (line, self.start + pos)
            if end - pos > limit:
                found.append((line, None, f"value longer than {limit} bytes ({end - pos} bytes)"))
            else:
                found.append((line, bytes(g[pos:end]), None))
            line += g.count(b"\n", pos, end)  # raw newlines are invalid in strings, yet lines
            pos = end
        del g[:pos]
        self.start += pos
        self.line = line
        return found, None
