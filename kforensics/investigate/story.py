"""The first screen of a triage report: what was examined (the header), then what happened.

`case_header` says which case, which sources (with sha256 and event counts), which time window,
which rules and exceptions the last `kforensics detect` used, which kforensics and when; then
`storylines` gives each suspect (kforensics.investigate.suspects) its steps in time order (the
named investigation `storyline`). The `*_html` functions render them, every value escaped
(each can come from a log or a file name): a finding links to its evidence rows in the same
page (`#ev-<finding_id>`, the ids `evidence_html` writes) and a technique to its ATT&CK page.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kforensics.investigate.canned import run_query
from kforensics.investigate.sql import Time, as_time
from kforensics.investigate.suspects import suspects
from kforensics.investigate.tables import as_text, escape, html_table
from kforensics.version import __version__

_TECHNIQUE = re.compile(r"T(\d{4})(?:\.(\d{3}))?")
EVIDENCE_PER_FINDING = 20


def attack_url(technique: Any) -> str | None:
    """Return the ATT&CK page of a technique id (T1234 or T1234.005), None for anything else."""
    m = _TECHNIQUE.fullmatch(technique) if isinstance(technique, str) else None
    if not m:
        return None
    sub = f"{m.group(2)}/" if m.group(2) else ""
    return f"https://attack.mitre.org/techniques/T{m.group(1)}/{sub}"


def evidence_anchor(finding_id: Any) -> str:
    """Return the id of a finding's evidence rows in the page: ev-<finding_id>."""
    return "ev-" + re.sub(r"[^\w-]", "_", str(finding_id))


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def case_header(
    con: duckdb.DuckDBPyConnection, case: str | Path, since: Time = None, until: Time = None
) -> dict[str, Any]:
    """Return what a report examined: case, sources, windows, last detect run, version, time."""
    sources = con.execute(
        "SELECT s.path, s.format, s.sha256, s.records, s.events_loaded, s.duplicates, "
        "s.rejected, (SELECT count(*) FROM events e WHERE e.source_file = s.path) AS in_case "
        "FROM sources s ORDER BY s.load_id, s.path"
    ).fetchall()
    first, last, undated, events = con.execute(
        "SELECT min(ts), max(ts), count(*) FILTER (ts IS NULL), count(*) FROM events"
    ).fetchall()[0]
    runs, tables = [], _tables(con)
    if "detect_runs" in tables:
        runs = con.execute(
            "SELECT detected_at, rules, exceptions, since, until, findings FROM detect_runs "
            "ORDER BY detected_at DESC LIMIT 1"
        ).fetchall()
    detect = None
    if runs:
        at, rules, exceptions, d_since, d_until, findings = runs[0]
        detect = {
            "detected_at": at, "rules": list(rules), "exceptions": exceptions,
            "since": d_since, "until": d_until, "findings": findings,
            "exception_entries": _exceptions(con, at) if "detect_exceptions" in tables else None,
        }  # fmt: skip
    names = ("path", "format", "sha256", "records", "events_loaded", "duplicates", "rejected")
    return {
        "case": str(Path(case).resolve()),
        "sources": [dict(zip((*names, "events_in_case"), row, strict=True)) for row in sources],
        "events": events,
        "case_window": (first, last),
        "undated_events": undated,
        "window": (as_time(since), as_time(until)),
        "detect": detect,
        "kforensics": __version__,
        "generated_at": datetime.now(UTC).replace(microsecond=0),
    }


def _exceptions(con: duckdb.DuckDBPyConnection, at: datetime) -> list[dict[str, Any]]:
    """Return the exception entries the detect run at `at` applied, in the file's order."""
    rows = con.execute(
        "SELECT rule_id, fields, reason FROM detect_exceptions WHERE detected_at = $at "
        "ORDER BY rowid",
        {"at": at},
    ).fetchall()
    return [{"rule_id": r, "fields": json.loads(f), "reason": why} for r, f, why in rows]


_e = escape


def _span(start: Any, end: Any, open_text: str) -> str:
    if start is None and end is None:
        return open_text
    return f"{as_text(start) or '(open)'} to {as_text(end) or '(open)'}"


def header_html(header: dict[str, Any]) -> str:
    """Return the header as HTML: a key/value table, the sources, the rules (all escaped)."""
    first, last = header["case_window"]
    case_window = _span(first, last, "no dated events")
    if header["undated_events"]:
        case_window += f" (and {header['undated_events']} undated events)"
    detect = header["detect"]
    if detect is None:
        detection = "none stored: run `kforensics detect` on the case"
    else:
        detection = (
            f"{as_text(detect['detected_at'])}: {len(detect['rules'])} rules, "
            f"{detect['exceptions']} exceptions, window "
            f"{_span(detect['since'], detect['until'], 'whole case')}, "
            f"{detect['findings']} findings stored"
        )
    rows = [
        ("case", header["case"]),
        ("events", f"{header['events']} from {len(header['sources'])} sources"),
        ("case window (UTC)", case_window),
        ("report window (UTC)", _span(*header["window"], "whole case")),
        ("last detection", detection),
        ("kforensics", header["kforensics"]),
        ("generated at (UTC)", header["generated_at"]),
    ]
    facts = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows)
    out = [f'<table class="kforensics kf-facts"><tbody>{facts}</tbody></table>']
    out.append(html_table(header["sources"], max_rows=200))
    if detect is not None:
        out.append(
            f"<details><summary>rules used ({len(detect['rules'])})</summary>"
            f"<p>{_e(detect['rules'])}</p></details>"
        )
        entries = detect["exception_entries"]
        if entries is None:
            out.append("<p>exceptions: not recorded (detected before kforensics kept them)</p>")
        elif entries:
            out.append(
                f"<details open><summary>exceptions applied ({len(entries)})</summary>"
                f"{html_table(entries, max_rows=500, max_chars=400)}</details>"
            )
    return "".join(out)


def storylines(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    min_level: str = "low",
    identity: str | None = None,
) -> list[tuple[str, pa.Table]]:
    """Return each suspect (most severe first), or only `identity`, with its steps in order."""
    window = {"since": since, "until": until, "min_level": min_level}
    who_all = [identity] if identity else suspects(con, since, until)
    return [(who, run_query(con, "storyline", {**window, "identity": who})) for who in who_all]


STEP_COLUMNS = ("step", "at", "level", "what", "request", "code", "where", "techniques")


def steps_html(steps: pa.Table | list[dict], max_rows: int = 200) -> str:
    """Return one suspect's steps as a table: techniques link to ATT&CK, evidence to its rows."""
    rows = steps.to_pylist() if isinstance(steps, pa.Table) else steps
    shown = [
        {**{k: r[k] for k in STEP_COLUMNS}, "evidence": r["evidence"], "_id": r["findings"][0]}
        | {"what": "; ".join(r["what"])}  # titles have commas of their own
        for r in rows
    ]
    links = {
        "techniques": lambda t, _row: attack_url(t),
        "evidence": lambda _v, row: "#" + evidence_anchor(row["_id"]),
    }
    return html_table(shown, max_rows, max_chars=600, links=links, hidden=("_id",))


def storyline_html(stories: list[tuple[str, pa.Table]]) -> str:
    """Return every suspect's storyline: a heading naming the identity, then its steps."""
    if not stories:
        return (
            "<p><em>no suspect: no finding at medium or above names a person or workload</em></p>"
        )
    parts = []
    for who, steps in stories:
        shown = steps_html(steps) if len(steps) else "<p><em>no finding at low or above</em></p>"
        parts.append(f"<h3>{_e(who)}</h3>{shown}")
    return "".join(parts)


FINDING_COLUMNS = (
    "first_seen", "level", "rule_id", "title", "actor", "impersonated", "namespace",
    "object", "count", "attack", "evidence", "quality", "notes",
)  # fmt: skip


def findings_html(findings: pa.Table | list[dict], max_rows: int = 500) -> str:
    """Return findings (the `findings` investigation) with their evidence linked to its rows."""
    rows = findings.to_pylist() if isinstance(findings, pa.Table) else findings
    table = []
    for f in rows:
        first = f["evidence"][0] if f["evidence"] else None
        cited = f"{first['source_file']}:{first['source_line']}" if first else ""
        more = len(f["evidence"]) - 1
        table.append(
            {
                **{k: f.get(k) for k in FINDING_COLUMNS if k in f},
                "object": "/".join(x for x in (f.get("resource"), f.get("name")) if x) or None,
                "evidence": cited + (f" (+{more} more)" if more > 0 else ""),
                "_id": f["finding_id"],
            }
        )
    links = {
        "attack": lambda t, _row: attack_url(t),
        "evidence": lambda _v, row: "#" + evidence_anchor(row["_id"]),
    }
    ordered = [{k: r.get(k) for k in (*FINDING_COLUMNS, "_id")} for r in table]
    return html_table(ordered, max_rows, links=links, hidden=("_id",))


def evidence_html(
    findings: pa.Table | list[dict], evidence: pa.Table | list[dict], max_rows: int = 500
) -> str:
    """Return each finding's evidence rows under an anchor `ev-<finding_id>`, findings in order."""
    rows = findings.to_pylist() if isinstance(findings, pa.Table) else findings
    cited = evidence.to_pylist() if isinstance(evidence, pa.Table) else evidence
    by_finding: dict[str, list[dict]] = {}
    for e in cited:
        by_finding.setdefault(e["finding_id"], []).append(e)
    parts = []
    for f in rows[:max_rows]:
        own = by_finding.get(f["finding_id"], [])
        more = len(f["evidence"]) - len(own)
        title = f"{f['level']} · {f['title']} · {f.get('actor') or '(unknown actor)'}"
        table = html_table(
            [{k: v for k, v in e.items() if k != "finding_id"} for e in own], EVIDENCE_PER_FINDING
        )
        note = f"<p><em>{more} more events not shown</em></p>" if more > 0 else ""
        parts.append(
            f'<div class="kf-evidence" id="{evidence_anchor(f["finding_id"])}">'
            f"<h4>{_e(title)}</h4>{table}{note}</div>"
        )
    return "".join(parts) or "<p><em>no findings</em></p>"


def window_findings(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    min_level: str = "info",
    identity: str | None = None,
) -> pa.Table:
    """Return the window's findings at or above min_level (one identity's if given)."""
    window = {"since": since, "until": until, "min_level": min_level, "identity": identity}
    return run_query(con, "findings", window)


def finding_rows(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    min_level: str = "info",
    identity: str | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Return the window's findings (one identity's if given) and their evidence rows."""
    window = {"since": since, "until": until, "min_level": min_level, "identity": identity}
    findings = window_findings(con, since, until, min_level, identity)
    evidence = run_query(con, "finding_evidence", {**window, "per_finding": EVIDENCE_PER_FINDING})
    return findings, evidence
