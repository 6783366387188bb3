"""Altair charts for the notebooks, built only from aggregates (of `kforensics.investigate`).

No chart sees raw rows: each gets a few hundred aggregated rows at most, passed inline as
`alt.Data(values=...)` with timestamps as ISO strings. Tooltips are plain text fields.

Altair's HTML output embeds the data as JSON inside a <script> element, where a log value such
as `</script><img onerror=...>` would end the script. So every `<` and `>` in chart text is
replaced by the look-alikes `‹` and `›`, and control and bidi characters by their escapes:
charts are overviews, the escaped tables are exact.

The time axis of the request charts covers the stretch of the case that holds the most requests
with no gap longer than MAX_GAP (the investigation `time_stretches`): a single request
stamped 1970 or 9999 (a crafted or broken clock) would otherwise stretch it over millennia and
squash everything else into one bar. The subtitle says how many requests lie outside, and when;
an explicit since and until are kept as given.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import altair as alt
import duckdb
import pyarrow as pa

from kforensics.investigate import queries as inv
from kforensics.investigate.canned import run_query
from kforensics.investigate.queries import Time
from kforensics.investigate.sql import as_time
from kforensics.investigate.story import attack_url
from kforensics.levels import MOST_SEVERE_FIRST
from kforensics.untrusted import visible

MAX_ROWS = 500
LEVEL_ORDER = list(MOST_SEVERE_FIRST)
LEVEL_COLORS = ["#67000d", "#d62728", "#ff7f0e", "#bcbd22", "#7f7f7f"]
OUTCOME_ORDER = ["2xx", "3xx", "4xx", "5xx", "1xx", "none"]
OUTCOME_COLORS = ["#4c78a8", "#72b7b2", "#f58518", "#e45756", "#54a24b", "#bab0ac"]


MAX_GAP = timedelta(days=7)


def _safe(text: str) -> str:
    return visible(text).replace("<", "\u2039").replace(">", "\u203a")


def time_axis(
    con: duckdb.DuckDBPyConnection, since: Time, until: Time, identity: str | None = None
) -> tuple[Time, Time, str]:
    """Return the window the request charts draw (see the module) and a note on what it leaves."""
    if as_time(since) and as_time(until):
        return since, until, ""
    window = {"since": since, "until": until, "identity": identity, "gap_days": MAX_GAP.days}
    stretches = run_query(con, "time_stretches", window).to_pylist()
    if len(stretches) < 2:
        return since, until, ""
    best, outside = stretches[0], sum(s["requests"] for s in stretches[1:])
    first = min(s["lo"] for s in stretches[1:])
    last = max(s["hi"] for s in stretches[1:])
    try:
        end = best["hi"] + timedelta(microseconds=1)  # until is exclusive
    except OverflowError:  # the busiest stretch ends at 9999-12-31T23:59:59.999999
        end = until
    note = (
        f"not drawn: {outside} request(s) dated {first:%Y-%m-%d} to {last:%Y-%m-%d}, "
        f"more than {MAX_GAP.days} days from the rest"
    )
    return best["lo"], end, note


def chart_rows(table: pa.Table, limit: int = MAX_ROWS) -> list[dict]:
    """Return at most `limit` rows of an aggregate as JSON-ready dicts (times ISO, no `<`/`>`)."""
    rows = table.slice(0, limit).to_pylist()
    for row in rows:
        for key, value in row.items():
            if isinstance(value, datetime | date):
                row[key] = value.isoformat()
            elif isinstance(value, list):
                row[key] = _safe(", ".join(str(v) for v in value))
            elif isinstance(value, str):
                row[key] = _safe(value)
    return rows


def _data(table: pa.Table) -> alt.Data:
    return alt.Data(values=chart_rows(table))


def _empty(title: str) -> alt.Chart:
    return (
        alt.Chart(alt.Data(values=[{"text": "no data in this window"}]), title=title)
        .mark_text()
        .encode(text="text:N")
    )


def _title(text: str, note: str = "") -> alt.TitleParams:
    """Return a chart title cut to the chart's width: a long log value must not widen the page."""
    return alt.TitleParams(text, subtitle=note or alt.Undefined, limit=700)


def _volume(table: pa.Table, title: str, height: int = 160, note: str = "") -> alt.Chart:
    width = (table.column("bucket_seconds")[0].as_py() if table.num_rows else 60) * 1000
    return (
        alt.Chart(_data(table), title=_title(title, note), height=height, width=700)
        .mark_bar()
        .encode(
            x=alt.X("bucket:T", title="time (UTC)"),
            x2=alt.X2("bucket_end:T"),
            y=alt.Y("sum(requests):Q", title="requests", stack="zero"),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=OUTCOME_ORDER, range=OUTCOME_COLORS),
                title="outcome",
            ),
            order=alt.Order("outcome:N"),
            tooltip=[
                alt.Tooltip("bucket:T", title="from", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("outcome:N"),
                alt.Tooltip("sum(requests):Q", title="requests"),
            ],
        )
        .transform_calculate(bucket_end=f"toDate(datum.bucket) + {int(width)}")
    )


def outcomes_over_time(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    identity: str | None = None,
) -> alt.Chart:
    """Return stacked bars of requests over time by outcome class (2xx/3xx/4xx/5xx)."""
    since, until, note = time_axis(con, since, until, identity)
    table = inv.volume_over_time(con, since, until, identity=identity)
    if not table.num_rows:
        return _empty("Requests by outcome")
    return _volume(table, "Requests by outcome (UTC)", note=note)


def timeline(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    identity: str | None = None,
    namespace: str | None = None,
    min_level: str | None = None,
) -> alt.Chart | alt.VConcatChart:
    """Return requests over time (bars) above the findings as points coloured by level.

    Both follow identity and namespace; min_level picks the findings shown.
    """
    since, until, note = time_axis(con, since, until, identity)
    volume = inv.volume_over_time(con, since, until, identity=identity, namespace=namespace)
    if not volume.num_rows:
        return _empty("Timeline")
    title = f"Requests of {_safe(identity)}" if identity else "Requests"
    bars = _volume(volume, title, height=140, note=note)
    found = inv.findings_points(
        con, since, until, identity=identity, namespace=namespace, min_level=min_level
    )
    if not found.num_rows:
        return bars
    points = (
        alt.Chart(_data(found), title="Findings (first seen)", height=120, width=700)
        .mark_point(filled=True, size=80, opacity=0.8)
        .encode(
            x=alt.X("first_seen:T", title="time (UTC)"),
            y=alt.Y("level:N", sort=LEVEL_ORDER, title="level"),
            color=alt.Color(
                "level:N", scale=alt.Scale(domain=LEVEL_ORDER, range=LEVEL_COLORS), legend=None
            ),
            tooltip=[
                alt.Tooltip("rule_id:N", title="rule"),
                alt.Tooltip("actor:N", title="actor"),
                alt.Tooltip("namespace:N", title="namespace"),
                alt.Tooltip("level:N"),
                alt.Tooltip("count:Q", title="events"),
                alt.Tooltip("first_seen:T", format="%Y-%m-%d %H:%M:%S"),
            ],
        )
    )
    return alt.vconcat(bars, points).resolve_scale(x="shared", color="independent")


def identity_verb_heatmap(
    con: duckdb.DuckDBPyConnection, since: Time = None, until: Time = None, limit: int = 300
) -> alt.Chart:
    """Return a heatmap of requests per identity and verb (busiest identity x verb pairs)."""
    table = inv.who_did_what(con, since, until, limit=limit)
    if not table.num_rows:
        return _empty("Identity x verb")
    return (
        alt.Chart(_data(table), title="Requests per identity and verb")
        .mark_rect()
        .encode(
            x=alt.X("verb:N", title="verb"),
            y=alt.Y("identity:N", title=None, sort="-color"),
            color=alt.Color("sum(requests):Q", title="requests", scale=alt.Scale(type="log")),
            tooltip=[
                alt.Tooltip("identity:N"),
                alt.Tooltip("verb:N"),
                alt.Tooltip("sum(requests):Q", title="requests"),
            ],
        )
    )


def attack_matrix(
    con: duckdb.DuckDBPyConnection,
    since: Time = None,
    until: Time = None,
    include_info: bool = False,
) -> alt.LayerChart | alt.Chart:
    """Return the ATT&CK tactic x technique matrix: cells coloured by their worst finding's
    level, labelled with the finding count, techniques ordered by severity score, each cell a
    link to the technique's ATT&CK page. Info findings (activity) are left out unless asked."""
    table = inv.attack_counts(con, since, until, min_level="info" if include_info else "low")
    if not table.num_rows:
        return _empty("ATT&CK matrix")
    rows = chart_rows(table)
    for row in rows:
        row["url"] = attack_url(row["technique"]) or ""
    levels = [lv for lv in LEVEL_ORDER if include_info or lv != "info"]
    colors = [c for lv, c in zip(LEVEL_ORDER, LEVEL_COLORS, strict=True) if lv in levels]
    base = alt.Chart(
        alt.Data(values=rows),
        title=_title(
            "Findings by ATT&CK tactic and technique",
            "colour: worst level; number: findings; info left out" if not include_info else "",
        ),
    ).encode(
        x=alt.X("tactic:N", title="tactic", axis=alt.Axis(labelAngle=-30)),
        y=alt.Y(
            "technique:N",
            title="technique",
            sort=alt.EncodingSortField("score", op="sum", order="descending"),
        ),
        href=alt.Href("url:N"),
        tooltip=[
            alt.Tooltip("tactic:N"),
            alt.Tooltip("technique:N"),
            alt.Tooltip("findings:Q"),
            alt.Tooltip("worst:N", title="worst level"),
            alt.Tooltip("score:Q", title="score (low 1, medium 3, high 9, critical 27)"),
            alt.Tooltip("url:N", title="ATT&CK page"),
        ],
    )
    rect = base.mark_rect(cursor="pointer").encode(
        color=alt.Color(
            "worst:N", scale=alt.Scale(domain=levels, range=colors), title="worst level"
        )
    )
    text = base.mark_text(fontSize=10, color="white").encode(text="findings:Q")
    return rect + text
