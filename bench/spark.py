"""Spark benchmark: the same log through DuckDB and Spark local[2], ingest and detect side by side.

    python bench/spark.py [--events 1000000] [--data bench/data] [--master local[2]]

DuckDB: `kforensics load` of the log, then `detect` (default rules). Spark: the case exported
as a Parquet dataset (`kforensics export`: the Spark engine's ingest until `load --engine
spark` lands), then `detect --engine spark` over it. Prints each time, the ratio Spark/DuckDB,
and the rules each engine ran.
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
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    from kforensics.spark.detect import detect_spark
    from kforensics.spark.session import spark_session

    args.data.mkdir(parents=True, exist_ok=True)
    log = args.data / f"audit-{args.events}-1.log"
    if not log.exists():
        write_native_lines(log, args.events, seed=1)
    case, dataset = args.data / "bench-spark.duckdb", args.data / "bench-spark-ds"
    case.unlink(missing_ok=True)
    shutil.rmtree(dataset, ignore_errors=True)
    rules = load_rules()
    _, load_s = timed(lambda: load(case, [log], progress=False))
    duck, detect_s = timed(lambda: detect(case, rules, store=False))
    _, export_s = timed(lambda: export_case(case, dataset))
    spark, start_s = timed(lambda: spark_session(args.master))
    try:
        on_spark, spark_s = timed(lambda: detect_spark(spark, dataset, rules))
    finally:
        spark.stop()
    same = {f.finding_id for f in duck if f.rule_id in on_spark.rules_run} == {
        f.finding_id for f in on_spark.findings
    }
    print(f"input: {args.events:,} events, {log.stat().st_size / 1e6:,.0f} MB; Spark {args.master}")
    print(f"{'':28}{'DuckDB':>9}{'Spark':>9}{'ratio':>7}")
    print(f"{'ingest (load / export)':28}{load_s:9.1f}{export_s:9.1f}{export_s / load_s:7.2f}")
    print(f"{'detect (default rules)':28}{detect_s:9.1f}{spark_s:9.1f}{spark_s / detect_s:7.2f}")
    print(
        f"Spark session start {start_s:.1f} s (not counted); rules run: DuckDB {len(rules)}, "
        f"Spark {len(on_spark.rules_run)}; findings of those rules identical: {same}"
    )
    case.unlink(missing_ok=True)
    shutil.rmtree(dataset, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
