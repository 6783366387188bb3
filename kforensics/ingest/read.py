"""Reading one input file as blocks of whole lines: gzip found by content, bytes hashed."""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_SIZE = 32 * 1024 * 1024
# Longer lines (counted without their line end) are rejected, and never held whole when they
# span blocks: DuckDB needs about 30 times a line's size to map it, and a load stays under
# 1.5 GB. The API server caps request bodies at 3 MiB; only a RequestResponse event of a huge
# list comes near this.
MAX_LINE_BYTES = 16 * 1024 * 1024
# A block of short (or blank) lines is cut into pieces of at most this many lines, so that the
# per-line arrays stay small whatever the input: 32 MiB of newlines would otherwise be 32M lines.
MAX_BLOCK_LINES = 1 << 20


def is_gzip(head: bytes) -> bool:
    """Return whether a file that starts with head is gzip: a member header of RFC 1952.

    The magic, then deflate (CM 8) and no reserved flag set: a line of text that starts
    with the two magic bytes is no gzip stream, and must not cost the lines after it.
    """
    return len(head) >= 4 and head[:2] == GZIP_MAGIC and head[2] == 8 and not head[3] & 0xE0


def os_reason(exc: OSError) -> str:
    """Return what an OS error says went wrong (its strerror, else its text)."""
    return exc.strerror or str(exc)


class _HashingFile:
    """A read-only file wrapper that hashes and counts the bytes read through it."""

    def __init__(self, raw, on_bytes: Callable[[int], None] | None):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.on_bytes = on_bytes

    def _seen(self, data) -> None:
        self.sha256.update(data)
        self.bytes += len(data)
        if self.on_bytes and len(data):
            self.on_bytes(len(data))

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self._seen(data)
        return data

    def readinto(self, b) -> int:
        n = self.raw.readinto(b)
        self._seen(memoryview(b)[:n])
        return n

    def readable(self) -> bool:
        return True


_DONE = object()


class _Gunzip:
    """Decompresses (multi-member) gzip for readinto; a corrupt stream ends it, keeping what
    decoded cleanly before the damage and the reason in `error`."""

    def __init__(self, raw: _HashingFile):
        self.raw = raw
        self.inflater = zlib.decompressobj(wbits=31)
        self.pending = memoryview(b"")
        self.eof = False
        self.error: str | None = None

    def readinto(self, view: memoryview) -> int:
        n = 0
        while n < len(view):
            if len(self.pending):
                k = min(len(self.pending), len(view) - n)
                view[n : n + k] = self.pending[:k]
                self.pending = self.pending[k:]
                n += k
                continue
            if self.eof:
                break
            try:
                self.pending = memoryview(self._inflate())
            except zlib.error as exc:
                # self.pending holds what decoded before the damage.
                self.error, self.eof = f"corrupt gzip stream: {exc}", True
        return n

    def _inflate(self) -> bytes:
        data = self.raw.read(1 << 18)
        if not data:
            self.eof = True
            if not self.inflater.eof:
                self.error = "corrupt gzip stream: the file ends inside a compressed block"
            return b""
        saved = self.inflater.copy()
        try:
            return self._feed(data)
        except zlib.error:
            # Replay the piece in small steps to keep every byte that decoded cleanly.
            self.inflater = saved
            out = []
            for i in range(0, len(data), 256):
                try:
                    out.append(self._feed(data[i : i + 256]))
                except zlib.error as exc:
                    self.pending = memoryview(b"".join(out))
                    raise exc from None
            return b"".join(out)

    def _feed(self, data: bytes) -> bytes:
        out = [self.inflater.decompress(data)]
        while self.inflater.eof and self.inflater.unused_data.strip(b"\x00"):
            rest = self.inflater.unused_data
            self.inflater = zlib.decompressobj(wbits=31)
            out.append(self.inflater.decompress(rest))
        return b"".join(out)


@dataclass
class FileReader:
    """Reads one file as blocks that end on a line boundary; records hash, size and errors.

    A background thread reads, hashes and decompresses the next block while the caller
    works on the current one (hashlib, zlib and file reads release the GIL).
    """

    path: Path
    on_bytes: Callable[[int], None] | None = None
    block_size: int | None = None  # BLOCK_SIZE
    compression: str = "none"
    sha256: str = ""
    bytes: int = 0
    error: str | None = None
    # Lines over MAX_LINE_BYTES, by the ordinal of the block whose first line stands in for
    # them (an empty placeholder line), or the ordinal after the last block when at the end.
    oversized: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    unopened: bool = False  # open() failed: nothing of the file was read

    def blocks(self) -> Iterator[memoryview]:
        """Yield blocks of whole lines (the last may lack its newline); set `error` on failure."""
        return self._threaded(block for _, block in self._produce())

    def positioned_blocks(self) -> Iterator[tuple[int, memoryview]]:
        """Yield (offset in the decompressed stream, block) like `blocks`."""
        return self._threaded(self._produce())

    def lines(self) -> Iterator[Lines]:
        """Yield the file's lines block by block, split in the reading thread."""

        def split() -> Iterator[Lines]:
            next_line = 1
            for ordinal, (at, block) in enumerate(self._produce()):
                oversized = self.oversized.pop(ordinal, 0)
                for start, piece, nl in _pieces(block, MAX_BLOCK_LINES):
                    lines = split_lines(piece, next_line, at + start, nl)
                    lines.oversized, oversized = oversized, 0
                    next_line += len(lines.numbers)
                    yield lines

        return self._threaded(split())

    def _threaded(self, items: Iterator) -> Iterator:
        """Run the producer `items` in a thread, a block or two ahead of the consumer."""
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in items:
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(_DONE)
            except BaseException as exc:  # handed to the consumer, raised there
                q.put(exc)

        thread = threading.Thread(target=produce, name=f"read {self.path}", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    def _produce(self) -> Iterator[tuple[int, memoryview]]:
        """Yield (offset in the decompressed stream, block) for each block of whole lines."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 (closed below, after a read error too)
        except OSError as exc:
            self.error = f"cannot open: {os_reason(exc)}"
            self.unopened = True
            self.sha256 = hashlib.sha256().hexdigest()
            return
        hasher = _HashingFile(fh, self.on_bytes)
        try:
            stream = hasher
            if is_gzip(fh.peek(4)[:4]):
                self.compression = "gzip"
                stream = _Gunzip(hasher)
            yield from self._split(stream)
            self.error = getattr(stream, "error", None)
            if self.error:
                # Hash what a decoding error left unread, so sha256 is the file's. Never
                # otherwise: bytes appended since the end was reached were not loaded.
                while hasher.read(1 << 20):
                    pass
        except OSError as exc:
            # What was read before the error is kept; sha256 and bytes are of exactly that.
            self.error = f"read error after {hasher.bytes:,} bytes: {os_reason(exc)}"
        finally:
            fh.close()
            self.sha256 = hasher.sha256.hexdigest()
            self.bytes = hasher.bytes

    def _split(self, stream) -> Iterator[tuple[int, memoryview]]:
        carry = b""
        at = 0  # offset of carry's first byte in the (decompressed) stream
        skipping = False  # inside a line longer than MAX_LINE_BYTES: drop it up to its newline
        ordinal = 0  # blocks yielded so far
        block_size = self.block_size or BLOCK_SIZE
        while True:
            buf = bytearray(block_size + len(carry))
            buf[: len(carry)] = carry
            view = memoryview(buf)
            n = stream.readinto(view[len(carry) :])
            total = len(carry) + n
            if n == 0:
                if carry:
                    ordinal += 1
                    yield at, view[:total]
                return
            start = 0
            if skipping:
                cut = buf.find(b"\n", 0, total)
                if cut < 0:
                    self.oversized[ordinal] += total
                    carry, at = b"", at + total
                    continue
                self.oversized[ordinal] += cut
                skipping = False
                # The newline stays, as a blank placeholder for the rejected line.
                start = cut
            cut = buf.rfind(b"\n", start, total)
            if cut < 0:
                carry = bytes(view[start:total])
                at += start
                if len(carry) > MAX_LINE_BYTES:
                    # Count the line as a reject without holding it all in memory.
                    self.oversized[ordinal] = len(carry)
                    carry, skipping, at = b"", True, at + len(carry)
                continue
            carry = bytes(view[cut + 1 : total])
            ordinal += 1
            yield at + start, view[start : cut + 1]
            at += cut + 1


def _pieces(
    block: memoryview, max_lines: int, step: int = 1 << 22
) -> Iterator[tuple[int, memoryview, np.ndarray]]:
    """Yield (offset in block, piece, the piece's newline offsets): the block cut after every
    max_lines-th newline.

    The newlines are found once, `step` bytes at a time, so that a block of newlines alone
    holds at most max_lines + step offsets, and `split_lines` takes them as found.
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    start, found, count = 0, [], 0
    for at in range(0, len(buf), step):
        nl = np.flatnonzero(buf[at : at + step] == 10) + at
        while count + len(nl) >= max_lines:
            take = max_lines - count
            cut = int(nl[take - 1]) + 1
            found.append(nl[:take])
            yield start, block[start:cut], np.concatenate(found) - start
            nl, start, found, count = nl[take:], cut, [], 0
        found.append(nl)
        count += len(nl)
    if start < len(buf):  # every step ends by adding to `found`: never empty here
        yield start, block[start:], np.concatenate(found) - start


@dataclass
class Lines:
    """The lines of one block as Arrow strings without their line ends, and their numbers.

    `text` interleaves each line with its line end ("\n" or "\r\n"), so both views share the
    block's memory with no copy: element 2i is line i, element 2i+1 its (null) line end. Blank
    lines, and lines that are not valid UTF-8, are null too; `valid` marks the non-blank lines.
    """

    text: pa.Array
    numbers: np.ndarray
    valid: np.ndarray
    offsets: np.ndarray
    block: memoryview | bytes
    # Beside `text`: each line's SHA-256 (its event digest, see `line_digests`) and its offset
    # in the decompressed stream (where `kforensics verify` finds it again); null for line ends.
    digests: pa.Array | None = None
    positions: pa.Array | None = None
    at: int = 0  # the block's offset in the decompressed stream
    # Bytes of a line over MAX_LINE_BYTES that this block's first line (an empty placeholder)
    # stands in for; 0 when none.
    oversized: int = 0
    # (line number, size) of the lines over MAX_LINE_BYTES inside this block: not valid.
    too_long: list[tuple[int, int]] = field(default_factory=list)

    @property
    def blank(self) -> int:
        return int(len(self.valid) - self.valid.sum()) - len(self.too_long)

    def line_bytes(self, i: int) -> bytes:
        """Return the bytes of the i-th line of the block, without its line end."""
        return bytes(self.block[self.offsets[2 * i] : self.offsets[2 * i + 1]])


def _utf8_lines(block, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Return which lines are valid UTF-8 (DuckDB must never see a line that is not)."""
    ok = np.ones(len(starts), dtype=bool)
    if not len(block) or np.frombuffer(block, dtype=np.uint8).max() < 0x80:
        return ok  # ASCII, the common case: no need to decode
    try:
        str(block, "utf-8")
    except UnicodeDecodeError:
        view = memoryview(block)
        for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            try:
                str(view[a:b], "utf-8")
            except UnicodeDecodeError:
                ok[i] = False
    return ok


def line_digests(block, starts: np.ndarray, ends: np.ndarray, keep: np.ndarray) -> pa.Array:
    """Return the SHA-256 of each kept line, interleaved with nulls as `Lines.text` is.

    Computed here, in the reading thread, with hashlib (not DuckDB): the digest is an event's
    identity across loads, so it must not change with the DuckDB version, and SHA-256 keeps
    a crafted line from passing for another event (dedupe drops an event on a digest match).
    """
    view = memoryview(block)
    sha = hashlib.sha256
    idx = np.flatnonzero(keep)
    pairs = zip(starts[idx].tolist(), ends[idx].tolist(), strict=True)
    digests = b"".join([sha(view[a:b]).digest() for a, b in pairs])
    data = np.zeros((2 * len(starts), 32), dtype=np.uint8)
    data[2 * idx] = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 32)
    mask = np.zeros(2 * len(starts), dtype=bool)
    mask[2 * idx] = True
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(32),
        2 * len(starts),
        [pa.array(mask, type=pa.bool_()).buffers()[1], pa.py_buffer(data)],
    )


def split_lines(
    block: memoryview | bytes, first_line: int, at: int = 0, nl: np.ndarray | None = None
) -> Lines:
    """Return the lines of a block of whole lines (the last may lack its newline).

    `at` is the block's offset in the file's decompressed stream; `nl`, when given, the
    offsets of its newlines.
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    if nl is None:
        nl = np.flatnonzero(buf == 10)
    ends = nl + 1  # where each line, with its line end, stops
    if len(buf) and buf[-1] != 10:
        ends = np.append(ends, len(buf))
    n = len(ends)
    starts = np.zeros(n, dtype=np.int64)
    starts[1:] = ends[:-1]
    content_end = ends.copy()
    if n:
        has_nl = buf[ends - 1] == 10
        content_end -= has_nl
        has_cr = (content_end > starts) & (buf[np.maximum(content_end - 1, 0)] == 13)
        content_end -= has_cr
    valid = content_end > starts
    # A line over the limit inside one block (one that spans blocks is cut by `_split`).
    long = np.flatnonzero(content_end - starts > MAX_LINE_BYTES)
    valid[long] = False
    offsets = np.empty(2 * n + 1, dtype=np.int32)
    offsets[0:-1:2] = starts
    offsets[1::2] = content_end
    offsets[-1] = len(buf)
    mask = np.zeros(2 * n, dtype=bool)
    keep = valid & _utf8_lines(block, starts, content_end)
    mask[0::2] = keep
    text = pa.StringArray.from_buffers(
        2 * n,
        pa.py_buffer(offsets),
        pa.py_buffer(block),
        pa.array(mask, type=pa.bool_()).buffers()[1],
    )
    numbers = np.arange(first_line, first_line + n, dtype=np.int64)
    too_long = [(int(numbers[i]), int(content_end[i] - starts[i])) for i in long]
    positions = np.zeros(2 * n, dtype=np.int64)
    positions[0::2] = starts + at
    return Lines(
        text=text,
        numbers=numbers,
        valid=valid,
        offsets=offsets,
        block=block,
        too_long=too_long,
        digests=line_digests(block, starts, content_end, keep),
        positions=pa.array(positions, mask=~mask),
        at=at,
    )
