"""`mapping.instant` reads the API server's own timestamp form without its regex, and agrees
with the regex (`instant_by_pattern`) on every text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kforensics.case import connect
from kforensics.ingest.mapping import instant, instant_by_pattern


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    """Return a connection set up as a case's (time zone UTC)."""
    with connect(tmp_path_factory.mktemp("instant") / "c.duckdb", read_only=False) as c:
        yield c


def both(con, texts: list[str | None]) -> list[tuple]:
    """Return (instant, instant_by_pattern) of each text, in order."""
    return con.execute(
        f"SELECT {instant('t')}, {instant_by_pattern('t')} "  # noqa: S608 (constants)
        "FROM (SELECT unnest($texts) AS t, generate_subscripts($texts, 1) AS i) ORDER BY i",
        {"texts": texts},
    ).fetchall()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-14T09:26:53.589793Z", utc(2026, 3, 14, 9, 26, 53, 589793)),
        ("0999-01-01T00:00:00.000000Z", utc(999, 1, 1)),
        ("2026-03-14t09:26:53.589793z", utc(2026, 3, 14, 9, 26, 53, 589793)),
        ("2026-03-14T09:26:53.5Z", utc(2026, 3, 14, 9, 26, 53, 500000)),
        ("2026-03-14T09:26:53Z", utc(2026, 3, 14, 9, 26, 53)),
        ("2026-03-14 09:26:53.589793", utc(2026, 3, 14, 9, 26, 53, 589793)),
        ("2026-03-14T09:26:53.589793+01:00", utc(2026, 3, 14, 8, 26, 53, 589793)),
        ("2026-03-14T09:26:53.5897931Z", utc(2026, 3, 14, 9, 26, 53, 589793)),
        # strptime reads these, strftime does not write them back: the pattern decides
        (" 2026-03-14T09:26:53.589793Z", None),
        ("+2026-03-14T09:26:53.589793Z", None),
        ("2026-03-14T09:26:53.589793Z ", None),
        ("2026-3-14T09:26:53.589793Z", None),
        ("2026-03-14T24:00:00.000000Z", None),
        ("2026-03-14T23:59:60.000000Z", None),
        ("2026-02-30T00:00:00.000000Z", None),
        ("12026-03-14T09:26:53.589793Z", None),
        ("infinity", None),
        ("-infinity", None),
        ("epoch", None),
        ("2026-03-14", None),
        ("", None),
        (None, None),
    ],
)
def test_instant_of_each_form(con, text, expected):
    [(fast, by_pattern)] = both(con, [text])
    assert fast == expected
    assert by_pattern == expected


# Texts near the API server's form: its template with characters replaced, inserted or cut.
TEMPLATE = "2026-03-14T09:26:53.589793Z"
near = st.builds(
    lambda cuts, inserts: _edit(TEMPLATE, cuts, inserts),
    st.lists(st.integers(0, len(TEMPLATE) - 1), max_size=2),
    st.lists(
        st.tuples(st.integers(0, len(TEMPLATE)), st.sampled_from("0123459 :-+.TtZz\u0661")),
        max_size=2,
    ),
)


def _edit(text: str, cuts: list[int], inserts: list[tuple[int, str]]) -> str:
    chars = list(text)
    for i in sorted(set(cuts), reverse=True):
        del chars[i]
    for i, c in inserts:
        chars.insert(min(i, len(chars)), c)
    return "".join(chars)


micro = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")
)


@settings(max_examples=60, deadline=None)
@given(st.lists(near | micro | st.text(max_size=40), min_size=1, max_size=50))
def test_instant_agrees_with_the_pattern_on_any_text(con, texts):
    for fast, by_pattern in both(con, texts):
        assert fast == by_pattern
