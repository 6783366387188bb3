"""Spark benchmark: the same log through DuckDB and Spark local[2], ingest and detect side by side.

    python bench/spark.py [--events 1000000] [--files 4] [--data bench/data] [--master local[2]]

The generated log is split into --files files (Spark loads files in parallel, one task each).
DuckDB: `kforensics load` of the files, then `detect` (default rules). Spark: `load --engine
spark` of the same files into a Parquet dataset, then `detect --engine spark` over it. Prints
each time beside DuckDB's and the ratio, the time `kforensics export` takes to make the same
dataset from the case, and whether both engines hold the same events and find the same.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kforensics import load  # noqa: E402
from kforensics.dataset.export import export_case  # noqa: E402
from kforensics.detection.rule import load_rules  # noqa: E402
from kforensics.detection.run import detect  # noqa: E402
from kforensics.sample.generate import write_native_lines  # noqa: E402


def timed(run):
    t = time.perf_counter()
    out = run()
    return out, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    args.data = args.data.resolve()  # both engines then cite the files alike
    from kforensics.spark.detect import detect_spark
    from kforensics.spark.load import load_spark
    from kforensics.spark.session import spark_session

    args.data.mkdir(parents=True, exist_ok=True)
    log = args.data / f"audit-{args.events}-1.log"
    if not log.exists():
        write_native_lines(log, args.events, seed=1)
    parts = split(log, args.files, args.data / f"audit-{args.events}-parts")
    case, dataset = args.data / "bench-spark.duckdb", args.data / "bench-spark-ds"
    exported = args.data / "bench-spark-exported"
    case.unlink(missing_ok=True)
    for folder in (dataset, exported):
        shutil.rmtree(folder, ignore_errors=True)
    rules = load_rules()
    loaded, load_s = timed(lambda: load(case, parts, progress=False))
    duck, detect_s = timed(lambda: detect(case, rules, store=False))
    _, export_s = timed(lambda: export_case(case, exported))
    spark, start_s = timed(lambda: spark_session(args.master))
    try:
        spark_loaded, spark_load_s = timed(lambda: load_spark(spark, dataset, parts))
        on_spark, spark_s = timed(lambda: detect_spark(spark, dataset, rules))
    finally:
        spark.stop()
    same = {f.finding_id for f in duck if f.rule_id in on_spark.rules_run} == {
        f.finding_id for f in on_spark.findings
    }
    same_events = loaded.to_dict() | {"case": ""} == spark_loaded.to_dict() | {"case": ""}
    print(
        f"input: {args.events:,} events, {log.stat().st_size / 1e6:,.0f} MB in {len(parts)} "
        f"files; Spark {args.master}"
    )
    print(f"{'':28}{'DuckDB':>9}{'Spark':>9}{'ratio':>7}")
    print(f"{'ingest (load)':28}{load_s:9.1f}{spark_load_s:9.1f}{spark_load_s / load_s:7.2f}")
    print(f"{'detect (default rules)':28}{detect_s:9.1f}{spark_s:9.1f}{spark_s / detect_s:7.2f}")
    print(
        f"kforensics export of the DuckDB case to the same dataset: {export_s:.1f} s; Spark "
        f"session start {start_s:.1f} s (not counted)"
    )
    print(
        f"loads' accounting identical: {same_events}; rules run: DuckDB {len(rules)}, Spark "
        f"{len(on_spark.rules_run)}; findings of those rules identical: {same}"
    )
    case.unlink(missing_ok=True)
    for folder in (dataset, exported):
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if same and same_events else 1


def split(log: Path, n: int, folder: Path) -> list[Path]:
    """Return n files holding the log's lines in turn (made once, kept beside the log)."""
    parts = [folder / f"part-{i}.log" for i in range(n)]
    if all(p.exists() for p in parts):
        return parts
    folder.mkdir(parents=True, exist_ok=True)
    outs = [open(p, "wb") for p in parts]  # noqa: SIM115 (closed below, all together)
    try:
        with open(log, "rb") as fh:
            for i, line in enumerate(fh):
                outs[i % n].write(line)
    finally:
        for out in outs:
            out.close()
    return parts


if __name__ == "__main__":
    sys.exit(main())
