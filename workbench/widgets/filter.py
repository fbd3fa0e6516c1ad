"""The filter line of a list (sessions, samples). It keeps the focus until Escape (which clears it
and goes back to the list, hiding the line where it is shown on demand) or ↓ / Tab (which go to
the filtered list): Enter stays, so the filter's own syntax (`set:synthetic`) typed after an Enter
is never read as the screen's keys (`s` stop, `k` checkpoint)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class FilterBox(Input):
    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False),
                Binding("down", "to_list", "Filter: to the list", show=False)]

    def __init__(self, target: str, hide_on_clear: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.target, self.hide_on_clear = target, hide_on_clear  # target: a selector of the list

    def action_clear(self) -> None:
        self.value = ""
        if self.hide_on_clear:
            self.display = False
        self.screen.query_one(self.target).focus()

    def action_to_list(self) -> None:
        self.screen.query_one(self.target).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # the filter applies as typed; Enter leaves the focus here
