"""Loading audit logs into a case: every input record becomes an event, a duplicate or a reject."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from kforensics.case import connect, create_schema
from kforensics.ingest import read as reader_module
from kforensics.ingest import shapes as formats
from kforensics.ingest.jsonstream import RecordStream
from kforensics.ingest.manifests import ManifestError, manifest_files, manifest_objects
from kforensics.ingest.mapping import mapped_select
from kforensics.ingest.read import FileReader, InputError, Lines, discover
from kforensics.progress import ByteProgress

# Rows per Arrow batch handed to DuckDB (a block is ~70k rows: its lines and line ends).
ARROW_BATCH_ROWS = 65536
# ... and at most about this many bytes: DuckDB runs out of memory on a few big batches of long
# lines (tens of KB each) well before its limit, where many small ones load.
ARROW_BATCH_BYTES = 4 * 1024 * 1024
# DuckDB keeps written blocks cached up to its limit (80% of RAM by default): a load needs far
# less, and a load must stay under 1.5 GB whatever the input (tests/test_crafted_input.py).
LOAD_MEMORY_LIMIT = "640MB"

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
    error: str | None = None  # why the file, or the folder it stands for, could not be read
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


def _batch_rows(chunk: pa.Table) -> int:
    """Return the rows per Arrow batch that keep a batch near ARROW_BATCH_BYTES."""
    per_row = max(1, chunk.nbytes // max(1, chunk.num_rows))
    return max(16, min(ARROW_BATCH_ROWS, ARROW_BATCH_BYTES // per_row))


def _native_chunk(lines: Lines) -> pa.Table:
    """Return a block's lines as a chunk for the mapping (line ends and blanks are null rows)."""
    n = len(lines.numbers)
    if lines.blank > n // 2:
        # Mostly blank: hand DuckDB only the lines (a file of blank lines costs nothing).
        keep = np.flatnonzero(lines.valid)
        text = lines.text.take(pa.array(2 * keep))
        numbers, rows = lines.numbers[keep], len(keep)
    else:
        text, rows = lines.text, 2 * n
        numbers = np.zeros(rows, dtype=np.int64)
        numbers[0::2] = lines.numbers
    return pa.table(
        {
            "source_line": numbers,
            "source_index": pa.nulls(rows, pa.int32()),
            "line": text,
            "event": pa.nulls(rows, pa.string()),
            "raw": pa.nulls(rows, pa.string()),
            "envelope": pa.nulls(rows, pa.string()),
            "source_format": pa.nulls(rows, pa.string()),  # NULL means native
        },
        schema=CHUNK_SCHEMA,
    )


# A line file is mapped in windows: one streaming INSERT per window, then the lines DuckDB did
# not take (envelopes, bad lines) are handled from the window's blocks, still in memory. So each
# file is read once, and memory holds one window whatever the file's size.
WINDOW_BYTES = 256 * 1024 * 1024
WINDOW_LINES = 4 * 1024 * 1024
# Records of an envelope or document are mapped in batches of this many.
RECORD_BATCH = 20000
RECORD_BATCH_BYTES = 16 * 1024 * 1024
# Rejects are written to the case in batches, so millions of them never pile up in memory.
REJECT_BATCH = 20000


@dataclass
class _Block:
    """What a window keeps of one block: its non-blank lines' numbers and byte ranges."""

    numbers: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    block: memoryview | bytes

    def line_bytes(self, i: int) -> bytes:
        return bytes(self.block[self.starts[i] : self.ends[i]])


def _kept(lines: Lines) -> _Block:
    valid = lines.valid
    return _Block(
        numbers=lines.numbers[valid],
        starts=lines.offsets[0:-1:2][valid],
        ends=lines.offsets[1::2][valid],
        block=lines.block,
    )


@dataclass
class _Window:
    blocks: list[_Block] = field(default_factory=list)
    bytes: int = 0
    lines: int = 0
    full: bool = False  # more of the file may follow


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
        chunk = pa.Table.from_batches(chunk.to_batches(max_chunksize=_batch_rows(chunk)))
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
        size = None if raw is None else len(raw)
        if isinstance(raw, bytes | memoryview):
            raw = bytes(raw[: REJECT_RAW_CHARS * 4]).decode("utf-8", errors="backslashreplace")
        text = None if raw is None else raw[:REJECT_RAW_CHARS]
        self.rejects.append((self.load_id, stats.path, line, index, reason, text, size))
        stats.rejected += 1
        stats.records += new
        if len(self.rejects) >= REJECT_BATCH:
            self.flush_rejects()

    def lines(self, reader: FileReader, blocks: Iterator[Lines], stats: SourceStats) -> None:
        """Load a line-oriented file (native JSON lines, or one envelope per line)."""
        params = {"file": stats.path, "load": self.load_id}
        full = True
        while full:
            window = _Window()
            # `chunk` in the SQL is this local variable (a DuckDB replacement scan). Not
            # con.register(): a view registered inside a transaction pins its data until commit.
            chunk = pa.RecordBatchReader.from_batches(  # noqa: F841
                CHUNK_SCHEMA, self._fill(window, blocks, stats)
            )
            inserted = self.con.execute(self.insert_sql, params).fetchone()[0]
            stats.events_loaded += inserted
            stats.formats[formats.NATIVE] += inserted
            stats.records += inserted
            if inserted < sum(len(b.numbers) for b in window.blocks):
                self._leftovers(window.blocks, stats)
            full = window.full
        for rest in reader.oversized.values():  # the file ended inside an oversized line
            stats.lines_read += 1
            self._oversized(stats, stats.lines_read, rest)
        self._read_error(reader, stats)

    def _fill(
        self, window: _Window, blocks: Iterator[Lines], stats: SourceStats
    ) -> Iterator[pa.RecordBatch]:
        """Yield the next blocks as Arrow batches until the window is full or the file ends."""
        for lines in blocks:
            self._account(lines, stats)
            window.blocks.append(_kept(lines))
            chunk = _native_chunk(lines)
            yield from chunk.to_batches(max_chunksize=_batch_rows(chunk))
            window.bytes += len(lines.block)
            window.lines += len(lines.numbers)
            if window.bytes >= WINDOW_BYTES or window.lines >= WINDOW_LINES:
                window.full = True
                return

    def _account(self, lines: Lines, stats: SourceStats) -> None:
        """Count a block's lines; an oversized line's placeholder becomes its reject."""
        first = int(lines.numbers[0]) if len(lines.numbers) else stats.lines_read + 1
        stats.lines_read += len(lines.numbers)
        blank = lines.blank
        if lines.oversized:
            self._oversized(stats, first, lines.oversized)
            blank -= 1
        for line, size in lines.too_long:
            self._oversized(stats, line, size)
        stats.blank_lines += blank

    def _read_error(self, reader: FileReader, stats: SourceStats) -> None:
        if reader.error and not reader.unopened:
            # The unreadable rest of the file counts as one line: its true count is unknowable.
            stats.lines_read += 1
            reason = f"{reader.error} (the rest of the file, from this line on, is unreadable)"
            self.reject(stats, stats.lines_read, None, reason, None)

    def _oversized(self, stats: SourceStats, line: int, size: int) -> None:
        limit = reader_module.MAX_LINE_BYTES
        self.reject(stats, line, None, f"line longer than {limit} bytes ({size:,} bytes)", None)

    def _leftovers(self, window: list[_Block], stats: SourceStats) -> None:
        """Route the window's lines that the SQL mapping did not take to the envelope parsers."""
        lo = int(min(b.numbers[0] for b in window if len(b.numbers)))
        hi = int(max(b.numbers[-1] for b in window if len(b.numbers)))
        taken = self.con.execute(
            "SELECT source_line FROM events WHERE load_id = $load AND source_file = $file "
            "AND source_line BETWEEN $lo AND $hi",
            {"load": self.load_id, "file": stats.path, "lo": lo, "hi": hi},
        ).fetchnumpy()["source_line"]
        records: list[formats.Record] = []
        raw_text: dict[tuple[int, int | None], str] = {}
        for b in window:
            left = np.flatnonzero(~np.isin(b.numbers, taken, assume_unique=True))
            for i in left.tolist():
                ln, data = int(b.numbers[i]), b.line_bytes(i)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self.reject(stats, ln, None, f"invalid UTF-8 at byte {exc.start}", data)
                    continue
                if not text.strip():  # whitespace that is not ASCII blank: U+00A0, BOM...
                    stats.blank_lines += 1
                    continue
                raw_text[(ln, None)] = text
                records.extend(formats.classify_line(text, ln))
                if len(records) >= RECORD_BATCH:
                    self.records(records, stats, raw_text)
                    records, raw_text = [], {}
        self.records(records, stats, raw_text)

    def records(self, records: list[formats.Record], stats: SourceStats, raw_text: dict) -> None:
        """Map unwrapped records through the shared SQL; reject what it cannot take."""
        stats.records += len(records)
        events = [r for r in records if r.reason is None]
        for r in records:
            if r.reason is not None:
                raw = raw_text.get((r.line, r.index), raw_text.get((r.line, None)))
                self.reject(stats, r.line, r.index, r.reason, raw, new=False)
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

    def document(self, reader: FileReader, blocks: Iterator[bytes], stats: SourceStats) -> None:
        """Load a JSON document (EventList, array, envelope, concatenated values), streamed."""
        blanks = _BlankCounter()
        stream = RecordStream(blanks.counted(blocks), max_record_bytes=reader_module.MAX_LINE_BYTES)
        records: list[formats.Record] = []
        raw_text: dict[tuple[int, int | None], str] = {}
        pending = 0
        for piece in stream:
            if piece.problem is not None:
                self.reject(stats, piece.line, piece.index, piece.problem, piece.data)
                if piece.data is not None:
                    records.extend(self._salvage(piece, stats))
                continue
            try:
                text = bytes(piece.data).decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"invalid UTF-8 at byte {exc.start} of the record"
                self.reject(stats, piece.line, piece.index, reason, piece.data)
                continue
            found = formats.classify_piece(text, piece.container, piece.line, piece.index)
            raw_text[(piece.line, piece.index)] = text[:REJECT_RAW_CHARS]
            records.extend(found)
            pending += len(text)
            if len(records) >= RECORD_BATCH or pending >= RECORD_BATCH_BYTES:
                self.records(records, stats, raw_text)
                records, raw_text, pending = [], {}, 0
        self.records(records, stats, raw_text)
        for line, container in stream.empty_containers:
            self.reject(stats, line, None, f"empty {container or 'JSON'} array: no events", None)
        stats.lines_read = stream.lines
        stats.blank_lines = blanks.blank
        self._read_error(reader, stats)

    def _salvage(self, piece, stats: SourceStats) -> list[formats.Record]:
        """Return the records of the whole JSON objects on their own lines in a broken value.

        A file that looked like a document because its first line is a stray `{` or `[` is
        really JSON lines: no such line can hide the events after it.
        """
        found: list[formats.Record] = []
        for offset, raw in enumerate(bytes(piece.data).split(b"\n")):
            text = raw.strip().rstrip(b",").strip()
            # The broken value's own first line is no exception: after a stray `[` the piece
            # is an unterminated element that starts with a whole event.
            if not (text.startswith(b"{") and text.endswith(b"}")):
                continue
            try:
                line_text = text.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if formats.parse_text(line_text)[1] is None:  # a record beside the broken value
                found.extend(formats.classify_line(line_text, piece.line + offset))
        return found

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


class _BlankCounter:
    """Counts whitespace-only lines of a document as its blocks stream past."""

    def __init__(self) -> None:
        self.blank = 0
        self.line_has_text = False  # the current (unfinished) line has a non-blank byte

    def counted(self, blocks: Iterable[memoryview]) -> Iterator[memoryview]:
        ended = True
        for block in blocks:
            buf = np.frombuffer(block, dtype=np.uint8)
            if not len(buf):
                continue
            text = (buf != 32) & (buf != 10) & (buf != 13) & (buf != 9)
            nl = np.flatnonzero(buf == 10)
            if len(nl):
                # Whether each line (from the previous newline to this one) has any text.
                starts = np.concatenate(([0], nl[:-1] + 1))
                has = np.logical_or.reduceat(text[: nl[-1] + 1], starts)
                has[0] |= self.line_has_text
                self.blank += int(len(has) - np.count_nonzero(has))
                self.line_has_text = bool(text[nl[-1] + 1 :].any())
            else:
                self.line_has_text = self.line_has_text or bool(text.any())
            ended = buf[-1] == 10
            yield block
        if not ended and not self.line_has_text:
            self.blank += 1


def _starts_document(block) -> bool:
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
    error = formats.parse_text(first.decode("utf-8", errors="replace"))[1]
    # Nested past Python's parser (DuckDB's has no such limit) is still a whole line.
    return error is not None and "depth limit" not in error


def _load_file(loader: _Loader, path: Path, progress: ByteProgress) -> SourceStats:
    stats = SourceStats(path=str(path))
    reader = FileReader(path, on_bytes=progress.advance)
    blocks = reader.lines()
    first = next(blocks, None)
    if first is not None and _starts_document(first.block):
        rest = (lines.block for lines in blocks)
        loader.document(reader, itertools.chain([first.block], rest), stats)
    else:
        loader.lines(reader, itertools.chain([first] if first else [], blocks), stats)
    stats.sha256, stats.bytes, stats.compression = reader.sha256, reader.bytes, reader.compression
    stats.format = "+".join(sorted(f for f, n in stats.formats.items() if n)) or "unknown"
    if reader.unopened:
        stats.error = reader.error
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
    files, unreadable = discover(paths) if paths else ([], [])
    try:
        manifests = [(f, manifest_objects(f)) for f in manifest_files(inventory)]
    except ManifestError as exc:
        raise InputError(str(exc)) from exc
    total = sum(_size(f) for f in files)
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
        sources += [SourceStats(path=str(u.path), error=u.reason) for u in unreadable]
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
                "$blank, $records, $loaded, $dups, $rejected, $error)",
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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reported when the file is read


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _remove_duplicates(con: duckdb.DuckDBPyConnection, load_id: int, sources: list) -> None:
    """Delete this load's events already in the case (or seen earlier in this load).

    An exact repeat is the same JSON whatever its whitespace or escaping: the same event as a
    native line with spaces, inside a pretty-printed EventList and re-encoded from an AKS
    record is one event. Only events sharing audit ID, stage and time can be repeats, so the
    canonical text is computed for those alone.
    """
    # Read by the query below as a replacement scan (see _Loader._insert).
    file_order = pa.table(  # noqa: F841
        {"source_file": [s.path for s in sources], "seq": list(range(len(sources)))}
    )
    had_events = con.execute(
        "SELECT count(*) > 0 FROM events WHERE load_id < $id", {"id": load_id}
    ).fetchone()[0]
    same = (
        "e.audit_id IS NOT DISTINCT FROM m.audit_id AND e.stage IS NOT DISTINCT FROM m.stage "
        "AND e.ts IS NOT DISTINCT FROM m.ts"
    )
    scope = (
        "FROM events e JOIN (SELECT DISTINCT audit_id, stage, ts FROM events "  # noqa: S608
        "WHERE load_id = $id) m ON " + same
        if had_events
        else "FROM events e WHERE e.load_id = $id"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dup AS
        WITH cand AS (
            SELECT e.rowid AS rid, e.source_file, e.load_id, e.source_line, e.source_index,
                   e.audit_id, e.stage, e.ts, e.raw
            {scope}
        ),
        multi AS (SELECT audit_id, stage, ts FROM cand GROUP BY ALL HAVING count(*) > 1),
        keyed AS (
            SELECT e.*, md5(json(e.raw)) AS canonical
            FROM cand e JOIN multi m ON {same}
        )
        SELECT rid, source_file FROM (
            SELECT k.rid, k.source_file, k.load_id,
                   row_number() OVER (
                       PARTITION BY k.canonical
                       ORDER BY k.load_id, o.seq, k.source_line, k.source_index
                   ) AS rn
            FROM keyed k
            LEFT JOIN file_order o ON k.load_id = $id AND o.source_file = k.source_file
        ) WHERE rn > 1 AND load_id = $id
        """,  # noqa: S608 (scope and same are constant strings)
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
