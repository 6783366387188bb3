"""The notebooks' interactive section: widgets that filter their charts and tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kforensics.api import Case
from kforensics.errors import QueryError
from kforensics.levels import MOST_SEVERE_FIRST
from kforensics.reporting.display import show

LEVEL_CHOICES = ["", *MOST_SEVERE_FIRST]  # "": every level
# More to show for the chosen identity or namespace (either may be None), given the case in
# the chosen window.
Extra = Callable[[Case, str | None, str | None], None]


def _text(time: datetime | None) -> str:
    return time.isoformat() if time else ""


def explore(
    case: Case,
    identity: str = "",
    namespace: str = "",
    extra: Extra | None = None,
) -> None:
    """Display filters (time, identity, namespace, level) and what they select; returns None.

    The time filters start at the case's window; the identity choices are the case's busiest.
    """
    import ipywidgets as widgets
    from IPython.display import display

    top = case.window().query("top_identities", limit=100)
    # both identities of an impersonated request, each once
    identities = [*top["identity"], *top["impersonated_by"]]
    controls = {
        "w_since": widgets.Text(value=_text(case.since), description="since"),
        "w_until": widgets.Text(value=_text(case.until), description="until"),
        "w_identity": widgets.Combobox(
            value=identity,
            options=list(dict.fromkeys(i for i in identities if i)),
            description="identity",
        ),
        "w_namespace": widgets.Text(value=namespace, description="namespace"),
        "w_level": widgets.Dropdown(options=LEVEL_CHOICES, value="", description="level"),
    }

    def render(w_since, w_until, w_identity, w_namespace, w_level):
        try:
            view = case.window(w_since, w_until)
            who, where = w_identity or None, w_namespace or None
            show(view.chart("timeline", identity=who))
            show(view.query("findings_for", identity=who, namespace=where, level=w_level))
            if extra is not None:
                extra(view, who, where)
        except QueryError as exc:  # an unreadable time: say so, keep the widgets alive
            show([{"error": str(exc)}])

    output = widgets.interactive_output(render, controls)
    display(widgets.VBox(list(controls.values())), output)
