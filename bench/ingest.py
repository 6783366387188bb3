"""Ingest benchmark: `kforensics load` against bare DuckDB `read_json`, same file, one run.

    python bench/ingest.py [--events 1000000] [--data bench/data] [--gzip] [--readme]

Generates N native audit events (cached by N and seed), warms the page cache, then times, in
this process and back to back:

* baseline: `CREATE TABLE AS SELECT * FROM read_json(file, explicit columns)` into a new
  DuckDB file (JSON objects as JSON columns, DuckDB's own parallel reader, nothing else);
* kforensics: `kforensics.load(case, [file])` into a new case (line accounting, validation,
  raw events kept, dedupe, atomic commit).

Prints both times, the ratio, and the peak resident memory of each phase (sampled from
/proc/self/status every 20 ms). Targets (issue 2): ratio at most 1.5; peak memory under 2 GB
for 10 million events.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kforensics import load  # noqa: E402
from kforensics.sample.generate import write_native_lines  # noqa: E402

BASELINE_COLUMNS = {
    "kind": "VARCHAR",
    "apiVersion": "VARCHAR",
    "level": "VARCHAR",
    "auditID": "VARCHAR",
    "stage": "VARCHAR",
    "requestURI": "VARCHAR",
    "verb": "VARCHAR",
    "user": "STRUCT(username VARCHAR, groups VARCHAR[])",
    "impersonatedUser": "STRUCT(username VARCHAR)",
    "sourceIPs": "VARCHAR[]",
    "userAgent": "VARCHAR",
    "objectRef": "STRUCT(resource VARCHAR, namespace VARCHAR, name VARCHAR, apiGroup VARCHAR, "
    "apiVersion VARCHAR, subresource VARCHAR)",
    "responseStatus": "STRUCT(code INTEGER)",
    "requestObject": "JSON",
    "responseObject": "JSON",
    "requestReceivedTimestamp": "TIMESTAMPTZ",
    "stageTimestamp": "TIMESTAMPTZ",
    "annotations": "MAP(VARCHAR, VARCHAR)",
}


class PeakRSS:
    """Samples this process's resident memory; `peak` is the highest seen while running."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def baseline(path: Path, db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_json($path, format = 'newline_delimited', "
        "columns = $columns)",
        {"path": str(path), "columns": BASELINE_COLUMNS},
    )
    con.close()


def bench_file(data: Path, events: int, seed: int) -> Path:
    """Return the file of that many generated native events (made when missing), its pages
    read once so that every contender finds them cached."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"audit-{events}-{seed}.log"
    if not path.exists():
        t = time.perf_counter()
        write_native_lines(path, events, seed=seed)
        print(f"generated {events:,} events in {time.perf_counter() - t:.1f}s")
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    ap.add_argument(
        "--readme", action="store_true", help="write the figures into README.md's bench section"
    )
    args = ap.parse_args()

    path = bench_file(args.data, args.events, args.seed)
    size = path.stat().st_size

    results = {}
    for name, run in (
        ("duckdb read_json", lambda db: baseline(path, db)),
        ("kforensics load", lambda db: load(db, [path], progress=False)),
    ):
        db = args.data / f"bench-{name.split()[0]}.duckdb"
        db.unlink(missing_ok=True)
        with PeakRSS() as mem:
            t = time.perf_counter()
            out = run(db)
            seconds = time.perf_counter() - t
        results[name] = (seconds, mem.peak, db.stat().st_size)
        if out is not None:
            assert out.events_loaded == args.events, out.to_dict()
        db.unlink()

    base = results["duckdb read_json"][0]
    ratio = results["kforensics load"][0] / base
    lines = [
        f"input: {args.events:,} events, {size / 1e6:,.0f} MB, {os.cpu_count()} cores, "
        f"DuckDB {duckdb.__version__}",
        f"{'':18}{'seconds':>9}{'events/s':>12}{'peak RSS':>11}{'case size':>11}",
    ]
    for name, (seconds, peak, db_size) in results.items():
        lines.append(
            f"{name:18}{seconds:9.2f}{args.events / seconds:12,.0f}"
            f"{peak / 2**20:9,.0f}MB{db_size / 2**20:9,.0f}MB"
        )
    lines.append(f"ratio kforensics/baseline: {ratio:.2f} (target <= 1.5)")
    print("\n".join(lines))
    if args.readme:
        update_readme(args.events, "\n".join(lines))
    return 0


def update_readme(events: int, figures: str) -> None:
    """Replace this run's block (by event count) in the README's bench section."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    begin, end = "<!-- BEGIN bench -->\n", "<!-- END bench -->"
    head, rest = text.split(begin, 1)
    body, tail = rest.split(end, 1)
    blocks = [
        b for b in body.split("```\n") if b.strip() and not b.startswith(f"$ bench {events:,}")
    ]
    blocks.append(
        f"$ bench {events:,} events: python bench/ingest.py --events {events}\n{figures}\n"
    )
    blocks.sort(key=lambda b: int(b.split()[2].replace(",", "")))
    body = "".join(f"```\n{b}```\n" for b in blocks)
    readme.write_text(head + begin + body + end + tail)


if __name__ == "__main__":
    sys.exit(main())
