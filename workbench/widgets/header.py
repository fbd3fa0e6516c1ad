"""The line above the tabs: run, status, model, where the run is, time, speed."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from engine.metrics import unit
from engine.models import params_label  # the same figure `engine models` and the new-run form show

from ..runstate import RunState
from .text import clock, duration


class RunHeader(Static):
    def show(self, s: RunState, *, engine_error: str | None, follow_status: str, remote: bool, starting: bool,
             stop_pending: bool, other: RunState | None = None) -> None:
        st = s.started
        phase, step, total = s.progress()
        parts: list[tuple[str, str, int]] = []  # (text, style, priority: 0 always shown, higher dropped first when narrow)
        parts.append((f" {s.name} ", "bold reverse", 0))
        status = "died" if engine_error else s.status
        parts.append((f" {status} ", "bold green" if status in ("running", "completed") else "bold red" if status in ("failed", "died") else "bold yellow", 0))
        parts.append((f" {st.get('model', '?')}", "", 2))
        if st.get("device") not in (None, "", "-"):  # a recording of hand-written outputs runs on nothing
            parts.append((f" on {st['device']}", "", 4))
        if st.get("load_8bit"):
            parts.append((" 8-bit", "", 3))
        if isinstance(st.get("params_trainable"), (int, float)) and isinstance(st.get("params_total"), (int, float)):
            parts.append((f"  {params_label(st['params_trainable'])} of {params_label(st['params_total'])} trained", "", 5))
        if not st and not s.finished and not engine_error:  # a dead engine is starting nothing
            parts.append(("  starting engine..." if starting else "  waiting for the first event...", "italic", 0))
        elif s.finished:  # where its last step was: its last heartbeat (mid-evaluation) is not where it ended
            m = s.last_metrics
            if m.get("total"):
                parts.append((f"  {m.get('phase')} {m.get('step')}/{m.get('total')}", "", 1))
        else:
            parts.append((f"  {phase} {step}/{total}" if total else f"  {phase}", "", 0))
            rows = s.rows_progress()
            if rows:
                parts.append((f" · {rows}", "", 3))
        if st.get("stages") != []:  # hand-written outputs (the stepper tour) took no time to make
            parts.append((f"  elapsed {duration(s.elapsed(died=bool(engine_error)))}", "", 2))
        if st and not s.finished and not engine_error:  # a finished or dead run has no ETA and no live speed; one not started yet neither
            whole = s.run_eta()  # the whole run's, steady; the stage's only where the whole cannot be told
            parts.append((f"  run eta {duration(whole)} · ends {clock(time.time() + whole)}" if whole is not None
                          else f"  stage eta {duration(s.eta())}", "", 1))
            tps = s.last_metrics.get("tokens_per_s")
            if isinstance(tps, (int, float)):
                parts.append((f"  {tps:,.0f} {unit('tokens_per_s')}", "", 4))
        if not s.finished:
            if stop_pending:
                parts.append((f"  stopping after this {'evaluation' if phase.startswith('eval') else 'step'}...", "bold yellow", 0))
        if follow_status and (remote or not st):  # e.g. "no such session folder"
            parts.append((f"  [{follow_status}]", "italic", 0))
        t = Text()
        width = self.size.width or 10_000
        for level in (5, 4, 3, 2, 1, 0):  # one line: the least needed parts leave first
            kept = [p for p in parts if p[2] <= level]
            if sum(len(p[0]) for p in kept) <= width or level == 0:
                break
        for text, style, _ in kept:
            t.append(text, style=style)
        if other is not None:  # the second run of a comparison, named with where it stands
            t.append(f"\n compared with ", style="dim")
            t.append(f" {other.name} ", style="bold reverse")
            t.append(f" {other.status}  {other.started.get('model', '?')}", style="dim")
        if engine_error:
            t.append(f"\n engine stopped: {engine_error}", style="bold red")
        elif s.finished and s.finished.get("error"):  # a failed run says why here, not only in the log
            t.append(f"\n {s.finished.get('status')}: {s.finished['error']}", style="bold red")
        self.update(t)
