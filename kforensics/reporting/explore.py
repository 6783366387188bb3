"""The notebooks' interactive section: widgets that filter every chart and table below them.

Text controls apply on Enter or when they lose focus, not per keystroke; a value that cannot
be used leaves what is shown as it was and says why beside its control.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kforensics.api import Case
from kforensics.errors import QueryError
from kforensics.investigate.sql import as_time
from kforensics.levels import MOST_SEVERE_FIRST
from kforensics.reporting.display import show

# (label, value): a level means that level and the more severe ones
LEVEL_CHOICES = [
    ("any level", ""),
    (MOST_SEVERE_FIRST[0], MOST_SEVERE_FIRST[0]),  # nothing is above it
    *((f"{lv} and above", lv) for lv in MOST_SEVERE_FIRST[1:]),
]
NAME_LIMIT = 512  # longer than any Kubernetes username or namespace a log can hold
# More to show for the chosen filters, given the case in the chosen window: (view, identity or
# None, namespace or None, min_level or None).
Extra = Callable[[Case, str | None, str | None, str | None], None]


@dataclass(frozen=True)
class Filters:
    """What the controls select; None is "no filter"."""

    since: datetime | None = None
    until: datetime | None = None
    identity: str | None = None
    namespace: str | None = None
    min_level: str | None = None


def read_filters(
    since: str, until: str, identity: str, namespace: str, level: str
) -> tuple[Filters | None, dict[str, str]]:
    """Return the filters the control values mean, or None and a short message per bad control."""
    errors: dict[str, str] = {}
    times: dict[str, datetime | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            times[name] = as_time(text.strip() or None)
        except (TypeError, ValueError, OverflowError):
            errors[name] = "not a time: use ISO 8601, e.g. 2026-03-14T10:00Z"
    if not errors and times["since"] and times["until"] and times["since"] >= times["until"]:
        errors["until"] = "must be after since"
    for name, text in (("identity", identity), ("namespace", namespace)):
        if len(text) > NAME_LIMIT:
            errors[name] = f"longer than {NAME_LIMIT} characters"
    if level and level not in MOST_SEVERE_FIRST:
        errors["level"] = "not a level"
    if errors:
        return None, errors
    chosen = Filters(
        times["since"], times["until"], identity.strip() or None, namespace.strip() or None,
        level or None,
    )  # fmt: skip
    return chosen, {}


def render(case: Case, chosen: Filters, extra: Extra | None = None) -> None:
    """Display the timeline, findings and requests the filters select (then extra); returns None."""
    view = case.window(chosen.since, chosen.until)
    who, where, level = chosen.identity, chosen.namespace, chosen.min_level
    show(view.chart("timeline", identity=who, namespace=where, min_level=level))
    show(view.query("findings_for", identity=who, namespace=where, min_level=level))
    show(view.query("who_did_what", identity=who, namespace=where, limit=30))
    if extra is not None:
        extra(view, who, where, level)


def _text(time: datetime | None) -> str:
    return time.isoformat() if time else ""


def explore(
    case: Case,
    identity: str = "",
    namespace: str = "",
    extra: Extra | None = None,
) -> None:
    """Display filters (time, identity, namespace, level) and what they select; returns None.

    The time filters start at the case's window; the identity and namespace choices are the
    case's busiest. Requests follow time, identity and namespace; findings follow all four.
    """
    import ipywidgets as widgets
    from IPython.display import display

    top = case.window().query("top_identities", limit=100)
    # both identities of an impersonated request, each once
    identities = list(dict.fromkeys(i for i in [*top["identity"], *top["impersonated_by"]] if i))
    namespaces = case.sql(
        "SELECT namespace FROM requests WHERE namespace IS NOT NULL GROUP BY namespace "
        "ORDER BY count(*) DESC, namespace LIMIT $n",
        n=100,
    )["namespace"]
    controls = {
        "since": widgets.Text(value=_text(case.since), description="since"),
        "until": widgets.Text(value=_text(case.until), description="until"),
        "identity": widgets.Combobox(value=identity, options=identities, description="identity"),
        "namespace": widgets.Combobox(
            value=namespace, options=list(namespaces), description="namespace"
        ),
        "level": widgets.Dropdown(options=LEVEL_CHOICES, value="", description="level"),
    }
    for control in controls.values():
        if hasattr(control, "continuous_update"):
            control.continuous_update = False  # Enter or leaving the box applies it
    messages = {name: widgets.Label(value="") for name in controls}
    output = widgets.Output()

    def refresh(_change: object = None) -> None:
        chosen, errors = read_filters(**{n: c.value for n, c in controls.items()})
        for name, label in messages.items():
            label.value = errors.get(name, "")
        if chosen is None:
            return  # what is shown still matches the last good values
        with output:
            output.clear_output(wait=True)
            try:
                render(case, chosen, extra)
            except QueryError as exc:  # e.g. the case went away: say so, keep the widgets
                show([{"error": str(exc)}])

    for control in controls.values():
        control.observe(refresh, names="value")
    rows = [widgets.HBox([controls[n], messages[n]]) for n in controls]
    display(widgets.VBox(rows), output)
    refresh()
