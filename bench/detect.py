"""Detection benchmark: `detect` against the load of the same events, in one run.

    python bench/detect.py [--events 1000000] [--data bench/data] [--new 10000]

Generates (or reuses) N background events (bench/samplecase.py's log), then times, in this
process and back to back:

* baseline: `kforensics.load` of that log plus the sample incident into a new case (what
  bench/samplecase.py builds);
* `detect` with the stable rules, then with the default (stable and test) rules, each storing
  its findings as `kforensics detect` does;
* twice: a load of `--new` more events (another generated log), then `detect --since-last`
  with the default rules, against that load and against a full `detect` of the grown case
  (the first keeps `ev` in the case, the second derives only what its load touched).

Each figure is printed beside its baseline with the ratio. The peak resident memory of the
default detect is measured in a child process of its own (the load's memory stays with this
one). Targets (issue 13): default rules at most 1/2 of the load, stable at most 1/4; detect
under 2 GB at 10M events.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kforensics import load  # noqa: E402
from kforensics.detection.rule import load_rules  # noqa: E402
from kforensics.detection.run import detect  # noqa: E402
from kforensics.sample.generate import write_native_lines  # noqa: E402

SAMPLE = ROOT / "data" / "samples" / "native"
STATUSES = {"stable": ("stable",), "default": ("stable", "test")}
TARGETS = {"stable": 0.25, "default": 0.5}


def timed(run) -> tuple[float, object]:
    """Return the seconds run() took and what it returned."""
    t = time.perf_counter()
    out = run()
    return time.perf_counter() - t, out


def log(data: Path, events: int, seed: int) -> Path:
    """Return the generated log of events (seed), writing it when missing."""
    path = data / f"audit-{events}-{seed}.log"
    if not path.exists():
        write_native_lines(path, events, seed=seed)
    return path


def child(case: Path, statuses: str) -> int:
    """Detect (stored) in this fresh process; print its seconds, findings and peak RSS."""
    rules = load_rules(statuses=STATUSES[statuses])
    seconds, findings = timed(lambda: detect(case, rules))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "findings": len(findings), "peak": peak}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=10_000, help="events loaded before --since-last")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "RULES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1])

    args.data.mkdir(parents=True, exist_ok=True)
    big = log(args.data, args.events, 1)
    case = args.data / f"bench-detect-{args.events}.duckdb"
    case.unlink(missing_ok=True)
    load_s, result = timed(lambda: load(case, [big, SAMPLE], progress=False))
    lines = [
        f"case: {result.events_loaded:,} events; baseline: their load {load_s:.2f} s",
        f"{'':34}{'seconds':>8}{'findings':>10}{'baseline':>10}{'ratio':>7}  target",
    ]

    def row(label: str, seconds: float, findings: int, base: float, target: str = "") -> None:
        lines.append(
            f"{label:34}{seconds:8.2f}{findings:10,}{base:10.2f}{seconds / base:7.2f}  {target}"
        )

    for name in ("stable", "default"):
        rules = load_rules(statuses=STATUSES[name])
        seconds, findings = timed(lambda rules=rules: detect(case, rules))
        row(f"detect, {len(rules)} {name} rules", seconds, len(findings), load_s,
            f"<= {TARGETS[name]} of the load")  # fmt: skip

    out = subprocess.run(
        [sys.executable, __file__, "--child", str(case), "default"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    mem = json.loads(out.stdout.splitlines()[-1])
    lines.append(
        f"detect, default rules, in a process of its own: {mem['seconds']:.2f} s, peak RSS "
        f"{mem['peak'] / 2**20:,.0f} MB (target at 10M events: < 2048 MB)"
    )

    rules = load_rules(statuses=STATUSES["default"])
    # The first --since-last after a full run derives every request and keeps them in the
    # case; the next derives only the requests its new load touches.
    for label, seed in (("first --since-last", 2), ("next --since-last", 3)):
        new_s, added = timed(lambda seed=seed: load(case, [log(args.data, args.new, seed)],
                                                     progress=False))  # fmt: skip
        since_s, merged = timed(lambda: detect(case, rules, since_last=True))
        full_s, full = timed(lambda: detect(case, rules))
        assert sorted(f.finding_id for f in merged) == sorted(f.finding_id for f in full)
        lines.append(f"then {added.events_loaded:,} new events loaded in {new_s:.2f} s:")
        row(f"detect {label}, default", since_s, len(merged), new_s, "vs that load")
        row(f"detect {label}, default", since_s, len(merged), full_s, "vs a full detect")
    print("\n".join(lines))
    case.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
