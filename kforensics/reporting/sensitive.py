"""The "sensitive workloads" section in a notebook: a thin shell over investigate.sensitive."""

from __future__ import annotations

from typing import Any

from kforensics.investigate.sensitive import sensitive_html


def show_sensitive(case: Any, sensitive: Any = None) -> None:
    """Display what is declared sensitive, who reached into it, first-time pairs, candidates
    and proposed fences (sensitive: a file or mapping, default the case's); returns None."""
    from IPython.display import HTML, display

    from kforensics.api import Case

    case = case if isinstance(case, Case) else Case(case)
    display(HTML(sensitive_html(case.sensitive(sensitive))))
