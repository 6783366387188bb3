"""Every file of the Falco k8s-audit corpus loads; the invalid one is a reject with a reason."""

from __future__ import annotations

import json
from collections import Counter

from kforensics import load
from kforensics.ingest.original import originals
from tests.conftest import corpus


def test_every_falco_trace_file_loads(case_path, con):
    traces = corpus("falco-k8s-audit") / "trace_files"
    files = sorted(traces.glob("*.json"))
    result = load(case_path, [traces])
    assert len(result.sources) == len(files) == 47
    by_name = {s.path.rsplit("/", 1)[-1]: s for s in result.sources}
    bad = by_name.pop("fal_01_003.json")
    assert (bad.events_loaded, bad.rejected) == (0, 1)
    for name, s in by_name.items():
        assert s.rejected == 0, name
        assert s.events_loaded + s.duplicates == s.lines_read - s.blank_lines, name
    c = con()
    reason, raw = c.execute(
        "SELECT reason, raw FROM rejects WHERE source_file LIKE '%fal_01_003.json'"
    ).fetchone()
    assert reason.startswith("not an audit event") and json.loads(raw) == {"kind": 0}
    # The README of the corpus counts 51 events: 38 without apiVersion, 9 v1beta1, 4 v1.
    # (read again from the sources, each line proven by its digest: the case keeps no copy)
    ids = [r[0] for r in c.execute("SELECT event_id FROM events").fetchall()]
    texts = originals(c, ids)
    assert [i for i in ids if texts[i] is None] == []
    versions = Counter(json.loads(t).get("apiVersion", "none") for t in texts.values())
    assert versions == {"none": 38, "audit.k8s.io/v1beta1": 9, "audit.k8s.io/v1": 4}
    stages = dict(c.execute("SELECT stage, count(*) FROM events GROUP BY 1").fetchall())
    assert stages == {"ResponseComplete": 49, "ResponseStarted": 2}
    assert c.execute("SELECT count(*) FROM events WHERE ts IS NULL").fetchone() == (0,)
