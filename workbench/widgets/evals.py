"""Evaluations by set and expert (with intervals), and the diagnostic codes of each."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ..runstate import RunView
from .pane import Pane
from .text import bar, interval


class Evaluations(Pane, Vertical):
    TITLE, TAB, ID = "Evaluations", "tab-evals", "evaluations"

    def compose(self) -> ComposeResult:
        yield DataTable(id="evals", zebra_stripes=True)
        yield Static("Diagnostics per evaluation (outputs carrying each code)", classes="caption")
        yield DataTable(id="codes", zebra_stripes=True)

    shown: tuple = ()

    def show(self, view: RunView) -> None:
        state, other = view.state, view.other
        # rebuilt only when an evaluation arrives: a heartbeat must not move the cursor or the scroll
        seen = (len(state.evals), len(other.evals) if other else 0)
        if seen == self.shown:
            return
        self.shown = seen
        table = self.query_one("#evals", DataTable)
        cursor, scroll = table.cursor_coordinate, table.scroll_offset
        table.clear(columns=True)
        evals = [(state.name, e) for e in state.evals] + ([(other.name, e) for e in other.evals] if other else [])
        experts = sorted({x for _, e in evals for x in e.get("by_expert", {})})
        table.add_columns("run", "set", "at", "accuracy [95% CI]", "parse", "valid", *map(Text, experts))  # names from events: never markup
        for name, e in evals:
            cells = []
            for x in experts:
                b = e.get("by_expert", {}).get(x)
                cells.append(f"{bar(b['correct'] / b['total'], 6)} {b['correct']}/{b['total']}" if b and b["total"] else "")
            table.add_row(Text(name), Text(str(e.get("set", ""))), Text(str(e.get("at", ""))), interval(e),
                          f"{e.get('parse_rate') or 0:.1%}", f"{e.get('valid_rate') or 0:.1%}", *cells)
        table.cursor_coordinate = cursor  # where it was (a new row is added at the end)
        table.scroll_to(scroll.x, scroll.y, animate=False)
        codes_table = self.query_one("#codes", DataTable)
        codes_table.clear(columns=True)
        labels, codes, cells = state.code_table()  # every set: a column per (set, evaluation)
        codes_table.add_columns("code", *map(Text, labels))
        for code in codes:
            codes_table.add_row(Text(code), *[str(cells[(lab, code)]) for lab in labels])
