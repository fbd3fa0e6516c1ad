"""Loss and reward plots, and the lines under them (last evaluation, the RL reading)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.metrics import label

from ..runstate import RunState, RunView, downsample, rl_reading, smooth
from .pane import Pane
from .text import interval

# (plot id, [(phase, metric)], title): the legend names each series `phase metric`, as the events do
PLOTS = (
    ("loss-plot", [("sft", "loss"), ("rl", "loss")], label("loss")),
    ("reward-plot", [("rl", "reward"), ("rl", "parse_rate")], label("reward")),
)


def short_names(a: str, b: str, most: int = 14) -> tuple[str, str]:
    """Two runs' names as a legend tells them apart: without the start they share (up to a `-`
    or `_`), each cut to `most` characters. `smollm2-135m-gold-run` and `smollm2-135m-base-run`
    read `gold-run` and `base-run`."""
    common = 0
    for i, (x, y) in enumerate(zip(a, b) if a != b else ()):  # the same name twice: nothing tells them apart
        if x != y:
            break
        if x in "-_":
            common = i + 1
    cut = (lambda n: n if len(n) <= most else n[: most - 1] + "…")
    short = cut(a[common:] or a), cut(b[common:] or b)
    if short[0] == short[1] and a != b:  # they differ past the cut: show the ends instead
        short = tuple(n if len(n) <= most else "…" + n[1 - most:] for n in (a, b))
    return short


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


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while not ticks or ticks[-1] < hi - step * 1e-9:  # the last tick at or above hi: the axis covers the data
        ticks.append(round(t, 10))
        t += step
    return ticks


def tick_label(v: float) -> str:
    v = 0.0 if abs(v) < 1e-12 else v  # never "-0"
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.0e}"


def set_axes(plt, xs: list[float], ys: list[float], yrange: tuple[float, float] | None = None) -> None:
    """Round ticks on both axes: whole steps on x (never 70.5), plain numbers on y (never -0.0)."""
    if not xs or not ys:
        return
    lo, hi = yrange if yrange else (min(ys), max(ys))
    yt = nice_ticks(lo, hi)
    if yt:
        plt.yticks(yt, [tick_label(v) for v in yt])
        plt.ylim(min(yt[0], lo), max(yt[-1], hi))
    xt = [v for v in nice_ticks(min(xs), max(xs)) if float(v).is_integer()]
    if xt:
        plt.xticks(xt, [str(int(v)) for v in xt])


def recent_range(points: list[tuple[float, float]], keep: float = 0.75, least: int = 20) -> tuple[float, float] | None:
    """The y range of the last `keep` of the steps, once there are `least` points: a loss falls
    fast over the first steps, and an axis spanning them turns everything after into a flat band."""
    if len(points) < least:
        return None
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    ys = [y for x, y in points if x >= x1 - keep * (x1 - x0)]
    return (min(ys), max(ys)) if ys else None


COLOURS = [("cyan", "cyan"), ("orange", "dark_orange"), ("green", "green"), ("magenta", "magenta")]


class Charts(Pane, Vertical):
    """Both runs of a comparison on the same axes; the legend is a line under each plot
    (plotext's own box sits on the data)."""

    TITLE, TAB, ID = "Charts", "tab-charts", "charts"
    drawn: tuple = ()  # what its plots were drawn from: coming back to the tab costs no re-plotting

    def compose(self) -> ComposeResult:
        with Horizontal():
            for plot_id, _, _ in PLOTS:
                with Vertical():
                    yield PlotextPlot(id=plot_id)
                    yield Static(id=f"{plot_id}-legend", classes="chart-legend")  # wraps: two runs' series
        yield Static(id="rates")

    def show(self, view: RunView) -> None:
        state, other, smoothing = view.state, view.other, view.smoothing
        seen = (state.events, other.events if other else 0, smoothing)
        if seen == self.drawn:
            return
        self.drawn = seen
        for plot_id, pairs, title in PLOTS:
            plot = self.query_one(f"#{plot_id}", PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.title(title + (" (smoothed)" if smoothing else ""))
            legend, n, both = Text(), 0, len({p for p, _ in pairs}) > 1
            tags = dict(zip((state.name, other.name), short_names(state.name, other.name))) if other else {}
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
                    legend.append("━", style=rich).append(f"{phase} {key}{where}" + (f" [{tags[run.name]}]" if other else "") + "  ")
            if both and n:
                plt.xlabel("step: SFT, then RL")
            xs, ys = [], []
            for run in filter(None, (state, other)):
                shift = sft_steps(run) if both else 0
                for phase, key in pairs:
                    pts = downsample(run.series.get(phase, {}).get(key, []))
                    xs += [x + (shift if phase == "rl" else 0) for x, _ in pts]
                    ys += [y for _, y in pts]
            set_axes(plt, xs, ys)
            self.query_one(f"#{plot_id}-legend", Static).update(legend)
            plot.refresh()
        lines = []
        first = next(iter(state.eval_sets()), "synthetic")  # the set an evaluation decodes first
        last = [e for e in state.evals if e.get("set") == first]
        if last:
            e = last[-1]
            lines.append(f"last {first} eval ({e.get('at')}): accuracy {interval(e)}  parse {e.get('parse_rate') or 0:.1%}  "
                         f"valid {e.get('valid_rate') or 0:.1%}")
        reading = rl_reading(state)
        if reading:
            lines.append(reading)
        if lines:
            self.query_one("#rates", Static).update(Text("\n".join(lines)))
