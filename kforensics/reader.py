"""Finding input files and reading them as blocks of whole lines, gzip detected by content."""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_SIZE = 32 * 1024 * 1024
# Longer lines are rejected unread: no audit event comes near this (the API server caps requests).
MAX_LINE_BYTES = 256 * 1024 * 1024


class InputError(Exception):
    """A path given on the command line that cannot be read at all."""


def discover(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Return the files named by paths: files, folders (recursive) and glob patterns, in order."""
    found: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.is_file():
            found.append(p)
        elif glob.has_magic(str(arg)):
            matches = [Path(m) for m in sorted(glob.glob(str(arg), recursive=True))]
            files = [m for m in matches if m.is_file()]
            if not files:
                raise InputError(f"{arg}: no file matches this pattern")
            found.extend(files)
        elif p.exists():
            raise InputError(f"{arg}: not a regular file or folder")
        else:
            raise InputError(f"{arg}: no such file or folder")
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


class _HashingFile:
    """A read-only file wrapper that hashes and counts the bytes read through it."""

    def __init__(self, raw, on_bytes: Callable[[int], None] | None):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha256.update(data)
        self.bytes += len(data)
        if self.on_bytes and data:
            self.on_bytes(len(data))
        return data

    def readable(self) -> bool:
        return True


@dataclass
class FileReader:
    """Reads one file as blocks that end on a line boundary; records hash, size and errors."""

    path: Path
    on_bytes: Callable[[int], None] | None = None
    block_size: int = BLOCK_SIZE
    compression: str = "none"
    sha256: str = ""
    bytes: int = 0
    error: str | None = None
    oversized: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    _hasher: _HashingFile | None = field(default=None, repr=False)

    def blocks(self) -> Iterator[bytes]:
        """Yield blocks of whole lines (the last may lack its newline); set `error` on failure."""
        with open(self.path, "rb") as fh:
            hasher = self._hasher = _HashingFile(fh, self.on_bytes)
            head = fh.read(2)
            hasher.sha256.update(head)
            hasher.bytes += len(head)
            if self.on_bytes and head:
                self.on_bytes(len(head))
            if head == GZIP_MAGIC:
                self.compression = "gzip"
                stream = gzip.GzipFile(fileobj=_Prefixed(head, hasher), mode="rb")
            else:
                stream = _Prefixed(head, hasher)
            yield from self._split(stream)
            # Hash whatever a decoding error left unread, so sha256 is the file's.
            while hasher.read(1 << 20):
                pass
        self.sha256 = hasher.sha256.hexdigest()
        self.bytes = hasher.bytes

    def _split(self, stream) -> Iterator[bytes]:
        carry = b""
        skipping = False  # inside a line longer than MAX_LINE_BYTES: drop it up to its newline
        lines = 0
        while True:
            try:
                data = stream.read(self.block_size)
            except (OSError, EOFError, zlib.error) as exc:
                self.error = f"corrupt gzip stream: {exc}"
                data = b""
            if not data:
                if carry:
                    yield carry
                return
            if skipping:
                cut = data.find(b"\n")
                if cut < 0:
                    self.oversized[lines + 1] += len(data)
                    continue
                self.oversized[lines + 1] += cut
                skipping = False
                data = b"\n" + data[cut + 1 :]
            cut = data.rfind(b"\n")
            if cut < 0:
                carry += data
                if len(carry) > MAX_LINE_BYTES:
                    # Keep the evidence counted, not the 2 GiB: the line becomes a reject.
                    self.oversized[lines + 1] = len(carry)
                    carry, skipping = b"", True
                continue
            block = carry + data[: cut + 1] if carry else data[: cut + 1]
            carry = data[cut + 1 :]
            lines += block.count(b"\n")
            yield block


class _Prefixed:
    """Replays the already-read magic bytes before the rest of the file."""

    def __init__(self, head: bytes, inner: _HashingFile):
        self.head = head
        self.inner = inner

    def read(self, n: int = -1) -> bytes:
        head, self.head = self.head, b""
        if n is not None and n >= 0:
            return head + self.inner.read(max(n - len(head), 0))
        return head + self.inner.read()

    def readable(self) -> bool:
        return True


@dataclass
class Lines:
    """The lines of one block: an Arrow string array (blank lines null) and their numbers."""

    text: pa.Array
    numbers: np.ndarray
    blank: int


def split_lines(block: bytes, first_line: int) -> Lines:
    """Return the lines of a block of whole lines; each keeps its trailing newline bytes."""
    buf = np.frombuffer(block, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    ends = nl + 1
    if len(block) and block[-1:] != b"\n":
        ends = np.append(ends, len(block))
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1]
    content = ends - starts - (buf[ends - 1] == 10) if len(ends) else ends
    if len(ends):
        has_cr = (content > 0) & (buf[np.maximum(starts + content - 1, 0)] == 13)
        content = content - has_cr
    valid = content > 0
    offsets = np.empty(len(ends) + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = ends
    text = pa.StringArray.from_buffers(
        len(ends),
        pa.py_buffer(offsets),
        pa.py_buffer(block),
        pa.array(valid, type=pa.bool_()).buffers()[1],
    )
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    return Lines(text=text, numbers=numbers, blank=int(len(ends) - valid.sum()))
