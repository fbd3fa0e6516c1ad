"""The first thing a run opens on: "is this run learning?" at a glance.

Four plots, each on its own axes (SFT loss by SFT step; RL reward, batch
accuracy and parse rate by iteration; the RL signals practitioners check:
tied groups, entropy, KL; completion lengths) and a side column: the stage
timeline, accuracy by expert of the latest evaluation with the change since
the previous one, the latest sample, the latest alerts, the machine.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.metrics import METRICS, label

from ..runstate import RunState, RunView, current_stage, downsample, rl_reading
from .charts import nice_ticks, plot_series, recent_range, set_axes, tick_label  # noqa: F401 (tests import them here)
from .pane import Pane

# (plot id, title, phase, [(metric, colour)], y range or None); the legend names a metric by its
# catalogue word (engine/metrics.py)
PLOTS = [
    ("ov-sft", f"SFT {label('loss')}", "sft", [("loss", "cyan")], None),
    ("ov-reward", f"RL {label('reward')}", "rl", [("reward", "green"), ("accuracy", "blue"), ("parse_rate", "orange")], (0.0, 1.0)),
    ("ov-signals", "RL signals", "rl", [("tied_groups", "red"), ("entropy", "blue"), ("kl", "cyan")], None),
    ("ov-length", label("completion_length"), "rl", [("completion_length", "green"), ("completion_length_max", "gray")], None),
]
# the RL slots during SFT: (title, [(metric, colour)]) from SFT's own metrics
SFT_PLOTS = {
    "ov-reward": (f"SFT {label('tokens_per_s')}", [("tokens_per_s", "green")]),
    "ov-signals": (f"SFT {label('grad_norm')}", [("grad_norm", "red")]),
    "ov-length": (f"SFT {label('lr')}", [("lr", "blue")]),
}
LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
RICH = {"cyan": "cyan", "green": "green", "blue": "blue", "orange": "dark_orange", "red": "red", "gray": "grey50"}


class Overview(Pane, Horizontal):
    TITLE, TAB, ID = "Overview", "tab-overview", "overview"
    drawn: tuple = ()  # what its plots were drawn from: coming back to the tab costs no re-plotting

    def compose(self) -> ComposeResult:
        with Grid(id="ov-plots"):
            for plot_id, *_ in PLOTS:
                with Vertical(classes="ov-cell"):
                    yield PlotextPlot(id=plot_id)
                    yield Static(id=f"{plot_id}-legend", classes="ov-legend")
        with VerticalScroll(id="ov-side"):
            for part in ("stages", "evals", "reading", "sample", "alerts", "system"):
                yield Static(id=f"ov-{part}", classes="ov-part")

    def show(self, view: RunView) -> None:
        state, smoothing = view.state, view.smoothing
        seen = (state.events, smoothing)
        if seen == self.drawn:
            return
        self.drawn = seen
        for plot_id, title, phase, series, yrange in PLOTS:
            metrics = state.series.get(phase, {})
            if plot_id in SFT_PLOTS and not any(metrics.get(k) for k, _ in series):
                # no RL yet (SFT is the longest phase): the slot shows what SFT's metrics carry
                sft_title, sft_series = SFT_PLOTS[plot_id]
                sft = state.series.get("sft", {})
                if any(sft.get(k) for k, _ in sft_series):
                    title, metrics, series, yrange = sft_title, sft, sft_series, None
            self._plot(plot_id, title, metrics, series, yrange, smoothing)
        q = self.query_one
        q("#ov-stages", Static).update(stages_line(state))
        q("#ov-evals", Static).update(eval_panel(state))
        reading = rl_reading(state)
        q("#ov-reading", Static).update(Text(reading, style="italic") if reading else "")
        q("#ov-sample", Static).update(sample_panel(state))
        q("#ov-alerts", Static).update(alerts_panel(state))
        q("#ov-system", Static).update(system_line(state))

    def _plot(self, plot_id: str, title: str, metrics: dict, series, yrange, smoothing: bool) -> None:
        plot = self.query_one(f"#{plot_id}", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        present = [(key, METRICS[key].legend, colour) for key, colour in series if metrics.get(key)]
        plt.title(title + (" (smoothed)" if smoothing else ""))
        # the legend is a line under the plot: plotext's own legend box sits on the data
        legend = Text()
        for key, name, colour in present:
            last = metrics[key][-1][1]
            legend.append("━", style=RICH[colour]).append(f"{name} {last:.0f} " if abs(last) >= 100 else f"{name} {last:.2g} ")
        if smoothing and present:
            legend.append("raw: dots", style="dim")
        self.query_one(f"#{plot_id}-legend", Static).update(legend)
        xs_all, ys_all = [], []
        for key, name, colour in present:
            pts = downsample(metrics[key])  # the points drawn set the axes: 400 at most, whatever the run's length
            plot_series(plt, pts, colour, smoothing)
            xs_all += [p[0] for p in pts]
            ys_all += [p[1] for p in pts]
        if not xs_all:
            plt.title(title + ": nothing yet")
            plot.refresh()
            return
        if yrange is None and plot_id == "ov-sft":  # a loss: the axis follows the recent steps, not the first drop
            yrange = recent_range([p for key, _, _ in present for p in downsample(metrics[key])])
            if yrange and yrange[1] < max(ys_all):
                legend.append("axis: recent steps", style="dim")
                self.query_one(f"#{plot_id}-legend", Static).update(legend)
        set_axes(plt, xs_all, ys_all, yrange)
        plot.refresh()


def stages_line(state: RunState) -> Text:
    """`eval:start > sft > eval:sft > rl > eval:rl`, done stages plain, the current one lit."""
    stages = state.started.get("stages") if isinstance(state.started.get("stages"), list) else []
    if not stages:
        return Text("starting..." if not state.finished else "", style="italic")
    now = current_stage(state)
    here = stages.index(now) if now in stages else (len(stages) if state.finished else -1)
    t = Text()
    for i, name in enumerate(stages):
        if i:
            t.append(" > ", style="dim")
        style = "bold reverse" if i == here else ("" if i < here else "dim")
        t.append(f" {name} " if i == here else str(name), style=style)
    if state.finished:
        t.append(f"  {state.finished.get('status', 'finished')}", style="bold")
    return t


def eval_panel(state: RunState) -> Table | Text:
    """Accuracy by expert of the latest evaluation of each set, with the change since the
    previous evaluation of that set (a drop in red: after RL, composition 3/3 -> 0/3)."""
    latest: dict[str, tuple[dict, dict | None]] = {}
    for e in state.evals:
        name = str(e.get("set"))
        latest[name] = (e, latest[name][0] if name in latest else None)
    if not latest:
        return Text("no evaluation yet", style="dim")
    table = Table(box=None, padding=(0, 1, 0, 0), show_header=True, header_style="bold", expand=False)
    table.add_column("evaluation", no_wrap=True)
    table.add_column("now", justify="right", no_wrap=True)
    table.add_column("before", justify="right", no_wrap=True, min_width=8)
    for name, (e, prev) in latest.items():
        before = prev.get("accuracy") if prev else None
        table.add_row(Text(f"{name} @{e.get('at')}", style="bold"), f"{e.get('accuracy') or 0:.1%}",
                      _change(e.get("accuracy"), before, f"{before:.1%}" if isinstance(before, (int, float)) else ""))
        ci = e.get("accuracy_ci")
        if isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
            table.add_row(Text(f"  CI {ci[0]:.0%}-{ci[1]:.0%}", style="dim"), "", "")
        experts = (prev or {}).get("by_expert", {})
        for expert, b in sorted(e.get("by_expert", {}).items()):
            p = experts.get(expert)
            was = p["correct"] / p["total"] if p and p.get("total") else None
            table.add_row(Text(f"  {expert}"), f"{b['correct']}/{b['total']}",
                          _change(b["correct"] / b["total"], was, f"{p['correct']}/{p['total']}" if p else ""))
    return table


def _change(now, before, text: str) -> Text:
    """What it was, red when it fell, green when it rose, dim when it held."""
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)):
        return Text("")
    d = now - before
    style = "red bold" if d < -1e-9 else "green" if d > 1e-9 else "dim"
    return Text(("▼ " if d < -1e-9 else "▲ " if d > 1e-9 else "") + text, style=style)


def sample_panel(state: RunState) -> Text:
    if not state.samples:
        return Text("no sample yet", style="dim")
    e = state.samples[-1]
    t = Text()
    t.append(f"latest sample ({e.get('phase')}@{e.get('step')}", style="bold")
    t.append(f", {e.get('set')})" if e.get("set") else ")", style="bold")
    t.append("\nQ: " + str(e.get("question") or "")[:160])
    lines = str(e.get("text") or "").strip().splitlines()
    for line in lines[:6]:
        t.append("\n  " + line[:100], style="cyan")
    if len(lines) > 6:
        t.append(f"\n  ... {len(lines) - 6} more lines", style="dim")
    got, want = e.get("answer"), e.get("expected_answer")
    right = e.get("outcome") == "correct"
    t.append(f"\nanswer {got if got is not None else '—'} vs expected {want}", style="green" if right else "red")
    t.append(f"  {e.get('outcome') or ''}")
    if e.get("codes"):
        t.append("\ncodes: " + " ".join(e["codes"]), style="yellow")
    return t


def alerts_panel(state: RunState) -> Text:
    if not state.alerts:
        return Text("no alerts", style="dim")
    t = Text()
    t.append("latest alerts", style="bold")
    for a in state.alerts[-3:]:
        level = str(a.get("level"))
        t.append(f"\n{level}: ", style=LEVEL_STYLE.get(level, ""))
        t.append(str(a.get("message") or "")[:200])
    return t


def system_line(state: RunState) -> Text:
    """The engine's machine as its last heartbeat saw it (a remote run's, over ssh)."""
    s = state.heartbeat.get("system") if isinstance(state.heartbeat.get("system"), dict) else {}
    if not s or state.finished:
        return Text("")
    parts = []
    if isinstance(s.get("cpu"), (int, float)):
        parts.append(f"CPU {s['cpu']:.0f}%")
    if isinstance(s.get("mem"), (int, float)) and isinstance(s.get("mem_total"), (int, float)):
        parts.append(f"memory {s['mem']:.1f}/{s['mem_total']:.0f} GiB")
    if isinstance(s.get("rss"), (int, float)):
        parts.append(f"engine {s['rss']:.1f} GiB")
    if isinstance(s.get("gpu"), (int, float)):
        parts.append(f"GPU {s['gpu']:.0f}%")
    if isinstance(s.get("gpu_mem"), (int, float)) and isinstance(s.get("gpu_mem_total"), (int, float)):
        parts.append(f"GPU memory {s['gpu_mem']:.1f}/{s['gpu_mem_total']:.0f} GiB")
    return Text("system: " + "  ".join(parts), style="dim") if parts else Text("")
