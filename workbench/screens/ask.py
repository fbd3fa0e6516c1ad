"""A one-line question in a modal: go to a step, open a file."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input


class Ask(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, placeholder: str, kind: str = "text"):
        super().__init__()
        self.placeholder, self.kind = placeholder, kind

    def compose(self) -> ComposeResult:
        yield Input(placeholder=self.placeholder, id="ask", type=self.kind)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
