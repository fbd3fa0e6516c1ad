"""The trace stepper: run a trace op by op and see where it goes wrong.

It drives `engine.trace` step records through `Stepper`; it implements no
trace semantics of its own.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static, TextArea

from engine.events import clean_text
from engine.trace import fmt
from engine.trace.diagnostics import STYLE
from engine.trace.render import summary

from ..widgets.footer import KeysFooter
from ..stepper_model import Stepper
from ..widgets.editor import TraceEditor
from .ask import Ask, Confirm
from .help import COMMON_KEYS

EDITING = "editing: ctrl+s checks and saves; esc stops editing and steps through the edit"
VAR_STYLE = {"new": "bold green", "changed": "bold cyan", "overwritten": "bold white on red", "same": ""}


def source_text(m: Stepper, room: int, console, raw: str | None = None, show_raw: bool = False) -> Text:
    """The trace's lines with the gutter: breakpoint ◆, diagnostic ● / ▲ on its lines, the line
    number, ▶ on the line that runs next; the current step reversed. The stepper and the paired
    view's panes (screens/pair.py) draw with it."""
    text = raw if (show_raw and raw) else m.text  # a file's raw text is the text itself
    by_line: dict[int, str] = {}
    for d in m.report.diagnostics:
        if d.line is not None:
            for ln in range(d.line, (d.end_line or d.line) + 1):
                if by_line.get(ln) != "error":
                    by_line[ln] = d.severity
    cur, nxt = m.current, m.next
    part_starts = {p.line: p.index for p in m.report.trace.parts} if (m.report.trace and m.report.trace.composed) else {}
    lines = text.splitlines() or [""]
    width = len(str(len(lines)))
    first, last = m.report.parsed.first_line, m.report.parsed.last_line
    out = Text()
    if show_raw:
        out.append("raw model output, exactly as written (tabs →, trailing spaces ·); w: the parsed view\n", style="italic dim")
    for number, line in enumerate(lines, 1):
        sev = by_line.get(number)
        mark = "●" if sev == "error" else "▲" if sev == "warning" else " "
        bp = "◆" if number in m.breakpoints else " "
        arrow = "▶" if nxt is not None and number == nxt.line and not show_raw else " "  # runs on the next n
        gutter = Text(f"{bp}{mark}{number:>{width}} {arrow}│ ", style=STYLE.get(sev, "dim"))
        if number in part_starts and not show_raw:
            out.append(f"{'':>{width + 2}} ┄ part {part_starts[number]} ┄\n", style="dim italic")
        if show_raw:
            stripped = line.rstrip(" ")
            body = Text(stripped.replace("\t", "→"))
            body.append("·" * (len(line) - len(stripped)), style="dim")
        else:
            body = Text(line, style="dim" if not first <= number <= last else "")  # chatter around the YAML
        if cur is not None and number == cur.line and not show_raw:
            body.stylize("bold reverse")
        elif sev:
            body.stylize(STYLE[sev])
        for i, piece in enumerate(_wrap(body, room - gutter.cell_len, console)):
            # a long line goes on under its own text, the gutter kept clear, never back at column 0
            out.append_text(gutter if i == 0 else Text(" " * (gutter.cell_len - 2) + "│ ", style="dim"))
            out.append_text(piece)
            out.append("\n")
    return out


def _wrap(body: Text, width: int, console) -> list[Text]:
    if width < 8 or body.cell_len <= width:
        return [body]
    return list(body.wrap(console, width, overflow="fold"))


class StepperScreen(Screen):
    BINDINGS = [
        # short words, so that the keys fit the key bar at 100 columns beside `?`, esc and `q`; `?` lists
        # them all, whole (the tooltip), End and Restart too
        Binding("n,right,j", "step", "Step", tooltip="Run the next step"),
        Binding("p,left,k", "back", "Back", tooltip="Go back one step"),
        Binding("c", "cont", "Continue", tooltip="Continue to the next diagnostic, or stop before a breakpoint's line"),
        Binding("e", "end", "End", tooltip="Run to the end", show=False),  # `?` lists it: the bar keeps room for esc and q
        Binding("r", "restart", "Restart", tooltip="Back to before the first step", show=False),  # `?` lists it
        Binding("b", "breakpoint", "Break", tooltip="Toggle a breakpoint on the line that runs next (▶)"),
        Binding("B", "break_at", "Break at", tooltip="Toggle a breakpoint on a line you type (a line where a step starts)"),
        Binding("g", "goto", "Go to", tooltip="Go to a step by its number (1 = the first)"),
        Binding("E", "edit", "Edit", tooltip="Edit the trace in place (esc stops editing, ctrl+s saves)"),
        Binding("w", "raw", "Raw", tooltip="Switch between the parsed view and the raw model output"),
        *COMMON_KEYS,
        Binding("escape", "close", "Leave", tooltip="Leave the stepper (asks first about an unsaved edit)"),
    ]

    def __init__(self, text: str, expect_answer=None, expect_expert: str | None = None, title: str = "trace", raw: str | None = None,
                 question: str | None = None, path: str | None = None):
        super().__init__()
        self.path = path  # the file the trace came from: ctrl+s saves there (elsewhere: asks where)
        self.saved_text = text
        self.model = Stepper(text, expect_answer, expect_expert)
        self.title_text, self.raw, self.question = clean_text(title), raw, question  # a file name may carry escapes
        self.show_raw = False
        self.break_line: int | None = None  # the line a breakpoint toggles: the current step's, else the first step's
        self.model_text_at_open = self.model.text  # what the editor held when it opened

    def compose(self) -> ComposeResult:
        yield Static(id="stepper-header")
        with Horizontal(id="stepper-main"):
            with Vertical(id="source-col"):
                yield VerticalScroll(Static(id="source"), id="source-scroll")
                yield TraceEditor(self.model.text, id="editor")
            with Vertical(id="side-col"):
                yield DataTable(id="variables", cursor_type="row", zebra_stripes=True)
                yield Static(id="wiring")
                yield DataTable(id="diagnostics", cursor_type="row")
                yield Static(id="diagnostic-detail")  # the highlighted diagnostic's whole message, wrapped
        yield Static(id="stepper-status")
        yield KeysFooter()

    def on_mount(self) -> None:
        vars_ = self.query_one("#variables", DataTable)
        vars_.add_columns("variable", "value", "previous", "set at", "")  # set at: the step, counted as the header counts
        diags = self.query_one("#diagnostics", DataTable)
        diags.add_columns("", "code", "line", "message")  # ● error / ▲ warning, as in the source's margin
        self.query_one("#editor").display = False
        self._set_editor_language()
        self.refresh_all()

    def _set_editor_language(self) -> None:
        editor = self.query_one("#editor", TextArea)
        try:
            editor.language = "yaml"  # highlighting needs tree-sitter; without it the editor still edits
        except Exception:
            editor.language = None

    # ------------------------------------------------------------- rendering
    def refresh_all(self, status: str = "") -> None:
        m = self.model
        r = m.report
        self._fill_header()
        self.query_one("#source", Static).update(self.source_text())
        self._fill_variables()
        self._fill_diagnostics()
        self._fill_wiring()
        cur = m.current
        if not status and cur is not None and cur.diagnostics:
            status = "  ".join(f"{d.code}: {d.message}" for d in cur.diagnostics)
        self.query_one("#stepper-status", Static).update(status)

    def _fill_header(self) -> None:
        m = self.model
        r = m.report
        # one line, cut with … at the edge rather than wrapped; the step count comes first so it is never cut
        header = Text(f" {self.title_text} ", style="bold reverse", no_wrap=True, overflow="ellipsis")
        header.append(f" step {m.position + 1 if m.position >= 0 else '-'} of {len(m.records)} " if m.records else " no steps ",
                      style="bold")
        header.append_text(summary(r, source=False))
        if self.model.expect_expert:
            header.append(f"  expected expert {self.model.expect_expert}")
        widget = self.query_one("#stepper-header", Static)
        if widget.size.width:
            header.truncate(widget.size.width, overflow="ellipsis")
        if self.question:  # what the model was asked, from a sample: a line of its own, wrapped
            header.no_wrap = False
            header.append("\n Q: ", style="bold")
            header.append(self.question)
        widget.update(header)

    def source_text(self) -> Text:
        room = self.query_one("#source", Static).size.width  # 0 before the first layout: nothing wrapped by hand
        return source_text(self.model, room, self.app.console, self.raw, self.show_raw)

    def _fill_variables(self) -> None:
        table = self.query_one("#variables", DataTable)
        table.clear()
        for row in self.model.variables():
            style = VAR_STYLE[row["style"]]
            label = {"overwritten": "OVERWRITTEN", "new": "new", "changed": "changed", "same": ""}[row["style"]]
            table.add_row(Text(row["name"], style=style), Text(fmt(row["value"]), style=style),
                          fmt(row["previous"]) if row["previous"] is not None else "", str(row["step"] or ""),
                          Text(label, style=style))

    def _fill_diagnostics(self) -> None:
        table = self.query_one("#diagnostics", DataTable)
        keep = table.cursor_row if table.row_count else 0  # a refill (a resize) keeps the row the user is on
        table.clear()
        diags = self.model.report.diagnostics
        rows = []
        for d in diags:
            mark = Text("●" if d.is_error else "▲", style=STYLE[d.severity])
            lines = f"{d.line}-{d.end_line}" if d.end_line and d.end_line != d.line else str(d.line or "")
            rows.append((mark, d.code, lines))
        # the message takes what the pane has left and ends in … when cut (the pane below shows it whole)
        used = sum(max([len(str(r[c])) for r in rows] + [len(h)]) + 2 for c, h in enumerate(("", "code", "line")))
        bar = 2 if len(rows) >= table.size.height else 0  # a scrollbar when the rows overflow
        room = table.size.width - used - 2 - bar  # less the message's own cell padding
        for i, (d, row) in enumerate(zip(diags, rows)):
            message = Text(d.message, no_wrap=True)
            if table.size.width and len(d.message) > room:
                message.truncate(max(room, 2), overflow="ellipsis")
            table.add_row(*row, message, key=str(i))
        if 0 < keep < table.row_count:
            table.move_cursor(row=keep)
        self._show_detail(table.cursor_row if table.row_count else None)

    def on_resize(self, event) -> None:
        self.call_after_refresh(self._fill_header)  # the header's cut, the source's wrap and the message column
        self.call_after_refresh(self._fill_diagnostics)  # follow the width
        self.call_after_refresh(lambda: self.query_one("#source", Static).update(self.source_text()))

    def _show_detail(self, index: int | None) -> None:
        detail = self.query_one("#diagnostic-detail", Static)
        diags = self.model.report.diagnostics
        detail.display = index is not None and 0 <= index < len(diags)
        if detail.display:
            d = diags[index]
            t = Text(f"{d.severity} ", style=STYLE[d.severity])
            t.append(f"{d.code}", style="bold").append(f" ({d.location()}): {d.message}")
            detail.update(t)

    def _fill_wiring(self) -> None:
        wiring = self.model.wiring()
        widget = self.query_one("#wiring", Static)
        widget.display = bool(wiring)
        if wiring:
            t = Text("wiring  ", style="bold")
            for w in wiring:
                t.append(f"part {w['part']}: {w['var']} ← {w['source']} = {fmt(w['value'])}   ")
            widget.update(t)

    # --------------------------------------------------------------- actions
    def action_step(self) -> None:
        self.refresh_all("" if self.model.step() else "at the end of the trace")

    def action_back(self) -> None:
        self.refresh_all("" if self.model.back() else "at the start")

    def action_end(self) -> None:
        self.model.to_end()
        self.refresh_all("end of trace")

    def action_restart(self) -> None:
        self.model.restart()
        self.refresh_all("restarted")

    def action_cont(self) -> None:
        self.refresh_all(f"stopped: {self.model.cont()}")

    def action_breakpoint(self) -> None:
        """On the line that runs next (▶), or the last step's at the end."""
        target = self.model.next or self.model.current
        if target is None:
            self.refresh_all("no steps: nowhere to put a breakpoint")
            return
        self.refresh_all(self.model.break_at(str(target.line)))

    def action_break_at(self) -> None:
        """A breakpoint on a line that holds a step: `c` stops before that step runs. Typed as
        text, so that a non-number is answered rather than swallowed by the input."""
        def done(value: str | None) -> None:
            if value is not None:
                self.refresh_all(self.model.break_at(value))

        lines = self.model.step_lines()
        hint = f" ({lines[0]}-{lines[-1]})" if lines else ""
        self.app.push_screen(Ask(f"breakpoint at line{hint}"), done)

    def action_goto(self) -> None:
        def done(value: str | None) -> None:
            if value is not None:
                self.refresh_all(self.model.goto_step(value))

        n = len(self.model.records)
        self.app.push_screen(Ask(f"go to step (1-{n})" if n else "go to step (this trace has none)"), done)

    def action_raw(self) -> None:
        self.show_raw = not self.show_raw
        self.refresh_all("raw model output" if self.show_raw else "parsed trace")

    def action_edit(self) -> None:
        editor = self.query_one("#editor", TextArea)
        scroll = self.query_one("#source-scroll")
        if editor.display:  # leaving the editor: step through the edited text at once
            self.model.load(editor.text)
            editor.display, scroll.display = False, True
            self.set_focus(None)  # the stepper's keys work again at once
            unsaved = "" if editor.text == self.saved_text else " (not saved: ctrl+s saves)"
            self.refresh_all(f"edited trace checked{unsaved}")
        else:
            editor.text = self.model_text_at_open = self.model.text
            editor.mark(self.model.report.diagnostics)
            editor.display, scroll.display = True, False
            editor.focus()
            self.refresh_all(EDITING)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        # live re-check while editing, so diagnostics follow the typing
        self.model.load(event.text_area.text)
        self.query_one(TraceEditor).mark(self.model.report.diagnostics)
        self.refresh_all(EDITING)

    def key_ctrl_s(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        """Check the edit and save it: to the file it came from, or (a sample, a pasted trace) to a file asked for."""
        editor = self.query_one("#editor", TextArea)
        text = editor.text if editor.display else self.model.text
        if editor.display:
            self.action_edit()
        if self.path:
            self._save(self.path, text)
            return

        def done(path: str | None) -> None:
            if path:
                self.path = path
                self._save(path, text)

        self.app.push_screen(Ask("save the trace to file"), done)

    def _save(self, path: str, text: str) -> None:
        """Whole or not at all: a temporary file beside it, renamed over it."""
        import os
        import tempfile
        from pathlib import Path

        target = Path(path).expanduser()
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, target)
        except OSError as exc:
            self.notify(f"not saved: {target}: {exc.strerror or exc}", severity="error", markup=False)
            return
        self.saved_text = text
        self.refresh_all(f"saved to {target}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "diagnostics":
            d = self.model.report.diagnostics[int(event.row_key.value)]
            self.model.jump_to(d)
            self.refresh_all(f"{d.code}: {d.message}")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # the table cuts long messages; the pane under it wraps the whole one
        if event.data_table.id == "diagnostics" and event.row_key.value is not None:
            self._show_detail(int(event.row_key.value))
            if event.data_table.has_focus:
                d = self.model.report.diagnostics[int(event.row_key.value)]
                self.query_one("#stepper-status", Static).update(Text(f"{d.code} (line {d.line or '-'}): {d.message}"))

    def action_close(self) -> None:
        """Back to the screen below; on the first screen (`workbench trace FILE`), quit. An
        edit not saved is not dropped without asking."""
        editor = self.query_one("#editor", TextArea)
        text = editor.text if editor.display else self.model.text
        if text != self.saved_text:  # an edit, checked or not, that no ctrl+s saved
            def done(discard: bool | None) -> None:
                if discard:
                    self.app.leave()

            where = f" to {self.path}" if self.path else ""
            self.app.push_screen(Confirm(f"The edit is not saved{where}. Discard it and leave?", yes="Discard",
                                         no="Keep editing"), done)
            return
        self.app.leave()
