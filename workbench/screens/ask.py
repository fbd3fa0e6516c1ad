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
    """A yes/no question: a sentence and two buttons, `y` for the first (unless yes_key is off) and
    `n` / Esc for the second.
    The focus starts on the safe answer (keep the run, keep the edit, start nothing): Enter pressed
    out of habit, or a key meant for the screen below, never loses work or takes the machine for an
    hour. Yes takes `y`, a click, or Tab to its button and Enter."""

    BINDINGS = [Binding("escape,n", "dismiss(False)", "No"), Binding("y", "yes", "Yes")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No", yes_key: bool = True):
        """yes_key=False: Yes only by its button (Tab, Enter, or a click). For stopping a run, where
        the dialog opens from a stray `s` and the next stray key may well be a `y` ("synthetic")."""
        super().__init__()
        self.question, self.yes, self.no, self.yes_key = question, yes, no, yes_key

    def action_yes(self) -> None:
        if self.yes_key:
            self.dismiss(True)

    def compose(self) -> ComposeResult:
        from rich.text import Text
        from textual.containers import Horizontal, Vertical
        from textual.widgets import Button, Static

        with Vertical(id="confirm"):
            yield Static(Text(self.question), id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)" if self.yes_key else self.yes, id="yes", variant="primary")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no").focus()

    def on_button_pressed(self, event) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")
