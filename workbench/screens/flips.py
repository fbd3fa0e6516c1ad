"""The paired comparison of two runs (`d` on a compare): per set the summary of `engine diff`
(problems, right in A and in B, flipped each way, McNemar's p, the change with its interval) and a
table of the flipped problems; Enter opens both outputs of one side by side (screens/pair.py).

A is the marked run (the one compared against), B the highlighted one: "B gained" is a problem B
answers right and A does not. The scoring runs in a child process (workbench/diffjob.py) that a
worker thread waits for; the screen says it is scoring and Escape kills it.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine.events import clean_text

from ..diffjob import DiffError, DiffJob, cache_file, load_cached, refusal
from ..widgets.footer import KeysFooter
from .help import COMMON_KEYS

QUESTION = 48  # characters of the question in the table


class DiffFinished(Message):
    def __init__(self, report: dict | None, error: str | None = None):
        super().__init__()
        self.report, self.error = report, error


def summary_line(name: str, c: dict) -> Text:
    """`gsm8k  n 300  A 31 right (10.3%)  B 40 (13.3%)  flipped 14 to B, 5 to A  McNemar p 0.064  change +3.0% [-0.2%, +6.3%]`"""
    n = c["problems"]
    lo, hi = c["change_ci"]
    t = Text(f"{clean_text(name)}", style="bold")
    t.append(f"  n {n}  right: A {c['a_correct']} ({c['a_correct'] / max(n, 1):.1%}), B {c['b_correct']} ({c['b_correct'] / max(n, 1):.1%})  ")
    t.append(f"flipped {len(c['gained'])} to B, {len(c['lost'])} to A  ")
    p = c["mcnemar_p"]
    t.append(f"McNemar p {p:.3g}", style="bold" if isinstance(p, (int, float)) and p < 0.05 else "")
    t.append(f"  change {c['change']:+.1%} [{lo:+.1%}, {hi:+.1%}]")
    return t


def _side(side: dict | None) -> Text:
    if not isinstance(side, dict) or not side:
        return Text("?", style="dim")
    answer = side.get("answer")
    outcome = str(side.get("outcome") or "")
    return Text(f"{'-' if answer is None else clean_text(str(answer))} ({outcome})",
                style="green" if outcome == "correct" else "red" if outcome else "")


class FlipsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Both traces", tooltip="Open both outputs of the highlighted problem side by side"),
        Binding("r", "rescore", "Score again", tooltip="Run engine diff again (the kept result is replaced)"),
        *COMMON_KEYS,
        Binding("escape", "close", "Back", tooltip="Back to the runs (while scoring: cancel it, the child is killed)"),
    ]

    def __init__(self, a: str, b: str):
        super().__init__()
        self.a, self.b = a, b
        self.report: dict | None = None
        self.rows: list[tuple[str, int]] = []  # (set, problem index) per table row
        self.job: DiffJob | None = None
        self.started = 0.0
        self.refused: str | None = None  # why this pair cannot be scored here (said at mount)

    def compose(self) -> ComposeResult:
        yield Static(id="flips-title", classes="title")
        yield Static(id="flips-status")
        yield Static(id="flips-summary")
        yield DataTable(id="flips", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        title = Text("Paired comparison  ", style="bold")
        title.append(f"A: {clean_text(Path(self.a).name)}  B: {clean_text(Path(self.b).name)}  (B against A, the same problems)")
        self.query_one("#flips-title", Static).update(title)
        self.query_one("#flips", DataTable).add_columns("set", "#", "flip", "question", "A", "B")
        self.set_interval(1.0, self._tick)
        why = self.refused = refusal(self.a) or refusal(self.b)
        if why:
            self._say(why, error=True)
            self.refresh_bindings()
            return
        kept = load_cached(self.a, self.b)
        if kept is not None:
            self._show(kept, f"kept from an earlier scoring in {cache_file(self.a, self.b)}; r scores again")
        else:
            self.action_rescore()

    def check_action(self, action: str, parameters) -> bool | None:
        """`r` (score again) is offered only where scoring can run: not for a pair the view refused."""
        if action == "rescore" and self.refused:
            return False  # hidden from the key bar, does nothing (None would show it dimmed)
        return True

    def _say(self, text: str, error: bool = False) -> None:
        self.query_one("#flips-status", Static).update(Text(text, style="bold red" if error else ""))

    def _tick(self) -> None:
        if self.job is not None:
            took = int(time.monotonic() - self.started)
            self._say(f"scoring both runs with engine diff, {took // 60}:{took % 60:02d} so far (minutes on the real model; "
                      "Escape cancels)")

    def action_rescore(self) -> None:
        if self.job is not None or refusal(self.a) or refusal(self.b):
            return
        job = self.job = DiffJob(self.a, self.b)
        self.started = time.monotonic()
        self._tick()

        def work() -> None:  # a thread: it posts, never touches a widget
            try:
                self.post_message(DiffFinished(job.run()))
            except DiffError as exc:
                self.post_message(DiffFinished(None, str(exc)))

        self.run_worker(work, thread=True, group="diff", exclusive=False)

    def on_diff_finished(self, message: DiffFinished) -> None:
        if self.job is None or self.job.cancelled:
            return
        self.job = None
        if message.error:
            self._say(f"engine diff failed: {message.error}", error=True)
            return
        said = f"scored now; kept in {cache_file(self.a, self.b)}"
        self._show(message.report, message.report.get("not_kept") or said)

    def _show(self, report: dict, status: str) -> None:
        self.report = report
        self._say(status)
        summary = Text()
        for name, c in report["sets"].items():
            summary.append_text(summary_line(name, c))
            summary.append("\n")
        self.query_one("#flips-summary", Static).update(summary)
        table = self.query_one("#flips", DataTable)
        table.clear()
        self.rows = []
        for name, c in report["sets"].items():
            flips, questions = c.get("flips") or {}, c.get("questions") or {}
            for way, which in (("B gained", c["gained"]), ("B lost", c["lost"])):
                for i in which:
                    f = flips.get(str(i)) or {}
                    q = " ".join(str(f.get("question") or questions.get(str(i)) or "").split())
                    q = clean_text(q[: QUESTION - 1] + "…" if len(q) > QUESTION else q)
                    table.add_row(clean_text(name), str(i + 1), Text(way, style="green" if way == "B gained" else "red"), q,
                                  _side(f.get("a")), _side(f.get("b")))
                    self.rows.append((name, i))
        if not self.rows:
            self.query_one("#flips-summary", Static).update(summary.append("no problem flipped: A and B answer alike"))
        else:
            self._say(f"{status}\nEnter: both outputs of the highlighted problem side by side")
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        table = self.query_one("#flips", DataTable)
        if not self.rows or self.report is None:
            return
        name, i = self.rows[table.cursor_row]
        flip = (self.report["sets"][name].get("flips") or {}).get(str(i))
        if not flip or not isinstance(flip.get("a"), dict) or not isinstance(flip.get("b"), dict):
            self.notify("this result has no outputs (an older engine diff scored it): r scores again", severity="warning")
            return
        from .pair import PairScreen

        self.app.push_screen(PairScreen(flip, f"{name} #{i + 1}", Path(self.a).name, Path(self.b).name))

    def action_close(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.job = None
            self.notify("paired comparison cancelled (its engine diff is stopped)")
        self.app.leave()

    def on_unmount(self) -> None:
        if self.job is not None:  # the app quits while scoring: the child goes with it
            self.job.cancel()
