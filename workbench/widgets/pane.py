"""What every pane of the run screen is: one tab, drawn from the screen's `RunView`.

A new pane is a class here in widgets/ (a Textual widget that also derives from `Pane`, builds
its own children and has `show(view)`) and one entry in screens/run.py's `PANES`: the tabs,
their keys (1-n, in that order), `compose` and the redraw all read that list.
"""

from __future__ import annotations

from typing import ClassVar

from ..runstate import RunView


class Pane:
    TITLE: ClassVar[str] = ""  # the tab's name
    TAB: ClassVar[str] = ""  # the tab's id (`tab-...`)
    ID: ClassVar[str] = ""  # the pane's own id (CSS, tests)
    # redrawn at every redraw, shown or not (the log writes lines as they come: a tab opened late
    # never replays thousands at once); the others only while their tab is on screen
    ALWAYS: ClassVar[bool] = False

    def show(self, view: RunView) -> None:
        """Redraw from the view; called at most four times a second, so a pane with nothing new
        to draw returns at once (it keeps what it drew from)."""
        raise NotImplementedError
