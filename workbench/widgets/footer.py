"""The key bar: Textual's Footer, compact on a narrow terminal so more keys stay in view."""

from __future__ import annotations

from textual.widgets import Footer

NARROW = 140


class KeysFooter(Footer):
    def on_resize(self, event) -> None:
        self.compact = event.size.width < NARROW
