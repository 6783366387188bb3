"""Detection benchmark: all stable rules over N events, against one full scan of `events`.

    python bench/detect.py [--events 1000000] [--data bench/data]

Builds (or reuses) a case of N generated events (benign background plus the sample incident),
then times, in this process: one full scan of `events` (every column read once, by
`sum(hash(COLUMNS(*)))`: a count could be answered from statistics), and `kforensics.detection`
with every stable rule (building `ev`, running the rules, grouping findings; nothing stored).
Prints both, and the ratio. Target (issue 3): under 10 full scans: rules share one parse of the
JSON, not one pass each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from samplecase import sample_case  # noqa: E402 (bench/samplecase.py)

from kforensics import connect  # noqa: E402
from kforensics.detection.rule import load_rules  # noqa: E402
from kforensics.detection.run import detect  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    args = ap.parse_args()

    case = sample_case(args.data, args.events)

    con = connect(case)
    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    t = time.perf_counter()
    con.execute("SELECT sum(hash(COLUMNS(*))) FROM events").fetchall()
    scan = time.perf_counter() - t
    con.close()

    print(f"case: {rows:,} events; one full scan of events: {scan:.2f} s")
    for label, statuses in (("stable", ("stable",)), ("stable+test (default)", ("stable", "test"))):
        rules = load_rules(statuses=statuses)
        t = time.perf_counter()
        findings = detect(case, rules, store=False)
        seconds = time.perf_counter() - t
        print(
            f"detect, {len(rules)} {label} rules: {seconds:.2f} s, {len(findings)} findings, "
            f"{seconds / scan:.1f} full scans (target < 10)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
