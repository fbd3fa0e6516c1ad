"""`?`: every key of the screen below and of the app."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


# the keys every screen has: focus moves between panes, `?` lists the keys
COMMON_KEYS = [
    Binding("tab", "app.focus_next", "Next pane", show=False),
    Binding("question_mark", "app.help", "Help"),
]


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def __init__(self, screen_title: str, bindings: list[tuple[str, str]]):
        super().__init__()
        self.screen_title, self.bindings = screen_title, bindings

    def compose(self) -> ComposeResult:
        table = Table(title=f"Keys: {self.screen_title}", expand=True)
        table.add_column("key", style="bold")
        table.add_column("action")
        for key, desc in self.bindings:
            table.add_row(key, desc)
        with VerticalScroll(id="help"):
            yield Static(table)


def bindings_of(*nodes) -> list[tuple[str, str]]:
    rows, seen = [], set()
    for node in nodes:
        for b in getattr(node, "BINDINGS", []):
            if isinstance(b, Binding):
                key, desc = b.key, b.description
            else:
                key, desc = b[0], b[2] if len(b) > 2 else b[1]
            if desc and key not in seen:
                seen.add(key)
                rows.append((key.replace("question_mark", "?").replace("slash", "/"), desc))
    return rows
