"""The original bytes of events: held in the case, or read again from their sha256-named source.

A case keeps the text of the records it unwrapped from documents and envelopes (`events.raw`).
A native line is the event itself: the case keeps where it lies (`raw_offset` in the file's
decompressed stream) and its SHA-256 (`digest`), and the file's own SHA-256 in `sources`. Read
again, a line is the original only if its digest matches, and a file only if its sha256 does:
`verify` proves a whole case against its sources, `originals` returns the bytes of some events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from kforensics.ingest.read import FileReader


def read_lines(
    path: str | Path, offsets: Iterable[int], on_bytes: Callable[[int], None] | None = None
) -> tuple[dict[int, bytes], FileReader]:
    """Return the line (without its line end) starting at each offset of the decompressed file.

    The whole file is read, so the returned reader's `sha256`, `bytes` and `error` say what
    it was; offsets past its end are missing from the result.
    """
    wanted = sorted(set(offsets))
    found: dict[int, bytes] = {}
    reader = FileReader(Path(path), on_bytes=on_bytes)
    i = 0
    for at, block in reader.positioned_blocks():
        end = at + len(block)
        data = None
        while i < len(wanted) and wanted[i] < end:
            start = wanted[i] - at
            if start >= 0:
                data = data if data is not None else bytes(block)
                nl = data.find(b"\n", start)
                line = data[start:] if nl < 0 else data[start:nl]
                found[wanted[i]] = line[:-1] if line.endswith(b"\r") else line
            i += 1
    return found, reader


def locate(path: str, search: Iterable[str | Path] = ()) -> Path | None:
    """Return where a source file is now: its recorded path, else its name in a search folder."""
    candidates = [Path(path)] + [Path(d) / Path(path).name for d in search]
    for candidate in candidates:
        try:
            if candidate.is_file():
                return candidate
        except OSError:
            continue
    return None


def prefix_sha256(
    path: Path, size: int, on_bytes: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Return the SHA-256 of the file's first `size` bytes, and the file's size now."""
    digest = hashlib.sha256()
    left = size
    with open(path, "rb") as fh:
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        fh.seek(0, 2)
        return digest.hexdigest(), fh.tell()


@dataclass
class Finder:
    """Finds a loaded source by its content: the first `bytes` bytes with its sha256.

    The recorded path first, then its name in each search folder, then every file under the
    search folders at least as long (a rotated audit.log is audit.log.1 now). A live log that
    grew since the load is still the source: its first bytes are.
    """

    search: list[Path] = field(default_factory=list)
    on_bytes: Callable[[int], None] | None = None
    _hashed: dict[tuple[Path, int], tuple[str, int]] = field(default_factory=dict)
    _under: list[Path] | None = None

    def find(self, path: str, sha256: str, size: int) -> tuple[Path | None, int, list[str]]:
        """Return (where the source is, bytes appended since, why candidates were not it)."""
        named = [Path(path)] + [d / Path(path).name for d in self.search]
        seen: set[Path] = set()
        why: list[str] = []
        for candidate in [*named, *self._files()]:
            if candidate in seen:
                continue
            seen.add(candidate)
            # the recorded path is the subject of the message; another candidate is named
            label = "" if candidate == Path(path) else f"{candidate}: "
            try:
                if not candidate.is_file() or candidate.stat().st_size < size:
                    if candidate in named and candidate.exists():
                        why.append(f"{label}shorter than the {size:,} bytes loaded")
                    continue
                key = (candidate, size)
                if key not in self._hashed:
                    self._hashed[key] = prefix_sha256(candidate, size, self.on_bytes)
                sha_now, size_now = self._hashed[key]
            except OSError as exc:
                if candidate in named:
                    why.append(f"{label}cannot read: {exc.strerror or exc}")
                continue
            if sha_now == sha256:
                return candidate, size_now - size, []
            if candidate in named:
                why.append(f"{label}changed since the load (its first {size:,} bytes differ)")
        return None, 0, why or ["not found (give the folder it is in now with --sources)"]

    def _files(self) -> list[Path]:
        if self._under is None:
            self._under = sorted(p for d in self.search for p in Path(d).rglob("*") if p.is_file())
        return self._under


def originals(
    con: duckdb.DuckDBPyConnection, event_ids: Iterable[str], search: Iterable[str | Path] = ()
) -> dict[str, bytes | None]:
    """Return each event's original bytes (None where its source is gone or was changed)."""
    ids = sorted(set(event_ids))
    rows = con.execute(
        "SELECT e.event_id, e.source_file, s.sha256, s.bytes, e.raw_offset, e.digest, e.raw "
        "FROM events e LEFT JOIN sources s ON s.load_id = e.load_id AND s.path = e.source_file "
        "WHERE e.event_id IN (SELECT unnest($ids))",
        {"ids": ids},
    ).fetchall()
    out: dict[str, bytes | None] = dict.fromkeys(ids)
    by_file: dict[tuple, list[tuple]] = {}
    for event_id, source_file, sha, size, offset, digest, raw in rows:
        if offset is None:
            out[event_id] = None if raw is None else raw.encode("utf-8")
        else:
            by_file.setdefault((source_file, sha, size), []).append((event_id, offset, digest))
    finder = Finder([Path(d) for d in search])
    for (source_file, sha, size), wanted in by_file.items():
        where = None if sha is None else finder.find(source_file, sha, size)[0]
        if where is None:
            continue
        lines, _ = read_lines(where, [offset for _, offset, _ in wanted])
        for event_id, offset, digest in wanted:
            line = lines.get(offset)
            if line is not None and hashlib.sha256(line).digest() == bytes(digest):
                out[event_id] = line
    return out


@dataclass
class SourceCheck:
    """What `verify` found for one source file of one load."""

    load_id: int
    path: str
    sha256: str
    bytes: int  # of the file as loaded
    events: int = 0  # native lines of the case read from this file in that load
    found_at: str | None = None  # where the file was found (None: not found)
    grown: int = 0  # bytes appended since the load (a live audit.log): not part of the case
    verified: int = 0  # events whose bytes at raw_offset have the event's digest
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.found_at is not None and not self.problems


@dataclass
class Verification:
    """The outcome of `verify`: each source, and the events the case holds on its own."""

    case: str
    sources: list[SourceCheck]
    held: int  # events whose text the case holds (records of documents and envelopes)

    @property
    def events(self) -> int:
        return self.held + sum(s.events for s in self.sources)

    @property
    def verified(self) -> int:
        return self.held + sum(s.verified for s in self.sources)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sources)


# Events checked at a time: what verify holds in memory is one batch and one file block.
VERIFY_BATCH = 65536


def verify(
    case: str | Path, search: Iterable[str | Path] = (), progress: bool | None = None
) -> Verification:
    """Return the proof of a case against its sources: every native event's bytes, re-read."""
    from kforensics.case import connect
    from kforensics.progress import ByteProgress

    con = connect(case)
    try:
        sources = con.execute(
            "SELECT s.load_id, s.path, s.sha256, s.bytes, count(e.raw_offset) "
            "FROM sources s JOIN events e ON e.load_id = s.load_id AND e.source_file = s.path "
            "WHERE e.raw_offset IS NOT NULL "
            "GROUP BY ALL ORDER BY s.path, s.load_id"
        ).fetchall()
        held = con.execute("SELECT count(*) FROM events WHERE raw_offset IS NULL").fetchone()[0]
        with ByteProgress(2 * sum(r[3] for r in sources), progress, "verifying") as bar:
            finder = Finder([Path(d) for d in search], bar.advance)
            checks = []
            for load_id, path, sha, size, events in sources:
                check = SourceCheck(load_id, path, sha, size, events)
                where, check.grown, why = finder.find(path, sha, size)
                if where is None:
                    check.problems += why
                else:
                    check.found_at = str(where)
                    # in file order, a batch at a time: memory stays flat whatever the case
                    wanted = con.execute(
                        "SELECT raw_offset, digest, source_line FROM events WHERE load_id = $l "
                        "AND source_file = $p AND raw_offset IS NOT NULL ORDER BY raw_offset",
                        {"l": load_id, "p": path},
                    )
                    _check_lines(check, where, _wanted(wanted), bar.advance)
                checks.append(check)
    finally:
        con.close()
    return Verification(str(case), checks, held)


def _wanted(result: duckdb.DuckDBPyConnection) -> Iterator[tuple[int, bytes, int]]:
    """Yield the rows of a query's result, fetched a batch at a time."""
    while rows := result.fetchmany(VERIFY_BATCH):
        yield from rows


def _check_lines(
    check: SourceCheck, where: Path, wanted: Iterator[tuple], on_bytes: Callable[[int], None]
) -> None:
    """Count the events whose line at its offset of the file has the event's digest."""
    bad: list[int] = []  # the first differing lines, for the message
    n_bad = 0
    item = next(wanted, None)
    for at, block in FileReader(where, on_bytes=on_bytes).positioned_blocks():
        end = at + len(block)
        data = None
        while item is not None and item[0] < end:
            offset, digest, line_no = item
            ok = False
            if offset >= at:
                data = data if data is not None else bytes(block)
                start = offset - at
                nl = data.find(b"\n", start)
                line = data[start:] if nl < 0 else data[start:nl]
                line = line[:-1] if line.endswith(b"\r") else line
                ok = hashlib.sha256(line).digest() == bytes(digest)
            if ok:
                check.verified += 1
            else:
                n_bad += 1
                bad = sorted([*bad, line_no])[:5]
            item = next(wanted, None)
    while item is not None:  # offsets past the file's end
        n_bad += 1
        bad = sorted([*bad, item[2]])[:5]
        item = next(wanted, None)
    if n_bad:
        shown = ", ".join(str(n) for n in bad)
        check.problems.append(f"{n_bad:,} events differ from the file (lines {shown})")
