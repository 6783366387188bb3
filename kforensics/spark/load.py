"""`kforensics load --engine spark`: each input file loaded by the DuckDB loader in a Spark task.

Files are independent: a task loads one into a case of its own (the same shape detection,
mapping, accounting and in-file dedupe as `kforensics load`) and stages its events and rejects
as Parquet. Spark then removes exact repeats across files by the rule of `ingest.dedupe` (same
audit ID, stage and time, and the same SHA-256 or the same JSON, the first in file order kept)
and writes the events as `kforensics export` lays them out; the driver writes the small tables.
The dataset is written beside DIR and renamed into place when complete: like a DuckDB load, it
is all there or not at all.

Every executor must see the input files and DIR at the same paths (a shared file system), and
the events cite their files by absolute path, since the tasks run elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kforensics.case import SCHEMA_VERSION, connect, create_schema
from kforensics.dataset.export import check_target, copy_table
from kforensics.dataset.layout import LAYOUT_FILE, PARTITIONED, DatasetError, Layout, case_tables
from kforensics.errors import InputError, SparkError
from kforensics.ingest.dedupe import CANONICAL_JSON, read_native_texts
from kforensics.ingest.discover import discover
from kforensics.ingest.load import LoadResult, check_cluster, load, write_inventory
from kforensics.ingest.manifests import ManifestError, manifest_files, manifest_objects
from kforensics.ingest.sources import SourceStats, path_text, skipped_source, write_sources
from kforensics.progress import ByteProgress
from kforensics.spark.session import spark_reason
from kforensics.version import __version__

LOAD_ID = 1  # a new dataset holds one load
_STAGING = "_staging"
_RESULT = "result.json"
_TASK_SCHEMA = pa.schema([("seq", pa.int64()), ("result", pa.string())])
_CANONICAL_SCHEMA = pa.schema(
    [("kf_seq", pa.int64()), ("kf_row", pa.int64()), ("canonical", pa.string())]
)
# Which events may repeat one another: ingest.dedupe's definition.
_SAME = ("audit_id", "stage", "ts")


def load_spark(
    spark: Any,
    folder: str | Path,
    paths: list[str | Path],
    *,
    cluster: str | None = None,
    inventory: list[str | Path] = (),
    replace: bool = False,
    arguments: list[str] | None = None,
    progress: bool | None = None,
) -> LoadResult:
    """Load files, folders and globs into a new Parquet dataset in folder; return the accounting.

    folder must be new or empty, or (with replace) a dataset written before. The dataset holds
    what `kforensics load` then `kforensics export` would give from the same absolute paths.
    """
    check_cluster(cluster)
    # the tasks run in other folders (an executor's own): every path they get is absolute
    folder = Path(os.path.abspath(folder))
    check_target(folder, replace)
    files, unreadable = discover(paths) if paths else ([], [])
    try:
        manifests = [(f, manifest_objects(f)) for f in manifest_files(inventory)]
    except ManifestError as exc:
        raise InputError(str(exc)) from exc
    # the tasks open the files elsewhere: the events cite them by absolute path
    files = [Path(os.path.abspath(f)) for f in files]
    started = datetime.now(UTC)
    work = folder.with_name(f".{folder.name}.writing")
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)
        sources, reasons, staged = _stage(spark, files, work / _STAGING, cluster, progress)
        sources += [SourceStats(path=path_text(u.path), error=u.reason) for u in unreadable]
        events = _write_events(spark, work, staged, cluster)
        for seq in staged:  # rejects are not deduplicated: the staged files are the table
            part = work / _STAGING / str(seq) / "rejects.parquet"
            if part.exists():
                (work / "rejects").mkdir(exist_ok=True)
                part.rename(work / "rejects" / f"rejects-{seq:06d}.parquet")
        layout = _write_tables(work, sources, manifests, started, arguments or paths, cluster)
        layout.tables[PARTITIONED] = events.rows
        layout.tables["rejects"] = sum(s.rejected for s in sources)
        if events.rows:
            layout.partitions = ["cluster", "day"] if cluster else ["day"]
        (work / LAYOUT_FILE).write_text(json.dumps(layout.to_dict(), indent=2) + "\n")
        shutil.rmtree(work / _STAGING)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = LoadResult(
        str(folder), LOAD_ID, sources, reasons, events.collisions,
        sum(len(objects) for _, objects in manifests), events.quality,
        unconfirmed_repeats=events.unconfirmed,
    )  # fmt: skip
    if folder.exists() and any(folder.iterdir()):
        if not result.anything_read:  # as a DuckDB load, an empty reload keeps the old case
            shutil.rmtree(work)
            return result
        shutil.rmtree(folder)
        result.replaced = True
    elif folder.exists():
        folder.rmdir()
    work.rename(folder)
    return result


def _stage(
    spark: Any, files: list[Path], staging: Path, cluster: str | None, progress: bool | None
) -> tuple[list[SourceStats], list[tuple[str, int]], dict[int, SourceStats]]:
    """Load every file in a Spark task; return their accounting, reject reasons and the
    accounting of each file staged by its number in file order (a file with the very bytes of
    an earlier one is skipped, as a DuckDB load skips it)."""
    staging.mkdir()
    if not files:
        return [], [], {}
    sizes = [_size(f) for f in files]
    # the name's bytes, not its text: a name that is not UTF-8 must still open
    rows = [(i, bytearray(os.fsencode(f))) for i, f in enumerate(files)]
    frame = spark.createDataFrame(rows, "seq long, path binary").repartitionByRange(
        len(rows), "seq"
    )
    task = partial(stage_files, staging=str(staging), cluster=cluster)
    with ByteProgress(sum(sizes), enabled=progress) as bar, TaskProgress(staging, sizes, bar):
        try:
            done = frame.mapInArrow(task, "seq long, result string").collect()
        except Exception as exc:  # py4j and Spark raise many kinds
            raise SparkError(f"loading the files on Spark failed: {spark_reason(exc)}") from exc
    results = sorted((json.loads(r["result"]) for r in done), key=lambda r: r["seq"])
    sources, staged, reasons = [], {}, {}
    seen: dict[tuple[int, str], int] = {}
    for r in results:
        s = SourceStats(**r["source"])
        if s.error is None and (s.bytes, s.sha256) in seen:
            sources.append(skipped_source(s.path, s.sha256, s.bytes, s.compression, LOAD_ID))
            continue
        if s.error is None:
            seen[(s.bytes, s.sha256)] = r["seq"]
        sources.append(s)
        staged[r["seq"]] = s
        for reason, n in r["reasons"]:
            reasons[reason] = reasons.get(reason, 0) + n
    # the most frequent first, as ingest.rejects.reject_reasons orders them
    return sources, sorted(reasons.items(), key=lambda rn: (-rn[1], rn[0])), staged


def stage_files(
    batches: Iterator[pa.RecordBatch], *, staging: str, cluster: str | None
) -> Iterator[pa.RecordBatch]:
    """Load each (seq, path) of batches as a case of its own, staging its events and rejects;
    yield (seq, the accounting as JSON)."""
    for batch in batches:
        seqs = batch.column("seq").to_pylist()
        results = [
            json.dumps(stage_file(seq, os.fsdecode(path), Path(staging), cluster))
            for seq, path in zip(seqs, batch.column("path").to_pylist(), strict=True)
        ]
        yield pa.record_batch([pa.array(seqs, pa.int64()), pa.array(results)], _TASK_SCHEMA)


def stage_file(seq: int, path: str, staging: Path, cluster: str | None) -> dict:
    """Return the accounting of one file loaded by `ingest.load` (in a temporary case), its
    events (numbered kf_seq, kf_row) and rejects written to staging/seq/."""
    out = staging / str(seq)
    out.mkdir(exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="kforensics-task-")
    try:
        case = Path(tmp) / "file.duckdb"
        result = load(case, [path], progress=False, cluster=cluster)
        con = connect(case)
        try:
            params = {"load": LOAD_ID, "seq": seq}
            if result.events_loaded:
                copy_table(
                    con,
                    "SELECT * REPLACE ($load::INTEGER AS load_id), $seq::BIGINT AS kf_seq, "
                    "rowid AS kf_row FROM events",
                    out / "events.parquet",
                    params,
                )
            if result.rejected:
                copy_table(
                    con,
                    "SELECT * REPLACE ($load::INTEGER AS load_id) FROM rejects",
                    out / "rejects.parquet",
                    {"load": LOAD_ID},
                )
        finally:
            con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    source = asdict(result.sources[0])
    source.pop("formats")
    accounting = {"seq": seq, "source": source, "reasons": result.reject_reasons}
    # written last, renamed: the driver's progress counts a file done when this appears
    (out / f".{_RESULT}").write_text(json.dumps(accounting))
    (out / f".{_RESULT}").rename(out / _RESULT)
    return accounting


class _Events:
    """What the events of the load came to: rows kept, and the summary a DuckDB load prints."""

    def __init__(self) -> None:
        self.rows = 0
        self.collisions = 0
        self.unconfirmed = 0
        self.quality: dict[str, int] = {}


def _write_events(
    spark: Any, work: Path, staged: dict[int, SourceStats], cluster: str | None
) -> _Events:
    """Write the staged events less the repeats across files to work/events; return counts."""
    from pyspark.sql import functions as F

    result = _Events()
    parts = [str(work / _STAGING / str(s) / "events.parquet") for s in staged]
    parts = [p for p in parts if os.path.exists(p)]
    if not parts:
        return result
    events = spark.read.parquet(*parts)
    try:
        repeats = _repeats(spark, events)
        kept = events.join(repeats.select("kf_seq", "kf_row"), ["kf_seq", "kf_row"], "left_anti")
        kept = kept.drop("kf_seq", "kf_row").withColumn("day", F.to_date("ts"))
        by = ["day"]
        if cluster:
            kept, by = kept.withColumn("cluster", F.lit(cluster)), ["cluster", "day"]
        kept.write.partitionBy(*by).option("compression", "zstd").parquet(str(work / PARTITIONED))
        decided = repeats.groupBy("kf_seq").agg(
            F.sum(F.col("repeat").cast("long")).alias("repeats"),
            F.sum((~F.col("repeat")).cast("long")).alias("unconfirmed"),
        )
        by_file = {r["kf_seq"]: (r["repeats"], r["unconfirmed"]) for r in decided.collect()}
        written = spark.read.parquet(str(work / PARTITIONED))
        result.rows = written.count()
        result.quality = {
            r["flag"]: r["count"]
            for r in written.select(F.explode("quality").alias("flag")).groupBy("flag").count()
            .orderBy(F.desc("count"), "flag").collect()
        }  # fmt: skip
        result.collisions = (
            written.where(F.col("audit_id").isNotNull())
            .groupBy("audit_id", "stage").count().where("count > 1").count()
        )  # fmt: skip
    except Exception as exc:  # py4j and Spark raise many kinds
        raise SparkError(f"removing repeats across files failed: {spark_reason(exc)}") from exc
    for seq, (n, unsure) in by_file.items():
        staged[seq].duplicates += n
        staged[seq].events_loaded -= n
        result.unconfirmed += unsure
    return result


def _repeats(spark: Any, events: Any) -> Any:
    """Return (kf_seq, kf_row, repeat) of the events that repeat an earlier file's or that
    could not be compared (repeat false): `ingest.dedupe.remove_duplicates` across files."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    groups = (
        events.groupBy(*_SAME)
        .agg(F.count(F.lit(1)).alias("n"), F.countDistinct("digest").alias("digests"))
        .where("n > 1")
        .select(*[F.col(k).alias(f"m_{k}") for k in _SAME], (F.col("digests") > 1).alias("mixed"))
    )
    narrow = events.select(
        "kf_seq", "kf_row", "source_file", "source_line", "source_index", *_SAME, "digest",
        "raw_offset", F.col("raw").isNull().alias("native"),
    )  # fmt: skip
    on = [narrow[k].eqNullSafe(groups[f"m_{k}"]) for k in _SAME]
    cand = narrow.join(groups, on).drop(*[f"m_{k}" for k in _SAME]).persist()
    try:
        mixed = (
            cand.where("mixed")
            .select("kf_seq", "kf_row")
            .join(
                events.select("kf_seq", "kf_row", "source_file", "raw_offset", "digest", "raw"),
                ["kf_seq", "kf_row"],
            )
        )
        texts = mixed.mapInArrow(canonical_batches, "kf_seq long, kf_row long, canonical string")
        cand = cand.join(texts, ["kf_seq", "kf_row"], "left").withColumn(
            "canonical",
            F.when(~F.col("mixed"), F.concat(F.lit("d"), F.hex("digest"))).otherwise(
                F.col("canonical")
            ),
        )
        first = Window.partitionBy(
            F.coalesce("canonical", F.concat_ws("-", F.lit("u"), "kf_seq", "kf_row"))
        ).orderBy("kf_seq", "source_line", F.col("source_index").asc_nulls_last())
        group = Window.partitionBy(*_SAME)
        decided = (
            cand.withColumn("rn", F.row_number().over(first))
            # an event of the group could not be read again: no one can say
            .withColumn("unsure", F.sum(F.col("canonical").isNull().cast("int")).over(group) > 0)
            .where("rn > 1 OR unsure")
            .select(
                "kf_seq",
                "kf_row",
                ((F.col("rn") > 1) & F.col("canonical").isNotNull()).alias("repeat"),
            )  # fmt: skip
        )
        return decided.localCheckpoint()
    finally:
        cand.unpersist()


def canonical_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Yield (kf_seq, kf_row, canonical) of events, their text as `ingest.dedupe` compares it
    (NULL when a native line's source is gone or changed)."""
    con = duckdb.connect()
    try:
        for batch in batches:
            rows = batch.to_pylist()
            by_file: dict[str, tuple[list, list, list]] = {}
            for r in rows:
                if r["raw"] is None and r["raw_offset"] is not None:
                    ids, offsets, digests = by_file.setdefault(r["source_file"], ([], [], []))
                    ids.append((r["kf_seq"], r["kf_row"]))
                    offsets.append(r["raw_offset"])
                    digests.append(r["digest"])
            read = read_native_texts((f, *lists) for f, lists in by_file.items())
            texts = [
                r["raw"] if r["raw"] is not None else read.get((r["kf_seq"], r["kf_row"]))
                for r in rows
            ]
            canonical = con.execute(
                f"SELECT list_transform($texts, lambda t: {CANONICAL_JSON.format(text='t')})",  # noqa: S608
                {"texts": texts},
            ).fetchall()[0][0]
            yield pa.record_batch(
                [
                    pa.array([r["kf_seq"] for r in rows], pa.int64()),
                    pa.array([r["kf_row"] for r in rows], pa.int64()),
                    pa.array(canonical, pa.string()),
                ],
                _CANONICAL_SCHEMA,
            )
    finally:
        con.close()


def _write_tables(
    work: Path,
    sources: list[SourceStats],
    manifests: list[tuple[Path, list[dict]]],
    started: datetime,
    arguments: list,
    cluster: str | None,
) -> Layout:
    """Write every table but the events (and rejects staged) as `kforensics export` does;
    return the layout with their rows."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        create_schema(con)
        con.execute(
            "INSERT INTO loads (load_id, started_at, finished_at, kforensics, arguments, "
            "cluster) VALUES ($id, $started, $now, $v, $args, $cluster)",
            {
                "id": LOAD_ID, "started": started, "now": datetime.now(UTC), "v": __version__,
                "args": [path_text(a) for a in arguments], "cluster": cluster,
            },
        )  # fmt: skip
        write_sources(con, LOAD_ID, sources)
        for path, objects in manifests:
            write_inventory(con, LOAD_ID, path, objects)
        rows = {}
        for table in case_tables(con):
            # (table names are the case schema's own, from duckdb_tables)
            rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # noqa: S608
            if table in (PARTITIONED, "rejects") and (work / table).exists():
                continue  # written by Spark, or staged (an empty table is written here)
            (work / table).mkdir(exist_ok=True)
            copy_table(con, f"SELECT * FROM {table}", work / table / f"{table}.parquet")  # noqa: S608
    except duckdb.Error as exc:
        raise DatasetError(f"{work}: writing the tables failed: {spark_reason(exc)}") from exc
    finally:
        con.close()
    return Layout(SCHEMA_VERSION, __version__, [], rows)


class TaskProgress:
    """Advances a progress bar by each file's bytes as its task finishes (its result appears)."""

    def __init__(self, staging: Path, sizes: list[int], bar: ByteProgress) -> None:
        self.staging, self.sizes, self.bar = staging, sizes, bar
        self.done: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TaskProgress:
        if self.bar.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            for seq, size in enumerate(self.sizes):
                if seq not in self.done and (self.staging / str(seq) / _RESULT).exists():
                    self.done.add(seq)
                    self.bar.advance(size)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
