"""Sampled outputs as a debugging feed: newest first, filtered by outcome,
diagnostic code, expert, set or any text, following the newest while `f`
(follow) is on. Rows are keyed by the sample's number, so Enter always opens
the sample under the cursor, past any number of samples."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Static

from ..runstate import RunState, RunView, sample_matches
from .filter import FilterBox
from .pane import Pane


class SamplesTable(DataTable):
    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.headers: list[str] = []

    def highlighted(self) -> int | None:
        """The number of the sample under the cursor."""
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def on_resize(self, event) -> None:
        pane = next((a for a in self.ancestors if isinstance(a, SamplesPane)), None)
        if pane is not None and event.size.width != getattr(self, "_laid_out_at", None):
            self._laid_out_at = event.size.width
            pane.call_after_refresh(pane._redraw)  # the columns are chosen for the width the table has


COLUMNS = ("phase", "step", "set", "expert", "outcome", "answer", "expected", "reward", "codes", "question")
NUMBER_WIDTH = 10
# How a narrow table gives way, in order: columns the preview beside it shows anyway go, free text is
# shortened (ending in …) down to a width, and only then does it go too. Numbers are never shortened.
FIT = [("drop", "phase", 0), ("drop", "step", 0), ("shrink", "question", 30), ("shrink", "codes", 26),
       ("drop", "expert", 0), ("shrink", "question", 20), ("drop", "reward", 0), ("drop", "set", 0),
       ("shrink", "question", 12), ("drop", "question", 0), ("shrink", "codes", 9)]


def number(value) -> str:
    """An answer as it fits a column: whole when short, else rounded and marked with … (never cut silently)."""
    if value is None:
        return ""
    text = str(value)
    if len(text) <= NUMBER_WIDTH:
        return text
    try:
        rounded = f"{float(value):.6g}"
    except (TypeError, ValueError, OverflowError):
        rounded = text
    return (rounded if len(rounded) < NUMBER_WIDTH else rounded[:NUMBER_WIDTH - 1]) + "…"


def _cells(e: dict) -> dict[str, Text]:
    reward = e.get("reward")
    style = "green" if reward == 1.0 else "yellow" if (reward or 0) >= 0.7 else "red"
    # Text, not str: a DataTable reads str cells as markup, and model text is not markup
    return {"phase": Text(str(e.get("phase") or "")), "step": Text(str(e.get("step", ""))), "set": Text(str(e.get("set") or "")),
            "expert": Text(str(e.get("expected_expert") or "")), "outcome": Text(str(e.get("outcome") or ""), style=style),
            "answer": Text(number(e.get("answer"))), "expected": Text(number(e.get("expected_answer"))),
            "reward": Text(f"{reward:g}" if isinstance(reward, (int, float)) else "", style=style),
            "codes": Text(" ".join(str(c) for c in e.get("codes", [])), style="red"),
            "question": Text(" ".join(str(e.get("question") or "").split())[:200])}


def layout(width: int, events: list[dict]) -> tuple[list[str], list[list[Text]]]:
    """The columns that fit `width` (the table's own), and the rows in them. Numbers are never cut;
    free text ends in … where it is shortened; columns the preview shows anyway go first."""
    rows = [_cells(e) for e in events]
    widths = {c: max([len(c)] + [r[c].cell_len for r in rows]) for c in COLUMNS}
    natural = dict(widths)
    columns = list(COLUMNS)

    def need() -> int:
        return sum(widths[c] + 2 for c in columns) + 2  # cell padding, and a scrollbar

    for action, name, least in FIT:
        over = need() - width
        if over <= 0 or not width:
            break
        if action == "drop":
            columns.remove(name)
        elif name in columns:  # shorten, down to `least` characters
            widths[name] = max(least, min(widths[name], widths[name] - over))
    if width and need() > width:  # still too wide: the codes go too (the preview beside lists them)
        columns.remove("codes")
    for name in ("codes", "question"):  # what a dropped column left is given back to the free text
        if width and name in columns and need() < width:
            widths[name] = min(natural[name], widths[name] + width - need())
    out = []
    for r in rows:
        row = []
        for c in columns:
            cell = r[c].copy()
            if cell.cell_len > widths[c]:
                cell.truncate(widths[c], overflow="ellipsis")
            row.append(cell)
        out.append(row)
    return columns, out


def preview_text(e: dict) -> Text:
    reward = e.get("reward")
    style = "green" if reward == 1.0 else "yellow" if (reward or 0) >= 0.7 else "red"
    t = Text()
    t.append(f"{e.get('outcome') or '?'}", style=f"bold {style}")
    t.append(f"  reward {reward:g}" if isinstance(reward, (int, float)) else "")
    answer = e.get("answer")
    t.append(f"  answer {'none' if answer is None else answer}  expected {e.get('expected_answer')}\n")
    where = " ".join(str(x) for x in (e.get("phase"), e.get("step"), e.get("set"), e.get("expected_expert")) if x)
    t.append(f"{where}   Enter: open in the stepper\n\n", style="dim")
    t.append("Q: ", style="bold")
    t.append(f"{e.get('question') or ''}\n\n")
    codes = e.get("codes") or []
    if codes:
        t.append("diagnostics: ", style="bold")
        t.append(" ".join(str(c) for c in codes) + "\n", style="red")
    if e.get("cut"):
        t.append("cut off by the length limit\n", style="yellow")
    t.append("\n")
    t.append(str(e.get("text") or ""))  # model output: text, never markup
    return t


class SamplesPane(Pane, Vertical):
    TITLE, TAB, ID = "Samples", "tab-samples", "samples-pane"
    BINDINGS = [
        Binding("slash", "filter", "Filter samples"),
        Binding("f", "follow", "Follow newest"),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.follow = True
        self.query_text = ""
        self.shown: list[int] = []  # sample numbers in the table, newest first
        self.state: RunState | None = None  # the last state shown: a filter or follow change redraws from it

    def compose(self) -> ComposeResult:
        yield FilterBox("#samples", placeholder="filter: outcome:wrong code:overwrite expert:composition set:gsm8k, or any text", id="samples-filter")
        yield Static(id="samples-status")
        with Horizontal(id="samples-split"):
            yield SamplesTable(id="samples")
            yield VerticalScroll(Static(id="sample-preview"), id="sample-preview-box")

    def show(self, view: RunView) -> None:
        self._fill(view.state)

    def _fill(self, state: RunState, force: bool = False) -> None:
        self.state = state
        wanted = [e for e in reversed(state.samples) if sample_matches(e, self.query_text)]
        keys = [e["seq"] for e in wanted]
        table = self.query_one(SamplesTable)
        if keys != self.shown or force:
            here = table.highlighted()
            columns, rows = layout(table.size.width, wanted)
            table.clear(columns=columns != table.headers)
            if columns != table.headers:
                table.add_columns(*columns)
                table.headers = columns
            for e, row in zip(wanted, rows):
                table.add_row(*row, key=str(e["seq"]))
            self.shown = keys
            if keys:  # follow: the newest (top); otherwise the cursor stays on its sample
                table.move_cursor(row=0 if self.follow or here not in keys else keys.index(here))
        total = len(state.samples)
        status = f"{len(keys)} of {total} samples" + (f" match '{self.query_text}'" if self.query_text else "") \
            + ("" if state.finished else "  · following the newest (f)" if self.follow else "  · follow off (f)")
        if self.query_text and not keys:
            status = f"no sample matches '{self.query_text}' (of {total}); Escape clears the filter"
        self.query_one("#samples-status", Static).update(Text(status, style="dim"))

    def action_filter(self) -> None:
        self.query_one("#samples-filter", Input).focus()

    def action_follow(self) -> None:
        self.follow = not self.follow
        self.notify("following the newest sample" if self.follow else "follow off: the cursor stays where it is")
        self._redraw()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "samples-filter":
            self.query_text = event.value.strip()
            self._redraw()

    def _redraw(self) -> None:
        if self.state is not None:
            self._fill(self.state, force=True)

    def preview(self, seq: int | None) -> None:
        """The sample under the cursor, whole: its question, what it wrote, its diagnostics."""
        box = self.query_one("#sample-preview", Static)
        e = None if seq is None or self.state is None else next((x for x in self.state.samples if x["seq"] == seq), None)
        box.update(preview_text(e) if e else Text("no sample selected", style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.preview(int(event.row_key.value))
        # moving the cursor away from the newest row by hand turns follow off (as `less +F` does)
        if self.follow and event.cursor_row > 0 and event.data_table.has_focus:
            self.follow = False
