"""The original bytes of events: held in the case, or read again from their sha256-named source.

A case keeps the text of the records it unwrapped from documents and envelopes (`events.raw`).
A native line is the event itself: the case keeps where it lies (`raw_offset` in the file's
decompressed stream) and its SHA-256 (`digest`), and the file's own SHA-256 in `sources`. Read
again, a line is the original only if its digest matches, and a file only if its sha256 does:
`verify` proves a whole case against its sources, `originals` returns the bytes of some events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from kforensics.ingest.read import FileReader


def read_lines(path: str | Path, offsets: Iterable[int]) -> tuple[dict[int, bytes], FileReader]:
    """Return the line (without its line end) starting at each offset of the decompressed file.

    The whole file is read, so the returned reader's `sha256`, `bytes` and `error` say what
    it was; offsets past its end are missing from the result.
    """
    wanted = sorted(set(offsets))
    found: dict[int, bytes] = {}
    reader = FileReader(Path(path))
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


def originals(
    con: duckdb.DuckDBPyConnection, event_ids: Iterable[str], search: Iterable[str | Path] = ()
) -> dict[str, bytes | None]:
    """Return each event's original bytes (None where its source is gone or was changed)."""
    ids = sorted(set(event_ids))
    rows = con.execute(
        "SELECT event_id, source_file, raw_offset, digest, raw FROM events "
        "WHERE event_id IN (SELECT unnest($ids))",
        {"ids": ids},
    ).fetchall()
    out: dict[str, bytes | None] = dict.fromkeys(ids)
    by_file: dict[str, list[tuple]] = {}
    for event_id, source_file, offset, digest, raw in rows:
        if offset is None:
            out[event_id] = None if raw is None else raw.encode("utf-8")
        else:
            by_file.setdefault(source_file, []).append((event_id, offset, bytes(digest)))
    for source_file, wanted in by_file.items():
        where = locate(source_file, search)
        if where is None:
            continue
        lines, _ = read_lines(where, [offset for _, offset, _ in wanted])
        for event_id, offset, digest in wanted:
            line = lines.get(offset)
            if line is not None and hashlib.sha256(line).digest() == digest:
                out[event_id] = line
    return out


@dataclass
class SourceCheck:
    """What `verify` found for one source file of the case."""

    path: str
    sha256: str
    bytes: int = 0  # of the file as loaded
    found_at: str | None = None  # where the file was read (None: not found)
    grown: int = 0  # bytes appended since the load (a live audit.log): not part of the case
    events: int = 0  # native lines of the case read from this file
    verified: int = 0  # ... whose bytes at raw_offset have the event's digest
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
    def ok(self) -> bool:
        return all(s.ok for s in self.sources if s.events)


def verify(case: str | Path, search: Iterable[str | Path] = ()) -> Verification:
    """Return the proof of a case against its sources: every native event's bytes, re-read."""
    from kforensics.case import connect

    search = list(search)
    con = connect(case)
    try:
        sources = con.execute(
            "SELECT path, any_value(sha256), any_value(bytes) FROM sources "
            "WHERE error IS NULL GROUP BY path ORDER BY path"
        ).fetchall()
        held = con.execute("SELECT count(*) FROM events WHERE raw_offset IS NULL").fetchone()[0]
        checks = []
        for path, sha, size in sources:
            wanted = con.execute(
                "SELECT raw_offset, digest, source_line FROM events "
                "WHERE source_file = $p AND raw_offset IS NOT NULL",
                {"p": path},
            ).fetchall()
            checks.append(_check(path, sha, size, wanted, search))
    finally:
        con.close()
    return Verification(str(case), checks, held)


def prefix_sha256(path: Path, size: int) -> tuple[str, int]:
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
        fh.seek(0, 2)
        return digest.hexdigest(), fh.tell()


def _check(path: str, sha: str, size: int, wanted: list[tuple], search: list) -> SourceCheck:
    """Return the check of one source: its sha256, and each of its events' digests."""
    check = SourceCheck(path, sha, size, events=len(wanted))
    where = locate(path, search)
    if where is None:
        check.problems.append("not found (give its folder with --sources)")
        return check
    check.found_at = str(where)
    try:
        now, size_now = prefix_sha256(where, size)
    except OSError as exc:
        check.problems.append(f"cannot read: {exc.strerror or exc}")
        return check
    # A live audit.log grows after a load: the loaded bytes are its first `size`, unchanged
    if size_now < size or now != sha:
        check.problems.append(
            f"changed since the load: its first {size:,} bytes no longer have sha256 {sha}"
        )
        return check
    check.grown = size_now - size
    lines, _ = read_lines(where, [offset for offset, _, _ in wanted])
    bad = []
    for offset, digest, line_no in wanted:
        line = lines.get(offset)
        if line is not None and hashlib.sha256(line).digest() == bytes(digest):
            check.verified += 1
        else:
            bad.append(line_no)
    if bad:
        shown = ", ".join(str(n) for n in sorted(bad)[:5])
        check.problems.append(f"{len(bad)} events differ from the file (lines {shown})")
    return check
