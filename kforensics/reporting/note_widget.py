"""The notebooks' note widget: tag, comment or mark an event, finding or identity of the case."""

from __future__ import annotations

from pathlib import Path

from kforensics.api import Case
from kforensics.errors import KforensicsError
from kforensics.investigate.notes import MARKS, TARGET_KINDS, add_note, default_author
from kforensics.untrusted import visible

MAX_CHOICES = 200  # the target's suggestions: the most severe findings, the busiest identities


class NoteForm:
    """The note widget's controls, its Save button and the message line beside it."""

    def __init__(self, case: Case | str | Path, kind: str = "finding", target: str = "") -> None:
        import ipywidgets as widgets

        self.case = case if isinstance(case, Case) else Case(case)
        self.kind = widgets.Dropdown(options=list(TARGET_KINDS), value=kind, description="on")
        self.target = widgets.Combobox(
            value=target, description="target", placeholder="finding_id, event_id or identity"
        )
        self.tag = widgets.Text(description="tag", placeholder="lateral-movement")
        self.comment = widgets.Textarea(description="comment")
        self.mark = widgets.Dropdown(options=["", *MARKS], value="", description="mark")
        self.reason = widgets.Text(description="reason", placeholder="why (with a mark)")
        self.author = widgets.Text(value=default_author(), description="author")
        self.button = widgets.Button(description="Save", button_style="primary")
        # a Label shows text, never HTML: a value quoted back from the log stays text
        self.message = widgets.Label(value="")
        # A box sends its value on leaving it (the Save click's mousedown does), not per
        # keystroke: ipywidgets holds back a model's later updates while one is unanswered (a
        # busy kernel) but sends the click at once, so a note could be saved cut short.
        for box in (self.target, self.tag, self.comment, self.reason, self.author):
            box.continuous_update = False
        self.kind.observe(lambda _: self.suggest(), names="value")
        self.button.on_click(lambda _: self.save())
        self.box = widgets.VBox(
            [
                self.kind, self.target, self.tag, self.comment, self.mark, self.reason,
                self.author, widgets.HBox([self.button, self.message]),
            ]
        )  # fmt: skip
        self.suggest()

    def suggest(self) -> None:
        """Offer the target's likely values for the chosen kind (the case read once)."""
        try:
            if self.kind.value == "finding":
                found = self.case.window().findings()
                options = list(found["finding_id"])
            elif self.kind.value == "identity":
                top = self.case.window().query("top_identities", limit=MAX_CHOICES)
                options = [i for i in dict.fromkeys(top["identity"]) if i]
            else:
                options = []
        except KforensicsError as exc:
            self.message.value = visible(str(exc))[:300]
            return
        self.target.options = [visible(o) for o in options[:MAX_CHOICES]]

    def save(self) -> int | None:
        """Store the note; return its id (None when a value is bad, the message saying which)."""
        try:
            note_id = add_note(
                self.case.path,
                self.kind.value,
                self.target.value,
                tag=self.tag.value or None,
                comment=self.comment.value or None,
                mark=self.mark.value or None,
                reason=self.reason.value or None,
                author=self.author.value or None,
            )
        except KforensicsError as exc:
            self.message.value = visible(str(exc))[:300]
            return None
        self.message.value = f"note {note_id} stored"
        self.tag.value = self.comment.value = self.reason.value = ""
        self.mark.value = ""
        return note_id


def note_widget(case: Case | str | Path, kind: str = "finding", target: str = "") -> None:
    """Display the note widget for the case (on a kind of target, pre-filled); returns None."""
    from IPython.display import display

    display(NoteForm(case, kind, target).box)
