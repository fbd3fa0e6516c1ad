"""Loss and reward plots, and the lines under them (last evaluation, the RL reading)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ..runstate import RunState, downsample, rl_reading, smooth
from .text import interval

PLOTS = (
    ("loss-plot", [("sft", "loss"), ("rl", "loss")], "loss"),
    ("reward-plot", [("rl", "reward"), ("rl", "parse_rate")], "reward"),
)


def sft_steps(run: RunState) -> int:
    """Where RL's steps start on a shared axis: after the run's last SFT step."""
    sft = run.series.get("sft", {}).get("loss", [])
    return sft[-1][0] if sft else 0


def plot_series(plt, pts: list[tuple[int, float]], colour: str, smoothing: bool, offset: int = 0) -> None:
    """One series; when smoothed, the raw one stays behind it in faint dots. Long series are
    downsampled first (runstate.downsample): a key press never waits on 200,000 points.
    `offset` moves it along the step axis (RL after SFT)."""
    pts = [(x + offset, y) for x, y in downsample(pts)]
    if smoothing and len(pts) > 2:
        plt.plot([p[0] for p in pts], [p[1] for p in pts], color="gray", marker="dot")
        pts = smooth(pts, 0.8)
    plt.plot([p[0] for p in pts], [p[1] for p in pts], color=colour)


COLOURS = [("cyan", "cyan"), ("orange", "dark_orange"), ("green", "green"), ("magenta", "magenta")]


class Charts(Vertical):
    """Both runs of a comparison on the same axes; the legend is a line under each plot
    (plotext's own box sits on the data)."""

    def compose(self) -> ComposeResult:
        with Horizontal():
            for plot_id, _, _ in PLOTS:
                with Vertical():
                    yield PlotextPlot(id=plot_id)
                    yield Static(id=f"{plot_id}-legend", classes="ov-legend")
        yield Static(id="rates")

    def show(self, state: RunState, other: RunState | None, smoothing: bool) -> None:
        for plot_id, pairs, title in PLOTS:
            plot = self.query_one(f"#{plot_id}", PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.title(title + (" (smoothed)" if smoothing else ""))
            legend, n, both = Text(), 0, len({p for p, _ in pairs}) > 1
            for run in filter(None, (state, other)):
                shift = sft_steps(run) if both else 0  # one axis for SFT then RL, not RL drawn over SFT's first steps
                for phase, key in pairs:
                    pts = run.series.get(phase, {}).get(key, [])
                    if not pts:
                        continue
                    colour, rich = COLOURS[n % len(COLOURS)]
                    n += 1
                    offset = shift if phase == "rl" else 0
                    plot_series(plt, pts, colour, smoothing, offset)
                    if offset and run is state:
                        plt.vline(offset + 0.5, "gray")
                    where = f" (from step {offset + 1})" if offset else ""
                    legend.append("━", style=rich).append(f"{phase} {key}{where}" + (f" [{run.name}]" if other else "") + "  ")
            if both and n:
                plt.xlabel("step: SFT, then RL")
            self.query_one(f"#{plot_id}-legend", Static).update(legend)
            plot.refresh()
        lines = []
        last = [e for e in state.evals if e.get("set") == "synthetic"]
        if last:
            e = last[-1]
            lines.append(f"last synthetic eval ({e.get('at')}): accuracy {interval(e)}  parse {e.get('parse_rate') or 0:.1%}  "
                         f"valid {e.get('valid_rate') or 0:.1%}")
        reading = rl_reading(state)
        if reading:
            lines.append(reading)
        if lines:
            self.query_one("#rates", Static).update(Text("\n".join(lines)))
