"""Loading audit logs into a case: every input record becomes an event, a duplicate or a reject.

This is the orchestration: files are found (discover), each is loaded as a line file
(windows) or a JSON document (documents), then repeats are removed (dedupe) and the
accounting is written (sources, rejects), all in one transaction.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from kforensics.case import connect, create_schema
from kforensics.errors import CaseError, InputError
from kforensics.ingest.dedupe import count_collisions, remove_duplicates
from kforensics.ingest.discover import discover
from kforensics.ingest.documents import load_document, starts_document
from kforensics.ingest.events import EventWriter
from kforensics.ingest.manifests import ManifestError, manifest_files, manifest_objects
from kforensics.ingest.original import prefix_sha256
from kforensics.ingest.read import FileReader, is_gzip
from kforensics.ingest.rejects import reject_reasons
from kforensics.ingest.sources import SourceStats, path_text, skipped_source, write_sources
from kforensics.ingest.windows import load_lines
from kforensics.progress import ByteProgress
from kforensics.untrusted import visible

# DuckDB keeps written blocks cached up to its limit (80% of RAM by default): a load needs far
# less, and a load must stay under 1.5 GB whatever the input (tests/test_crafted_input.py).
LOAD_MEMORY_LIMIT = "640MB"


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
    # Events kept that may repeat earlier ones (same audit ID, stage and time, other bytes):
    # the earlier copy's source file was gone or changed, so they could not be compared
    unconfirmed_repeats: int = 0
    replaced: bool = False  # the case was rebuilt from these inputs alone (load --replace)
    # load --replace: the replaced case's notes carried over, and those that could not be (an
    # event note whose event the new case does not hold), as `note_id: why`
    notes_kept: int = 0
    notes_lost: list[str] = field(default_factory=list)

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
    def skipped(self) -> list[SourceStats]:
        """The files skipped because the case had read the very same bytes before."""
        return [s for s in self.sources if s.already_loaded is not None]

    @property
    def anything_read(self) -> bool:
        """True when at least one audit event (new or already in the case) or object was read."""
        read = self.events_loaded + self.duplicates + self.inventory_objects
        return read > 0 or bool(self.skipped)

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
            "skipped_as_loaded": len(self.skipped),
            "audit_id_collisions": self.collisions,
            "unconfirmed_repeats": self.unconfirmed_repeats,
            "quality": dict(self.quality),
            "inventory_objects": self.inventory_objects,
            "reject_reasons": [{"reason": r, "count": n} for r, n in self.reject_reasons],
            "sources": sources,
        }


# A cluster's name names a folder of the Parquet dataset (`cluster=NAME`): no path characters.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_cluster(cluster: str | None) -> None:
    """Raise InputError unless cluster is None or a cluster name (CLUSTER_NAME)."""
    if cluster is not None and not CLUSTER_NAME.fullmatch(cluster):
        raise InputError(
            f"--cluster {visible(cluster)!r}: a cluster name is 1 to 100 letters, digits, '.', "
            "'_' and '-', starting with a letter or digit (it names a folder of the dataset)"
        )


def set_up(con: duckdb.DuckDBPyConnection) -> None:
    """Give a connection the settings a load runs with."""
    # Inserting in order is faster here and leaves no free blocks: unordered, each window's
    # partial row groups were written and rewritten (at 1M events 13.2 s and a 229 MB case,
    # 105 MB of it free blocks; in order 10.1 s, 127 MB, none free).
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")  # ours shows progress, DuckDB's not
    con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")


def _without_case(files: list[Path], case: Path) -> list[Path]:
    """Return files without the case itself and its WAL (a folder holding the case is loaded)."""
    own = {case, case.with_name(case.name + ".wal")}
    try:
        own = {p.resolve() for p in own}
        return [f for f in files if f.resolve() not in own]
    except OSError:
        return files


class _Loaded:
    """The files this case has read whole, by size and SHA-256: a file read before is skipped.

    A file is hashed before it is parsed only when an earlier file had its size, so a load of
    new logs costs no extra pass over them.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.by_size: dict[int, dict[str, int]] = {}
        rows = con.execute(
            "SELECT bytes, sha256, min(load_id) FROM sources "
            "WHERE error IS NULL AND already_loaded IS NULL GROUP BY ALL"
        ).fetchall()
        for size, sha, load_id in rows:
            self.by_size.setdefault(size, {})[sha] = load_id

    def add(self, stats: SourceStats, load_id: int) -> None:
        if stats.error is None:
            self.by_size.setdefault(stats.bytes, {}).setdefault(stats.sha256, load_id)

    def skip(self, path: Path, load_id: int, bar: ByteProgress) -> SourceStats | None:
        """Return the accounting of a skipped file, or None when it must be loaded."""
        size = _size(path)
        if size not in self.by_size:
            return None
        try:
            sha, _ = prefix_sha256(path, size, bar.advance)
        except OSError:
            return None  # loading it says what is wrong with it
        earlier = self.by_size[size].get(sha)
        if earlier is None:
            bar.advance(-size)  # its bytes are counted again as it loads
            return None
        try:
            with open(path, "rb") as fh:
                compression = "gzip" if is_gzip(fh.read(4)) else "none"
        except OSError:
            return None
        return skipped_source(path_text(path), sha, size, compression, earlier)


def _load_file(writer: EventWriter, path: Path, progress: ByteProgress) -> SourceStats:
    """Return the accounting of one file, loaded as a JSON document or as a line file."""
    stats = SourceStats(path=path_text(path))
    reader = FileReader(path, on_bytes=progress.advance)
    blocks = reader.lines()
    first = next(blocks, None)
    if first is not None and starts_document(first.block):
        rest = (lines.block for lines in blocks)
        load_document(writer, reader, itertools.chain([first.block], rest), stats)
    else:
        load_lines(writer, reader, itertools.chain([first] if first else [], blocks), stats)
    stats.sha256, stats.bytes, stats.compression = reader.sha256, reader.bytes, reader.compression
    stats.format = "+".join(sorted(f for f, n in stats.formats.items() if n)) or "unknown"
    if reader.unopened:
        stats.error = reader.error
    writer.rejects.flush()
    return stats


def load(
    case: str | Path,
    paths: list[str | Path],
    *,
    progress: bool | None = None,
    arguments: list[str] | None = None,
    inventory: list[str | Path] = (),
    replace: bool = False,
    cluster: str | None = None,
) -> LoadResult:
    """Load files, folders and globs into the case atomically; return the accounting.

    cluster names the cluster the logs are of (`loads.cluster`; the Parquet dataset's
    partition): letters, digits, '.', '_' and '-' (CLUSTER_NAME), else InputError.

    `inventory` names `kubectl get -o json|yaml` dumps to keep beside the log (table inventory).
    With `replace`, an existing case is rebuilt from these inputs alone (see _replace).
    A path that names nothing raises InputError; a case that cannot be made raises CaseError.
    """
    check_cluster(cluster)
    if replace and Path(case).exists():
        return _replace(
            case, paths, progress=progress, arguments=arguments, inventory=inventory,
            cluster=cluster,
        )  # fmt: skip
    files, unreadable = discover(paths) if paths else ([], [])
    files = _without_case(files, Path(case))
    try:
        manifests = [(f, manifest_objects(f)) for f in manifest_files(inventory)]
    except ManifestError as exc:
        raise InputError(str(exc)) from exc
    total = sum(_size(f) for f in files)
    try:
        Path(case).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = f"cannot create its folder {exc.filename}: {exc.strerror}"
        raise CaseError(f"{path_text(case)}: {why}") from exc
    con = connect(case, read_only=False)
    try:
        set_up(con)
        create_schema(con)
        con.execute("BEGIN TRANSACTION")
        load_id = con.execute("SELECT nextval('load_seq')").fetchone()[0]
        con.execute(
            "INSERT INTO loads (load_id, started_at, kforensics, arguments, cluster) "
            "VALUES ($id, $now, $v, $args, $cluster)",
            {
                "cluster": cluster,
                "id": load_id,
                "now": datetime.now(UTC),
                "v": _version(),
                "args": [path_text(a) for a in (arguments or paths)],
            },
        )
        writer = EventWriter(con, load_id)
        sources: list[SourceStats] = []
        seen = _Loaded(con)
        with ByteProgress(total, enabled=progress) as bar:
            for path in files:
                stats = seen.skip(path, load_id, bar)
                if stats is None:
                    stats = _load_file(writer, path, bar)
                    seen.add(stats, load_id)
                sources.append(stats)
        sources += [SourceStats(path=path_text(u.path), error=u.reason) for u in unreadable]
        unconfirmed = remove_duplicates(con, load_id, sources)
        for path, objects in manifests:
            write_inventory(con, load_id, path, objects)
        write_sources(con, load_id, sources)
        con.execute(
            "UPDATE loads SET finished_at = $now WHERE load_id = $id",
            {"now": datetime.now(UTC), "id": load_id},
        )
        reasons = reject_reasons(con, load_id)
        collisions = count_collisions(con, load_id)
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
    return LoadResult(
        str(case), load_id, sources, reasons, collisions, n_objects, quality,
        unconfirmed_repeats=unconfirmed,
    )  # fmt: skip


def _replace(case: str | Path, paths: list[str | Path], **options: Any) -> LoadResult:
    """Return the load of paths into a new case that then takes the place of case.

    The new case is built beside the old one and renamed over it once complete: a notebook
    reading the old case (a connection per query) goes on reading it, then reads the new one
    from its next query. A load that reads nothing leaves the old case in place.
    """
    target = Path(case)
    fresh = target.with_name(f".{target.name}.loading-{os.getpid()}")
    try:
        result = load(fresh, paths, **options)
        if result.anything_read:
            result.notes_kept, result.notes_lost = _keep_notes(target, fresh)
            os.replace(fresh, target)
            result.replaced = True
    finally:
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
    result.case = str(case)
    return result


def _keep_notes(old: Path, fresh: Path) -> tuple[int, list[str]]:
    """Copy the analysts' notes of the old case into the fresh one; return (kept, lost).

    Notes name events and findings by content ids (the same again from the same logs), so a
    rebuild keeps them. A case of an older schema, which this version no longer opens, gives
    its notes too: its event notes name events by an older id, found again by their text.
    """
    try:
        con = connect(old)  # read-only: notebooks may be reading it
    except CaseError:
        kept, lost = _older_notes(old, fresh)
    else:
        try:
            kept, lost = con.sql("SELECT * FROM notes").to_arrow_table(), []
        finally:
            con.close()
    if kept is None or not len(kept):
        return 0, lost
    con = connect(fresh, read_only=False)
    try:
        con.register("kept_notes", kept)
        con.execute("INSERT INTO notes BY NAME SELECT * FROM kept_notes")
    finally:
        con.close()
    return len(kept), lost


def _older_notes(old: Path, fresh: Path) -> tuple[Any, list[str]]:
    """Return the notes of a case of an older schema, event notes renamed to the new ids."""
    try:
        con = duckdb.connect(str(old), read_only=True)
    except duckdb.Error:
        return None, []  # not a case we can read at all: nothing to keep
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not {"notes", "events"} <= tables:
            return None, []
        notes = con.sql("SELECT * FROM notes").to_arrow_table()
        # before version 6 every event kept its text in `raw`; ids are now its SHA-256's prefix
        texts = dict(
            con.execute(
                "SELECT e.event_id, e.raw FROM events e JOIN notes n "
                "ON n.target_kind = 'event' AND n.target = e.event_id"
            ).fetchall()
        )
    except duckdb.Error:
        return None, []
    finally:
        con.close()
    renamed = {
        old_id: hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]
        for old_id, raw in texts.items()
        if raw is not None
    }
    fresh_con = connect(fresh)
    try:
        present = {
            r[0]
            for r in fresh_con.execute(
                "SELECT event_id FROM events WHERE event_id IN (SELECT unnest($ids))",
                {"ids": sorted(set(renamed.values()))},
            ).fetchall()
        }
    finally:
        fresh_con.close()
    rows, lost = [], []
    for note in notes.to_pylist():
        if note["target_kind"] == "event":
            new_id = renamed.get(note["target"])
            if new_id not in present:
                lost.append(f"{note['note_id']}: its event is not in the new case")
                continue
            note["target"] = new_id
        rows.append(note)
    return pa.Table.from_pylist(rows, schema=notes.schema), lost


def write_inventory(
    con: duckdb.DuckDBPyConnection, load_id: int, path: Path, objects: list[dict]
) -> None:
    """Write one `inventory` row per cluster object of a dump."""
    for obj in objects:
        meta = obj.get("metadata") or {}
        con.execute(
            "INSERT INTO inventory VALUES ($load, $file, $kind, $ns, $name, $obj)",
            {
                "load": load_id, "file": path_text(path), "kind": str(obj["kind"]),
                "ns": meta.get("namespace"), "name": str(meta["name"]),
                "obj": orjson.dumps(obj).decode(),
            },
        )  # fmt: skip


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


def _version() -> str:
    from kforensics.version import __version__

    return __version__


__all__ = ["LoadResult", "SourceStats", "load", "set_up", "write_inventory"]
