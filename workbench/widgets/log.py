"""Alerts and the run's log, plus the engine's own output for runs this workbench started."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ..runstate import RunView
from .pane import Pane


# the lines `engine train --plain` prints for events (engine/cli/reporter.py): the log has them already.
# The workbench starts the engine with a wide COLUMNS (launch.py), so none of them wraps onto a second line.
ECHOED = ("alert (", "eval ", "checkpoint ", "run finished: ")


class LogPane(Pane, RichLog):
    TITLE, TAB, ID = "Alerts & log", "tab-log", "log"
    ALWAYS = True  # lines are written as they come: a tab opened late never writes thousands at once

    def __init__(self, **kwargs):
        super().__init__(wrap=True, markup=False, **kwargs)
        self.logged = 0  # log lines of the state written so far (RunState.log_count)
        self.engine_offset = 0

    def engine_output(self, lines: list[str]) -> None:
        """Lines of the engine's own output (LogTail read them in its thread), less its echo of
        events this pane already shows from events.jsonl (each alert once, not twice)."""
        for line in lines:
            if not line.startswith(ECHOED):
                self.write(Text("engine │ " + line, style="dim"))

    def show(self, view: RunView) -> None:
        state = view.state
        fresh = state.log_count - self.logged
        for line in list(state.log)[-fresh:] if fresh > 0 else []:  # past the kept lines too: counted, not measured
            self.write(Text(line, style="bold red" if line.startswith("ALERT") else ""))
        self.logged = state.log_count
