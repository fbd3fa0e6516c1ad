"""The filter line of a list (sessions, samples): Enter keeps the filter and goes back
to the list, Escape clears it (and hides the line where it is shown on demand)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class FilterBox(Input):
    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False)]

    def __init__(self, target: str, hide_on_clear: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.target, self.hide_on_clear = target, hide_on_clear  # target: a selector of the list

    def action_clear(self) -> None:
        self.value = ""
        if self.hide_on_clear:
            self.display = False
        self.screen.query_one(self.target).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.query_one(self.target).focus()
