"""Both outputs of one flipped problem side by side: two stepper panes, each stepping its own
trace (the focused one; Tab moves between them), diagnostics marked on their lines and listed
under each. `o` opens the focused one in the whole stepper (variables, breakpoints, edit)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from engine.events import clean_text
from engine.trace.diagnostics import STYLE
from engine.trace.render import summary

from ..stepper_model import Stepper
from ..widgets.footer import KeysFooter
from .help import COMMON_KEYS
from .stepper import source_text


class TracePane(Vertical, can_focus=True):
    """One output: a header (side, answer, outcome, step), the source with its gutter, the diagnostics."""

    DEFAULT_CSS = """
    TracePane { width: 1fr; height: 1fr; border: round $panel; }
    TracePane:focus { border: round $accent; }
    TracePane > .pane-head { height: auto; }
    TracePane > VerticalScroll { height: 1fr; }
    TracePane > .pane-diags { height: auto; max-height: 6; }
    """

    def __init__(self, label: str, side: dict, expected, expert, **kwargs):
        super().__init__(**kwargs)
        self.label, self.side = label, side
        self.model = Stepper(str(side.get("text") or ""), expected, expert)

    def compose(self) -> ComposeResult:
        yield Static(classes="pane-head")
        scroll = VerticalScroll(Static(classes="pane-source"))
        scroll.can_focus = False  # Tab goes from pane to pane; the mouse wheel still scrolls
        yield scroll
        yield Static(classes="pane-diags")

    def on_mount(self) -> None:
        self.draw()

    def on_resize(self, event) -> None:
        self.call_after_refresh(self.draw)  # the source wraps to the pane's width

    def draw(self) -> None:
        m = self.model
        outcome = str(self.side.get("outcome") or "")
        head = Text(f" {self.label} ", style="bold reverse")
        head.append(f" {outcome}", style="bold green" if outcome == "correct" else "bold red")  # the answer: in the summary
        head.append(f"  step {m.position + 1 if m.position >= 0 else '-'} of {len(m.records)}  " if m.records else "  no steps  ")
        head.append_text(summary(m.report, source=False))
        self.query_one(".pane-head", Static).update(head)
        room = self.query_one(".pane-source", Static).size.width
        self.query_one(".pane-source", Static).update(source_text(m, room, self.app.console))
        diags = Text()
        for d in m.report.diagnostics:
            diags.append("● " if d.is_error else "▲ ", style=STYLE[d.severity])
            diags.append(f"{d.code}", style="bold").append(f" (line {d.line or '-'}): {d.message}\n")
        cur = m.current
        if cur is not None and cur.diagnostics:  # what the step just run raised, as the stepper's status says
            diags.append("this step: " + ", ".join(d.code for d in cur.diagnostics), style="italic")  # its message: above
        diags.rstrip()  # in place
        self.query_one(".pane-diags", Static).update(diags if diags.plain else Text("no diagnostics", style="dim"))


class PairScreen(Screen):
    BINDINGS = [
        Binding("n,right,j", "step", "Step", tooltip="Run the next step of the focused trace"),
        Binding("p,left,k", "back", "Back", tooltip="Go back one step in the focused trace"),
        Binding("c", "cont", "Continue", tooltip="Continue the focused trace to its next diagnostic"),
        Binding("e", "end", "End", tooltip="Run the focused trace to its end", show=False),
        Binding("r", "restart", "Restart", tooltip="The focused trace back to before its first step", show=False),
        Binding("o", "open", "Stepper", tooltip="Open the focused trace in the whole stepper"),
        *COMMON_KEYS,
        Binding("escape", "close", "Back", tooltip="Back to the flipped problems"),
    ]

    def __init__(self, flip: dict, where: str, a_name: str, b_name: str):
        super().__init__()
        self.flip, self.where = flip, where
        self.names = (clean_text(a_name), clean_text(b_name))

    def compose(self) -> ComposeResult:
        yield Static(id="pair-header")
        with Horizontal(id="pair-main"):
            for key, name in zip("ab", self.names):
                yield TracePane(f"{key.upper()}: {name}", self.flip[key], self.flip.get("expected_answer"),
                                self.flip.get("expected_expert"), id=f"pane-{key}")
        yield Static(id="pair-status")
        yield KeysFooter()

    def on_mount(self) -> None:
        head = Text(f" {clean_text(self.where)} ", style="bold reverse")
        head.append(f" expected {clean_text(str(self.flip.get('expected_answer')))}")
        if self.flip.get("expected_expert"):
            head.append(f", expert {clean_text(str(self.flip['expected_expert']))}")
        head.append("\n Q: ", style="bold")
        head.append(clean_text(str(self.flip.get("question") or "")))
        self.query_one("#pair-header", Static).update(head)
        self.query_one("#pane-a", TracePane).focus()

    def _pane(self) -> TracePane:
        focused = self.app.focused
        pane = next((n for n in focused.ancestors_with_self if isinstance(n, TracePane)), None) if focused else None
        return pane or self.query_one("#pane-a", TracePane)

    def _say(self, text: str) -> None:
        self.query_one("#pair-status", Static).update(Text(text))

    def _did(self, pane: TracePane, said: str = "") -> None:
        pane.draw()
        self._say(f"{pane.label}: {said}" if said else "")

    def action_step(self) -> None:
        pane = self._pane()
        self._did(pane, "" if pane.model.step() else "at the end of the trace")

    def action_back(self) -> None:
        pane = self._pane()
        self._did(pane, "" if pane.model.back() else "at the start")

    def action_cont(self) -> None:
        pane = self._pane()
        said = pane.model.cont()
        self._did(pane, f"stopped: {said}")

    def action_end(self) -> None:
        pane = self._pane()
        pane.model.to_end()
        self._did(pane, "end of trace")

    def action_restart(self) -> None:
        pane = self._pane()
        pane.model.restart()
        self._did(pane, "restarted")

    def action_open(self) -> None:
        from .stepper import StepperScreen

        pane = self._pane()
        text = str(pane.side.get("text") or "")
        self.app.push_screen(StepperScreen(text, self.flip.get("expected_answer"), self.flip.get("expected_expert"),
                                           title=f"{self.where} {pane.label}", raw=text, question=self.flip.get("question")))

    def action_close(self) -> None:
        self.app.leave()
