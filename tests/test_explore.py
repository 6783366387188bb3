"""The interactive filters: every chart and table below them follows every filter, a level is
that level and above, text applies on Enter (not per keystroke), a bad value is named beside
its control and leaves what is shown as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import altair as alt
import pytest

import kforensics as kf
from kforensics.reporting import explore as explore_module
from kforensics.reporting.explore import Filters, read_filters
from tests.conftest import SAMPLES

SA = "system:serviceaccount:shop:storefront"


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("explore") / "case.duckdb"
    kf.load(path, [SAMPLES / "native"], progress=False)
    kf.detect(path, exceptions=SAMPLES / "known_false_positives.yaml")
    return path


@pytest.fixture
def widgets_shown(monkeypatch):
    """Return (what show() got, what display() got) while explore runs."""
    shown, displayed = [], []
    monkeypatch.setattr(explore_module, "show", shown.append)
    monkeypatch.setattr("IPython.display.display", lambda *objs: displayed.extend(objs))
    return shown, displayed


def _controls(displayed) -> dict:
    box, _output = displayed
    rows = {row.children[0].description: row.children for row in box.children}
    return {name: control for name, (control, _label) in rows.items()} | {
        f"{name} message": label for name, (_control, label) in rows.items()
    }


def _rows(spec) -> list[dict]:
    """Return every inline data row of a Vega-Lite spec."""
    if isinstance(spec, dict):
        values = spec.get("values")
        found = list(values) if isinstance(values, list) else []
        return found + [r for k, v in spec.items() if k != "values" for r in _rows(v)]
    if isinstance(spec, list):
        return [r for v in spec for r in _rows(v)]
    return []


TIME_HINT = "not a time: use ISO 8601, e.g. 2026-03-14T10:00Z"


@pytest.mark.parametrize(
    "values, errors",
    [
        (("yesterday", "", "", "", ""), {"since": TIME_HINT}),
        (("2026-", "", "", "", ""), {"since": TIME_HINT}),
        (("2026-03-14T11:00Z", "2026-03-14T10:00Z", "", "", ""), {"until": "must be after since"}),
        (("", "", "x" * 513, "", "nope"), {"identity": "longer than 512 characters",
                                           "level": "not a level"}),
        (("", "9999-12-31T23:59:59-01:00", "", "", ""),
         {"until": TIME_HINT}),
    ],
)  # fmt: skip
def test_bad_values_are_named_per_control(values, errors):
    assert read_filters(*values) == (None, errors)


def test_good_values_become_filters():
    assert read_filters(" 2026-03-14T10:00Z ", "", " alice ", "", "high") == (
        Filters(since=datetime(2026, 3, 14, 10, tzinfo=UTC), identity="alice", min_level="high"),
        {},
    )


def test_every_view_follows_every_filter(case, widgets_shown):
    shown, displayed = widgets_shown
    extras = []
    kf.explore(kf.open_case(case), extra=lambda *args: extras.append(args))
    c = _controls(displayed)
    assert c["level"].options == (
        ("any level", ""), ("critical", "critical"), ("high and above", "high"),
        ("medium and above", "medium"), ("low and above", "low"), ("info and above", "info"),
    )  # fmt: skip
    assert [c[n].continuous_update for n in ("since", "until", "identity", "namespace")] == [
        False, False, False, False,
    ]  # fmt: skip
    assert SA in c["identity"].options and "payments" in c["namespace"].options
    chart, findings, requests = shown
    assert isinstance(chart, alt.TopLevelMixin)
    everything = len(findings)

    shown.clear()
    c["level"].value = "medium"
    _, findings, requests_now = shown
    assert set(findings["level"]) <= {"medium", "high", "critical"} and len(findings) < everything
    assert requests_now.equals(requests)  # requests have no level

    shown.clear()
    c["namespace"].value = "payments"
    chart, findings, requests = shown
    assert set(findings["namespace"]) == {"payments"}
    assert set(findings["level"]) <= {"medium", "high", "critical"}
    points = [row for row in _rows(chart.to_dict()) if "level" in row]  # the findings' points
    assert points and {(r["namespace"], r["level"]) for r in points} <= {
        ("payments", "medium"), ("payments", "high"), ("payments", "critical"),
    }  # fmt: skip

    shown.clear()
    c["identity"].value = SA
    _, findings, requests = shown
    assert set(findings["actor"]) == {SA} and set(requests["identity"]) == {SA}
    assert extras[-1][1:] == (SA, "payments", "medium")


def test_a_bad_time_is_named_beside_its_box_and_keeps_what_is_shown(case, widgets_shown):
    shown, displayed = widgets_shown
    kf.explore(kf.open_case(case, since="2026-03-14T10:00:00Z"))
    c = _controls(displayed)
    assert c["since"].value == "2026-03-14T10:00:00+00:00"
    assert len(shown) == 3
    shown.clear()
    c["since"].value = "2026-"  # what an Enter on a half-typed date sends
    assert shown == []
    assert c["since message"].value == TIME_HINT
    c["since"].value = ""
    assert len(shown) == 3 and c["since message"].value == ""


def test_the_notebooks_extras_take_the_four_filters(case, widgets_shown):
    shown, displayed = widgets_shown
    view = kf.open_case(case)
    # 02_identity's extra: the identity's requests in order, in the chosen namespace
    timeline = view.query("identity_timeline", identity=SA, namespace="payments")
    assert len(timeline) and set(timeline["namespace"]) == {"payments"}
    # 03_workload's: who touched the namespace, for the chosen identity
    activity = view.query("workload_activity", namespace="payments", identity=SA)
    assert len(activity) and set(activity["identity"]) == {SA}
