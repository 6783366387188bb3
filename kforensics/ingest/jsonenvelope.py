"""The envelope of a root object: the key naming its container array, and its other keys' text.

In `{"kind": "EventList", "items": [...], "metadata": {}}` the container is `items` and the
envelope is `{"kind": "EventList", "metadata": {}}`: the object with the container cut out.
"""

from __future__ import annotations

from kforensics.ingest.jsonscan import WS

CONTAINER_KEYS = (b'"items"', b'"records"', b'"events"')


def container_key(look: bytes) -> tuple[str, int] | None:
    """Return the container key that `look` (the text before a `[`) ends with, and its offset.

    The offset is just past the `{` or `,` before the key: where the envelope's text stops.
    """
    text = look.rstrip(WS)
    if not text.endswith(b":"):
        return None
    text = text[:-1].rstrip(WS)
    for key in CONTAINER_KEYS:
        if text[-len(key) :].lower() == key:
            head = text[: -len(key)].rstrip(WS)
            if head.endswith((b"{", b",")):
                return key[1:-1].decode(), len(head)
    return None


def join_envelope(prefix: bytes, suffix: bytes | bytearray) -> bytes:
    """Return the object text before its container key and after the container, as one object."""
    head = prefix.rstrip(WS)
    rest = bytes(suffix).lstrip(WS)
    # The container key went with its value: mend the commas around the hole it left.
    if rest.startswith(b","):
        if head.endswith((b",", b"{")):
            rest = rest[1:].lstrip(WS)
    elif head.endswith(b","):
        head = head[:-1]
    return head + rest
