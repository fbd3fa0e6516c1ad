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


class Confirm(ModalScreen[bool]):
    """A yes/no question: a sentence and two buttons (`y` / Enter on the first, `n` / Esc the second)."""

    BINDINGS = [Binding("escape,n", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No"):
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        from rich.text import Text
        from textual.containers import Horizontal, Vertical
        from textual.widgets import Button, Static

        with Vertical(id="confirm"):
            yield Static(Text(self.question), id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="primary")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes").focus()

    def on_button_pressed(self, event) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")
