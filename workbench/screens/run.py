"""A run, live or from its files: header, loss and reward plots, evaluations
by expert, diagnostic codes per evaluation, samples, alerts and the log.

A follower thread posts batches of events (messages.py); the screen folds them
into a `RunState` and asks each pane (widgets/, one tab each, listed in `PANES`)
to redraw from its `RunView`, at most four times a second.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, TabbedContent, TabPane

from engine.events import clean_text
from engine.session import summarize

from ..widgets.footer import KeysFooter
from ..examples import is_example
from ..follow import Follower, LogTail, remote_request, split_target
from ..launch import log_tail
from ..messages import EngineExited, EngineOutput, EventsArrived, FollowStatus, Inbox
from ..runstate import RunState, RunView
from ..widgets.charts import Charts
from ..widgets.evals import Evaluations
from ..widgets.header import RunHeader
from ..widgets.log import LogPane
from ..widgets.overview import Overview
from ..widgets.pane import Pane
from ..widgets.report import ReportPane
from ..widgets.samples import SamplesPane, SamplesTable
from .help import COMMON_KEYS

REDRAW_S = 0.25
# the panes, one tab each, in order (keys 1-6, [ and ]): the tabs, compose and the redraw read this list
PANES: list[type[Pane]] = [Overview, Charts, Evaluations, SamplesPane, LogPane, ReportPane]
TAB_NAMES = {pane.TAB: pane.TITLE for pane in PANES}
TABS = list(TAB_NAMES)


def resumed_since(event: dict, died_t: float | None) -> bool:
    """A resume's `run_started` written after the death was seen: not an earlier resume that a
    long events file delivers in a later chunk, or again after it was replaced."""
    t = event.get("t")
    return (event.get("kind") == "run_started" and event.get("resumed") is True and isinstance(t, (int, float))
            and (died_t is None or t > died_t))


class RunScreen(Screen):
    BINDINGS = [
        # short words: every key, `?` and `q` included, fits the key bar at 100 columns (`?`: the tooltips)
        Binding("s", "stop", "Stop", tooltip="Stop the run (it saves a checkpoint first)"),
        Binding("k", "checkpoint", "Checkpoint", tooltip="Checkpoint now"),
        Binding("m", "smooth", "Smooth", tooltip="Smoothing of the charts"),
        # on a compare only (check_action): engine diff of the two runs, their flipped problems
        Binding("d", "flips", "Flips", tooltip="Paired comparison: score both runs on the same problems, list the flips"),
        Binding("enter", "open_sample", "Open sample", show=False),
        *COMMON_KEYS,
        Binding("escape", "close", "Back"),
        *(Binding(str(n), f"tab({n})", f"{TAB_NAMES[tab]} tab", show=False) for n, tab in enumerate(TABS, 1)),
        Binding("left_square_bracket", "tab_step(-1)", "Previous tab", show=False),
        Binding("right_square_bracket", "tab_step(1)", "Next tab", show=False),
    ]

    def __init__(self, target: str, process=None, compare: str | None = None, ssh_options: list[str] | None = None):
        super().__init__()
        self.target, self.process, self.ssh_options = target, process, ssh_options
        self.local = split_target(target)[0] is None
        self.state = RunState(name=clean_text(Path(target.split(":")[-1]).name))  # a folder name may carry escapes
        if process is not None:  # started here: the clock runs from the launch, not from the engine's first event
            self.state.first_t = time.time()
        self.other = RunState(name=clean_text(Path(compare).name)) if compare else None
        self.compare = compare
        self.view = RunView(self.state, self.other, target=target)  # what every pane draws from
        self.dirty = True
        self.follow_status = ""
        self.engine_error: str | None = None
        self.stop_pending = False
        self.followers: list[Follower] = []
        self.inboxes = {key: Inbox(key, self.post_message) for key in ("main", "other")}
        self._opened = False  # the first events decided which tab it opens on

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header")
        with TabbedContent(id="run-tabs"):
            for pane in PANES:
                with TabPane(pane.TITLE, id=pane.TAB):
                    yield pane(id=pane.ID)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.followers.append(Follower(self.target, self.inboxes["main"].put,
                                       lambda s: self.post_message(FollowStatus(s)), ssh_options=self.ssh_options).start())
        if self.compare:
            self.followers.append(Follower(self.compare, self.inboxes["other"].put, ssh_options=self.ssh_options).start())
        if self.process is not None:
            self.run_worker(self._wait_engine, thread=True, exclusive=False)
            self.followers.append(LogTail(Path(self.target) / "engine.log", lambda lines: self.post_message(EngineOutput(lines))).start())
        if self.compare:  # a comparison opens on the plots that overlay both runs
            self.query_one("#run-tabs", TabbedContent).active = "tab-charts"
        self.set_interval(REDRAW_S, self.redraw)
        self.set_interval(1.0, self._tick)
        if self.local:
            self.set_interval(2.0, self._check_alive)

    def _tick(self) -> None:
        """The clock in the header moves every second, between events too."""
        if not self.state.finished and (self.state.started or self.process is not None) and not self.dirty:
            self._show_header()

    def on_resize(self, event) -> None:
        self._show_header()  # one line at any width: what fits is chosen again

    def _show_header(self) -> None:
        self.query_one(RunHeader).show(self.state, engine_error=self.engine_error, follow_status=self.follow_status,
                                       remote=not self.local, starting=self.process is not None, stop_pending=self.stop_pending,
                                       other=self.other)

    def _check_alive(self) -> None:
        """The session list's verdict on a local run with no final event (its process gone: `died`),
        asked in a worker so a slow disk never blocks the screen."""
        if self.state.finished or self.engine_error:
            return

        def ask() -> None:
            if summarize(Path(self.target)).get("status") == "died":
                self.app.call_from_thread(self._died)

        self.run_worker(ask, thread=True, group="alive", exclusive=True)

    def _died(self) -> None:
        if not self.state.finished and not self.engine_error:
            self.engine_error = "the engine's process is gone without a final event (killed, or the machine went down)"
            self.state.died_t = self.state.died_t or time.time()
            self.dirty = True

    def _wait_engine(self) -> None:
        """Worker thread: the engine's exit, posted after the follower has read its last lines
        (so the final event arrives before the exit does; the UI thread never waits)."""
        code = self.process.wait()
        follower, deadline = self.followers[0], time.monotonic() + 3.0
        while not follower.caught_up() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2 * follower.interval)  # its last batch is posted before our message
        self.post_message(EngineExited(code))

    def on_unmount(self) -> None:
        for f in self.followers:
            f.stop()

    # -------------------------------------------------------------- messages
    def on_events_arrived(self, message: EventsArrived) -> None:
        finished = self.state.finished
        events = message.events or self.inboxes[message.key].take()
        (self.state if message.key == "main" else self.other).add(events)
        if message.key == "main" and self.engine_error and any(resumed_since(e, self.state.died_t) for e in events):
            # the dead run was resumed (here or on another machine): it lives again; a new death is seen anew
            self.engine_error, self.state.died_t = None, None
        if not self._opened and self.state.started and (self.state.samples or self.state.series):
            self._opened = True
            if self.state.started.get("stages") == [] and not self.state.series and self.state.samples:
                self._show_tab("tab-samples")  # outputs with no training (the stepper tour): no chart has anything
        if bool(self.state.finished) != bool(finished):
            self.refresh_bindings()  # stop and checkpoint leave (or come back, on a resume) with the final event
        self.dirty = True

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.dirty = True
        self.redraw()

    def on_follow_status(self, message: FollowStatus) -> None:
        self.follow_status = message.text
        self.dirty = True

    def on_engine_output(self, message: EngineOutput) -> None:
        self.query_one(LogPane).engine_output(message.lines)

    def on_engine_exited(self, message: EngineExited) -> None:
        if message.code != 0 and (self.state.finished is None or self.state.finished.get("status") == "failed"):
            tail = log_tail(Path(self.target))
            why = (self.state.finished or {}).get("error") or f"the engine exited with code {message.code}"
            self.engine_error = why
            self.state.died_t = self.state.died_t or time.time()
            self.query_one(LogPane).write(Text(f"ENGINE DIED: {why}\n{tail}", style="bold red"))
            self.notify(f"The engine stopped: {why}", severity="error", timeout=10)
        self.dirty = True

    # ---------------------------------------------------------------- redraw
    def redraw(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        self._show_header()
        # the tab on screen (and the panes that keep up while hidden): the others catch up when
        # they are shown (TabActivated marks dirty)
        tab = self.query_one("#run-tabs", TabbedContent).active
        for pane in PANES:
            if pane.TAB == tab or pane.ALWAYS:
                self.query_one(f"#{pane.ID}", pane).show(self.view)

    # --------------------------------------------------------------- actions
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "samples":
            self._open(int(event.row_key.value))

    def action_open_sample(self) -> None:
        seq = self.query_one(SamplesTable).highlighted()
        if seq is not None:
            self._open(seq)

    def _open(self, seq: int) -> None:
        from .stepper import StepperScreen

        e = next((s for s in self.state.samples if s["seq"] == seq), None)
        if e is None:
            self.notify("that sample is no longer kept", severity="warning")
            return
        self.app.push_screen(StepperScreen(e.get("text", ""), e.get("expected_answer"), e.get("expected_expert"), question=e.get("question"),
                                           title=f"sample {e.get('phase')}@{e.get('step')}", raw=e.get("text", "")))

    def action_smooth(self) -> None:
        self.view.smoothing = not self.view.smoothing
        self.dirty = True
        self.redraw()  # at once, not at the next tick

    def _request(self, name: str, what: str) -> None:
        """Drop a request file into the session; over ssh this takes a moment, so a thread does it.
        A finished run (or the recorded example) takes no requests: a file left behind would
        stop the next `engine train --resume` at once."""
        if self.state.finished or is_example(self.target):
            self.notify(f"the run has finished: no {what} to request", severity="warning")
            return

        def send() -> None:
            try:
                remote_request(self.target, name, ssh_options=self.ssh_options)
                self.app.call_from_thread(self.notify, f"{what} requested")
            except Exception as exc:  # a lost connection must not take the screen down
                self.app.call_from_thread(self.notify, f"could not request {what}: {exc}", severity="error")

        self.run_worker(send, thread=True, group="requests")

    def action_stop(self) -> None:
        """Asked first, with the focus on "Keep running": a stray `s` (a filter typed after its focus
        was lost, a key meant for another window) never ends an hour-long run."""
        if self.state.finished or is_example(self.target):
            self._request("stop", "stop")  # says why there is nothing to stop
            return
        from .ask import Confirm

        def done(yes: bool | None) -> None:
            if yes and not self.state.finished:
                self.stop_pending = True
                self.dirty = True
                self._request("stop", "stop")

        self.app.push_screen(Confirm(f"Stop {self.state.name}? It saves a checkpoint at the end of this step "
                                     "(`engine train --resume` goes on from it).", yes="Stop the run", no="Keep running",
                                     yes_key=False),
                             done)

    def action_checkpoint(self) -> None:
        self._request("checkpoint-now", "checkpoint")

    def check_action(self, action: str, parameters) -> bool | None:
        """A finished run (or the recorded example) has nothing to stop or checkpoint: the keys leave
        the footer (Textual asks again after refresh_bindings, called when the final event arrives)."""
        if action in ("stop", "checkpoint"):
            return not (self.state.finished or is_example(self.target))
        if action == "flips":
            return bool(self.compare)
        return True

    def action_flips(self) -> None:
        """A is the run marked first (the one compared against), B the one on this screen."""
        from .flips import FlipsScreen

        if self.compare:
            self.app.push_screen(FlipsScreen(self.compare, self.target))

    def action_tab(self, n: int) -> None:
        self._show_tab(TABS[n - 1])

    def action_tab_step(self, delta: int) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        here = TABS.index(tabs.active) if tabs.active in TABS else 0
        self._show_tab(TABS[(here + delta) % len(TABS)])

    def _show_tab(self, tab: str) -> None:
        """The tab, with the focus inside it: its keys (`/` and `f` on Samples) work at once, no Tab first."""
        tabs = self.query_one("#run-tabs", TabbedContent)
        self.set_focus(None)  # a focused widget in the pane being hidden would pull the focus (and the tab) back
        tabs.active = tab
        pane = tabs.get_pane(tab)
        target = next((w for w in pane.query("DataTable, RichLog, Log") if w.focusable and w.display), None)
        if target is not None:
            self.call_after_refresh(target.focus)

    def action_close(self) -> None:
        self.app.leave()

