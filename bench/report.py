"""Report benchmark: the triage notebook, end to end, on a case of N events.

    python bench/report.py [--events 1000000] [--data bench/data] [--notebook 01_triage]

Builds (or reuses) a case of N generated events plus the sample incident, as bench/detect.py
does, stores the findings of `detect`, then times `run_report` (papermill run of the notebook and
the offline HTML export) and prints the seconds and the HTML size. Targets: under 60 s and under
5 MB for 1M events.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from samplecase import sample_case  # noqa: E402 (bench/samplecase.py)

from kforensics.detection.rule import load_rules  # noqa: E402
from kforensics.detection.run import detect  # noqa: E402
from kforensics.reporting.run import ReportError, resolve_notebook, run_report  # noqa: E402

SECONDS_TARGET = 60
BYTES_TARGET = 5_000_000


def main() -> int:
    """Run the benchmark; return 0 when both targets are met, 1 when not, 2 when it cannot run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    ap.add_argument("--notebook", default="01_triage")
    ap.add_argument("--out", type=Path, help="keep the report here (default: a temporary folder)")
    args = ap.parse_args()

    try:  # before spending minutes on a case: the notebook is written separately
        resolve_notebook(args.notebook)
    except ReportError as exc:
        print(f"bench/report.py: {exc}", file=sys.stderr)
        return 2

    case = sample_case(args.data, args.events)
    t = time.perf_counter()
    findings = detect(case, load_rules())  # stored: the triage notebook reads them
    print(f"detect: {len(findings)} findings in {time.perf_counter() - t:.1f} s (not counted)")

    out = args.out or Path(tempfile.mkdtemp(prefix="kforensics-report-"))
    try:
        t = time.perf_counter()
        result = run_report(args.notebook, case, {}, out, fail_on="high")
        seconds = time.perf_counter() - t
        size = result.html.stat().st_size
        print(
            f"report {args.notebook} on {args.events:,} events: {seconds:.1f} s "
            f"(target < {SECONDS_TARGET}), HTML {size / 1e6:.2f} MB "
            f"(target < {BYTES_TARGET / 1e6:.0f}), executed notebook "
            f"{result.ipynb.stat().st_size / 1e6:.2f} MB, "
            f"{result.findings_at_or_above} findings at high or above"
        )
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    return 0 if seconds < SECONDS_TARGET and size < BYTES_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
