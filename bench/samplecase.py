"""The benchmark case: N generated background events plus the sample incident, built once."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kforensics import load  # noqa: E402
from kforensics.sample.generate import write_native_lines  # noqa: E402


def sample_case(data: Path, events: int) -> Path:
    """Return the case of `events` events under data, generating and loading it when missing."""
    data.mkdir(parents=True, exist_ok=True)
    case = data / f"case-{events}.duckdb"
    if not case.exists():
        log = data / f"audit-{events}-1.log"
        if not log.exists():
            write_native_lines(log, events, seed=1)
        t = time.perf_counter()
        load(case, [log, ROOT / "data" / "samples" / "native"], progress=False)
        print(f"built {case} in {time.perf_counter() - t:.1f} s")
    return case
