"""A run, live or from its files: header, loss and reward plots, evaluations
by expert, diagnostic codes per evaluation, samples, alerts and the log.

A follower thread posts batches of events; the screen folds them into a
`RunState` and redraws at most four times a second.
"""

from __future__ import annotations

import json
from collections import deque
import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, RichLog, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from ..examples import is_example
from ..follow import Follower, remote_request
from ..launch import log_tail
from ..runstate import MAX_SAMPLES, RunState, rl_reading, smooth

REDRAW_S = 0.25


class EventsArrived(Message):
    def __init__(self, key: str, events: list[dict]):
        super().__init__()
        self.key, self.events = key, events


class FollowStatus(Message):
    def __init__(self, text: str):
        super().__init__()
        self.text = text


class EngineExited(Message):
    def __init__(self, code: int):
        super().__init__()
        self.code = code


def _bar(fraction: float, width: int = 12) -> str:
    full = int(round(fraction * width))
    return "█" * full + "░" * (width - full)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


TABS = ["tab-charts", "tab-evals", "tab-samples", "tab-log", "tab-report"]  # keys 1-5, [ and ]


class RunScreen(Screen):
    BINDINGS = [
        Binding("s", "stop", "Stop (checkpoint)"),
        Binding("k", "checkpoint", "Checkpoint now"),
        Binding("m", "smooth", "Smoothing"),
        Binding("enter", "open_sample", "Open sample", show=False),
        Binding("tab", "app.focus_next", "Next pane", show=False),
        Binding("question_mark", "app.help", "Help"),
        Binding("escape", "close", "Back"),
        *(Binding(str(n), f"tab({n})", f"Tab {n}", show=False) for n in range(1, len(TABS) + 1)),
        Binding("left_square_bracket", "tab_step(-1)", "Previous tab", show=False),
        Binding("right_square_bracket", "tab_step(1)", "Next tab", show=False),
    ]

    def __init__(self, target: str, process=None, compare: str | None = None, ssh_options: list[str] | None = None):
        super().__init__()
        self.target, self.process, self.ssh_options = target, process, ssh_options
        self.state = RunState(name=Path(target.split(":")[-1]).name)
        self.other = RunState(name=Path(compare).name) if compare else None
        self.compare = compare
        self.smoothing = False
        self.dirty = True
        self.follow_status = ""
        self.engine_error: str | None = None
        self.stop_pending = False
        self.followers: list[Follower] = []

    def compose(self) -> ComposeResult:
        yield Static(id="run-header")
        with TabbedContent(id="run-tabs"):
            with TabPane("Charts", id="tab-charts"):
                with Horizontal():
                    yield PlotextPlot(id="loss-plot")
                    yield PlotextPlot(id="reward-plot")
                yield Static(id="rates")
            with TabPane("Evaluations", id="tab-evals"):
                yield DataTable(id="evals", zebra_stripes=True)
                yield Static("Diagnostics per evaluation (outputs carrying each code)", classes="caption")
                yield DataTable(id="codes", zebra_stripes=True)
            with TabPane("Samples", id="tab-samples"):
                yield DataTable(id="samples", cursor_type="row", zebra_stripes=True)
            with TabPane("Alerts & log", id="tab-log"):
                yield RichLog(id="log", wrap=True, markup=False)
            with TabPane("Report", id="tab-report"):
                yield Static("No report yet: `engine report SESSION SETS...` writes report.json here.", id="report-note")
                yield DataTable(id="report", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#samples", DataTable).add_columns("phase", "step", "reward", "expert", "outcome", "codes", "question")
        self.followers.append(Follower(self.target, lambda ev: self.post_message(EventsArrived("main", ev)),
                                       lambda s: self.post_message(FollowStatus(s)), ssh_options=self.ssh_options).start())
        if self.compare:
            self.followers.append(Follower(self.compare, lambda ev: self.post_message(EventsArrived("other", ev)),
                                           ssh_options=self.ssh_options).start())
        if self.process is not None:
            self.run_worker(self._wait_engine, thread=True, exclusive=False)
        self.set_interval(REDRAW_S, self.redraw)
        self.load_report()

    def load_report(self) -> None:
        """An instruction-tuning report (engine report) beside the session, when there is one."""
        path = Path(self.target) / "report.json"
        if not path.exists():
            return
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            self.query_one("#report-note", Static).update(f"report.json cannot be read: {exc}")
            return
        table = self.query_one("#report", DataTable)
        table.add_columns("set", "metric", "base", "tuned", "delta")
        fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
        for name, rows in report.get("sets", {}).items():
            for metric, v in rows.items():
                table.add_row(name, metric, fmt(v.get("base")), fmt(v.get("tuned")), fmt(v.get("delta")))
        self.query_one("#report-note", Static).update(f"base {report.get('base')} vs tuned {report.get('tuned')}. {report.get('note') or ''}")

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
        (self.state if message.key == "main" else self.other).add(message.events)
        self.dirty = True

    def on_follow_status(self, message: FollowStatus) -> None:
        self.follow_status = message.text
        self.dirty = True

    def on_engine_exited(self, message: EngineExited) -> None:
        if message.code != 0 and (self.state.finished is None or self.state.finished.get("status") == "failed"):
            tail = log_tail(Path(self.target))
            why = (self.state.finished or {}).get("error") or f"the engine exited with code {message.code}"
            self.engine_error = why
            self.query_one("#log", RichLog).write(Text(f"ENGINE DIED: {why}\n{tail}", style="bold red"))
            self.notify(f"The engine stopped: {why}", severity="error", timeout=10)
        self.dirty = True

    # ---------------------------------------------------------------- redraw
    def redraw(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        self._header()
        self._plots()
        self._evals()
        self._samples()
        self._log()

    def _header(self) -> None:
        s = self.state
        st = s.started
        phase, step, total = s.progress()
        t = Text()
        t.append(f" {s.name} ", style="bold reverse")
        status = "died" if self.engine_error else s.status
        t.append(f" {status} ", style="bold green" if status in ("running", "completed") else "bold red" if status in ("failed", "died") else "bold yellow")
        t.append(f" {st.get('model', '?')} on {st.get('device', '?')}")
        if st.get("load_8bit"):
            t.append(" 8-bit")
        if isinstance(st.get("params_trainable"), (int, float)) and isinstance(st.get("params_total"), (int, float)):
            t.append(f"  {st['params_trainable'] / 1e6:.1f}M of {st['params_total'] / 1e6:.1f}M trained")
        if not st and not s.finished:
            t.append("  starting engine..." if self.process is not None else "  waiting for the first event...", style="italic")
        else:
            t.append(f"  {phase} {step}/{total}" if total else f"  {phase}")
        t.append(f"  elapsed {_duration(s.elapsed())}")
        if not s.finished:  # a finished run has no ETA and no live speed
            t.append(f"  eta {_duration(s.eta())}")
            tps = s.last_metrics.get("tokens_per_s")
            if isinstance(tps, (int, float)):
                t.append(f"  {tps:,.0f} tok/s")
            if self.stop_pending:
                t.append(f"  stopping after this {'evaluation' if phase.startswith('eval') else 'step'}...", style="bold yellow")
        remote = ":" in self.target and not Path(self.target).exists()
        if self.follow_status and (remote or not self.state.started):  # e.g. "no such session folder"
            t.append(f"  [{self.follow_status}]", style="italic")
        if self.engine_error:
            t.append(f"\n engine stopped: {self.engine_error}", style="bold red")
        self.query_one("#run-header", Static).update(t)

    def _series(self, state: RunState, phase: str, key: str):
        pts = state.series.get(phase, {}).get(key, [])
        return smooth(pts, 0.8) if self.smoothing else pts

    def _plots(self) -> None:
        for plot_id, pairs, title in (
            ("#loss-plot", [("sft", "loss"), ("rl", "loss")], "loss"),
            ("#reward-plot", [("rl", "reward"), ("rl", "parse_rate")], "reward"),
        ):
            plot = self.query_one(plot_id, PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.title(title + (" (smoothed)" if self.smoothing else ""))
            for state in filter(None, (self.state, self.other)):
                for phase, key in pairs:
                    pts = self._series(state, phase, key)
                    if pts:
                        label = f"{phase} {key}" + (f" [{state.name}]" if self.other else "")
                        plt.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
            plot.refresh()
        lines = []
        last = [e for e in self.state.evals if e.get("set") == "synthetic"]
        if last:
            e = last[-1]
            lines.append(f"last synthetic eval ({e.get('at')}): accuracy {_interval(e)}  parse {e.get('parse_rate') or 0:.1%}  "
                         f"valid {e.get('valid_rate') or 0:.1%}")
        reading = rl_reading(self.state)
        if reading:
            lines.append(reading)
        if lines:
            self.query_one("#rates", Static).update(Text("\n".join(lines)))

    def _evals(self) -> None:
        table = self.query_one("#evals", DataTable)
        table.clear(columns=True)
        evals = [(self.state.name, e) for e in self.state.evals] + ([(self.other.name, e) for e in self.other.evals] if self.other else [])
        experts = sorted({x for _, e in evals for x in e.get("by_expert", {})})
        table.add_columns("run", "set", "at", "accuracy [95% CI]", "parse", "valid", *experts)
        for name, e in evals:
            cells = []
            for x in experts:
                b = e.get("by_expert", {}).get(x)
                cells.append(f"{_bar(b['correct'] / b['total'], 6)} {b['correct']}/{b['total']}" if b and b["total"] else "")
            table.add_row(Text(name), Text(str(e.get("set", ""))), Text(str(e.get("at", ""))), _interval(e), f"{e.get('parse_rate') or 0:.1%}",
                          f"{e.get('valid_rate') or 0:.1%}", *cells)
        codes_table = self.query_one("#codes", DataTable)
        codes_table.clear(columns=True)
        labels, codes, cells = self.state.code_table("synthetic")
        codes_table.add_columns("code", *labels)
        for code in codes:
            codes_table.add_row(code, *[str(cells[(lab, code)]) for lab in labels])

    def _samples(self) -> None:
        """New samples appended by their number; the oldest rows go once there are more than
        the state keeps, so rows and samples always agree."""
        table = self.query_one("#samples", DataTable)
        shown = getattr(self, "_sample_keys", None)
        if shown is None:
            shown = self._sample_keys = deque()
        last = shown[-1] if shown else -1
        for e in self.state.samples:
            i = e["seq"]
            if i <= last:
                continue
            reward = e.get("reward")
            style = "green" if reward == 1.0 else "yellow" if (reward or 0) >= 0.7 else "red"
            # Text, not str: a DataTable reads str cells as markup, and model text is not markup
            table.add_row(Text(str(e.get("phase") or "")), str(e.get("step", "")), Text(f"{reward:g}" if isinstance(reward, (int, float)) else "", style=style),
                          Text(str(e.get("expected_expert") or "")), Text(str(e.get("outcome") or "")), Text(" ".join(e.get("codes", []))),
                          Text(str(e.get("question") or "")[:80]), key=str(i))
            shown.append(i)
        while len(shown) > MAX_SAMPLES:
            table.remove_row(str(shown.popleft()))

    def _engine_log(self) -> None:
        """New lines of engine.log (the child's own output), for runs this workbench started."""
        path = Path(self.target) / "engine.log"
        if self.process is None or not path.exists():
            return
        with open(path, "rb") as f:
            f.seek(getattr(self, "_engine_offset", 0))
            chunk = f.read()
        self._engine_offset = getattr(self, "_engine_offset", 0) + len(chunk)
        log = self.query_one("#log", RichLog)
        for line in chunk.decode(errors="replace").splitlines():
            if line.strip():
                log.write(Text("engine │ " + line, style="dim"))

    def _log(self) -> None:
        self._engine_log()
        log = self.query_one("#log", RichLog)
        lines = list(self.state.log)
        new = lines[getattr(self, "_logged", 0):] if len(lines) >= getattr(self, "_logged", 0) else lines
        for line in new:
            log.write(Text(line, style="bold red" if line.startswith("ALERT") else ""))
        self._logged = len(lines)

    # --------------------------------------------------------------- actions
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "samples":
            self._open(int(event.row_key.value))

    def action_open_sample(self) -> None:
        table = self.query_one("#samples", DataTable)
        if table.row_count:
            self._open(int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def _open(self, seq: int) -> None:
        from .stepper import StepperScreen

        e = next((s for s in self.state.samples if s["seq"] == seq), None)
        if e is None:
            self.notify("that sample is no longer kept", severity="warning")
            return
        self.app.push_screen(StepperScreen(e.get("text", ""), e.get("expected_answer"), e.get("expected_expert"),
                                           title=f"sample {e.get('phase')}@{e.get('step')}", raw=e.get("text", "")))

    def action_smooth(self) -> None:
        self.smoothing = not self.smoothing
        self.dirty = True

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
        if not self.state.finished:
            self.stop_pending = True
            self.dirty = True
        self._request("stop", "stop")

    def action_checkpoint(self) -> None:
        self._request("checkpoint-now", "checkpoint")

    def action_tab(self, n: int) -> None:
        self.query_one("#run-tabs", TabbedContent).active = TABS[n - 1]

    def action_tab_step(self, delta: int) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        here = TABS.index(tabs.active) if tabs.active in TABS else 0
        tabs.active = TABS[(here + delta) % len(TABS)]

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()


def _interval(e: dict) -> str:
    acc, ci = e.get("accuracy", 0), e.get("accuracy_ci")
    ok = isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)
    return f"{acc:.1%} [{ci[0]:.0%}-{ci[1]:.0%}]" if ok else f"{acc:.1%}"
