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


def key_label(key: str) -> str:
    """A binding's keys as a user types them: `left_square_bracket` -> `[`, `ctrl+p`, `space`."""
    from textual.keys import format_key, key_to_character

    def one(k: str) -> str:
        c = key_to_character(k)  # `[` for left_square_bracket; tab, escape and space are named, never sent raw
        return c if c and c.isprintable() and not c.isspace() else format_key(k)

    return " / ".join(one(k) for k in key.split(","))


def own_bindings(node) -> list:
    """The bindings the workbench's own classes declare on this node: not those a widget inherits
    from Textual (a DataTable's Scroll Left, ctrl+pagedown), which every list has and no one looks up."""
    out = []
    for cls in reversed(type(node).__mro__):
        if cls.__module__.startswith("workbench") and "BINDINGS" in cls.__dict__:
            out += cls.__dict__["BINDINGS"]
    return out


def bindings_of(screen, app) -> list[tuple[str, str]]:
    """Every key of the screen: its own, those of the workbench's widgets on it (the filter line's
    `/`, the samples' `f`, the editor's ctrl+s), the app's, and the command palette."""
    nodes = [screen, *(w for w in screen.query("*") if type(w).__module__.startswith("workbench")), app]
    rows, seen = [], set()
    for node in nodes:
        for b in own_bindings(node):
            if isinstance(b, Binding):
                key, desc = b.key, b.tooltip or b.description  # the whole sentence where the key bar has a word
            else:
                key, desc = b[0], b[2] if len(b) > 2 else b[1]
            label = key_label(key)
            if isinstance(b, Binding) and node is screen and screen.check_action(b.action.split("(")[0], ()) is False:
                continue  # not offered here now (stop on a finished run)
            if desc and (label, desc) not in seen and label not in {k for k, _ in rows}:
                seen.add((label, desc))
                rows.append((label, desc))
    rows.append((key_label(app.COMMAND_PALETTE_BINDING), "Command palette: every action of the screen, themes"))
    return rows
