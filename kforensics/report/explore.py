"""The notebooks' interactive section: widgets that filter their charts and tables."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from kforensics.investigate import charts
from kforensics.investigate import queries as inv
from kforensics.levels import MOST_SEVERE_FIRST
from kforensics.report.display import show

LEVEL_CHOICES = ["", *MOST_SEVERE_FIRST]  # "": every level
# More to show for the chosen identity or namespace (either may be None), within the window.
Extra = Callable[[duckdb.DuckDBPyConnection, str | None, str | None, dict], None]


def explore(
    con: duckdb.DuckDBPyConnection,
    since: str = "",
    until: str = "",
    identity: str = "",
    namespace: str = "",
    extra: Extra | None = None,
) -> None:
    """Display filters (time, identity, namespace, level) and what they select; returns None."""
    import ipywidgets as widgets
    from IPython.display import display

    top = inv.top_identities(con, limit=100)
    # both identities of an impersonated request, each once
    identities = top.column("identity").to_pylist() + top.column("impersonated_by").to_pylist()
    controls = {
        "w_since": widgets.Text(value=since, description="since"),
        "w_until": widgets.Text(value=until, description="until"),
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
            win = {"since": w_since or None, "until": w_until or None}
            who, where = w_identity or None, w_namespace or None
            show(charts.timeline(con, identity=who, **win))
            show(inv.findings_for(con, identity=who, namespace=where, level=w_level, **win))
            if extra is not None:
                extra(con, who, where, win)
        except ValueError as exc:  # an unreadable time: say so, keep the widgets alive
            show([{"error": str(exc)}])

    output = widgets.interactive_output(render, controls)
    display(widgets.VBox(list(controls.values())), output)
