"""The one Console every command prints through.

What a command shows can come from anywhere: a session folder's name, a field of
its status.json, a trace, a file name, a report. Escape sequences and control
characters are removed from all of it at the last moment, where rich turns
segments into terminal output; rich's own colours are rendered from styles, so
they are all that reach the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.segment import Segment

from ..events import clean_text


class SafeConsole(Console):
    def _render_buffer(self, buffer) -> str:  # rich's one exit for rendered text
        text = super()._render_buffer(seg if seg.control else Segment(clean_text(seg.text), seg.style) for seg in buffer)
        # rich pads a table's cells to the full width: a finished line needs none of that padding
        # (`engine models` ended 21 lines in spaces); an unfinished one (a prompt) keeps its own
        *lines, last = text.split("\n")
        return "\n".join([line.rstrip(" ") for line in lines] + [last])


def console(**kwargs) -> Console:
    return SafeConsole(highlight=False, **kwargs)
