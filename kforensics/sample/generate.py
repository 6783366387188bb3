"""The sample story (setup, background and incident) and data/samples in every shape."""

from __future__ import annotations

import gzip
import io
import json
from bisect import bisect_left
from functools import lru_cache
from importlib import resources
from pathlib import Path

import orjson

from kforensics.jsontext import go_escape

from .background import background_events, write_native_lines
from .incident import ATTACKER, play_incident
from .shapes import (
    WRITE_VERBS,
    epoch_us,
    native_line,
    to_aks_record,
    to_eks_export_line,
    to_eks_filter_events,
    to_gke_entry,
)
from .story import Story
from .world import (
    START,
    resource_version,
)

# The entry points, which the package (`kforensics.sample`) re-exports.
__all__ = [
    "ATTACKER",
    "START",
    "background_events",
    "incident_steps",
    "story_events",
    "to_aks_record",
    "to_eks_export_line",
    "to_eks_filter_events",
    "to_gke_entry",
    "write_native_lines",
    "write_samples",
]

ROTATED = "audit-2026-03-14T09-30-00.000.log.gz"


@lru_cache(maxsize=4)
def _build(seed: int) -> tuple[tuple[bytes, ...], str]:
    """Run the story once: (native lines in log order, incident steps as JSON)."""
    st = Story(seed)
    st.setup()
    steps = play_incident(st)
    st.background(gap_s=9.0)
    st.events.sort(key=lambda e: (e[0], e[1]))
    lines, received = [], {}
    for _, _, ev in st.events:
        ref = ev.get("objectRef")
        if ev["verb"] == "update" and ref and ev["stage"] == "ResponseComplete":
            rv = resource_version(
                epoch_us(ev["requestReceivedTimestamp"]) - 1000
            )  # the version the client read
            ev = ev | {"objectRef": ref | {"resourceVersion": rv}}
        received.setdefault(ev["auditID"], ev["requestReceivedTimestamp"])
        lines.append(native_line(ev))
    for s in steps:
        s["time"] = min(received[a] for a in s["audit_ids"])
    return tuple(lines), json.dumps(steps)


def story_events(seed: int = 7) -> list[dict]:
    """The whole sample story as native audit.k8s.io/v1 Event dicts, in log order."""
    return [orjson.loads(line) for line in _build(seed)[0]]


def incident_steps(seed: int = 7) -> list[dict]:
    """The attack steps: step, actor, verb, resource, namespace, name, audit ids, time."""
    return json.loads(_build(seed)[1])


# ---------------------------------------------------------------- data/samples


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
            g.write(data)
        data = buf.getvalue()
    path.write_bytes(data)
    return path


def _jsonl(rows: list) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows)


def write_samples(out: Path, seed: int = 7) -> list[Path]:
    """Write data/samples (native, eks, gke, aks) for the story; return the files written."""
    out, lines, events = Path(out), _build(seed)[0], story_events(seed)
    stamps = [e["stageTimestamp"] for e in events]

    def window(start: str, end: str) -> list[dict]:
        return events[
            bisect_left(stamps, f"2026-03-14T{start}") : bisect_left(stamps, f"2026-03-14T{end}")
        ]

    cut = bisect_left(stamps, "2026-03-14T09:30:00")
    overlap = 20  # the newer file repeats the older file's tail, as after an overlapping rotation
    first = next(i for i, e in enumerate(events) if e["user"]["username"] == ATTACKER)
    items = events[first : first + 50]
    eventlist = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": items,
    }
    eks_filter = to_eks_filter_events(window("10:25:00", "10:55:00"))
    export = "".join(to_eks_export_line(e) + "\n" for e in events).encode()
    gke = sorted((g for g in map(to_gke_entry, events) if g), key=lambda g: g["timestamp"])
    hour = window("10:00:00", "11:00:00")  # one hourly PT1H blob
    aks = [to_aks_record(e) for e in hour]
    admin = [to_aks_record(e, log_as_object=True) for e in hour if e["verb"] in WRITE_VERBS]
    n, eks, gcp, az = out / "native", out / "eks", out / "gke", out / "aks"
    return [
        _write(n / ROTATED, b"".join(lines[:cut])),
        _write(n / "audit.log", b"".join(lines[cut - overlap :])),
        _write(
            n / "webhook-eventlist.json",
            go_escape(json.dumps(eventlist, indent=2)).encode() + b"\n",
        ),
        _write(eks / "kube-apiserver-audit.export.log.gz", export),
        _write(eks / "filter-log-events.json", json.dumps(eks_filter, indent=4).encode() + b"\n"),
        _write(
            gcp / "cloudaudit_activity.jsonl.gz",
            _jsonl([g for g in gke if "activity" in g["logName"]]),
        ),
        _write(
            gcp / "cloudaudit_data_access.jsonl.gz",
            _jsonl([g for g in gke if "data_access" in g["logName"]]),
        ),
        _write(
            az / "insights-logs-kube-audit.json",
            _jsonl([{"records": aks[i : i + 100]} for i in range(0, len(aks), 100)]),
        ),
        _write(az / "kube-audit-admin.jsonl", _jsonl(admin)),
        # what the story's responders declare sensitive (`detect --sensitive`)
        _write(
            out / "sensitive.yaml", (resources.files(__package__) / "sensitive.yaml").read_bytes()
        ),
    ]
