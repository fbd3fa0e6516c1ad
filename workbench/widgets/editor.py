"""The stepper's editor: YAML highlighting (TextArea's own) and, in the margin of each
line that carries a diagnostic, the same mark the source view shows (● error,
▲ warning), kept up to date as the text is re-checked."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.strip import Strip
from textual.widgets import TextArea

from engine.trace.diagnostics import STYLE


class TraceEditor(TextArea):
    # printable keys are text here, so the stepper's keys are out of reach: the key bar shows these two
    BINDINGS = [
        Binding("ctrl+s", "screen.save", "Check and save"),
        Binding("escape", "screen.edit", "Stop editing"),
    ]

    def __init__(self, text: str, **kwargs):
        super().__init__(text, language=None, show_line_numbers=True, soft_wrap=False, **kwargs)
        self.marks: dict[int, str] = {}  # 0-based line -> severity

    def mark(self, diagnostics) -> None:
        """One mark per line, the worst severity winning."""
        marks: dict[int, str] = {}
        for d in diagnostics:
            if d.line is None:
                continue
            for ln in range(d.line, (d.end_line or d.line) + 1):
                if marks.get(ln - 1) != "error":
                    marks[ln - 1] = d.severity
        if marks != self.marks:
            self.marks = marks
            self.refresh()

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        sev = self.marks.get(y + int(self.scroll_offset.y))  # no soft wrap: one row per line
        if sev is None or strip.cell_length < 2:
            return strip
        mark = Strip([Segment("●" if sev == "error" else "▲", Style.parse(STYLE[sev]))])
        return Strip.join([mark, strip.crop(1, strip.cell_length)])
