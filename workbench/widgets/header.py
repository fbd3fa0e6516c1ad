"""The line above the tabs: run, status, model, where the run is, time, speed."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..runstate import RunState
from .text import duration


class RunHeader(Static):
    def show(self, s: RunState, *, engine_error: str | None, follow_status: str, remote: bool, starting: bool,
             stop_pending: bool, other: RunState | None = None) -> None:
        st = s.started
        phase, step, total = s.progress()
        t = Text()
        t.append(f" {s.name} ", style="bold reverse")
        status = "died" if engine_error else s.status
        t.append(f" {status} ", style="bold green" if status in ("running", "completed") else "bold red" if status in ("failed", "died") else "bold yellow")
        t.append(f" {st.get('model', '?')} on {st.get('device', '?')}")
        if st.get("load_8bit"):
            t.append(" 8-bit")
        if isinstance(st.get("params_trainable"), (int, float)) and isinstance(st.get("params_total"), (int, float)):
            t.append(f"  {st['params_trainable'] / 1e6:.1f}M of {st['params_total'] / 1e6:.1f}M trained")
        if not st and not s.finished:
            t.append("  starting engine..." if starting else "  waiting for the first event...", style="italic")
        elif s.finished:  # where its last step was: its last heartbeat (mid-evaluation) is not where it ended
            m = s.last_metrics
            if m.get("total"):
                t.append(f"  {m.get('phase')} {m.get('step')}/{m.get('total')}")
        else:
            t.append(f"  {phase} {step}/{total}" if total else f"  {phase}")
            rows = s.rows_progress()
            if rows:
                t.append(f" · {rows}")
        t.append(f"  elapsed {duration(s.elapsed())}")
        if not s.finished:  # a finished run has no ETA and no live speed
            whole = s.run_eta()
            t.append(f"  eta {duration(whole)}" if whole is not None else f"  stage eta {duration(s.eta())}")
            tps = s.last_metrics.get("tokens_per_s")
            if isinstance(tps, (int, float)):
                t.append(f"  {tps:,.0f} tok/s")
            if stop_pending:
                t.append(f"  stopping after this {'evaluation' if phase.startswith('eval') else 'step'}...", style="bold yellow")
        if follow_status and (remote or not st):  # e.g. "no such session folder"
            t.append(f"  [{follow_status}]", style="italic")
        if other is not None:  # the second run of a comparison, named with where it stands
            t.append(f"\n compared with ", style="dim")
            t.append(f" {other.name} ", style="bold reverse")
            t.append(f" {other.status}  {other.started.get('model', '?')}", style="dim")
        if engine_error:
            t.append(f"\n engine stopped: {engine_error}", style="bold red")
        elif s.finished and s.finished.get("error"):  # a failed run says why here, not only in the log
            t.append(f"\n {s.finished.get('status')}: {s.finished['error']}", style="bold red")
        self.update(t)
