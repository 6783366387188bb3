"""The accounting of one input file (SourceStats) and its row in the case's `sources` table."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import duckdb


@dataclass
class SourceStats:
    """What one input file held and where each of its records went."""

    path: str
    sha256: str = ""
    bytes: int = 0
    compression: str = "none"
    format: str = ""
    lines_read: int = 0
    blank_lines: int = 0
    records: int = 0
    events_loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    error: str | None = None  # why the file, or the folder it stands for, could not be read
    # The load that read these very bytes (same size and SHA-256) before: this one skipped it
    already_loaded: int | None = None
    formats: Counter = field(default_factory=Counter, repr=False)


def skipped_source(
    path: str, sha256: str, size: int, compression: str, earlier: int
) -> SourceStats:
    """Return the accounting of a file skipped because load `earlier` read the same bytes."""
    return SourceStats(
        path=path, sha256=sha256, bytes=size, compression=compression, format="skipped",
        already_loaded=earlier,
    )  # fmt: skip


def path_text(path: str | os.PathLike) -> str:
    """Return the path as text the case can store: name bytes that are not UTF-8 as \\xNN."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a name that is not UTF-8, decoded with surrogate escapes
        pass
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name byte stands for
        return text.encode("utf-8", "backslashreplace").decode()


def write_sources(con: duckdb.DuckDBPyConnection, load_id: int, sources: list[SourceStats]) -> None:
    """Write one `sources` row per file of the load (returns nothing)."""
    for s in sources:
        con.execute(
            "INSERT INTO sources VALUES ($load, $path, $sha, $bytes, $comp, $fmt, $lines, "
            "$blank, $records, $loaded, $dups, $rejected, $error, $already)",
            {
                "load": load_id,
                "path": s.path,
                "sha": s.sha256,
                "bytes": s.bytes,
                "comp": s.compression,
                "fmt": s.format,
                "lines": s.lines_read,
                "blank": s.blank_lines,
                "records": s.records,
                "loaded": s.events_loaded,
                "dups": s.duplicates,
                "rejected": s.rejected,
                "error": s.error,
                "already": s.already_loaded,
            },
        )
