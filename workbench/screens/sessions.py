"""The first screen: sessions in sessions/ and a form for a new run."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from engine.session import Scanner, new_folder, progress_text

from ..widgets.footer import KeysFooter
from ..examples import example_sessions
from ..launch import start_engine
from ..widgets.filter import FilterBox
from ..widgets.new_run import NewRunForm
from .help import COMMON_KEYS


SHOWN = 500  # rows in the table at most (newest first); the filter reaches the rest
FILTER_DELAY = 0.12  # s: a burst of keystrokes refilters once


def _pct(x) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) else ""


COLUMNS = ("run", "status", "model", "progress", "eta (ends)", "best acc", "started")
NARROW = ("run", "status", "progress", "ends", "best")  # beside the form: the end's clock time only
LIVE_READ = 16 << 20  # bytes of a running session's events folded per scan at most: a long file catches up over scans


def _short(text: str, width: int) -> str:
    """At most `width` characters, a cut marked with `…` (a hub id can be 40 long)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def progress_cell(r: dict) -> str:
    """`sft 120/400 steps`: the engine's text (`engine ls` says the same); nothing for a recording."""
    return "" if r.get("example") else progress_text(r)  # a recording: where it ended says nothing


def eta_cell(left: float | None, short: bool = False) -> str:
    """`0:42 (21:05)`: the whole run's time left and when it should end (`21:05` when short)."""
    from ..widgets.text import clock, duration

    if left is None:
        return ""
    end = clock(time.time() + left)
    if short:
        return end
    # h:mm: a list is read at a glance; under a minute in seconds (a tiny run's `0:00` read as "no time")
    return f"{duration(left)[:-3] if left >= 60 else f'{max(1, round(left))}s'} ({end})"
WIDE = 140  # terminal columns from which the list shows every column beside the form


class SessionsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open"),
        # short words, so that every key, `?` and `q` included, fits the key bar at 100 columns;
        # `?` lists them whole (the tooltip)
        Binding("n", "new", "New", tooltip="New run: the form beside the list"),
        Binding("c", "compare", "Compare", tooltip="Compare the highlighted run with the marked one"),
        Binding("space", "mark", "Mark", tooltip="Mark the highlighted run for compare"),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh", "Refresh", tooltip="Read the sessions folder again"),
        Binding("t", "paste_trace", "Paste trace", tooltip="Stepper: paste a trace"),
        Binding("o", "open_trace", "Open trace", tooltip="Stepper: open a trace file"),
        *COMMON_KEYS,
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, root: Path):
        super().__init__()
        self.root = root
        self.rows: list[dict] = []
        self.marked: str | None = None
        self.scanner = Scanner(root)
        self._shown_key = None  # what the table holds now: a rescan that changes nothing redraws nothing
        self._refilter = None
        self.live: dict[str, tuple] = {}  # running session -> (EventReader, RunState): folded a little each scan
        self._live_lock = threading.Lock()  # a rescan may start while the last one still folds

    def compose(self) -> ComposeResult:
        with Horizontal(id="sessions-main"):
            with Vertical(id="sessions-col"):
                yield Static(f"Sessions in {self.root}/", classes="title")
                yield FilterBox("#sessions", hide_on_clear=True, placeholder="filter sessions: ↓ to the list, Escape clears it", id="filter")
                yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
                yield Static(id="sessions-note", classes="caption")
            yield NewRunForm(id="form")
        yield KeysFooter()

    async def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        self.columns = self._columns()
        table.add_columns(*self.columns)
        self.query_one("#filter").display = False
        table.focus()
        # the first list as soon as a thread has read it (the UI thread never reads a session file);
        # then a worker rescans every 2 s
        self.show_rows(await asyncio.to_thread(self.scan))
        self.set_interval(2.0, self.action_refresh)

    def _columns(self) -> tuple[str, ...]:
        """The list's columns: all where there is room; beside the form on a narrow terminal, the
        ones a user scans the list for (run, status, progress, best accuracy) stay in view."""
        return COLUMNS if self.app.size.width >= WIDE else NARROW

    def on_resize(self, event) -> None:
        wanted = self._columns()
        if wanted != getattr(self, "columns", wanted):
            self.columns = wanted
            table = self.query_one("#sessions", DataTable)
            table.clear(columns=True)
            table.add_columns(*wanted)
            self._shown_key = None
            self.show_rows()

    def check_action(self, action: str, parameters) -> bool | None:
        """Compare and mark act on the list's highlighted row: from the form they leave the key bar
        (it then fits 100 columns with its own esc) and do nothing."""
        if action in ("compare", "mark"):
            focused = self.app.focused
            return not (focused is not None and any(isinstance(n, NewRunForm) for n in focused.ancestors_with_self))
        return True

    def on_screen_resume(self) -> None:
        """Back from a run: the list has the focus, not the form field it was started from
        (where `c` would type a "c" instead of comparing). Back from a cancelled start: where the
        focus was in the form, so a second Enter is not taken by the list (opening the example)."""
        back, self._cancelled_from = getattr(self, "_cancelled_from", None), None
        if back is not None and back.is_attached and back.display and back.focusable:
            back.focus()
        else:
            self.query_one("#sessions", DataTable).focus()

    def scan(self) -> list[dict]:
        rows = self.scanner.scan()
        with self._live_lock:
            running = {r["path"] for r in rows if r.get("status") == "running"}
            for path in list(self.live):
                if path not in running:
                    del self.live[path]
            rows = [{**r, "eta": self._run_eta(r["path"])} if r["path"] in running else r for r in rows]
        return rows + example_sessions()  # the recorded example last, marked

    def _run_eta(self, path: str) -> float | None:
        """The whole run's ETA, as its run screen shows it: its events folded in a worker thread,
        only what was appended since the last scan."""
        from engine.events import EVENTS, EventReader

        from ..runstate import RunState

        reader, state = self.live.setdefault(path, (EventReader(Path(path) / EVENTS, checked=True), RunState()))
        state.add(reader.read(LIVE_READ))
        return state.run_eta()

    def action_refresh(self) -> None:
        self.run_worker(lambda: self.app.call_from_thread(self.show_rows, self.scan()), thread=True,
                        group="scan", exclusive=True)

    def show_rows(self, rows: list[dict] | None = None) -> None:
        if rows is not None:
            self.rows = rows
        needle = self.query_one("#filter", Input).value.strip().lower()
        matching = [r for r in self.rows if not needle or needle in " ".join(str(v) for v in r.values()).lower()]
        runs = [r for r in matching if not r.get("example")]
        shown = runs[:SHOWN] + [r for r in matching if r.get("example")]
        key = (needle, self.marked, [tuple(r.values()) for r in shown])
        if key == self._shown_key:
            return
        self._shown_key = key
        table = self.query_one("#sessions", DataTable)
        cursor, here = table.cursor_row, self._selected()  # the cursor stays on its run when others appear
        table.clear()
        for r in shown:
            started = time.strftime("%m-%d %H:%M", time.localtime(r["started"])) if r.get("started") else ""
            mark = "◆ " if r["path"] == self.marked else ""
            dim = "dim italic" if r.get("example") else ""
            cells = {"run": Text(mark + r["run"], style=dim), "status": Text(r["status"], style=dim), "model": Text(_short(str(r["model"]), 24)),
                     "progress": Text(progress_cell(r)), "eta (ends)": eta_cell(r.get("eta")),
                     "ends": eta_cell(r.get("eta"), short=True),
                     "best acc": _pct(r.get("best_accuracy")), "best": _pct(r.get("best_accuracy")), "started": started}
            table.add_row(*(cells[c] for c in self.columns), key=r["path"])
        if table.row_count:
            keys = [r["path"] for r in shown]
            table.move_cursor(row=keys.index(here) if here in keys else min(cursor, table.row_count - 1))
        real = [r for r in self.rows if not r.get("example")]
        if needle and not shown:
            note = f"no session matches '{needle}'; Escape clears the filter"
        elif len(runs) > SHOWN:
            note = f"the newest {SHOWN:,} of {len(runs):,} sessions{' that match' if needle else ''}; / filters to find the others"
        elif not real:
            note = (f"no runs in {self.root}/ yet: press n to fill in a new run (the form on the right), or run "
                    "`engine train` in a shell; the examples above are a recorded run and a stepper tour to look around in")
        else:
            note = ""
        self.query_one("#sessions-note", Static).update(Text(note))  # a typed filter is text, never markup

    def _selected(self) -> str | None:
        table = self.query_one("#sessions", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        path = self._selected()
        if path:
            from .run import RunScreen

            self.app.push_screen(RunScreen(path))

    def action_mark(self) -> None:
        self.marked = self._selected()
        self.show_rows()

    def action_compare(self) -> None:
        path = self._selected()
        if path and self.marked and path != self.marked:
            from .run import RunScreen

            self.app.push_screen(RunScreen(path, compare=self.marked))
        else:
            self.notify("mark one session with space, then choose another and press c")

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":  # typed fast, refiltered once
            if self._refilter is not None:
                self._refilter.stop()
            self._refilter = self.set_timer(FILTER_DELAY, self.show_rows)

    def action_new(self) -> None:
        self.query_one("#f-model-name", Input).focus()

    def action_paste_trace(self) -> None:
        from .stepper import StepperScreen

        example = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: compute, compute_op: mul, args: [a, 3], var: r}\n- {op: query, var: r}\n"
        screen = StepperScreen(example, title="pasted trace")
        self.app.push_screen(screen)
        screen.call_after_refresh(screen.action_edit)

    def action_open_trace(self) -> None:
        from .ask import Ask
        from .stepper import StepperScreen

        def done(path: str | None) -> None:
            if not path:
                return
            from engine.trace.inputs import UsageError, read_input

            try:
                text = read_input(str(Path(path).expanduser()))
            except UsageError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.app.push_screen(StepperScreen(text, title=path, path=path))

        self.app.push_screen(Ask("trace file to open in the stepper"), done)

    def on_new_run_form_refused(self, message: NewRunForm.Refused) -> None:
        self.query_one(NewRunForm).mark(message.errors)

    def on_new_run_form_start_requested(self, message: NewRunForm.StartRequested) -> None:
        from ..widgets.new_run import cpu_load, estimate
        from .ask import Confirm

        # a named run never lands in another's folder; lexists: a dangling link is taken too
        if message.name and os.path.lexists(self.root / message.name):
            self.query_one(NewRunForm).mark([("f-run-name", f"run name: {self.root / message.name} exists; "
                                              "choose another name (or resume it: engine train --resume)")])
            return

        # set before asking, not in the answer's callback: the screen's resume (which puts the focus
        # back there) may be handled before the callback runs, and then the focus fell to the list
        self._cancelled_from = self.app.focused

        def done(yes: bool | None) -> None:
            if yes:
                self._cancelled_from = None  # back from the run: the list
                self._launch(message.sets, message.model, message.name)

        running = [r["run"] for r in self.rows if r.get("status") == "running" and not r.get("example")]
        said = estimate(message.sets, message.model, load=cpu_load(), running=running)
        where = f" in {self.root / message.name}" if message.name else ""
        self.app.push_screen(Confirm(f"Start a run of {message.model}{where}?\n{said}", yes="Start", no="Cancel"), done)

    def _launch(self, sets: list[str], model: str, name: str = "") -> None:
        from .run import RunScreen

        # never a folder that holds a run: the engine would refuse it (a named one was checked before asking)
        folder = self.root / name if name else new_folder(self.root, model)
        try:
            proc = start_engine(folder, sets)
        except OSError as exc:  # the folder went or became a link since it was checked: a message, not a crash
            self.notify(f"cannot start the run in {folder}: {exc.strerror or exc}", severity="error", timeout=10)
            return
        self.app.push_screen(RunScreen(str(folder), process=proc))
