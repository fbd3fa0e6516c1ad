"""Sampled outputs, one row each, keyed by the sample's number: new ones are appended and
the oldest leave once there are more than the state keeps, so a row always opens its own
sample."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import DataTable

from ..runstate import MAX_SAMPLES, RunState


class SamplesTable(DataTable):
    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.shown: deque[int] = deque()

    def on_mount(self) -> None:
        self.add_columns("phase", "step", "reward", "expert", "outcome", "codes", "question")

    def show(self, state: RunState) -> None:
        last = self.shown[-1] if self.shown else -1
        for e in state.samples:
            seq = e["seq"]
            if seq <= last:
                continue
            reward = e.get("reward")
            style = "green" if reward == 1.0 else "yellow" if (reward or 0) >= 0.7 else "red"
            # Text, not str: a DataTable reads str cells as markup, and model text is not markup
            self.add_row(Text(str(e.get("phase") or "")), str(e.get("step", "")),
                         Text(f"{reward:g}" if isinstance(reward, (int, float)) else "", style=style),
                         Text(str(e.get("expected_expert") or "")), Text(str(e.get("outcome") or "")),
                         Text(" ".join(e.get("codes", []))), Text(str(e.get("question") or "")[:80]), key=str(seq))
            self.shown.append(seq)
        while len(self.shown) > MAX_SAMPLES:
            self.remove_row(str(self.shown.popleft()))

    def highlighted(self) -> int | None:
        """The number of the sample under the cursor."""
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
