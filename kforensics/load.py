"""Loading audit logs into a case: every input record becomes an event, a duplicate or a reject."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from kforensics import formats
from kforensics import reader as reader_module
from kforensics.case import connect, create_schema
from kforensics.inventory import manifest_objects
from kforensics.mapping import mapped_select
from kforensics.progress import ByteProgress
from kforensics.reader import FileReader, InputError, Lines, discover, split_lines

# Rows per Arrow batch handed to DuckDB (a block is ~70k rows: its lines and line ends).
ARROW_BATCH_ROWS = 65536
# DuckDB keeps written blocks cached up to its limit (80% of RAM by default): a load needs far
# less, and the 2 GB budget for 10 million events must hold with the reader's blocks.
LOAD_MEMORY_LIMIT = "1GB"

# Raw text kept for a reject: enough to see what it was, never the 20 MB line.
REJECT_RAW_CHARS = 4096

EVENT_COLUMNS = (
    "event_id, request_id, audit_id, stage, level, ts, stage_ts, verb, username, user_groups, "
    "impersonated_user, impersonated_groups, source_ips, user_agent, resource, subresource, "
    "namespace, name, api_group, api_version, request_uri, code, decision, reason, annotations, "
    "request_object, response_object, source_format, source_line, source_index, quality, raw, "
    "envelope"
)

CHUNK_SCHEMA = pa.schema(
    [
        ("source_line", pa.int64()),
        ("source_index", pa.int32()),
        ("line", pa.string()),
        ("event", pa.string()),
        ("raw", pa.string()),
        ("envelope", pa.string()),
        ("source_format", pa.string()),
    ]
)


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
    formats: Counter = field(default_factory=Counter, repr=False)


@dataclass
class LoadResult:
    """The outcome of one load: per-file accounting, reject reasons and audit-ID collisions."""

    case: str
    load_id: int
    sources: list[SourceStats]
    reject_reasons: list[tuple[str, int]]
    collisions: int
    inventory_objects: int = 0
    # Events of this load (duplicates excluded) per quality flag (mapping.QUALITY_FLAGS).
    quality: dict[str, int] = field(default_factory=dict)

    @property
    def events_loaded(self) -> int:
        return sum(s.events_loaded for s in self.sources)

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.sources)

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.sources)

    @property
    def anything_read(self) -> bool:
        """True when at least one audit event (new or already in the case) or object was read."""
        return self.events_loaded + self.duplicates + self.inventory_objects > 0

    def to_dict(self) -> dict:
        """Return the result as plain JSON-able data."""
        sources = []
        for s in self.sources:
            d = asdict(s)
            d.pop("formats")
            sources.append(d)
        return {
            "case": self.case,
            "load_id": self.load_id,
            "events_loaded": self.events_loaded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "audit_id_collisions": self.collisions,
            "quality": dict(self.quality),
            "inventory_objects": self.inventory_objects,
            "reject_reasons": [{"reason": r, "count": n} for r, n in self.reject_reasons],
            "sources": sources,
        }


def _native_chunk(lines: Lines) -> pa.Table:
    """Return a block's lines as a chunk for the mapping (line ends and blanks are null rows)."""
    n = len(lines.numbers)
    line_numbers = np.zeros(2 * n, dtype=np.int64)
    line_numbers[0::2] = lines.numbers
    return pa.table(
        {
            "source_line": line_numbers,
            "source_index": pa.nulls(2 * n, pa.int32()),
            "line": lines.text,
            "event": pa.nulls(2 * n, pa.string()),
            "raw": pa.nulls(2 * n, pa.string()),
            "envelope": pa.nulls(2 * n, pa.string()),
            "source_format": pa.nulls(2 * n, pa.string()),  # NULL means native
        },
        schema=CHUNK_SCHEMA,
    )


class _Loader:
    def __init__(self, con: duckdb.DuckDBPyConnection, load_id: int):
        self.con = con
        self.load_id = load_id
        self.rejects: list[tuple] = []
        self.insert_sql = (
            f"INSERT INTO events ({EVENT_COLUMNS}, source_file, load_id) "  # noqa: S608
            f"SELECT {EVENT_COLUMNS}, $file, $load FROM ({mapped_select('chunk')}) "
            "WHERE problem IS NULL"
        )
        self.problem_sql = (
            "SELECT source_line, source_index, problem, raw "  # noqa: S608
            f"FROM ({mapped_select('chunk')}) WHERE problem IS NOT NULL"
        )

    def _insert(self, chunk: pa.Table, stats: SourceStats) -> int:
        """Insert the chunk's mappable events; return how many."""
        # DuckDB scans one Arrow batch per thread: small batches keep every core busy.
        chunk = pa.Table.from_batches(chunk.to_batches(max_chunksize=ARROW_BATCH_ROWS))
        params = {"file": stats.path, "load": self.load_id}
        # `chunk` in the SQL is this local variable (a DuckDB replacement scan). Not
        # con.register(): a view registered inside a transaction pins its Arrow data until
        # commit, which made memory grow with the input.
        count = self.con.execute(self.insert_sql, params).fetchone()[0]
        stats.events_loaded += count
        return count

    def reject(
        self, stats: SourceStats, line: int, index: int | None, reason: str, raw, new=True
    ) -> None:
        """Record a reject; `new` when it is a record not already counted in stats.records."""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="backslashreplace")
        size = None if raw is None else len(raw)
        text = None if raw is None else raw[:REJECT_RAW_CHARS]
        self.rejects.append((self.load_id, stats.path, line, index, reason, text, size))
        stats.rejected += 1
        stats.records += new

    def lines(
        self,
        reader: FileReader,
        blocks: Iterable[Lines],
        again: Callable[[], Iterable[Lines]],
        stats: SourceStats,
    ) -> None:
        """Load a line-oriented file (native JSON lines, or one envelope per line).

        Pass 1 streams every line through one INSERT: DuckDB maps the native events. Lines it
        did not take (envelopes, bad lines) are read again from `again()` in pass 2.
        """
        index: list[tuple[int, np.ndarray]] = []  # first line and non-blank mask of each block
        position = {"next_line": 1, "blocks": 0}

        def batches() -> Iterator[pa.RecordBatch]:
            for ordinal, lines in enumerate(blocks):
                n, first = len(lines.numbers), position["next_line"]
                blank = lines.blank
                if ordinal in reader.oversized:
                    self._oversized(stats, first, reader.oversized[ordinal])
                    blank -= 1
                    lines.valid[0] = False  # the placeholder is not a line to map
                position["next_line"] += n
                position["blocks"] = ordinal + 1
                stats.lines_read += n
                stats.blank_lines += blank
                index.append((first, lines.valid))
                yield from _native_chunk(lines).to_batches(max_chunksize=ARROW_BATCH_ROWS)

        # `chunk` in the SQL is this local variable (a DuckDB replacement scan). Not
        # con.register(): a view registered inside a transaction pins its data until commit.
        chunk = pa.RecordBatchReader.from_batches(CHUNK_SCHEMA, batches())  # noqa: F841
        params = {"file": stats.path, "load": self.load_id}
        inserted = self.con.execute(self.insert_sql, params).fetchone()[0]
        stats.events_loaded += inserted
        stats.formats[formats.NATIVE] += inserted
        stats.records += inserted
        next_line = position["next_line"]
        last = max(reader.oversized, default=-1)
        if last >= position["blocks"]:  # the file ended inside an oversized line
            stats.lines_read += 1
            self._oversized(stats, next_line, reader.oversized[last])
        if reader.error:
            # The unreadable rest of the file counts as one line: its true count is unknowable.
            stats.lines_read += 1
            reason = f"{reader.error} (the rest of the file, from this line on, is unreadable)"
            self.reject(stats, next_line, None, reason, None)
        nonblank = sum(int(valid.sum()) for _, valid in index)
        if inserted < nonblank:
            self._leftovers(index, again, stats)

    def _oversized(self, stats: SourceStats, line: int, size: int) -> None:
        limit = reader_module.MAX_LINE_BYTES
        self.reject(stats, line, None, f"line longer than {limit} bytes ({size:,} bytes)", None)

    def _leftovers(
        self,
        index: list[tuple[int, np.ndarray]],
        again: Callable[[], Iterable[Lines]],
        stats: SourceStats,
    ) -> None:
        """Pass 2: route the lines pass 1 did not take to the envelope parsers or to rejects."""
        wanted = np.concatenate([first + np.flatnonzero(valid) for first, valid in index])
        done = self.con.execute(
            "SELECT source_line FROM events WHERE load_id = $load AND source_file = $file",
            {"load": self.load_id, "file": stats.path},
        ).fetchnumpy()["source_line"]
        wanted = np.setdiff1d(wanted, done, assume_unique=True)
        for lines in again():
            if not len(wanted):
                break
            first, n = int(lines.numbers[0]), len(lines.numbers)
            here = wanted[: np.searchsorted(wanted, first + n)]
            wanted = wanted[len(here) :]
            records: list[formats.Record] = []
            raw_text: dict[int, str] = {}
            for ln in here.tolist():
                data = lines.line_bytes(ln - first)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self.reject(stats, ln, None, f"invalid UTF-8 at byte {exc.start}", data)
                    continue
                if not text.strip():
                    stats.blank_lines += 1
                    continue
                raw_text[ln] = text
                records.extend(formats.classify_line(text, ln))
            self.records(records, stats, raw_text)

    def records(self, records: list[formats.Record], stats: SourceStats, raw_text: dict) -> None:
        """Map unwrapped records through the shared SQL; reject what it cannot take."""
        stats.records += len(records)
        events = [r for r in records if r.reason is None]
        for r in records:
            if r.reason is not None:
                self.reject(stats, r.line, r.index, r.reason, raw_text.get(r.line), new=False)
        if not events:
            return
        chunk = pa.table(
            {
                "source_line": [r.line for r in events],
                "source_index": [r.index for r in events],
                "line": [None] * len(events),
                "event": [r.event for r in events],
                "raw": [r.raw for r in events],
                "envelope": [r.envelope for r in events],
                "source_format": [r.fmt for r in events],
            },
            schema=CHUNK_SCHEMA,
        )
        inserted = self._insert(chunk, stats)
        failed: set[tuple[int, int | None]] = set()
        if inserted < len(events):
            problems = self.con.execute(self.problem_sql).fetchall()  # reads local `chunk`
            for line, index, problem, raw in problems:
                failed.add((line, index))
                self.reject(stats, line, index, problem, raw, new=False)
        stats.formats.update(r.fmt for r in events if (r.line, r.index) not in failed)

    def document(self, data: bytes, stats: SourceStats) -> bool:
        """Load a multi-line JSON document (EventList, array, envelope); False if not one."""
        value, error = formats.parse_text(data.decode("utf-8", errors="strict"))
        if error is not None:
            return False
        records = formats.classify_value(value, 1, data)
        stats.lines_read = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        stats.blank_lines = sum(1 for ln in data.splitlines() if not ln.strip())
        self.records(records, stats, {})
        return True

    def flush_rejects(self) -> None:
        if not self.rejects:
            return
        cols = list(zip(*self.rejects, strict=True))
        reject_chunk = pa.table(  # noqa: F841 (read by the INSERT below: a replacement scan)
            {
                "load_id": pa.array(cols[0], pa.int32()),
                "source_file": pa.array(cols[1], pa.string()),
                "source_line": pa.array(cols[2], pa.int64()),
                "source_index": pa.array(cols[3], pa.int32()),
                "reason": pa.array(cols[4], pa.string()),
                "raw": pa.array(cols[5], pa.string()),
                "raw_bytes": pa.array(cols[6], pa.int64()),
            }
        )
        self.con.execute("INSERT INTO rejects BY NAME SELECT * FROM reject_chunk")
        self.rejects.clear()


def _looks_like_document(block) -> bool:
    """True when the file starts with JSON that does not fit on its first line."""
    view = memoryview(block)
    head = bytes(view[: 1 << 16]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] not in (b"{", b"["):
        return False
    skipped = min(len(view), 1 << 16) - len(head)
    end = bytes(view).find(b"\n", skipped) if len(view) > 1 << 16 else -1
    first = (
        head.split(b"\n", 1)[0]
        if b"\n" in head
        else bytes(view[skipped : end if end >= 0 else None])
    )
    return formats.parse_text(first.decode("utf-8", errors="replace"))[1] is not None


def _load_file(loader: _Loader, path: Path, progress: ByteProgress) -> SourceStats:
    stats = SourceStats(path=str(path))
    reader = FileReader(path, on_bytes=progress.advance)
    blocks = reader.lines()
    first = next(blocks, None)
    if first is not None and _looks_like_document(first.block):
        data = b"".join([first.block, *(b.block for b in blocks)])
        if not loader.document(data, stats):
            loader.lines(reader, [split_lines(data, 1)], lambda: [split_lines(data, 1)], stats)
    else:
        loader.lines(
            reader,
            itertools.chain([first] if first else [], blocks),
            lambda: FileReader(path).lines(),
            stats,
        )
    stats.sha256, stats.bytes, stats.compression = reader.sha256, reader.bytes, reader.compression
    stats.format = "+".join(sorted(f for f, n in stats.formats.items() if n)) or "unknown"
    loader.flush_rejects()
    return stats


def load(
    case: str | Path,
    paths: list[str | Path],
    *,
    progress: bool | None = None,
    arguments: list[str] | None = None,
    inventory: list[str | Path] = (),
) -> LoadResult:
    """Load files, folders and globs into the case atomically; return the accounting.

    `inventory` names `kubectl get -o json|yaml` dumps to keep beside the log (table inventory).
    """
    files = discover(paths) if paths else []
    try:
        manifests = [(f, manifest_objects(f)) for f in discover(inventory)] if inventory else []
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    total = sum(f.stat().st_size for f in files)
    Path(case).parent.mkdir(parents=True, exist_ok=True)
    con = connect(case, read_only=False)
    try:
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")
        create_schema(con)
        con.execute("BEGIN TRANSACTION")
        load_id = con.execute("SELECT nextval('load_seq')").fetchone()[0]
        con.execute(
            "INSERT INTO loads VALUES ($id, $now, NULL, $v, $args)",
            {
                "id": load_id,
                "now": datetime.now(UTC),
                "v": _version(),
                "args": arguments or [str(p) for p in paths],
            },
        )
        loader = _Loader(con, load_id)
        sources: list[SourceStats] = []
        with ByteProgress(total, enabled=progress) as bar:
            for path in files:
                sources.append(_load_file(loader, path, bar))
        _remove_duplicates(con, load_id, sources)
        for path, objects in manifests:
            for obj in objects:
                meta = obj.get("metadata") or {}
                con.execute(
                    "INSERT INTO inventory VALUES ($load, $file, $kind, $ns, $name, $obj)",
                    {
                        "load": load_id, "file": str(path), "kind": str(obj["kind"]),
                        "ns": meta.get("namespace"), "name": str(meta["name"]),
                        "obj": orjson.dumps(obj).decode(),
                    },
                )  # fmt: skip
        for s in sources:
            con.execute(
                "INSERT INTO sources VALUES ($load, $path, $sha, $bytes, $comp, $fmt, $lines, "
                "$blank, $records, $loaded, $dups, $rejected)",
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
                },
            )
        con.execute(
            "UPDATE loads SET finished_at = $now WHERE load_id = $id",
            {"now": datetime.now(UTC), "id": load_id},
        )
        reasons = con.execute(
            "SELECT reason, count(*) FROM rejects WHERE load_id = $id GROUP BY reason "
            "ORDER BY count(*) DESC, reason",
            {"id": load_id},
        ).fetchall()
        collisions = con.execute(
            "SELECT count(*) FROM (SELECT audit_id, stage FROM events WHERE audit_id IN "
            "(SELECT audit_id FROM events WHERE load_id = $id) GROUP BY ALL HAVING count(*) > 1)",
            {"id": load_id},
        ).fetchone()[0]
        quality = dict(
            con.execute(
                "SELECT flag, count(*) FROM (SELECT unnest(quality) AS flag FROM events "
                "WHERE load_id = $id) GROUP BY flag ORDER BY count(*) DESC, flag",
                {"id": load_id},
            ).fetchall()
        )
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    finally:
        con.close()
    n_objects = sum(len(objects) for _, objects in manifests)
    return LoadResult(str(case), load_id, sources, reasons, collisions, n_objects, quality)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _remove_duplicates(con: duckdb.DuckDBPyConnection, load_id: int, sources: list) -> None:
    """Delete this load's events already in the case (or seen earlier in this load)."""
    # Read by the query below as a replacement scan (see _Loader._insert).
    file_order = pa.table(  # noqa: F841
        {"source_file": [s.path for s in sources], "seq": list(range(len(sources)))}
    )
    had_events = con.execute(
        "SELECT count(*) > 0 FROM events WHERE load_id < $id", {"id": load_id}
    ).fetchone()[0]
    scope = (
        "WHERE event_id IN (SELECT event_id FROM events WHERE load_id = $id)"
        if had_events
        else "WHERE load_id = $id"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dup AS
        WITH repeated AS (
            SELECT event_id FROM events {scope} GROUP BY event_id HAVING count(*) > 1
        )
        SELECT rid, source_file FROM (
            SELECT e.rowid AS rid, e.source_file, e.load_id,
                   row_number() OVER (
                       PARTITION BY e.event_id
                       ORDER BY e.load_id, o.seq, e.source_line, e.source_index
                   ) AS rn
            FROM events e
            JOIN repeated USING (event_id)
            LEFT JOIN file_order o ON e.load_id = $id AND o.source_file = e.source_file
        ) WHERE rn > 1 AND load_id = $id
        """,  # noqa: S608 (scope is one of two constant strings)
        {"id": load_id},
    )
    counts = dict(con.execute("SELECT source_file, count(*) FROM dup GROUP BY 1").fetchall())
    if counts:
        con.execute("DELETE FROM events WHERE rowid IN (SELECT rid FROM dup)")
    con.execute("DROP TABLE dup")
    for s in sources:
        n = counts.get(s.path, 0)
        s.duplicates += n
        s.events_loaded -= n


def _version() -> str:
    from kforensics import __version__  # here: kforensics/__init__ imports this module

    return __version__


__all__ = ["LoadResult", "SourceStats", "load"]
