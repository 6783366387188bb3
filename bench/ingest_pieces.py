"""Ingest by piece: what each part of `kforensics load` costs, beside bare DuckDB `read_json`.

    python bench/ingest_pieces.py [--events 1000000] [--data bench/data]

Uses bench/ingest.py's file (`bench_file`) and, in this process and back to back,
measures wall and CPU seconds (every thread of the process: DuckDB's and the reader's) of:

* baseline: bare `read_json` with an explicit schema into a new DuckDB file;
* reader: reading, splitting, checking UTF-8 and hashing the file (whole and per line) into
  the Arrow chunks the mapping reads, alone (one thread);
* mapping: DuckDB's typed parse and checks of those chunks, held in memory, counted only;
* mapping + write: the same, inserted into a new case's `events` (the load without its
  reader, so what a reader costing nothing, e.g. native code, would leave);
* load: `kforensics.load` whole (reader and DuckDB in parallel, then dedupe, accounting).

Prints each piece with its ratio to the baseline, and the load's lower bound on this many
cores: CPU seconds / cores can only be reached when every core is busy all along.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import baseline, bench_file  # noqa: E402
from kforensics import load  # noqa: E402
from kforensics.case import connect, create_schema  # noqa: E402
from kforensics.ingest.events import CHUNK_SCHEMA, EventWriter, batch_rows  # noqa: E402
from kforensics.ingest.load import set_up  # noqa: E402
from kforensics.ingest.read import FileReader  # noqa: E402
from kforensics.ingest.typed import typed_select  # noqa: E402
from kforensics.ingest.windows import native_chunk  # noqa: E402


def measure(run: Callable[[], object]) -> tuple[float, float]:
    """Return (wall seconds, CPU seconds of this process) of run()."""
    c0, t0 = os.times(), time.perf_counter()
    run()
    c1 = os.times()
    return time.perf_counter() - t0, (c1.user - c0.user) + (c1.system - c0.system)


def read_chunks(path: Path) -> list[pa.RecordBatch]:
    """Return the file's lines as the mapping's Arrow batches, as a load reads them."""
    batches: list[pa.RecordBatch] = []
    for lines in FileReader(path).lines():
        chunk = native_chunk(lines)
        batches += chunk.to_batches(max_chunksize=batch_rows(chunk))
    return batches


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    args = ap.parse_args()
    path = bench_file(args.data, args.events, args.seed)
    db = args.data / "bench-pieces.duckdb"

    def fresh() -> Path:
        for p in (db, db.with_name(db.name + ".wal")):
            p.unlink(missing_ok=True)
        return db

    figures: dict[str, tuple[float, float]] = {}
    figures["baseline read_json"] = measure(lambda: baseline(path, fresh()))
    batches: list[pa.RecordBatch] = []
    figures["reader"] = measure(lambda: batches.extend(read_chunks(path)))
    held = {"chunk": pa.Table.from_batches(batches, CHUNK_SCHEMA)}
    batches.clear()

    def mapping() -> None:
        con = duckdb.connect()
        chunk = held["chunk"]  # noqa: F841 (read by the SQL: a replacement scan)
        sql = f"SELECT count(*) FROM ({typed_select('chunk')})"  # noqa: S608 (constants)
        with EventWriter(con, 1).mapping():
            (n,) = con.execute(sql).fetchone()
        assert n == args.events, n

    def mapping_and_write() -> None:
        con = connect(fresh(), read_only=False)
        set_up(con)
        create_schema(con)
        writer = EventWriter(con, 1)
        chunk = held["chunk"]  # noqa: F841 (read by typed_sql: a replacement scan)
        with writer.mapping():
            (n,) = con.execute(writer.typed_sql, {"file": str(path), "load": 1}).fetchone()
        assert n == args.events, n
        con.close()

    figures["mapping"] = measure(mapping)
    figures["mapping + write"] = measure(mapping_and_write)
    held.clear()
    figures["load"] = measure(lambda: load(fresh(), [path], progress=False))
    fresh()

    cores = os.cpu_count() or 1
    base = figures["baseline read_json"][0]
    print(f"input: {args.events:,} events, {path.stat().st_size / 1e6:,.0f} MB, {cores} cores, "
          f"DuckDB {duckdb.__version__}")  # fmt: skip
    print(f"{'':20}{'wall s':>8}{'CPU s':>8}{'wall/baseline':>15}")
    for name, (wall, cpu) in figures.items():
        print(f"{name:20}{wall:8.2f}{cpu:8.2f}{wall / base:15.2f}")
    write_cpu = figures["mapping + write"][1]
    print(
        f"without its reader the load needs {write_cpu:.2f} CPU s of DuckDB: at best "
        f"{write_cpu / cores:.2f} s on {cores} cores, {write_cpu / cores / base:.2f}x the baseline "
        "(target <= 1.5), before dedupe and accounting"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
