"""Alerts and the run's log, plus the engine's own output for runs this workbench started."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import RichLog

from ..runstate import RunState


class LogPane(RichLog):
    def __init__(self, **kwargs):
        super().__init__(wrap=True, markup=False, **kwargs)
        self.logged = 0  # log lines of the state written so far (RunState.log_count)
        self.engine_offset = 0

    def show(self, state: RunState, engine_log: Path | None = None) -> None:
        if engine_log is not None and engine_log.exists():
            with open(engine_log, "rb") as f:
                f.seek(self.engine_offset)
                chunk = f.read()
            self.engine_offset += len(chunk)
            for line in chunk.decode(errors="replace").splitlines():
                if line.strip():
                    self.write(Text("engine │ " + line, style="dim"))
        fresh = state.log_count - self.logged
        for line in list(state.log)[-fresh:] if fresh > 0 else []:  # past the kept lines too: counted, not measured
            self.write(Text(line, style="bold red" if line.startswith("ALERT") else ""))
        self.logged = state.log_count
