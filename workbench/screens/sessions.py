"""The first screen: sessions in sessions/ and a form for a new run."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.validation import Function, Integer, Number
from textual.widgets import Button, DataTable, Footer, Input, Label, Select, Static, Switch

from engine import config as config_mod
from engine.models import KNOWN, TINY, problem
from engine.session import list_sessions, new_run_id
from engine.tasks import TASKS

from ..examples import example_sessions
from ..launch import start_engine


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _pct(x) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) else ""


class SessionsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("n", "new", "New run"),
        Binding("c", "compare", "Compare with marked"),
        Binding("space", "mark", "Mark for compare"),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh", "Refresh"),
        Binding("t", "paste_trace", "Stepper: paste a trace"),
        Binding("o", "open_trace", "Stepper: open a file"),
        Binding("tab", "app.focus_next", "Next pane", show=False),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, root: Path):
        super().__init__()
        self.root = root
        self.rows: list[dict] = []
        self.marked: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="sessions-main"):
            with Vertical(id="sessions-col"):
                yield Static(f"Sessions in {self.root}/", classes="title")
                yield Input(placeholder="filter sessions (/)", id="filter")
                yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="form"):
                yield from NewRunForm.fields()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.add_columns("run", "status", "model", "phase", "progress", "best acc", "started")
        self.query_one("#filter").display = False
        self.show_rows(self.scan())  # the first list at once; then a worker rescans (a slow disk never blocks keys)
        self.set_interval(2.0, self.action_refresh)
        table.focus()

    def scan(self) -> list[dict]:
        return list_sessions(self.root) + example_sessions()  # the recorded example last, marked

    def action_refresh(self) -> None:
        self.run_worker(lambda: self.app.call_from_thread(self.show_rows, self.scan()), thread=True,
                        group="scan", exclusive=True)

    def show_rows(self, rows: list[dict] | None = None) -> None:
        if rows is not None:
            self.rows = rows
        needle = self.query_one("#filter", Input).value.strip().lower()
        table = self.query_one("#sessions", DataTable)
        cursor, here = table.cursor_row, self._selected()  # the cursor stays on its run when others appear
        shown = [r for r in self.rows if not needle or needle in " ".join(str(v) for v in r.values()).lower()]
        table.clear()
        for r in shown:
            prog = f"{r['step']}/{r['total']}" if r.get("total") else ""
            started = time.strftime("%m-%d %H:%M", time.localtime(r["started"])) if r.get("started") else ""
            mark = "◆ " if r["path"] == self.marked else ""
            dim = "dim italic" if r.get("example") else ""
            table.add_row(Text(mark + r["run"], style=dim), Text(r["status"], style=dim), Text(str(r["model"])), r.get("phase") or "", prog, _pct(r.get("best_accuracy")), started, key=r["path"])
        if table.row_count:
            keys = [r["path"] for r in shown]
            table.move_cursor(row=keys.index(here) if here in keys else min(cursor, table.row_count - 1))

    def _selected(self) -> str | None:
        table = self.query_one("#sessions", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        path = self._selected()
        if path:
            from .run import RunScreen

            self.app.push_screen(RunScreen(path))

    def action_mark(self) -> None:
        self.marked = self._selected()
        self.show_rows()

    def action_compare(self) -> None:
        path = self._selected()
        if path and self.marked and path != self.marked:
            from .run import RunScreen

            self.app.push_screen(RunScreen(path, compare=self.marked))
        else:
            self.notify("mark one session with space, then choose another and press c")

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.show_rows()
        elif event.input.id == "f-model-name":
            NewRunForm(self).follow_model(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id and event.input.id.startswith("f-"):  # Enter in the form starts the run
            self.start_run()

    def action_new(self) -> None:
        self.query_one("#f-model-name", Input).focus()

    def action_paste_trace(self) -> None:
        from .stepper import StepperScreen

        example = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: compute, compute_op: mul, args: [a, 3], var: r}\n- {op: query, var: r}\n"
        screen = StepperScreen(example, title="pasted trace")
        self.app.push_screen(screen)
        screen.call_after_refresh(screen.action_edit)

    def action_open_trace(self) -> None:
        from .ask import Ask
        from .stepper import StepperScreen

        def done(path: str | None) -> None:
            if not path:
                return
            from engine.trace.cli import UsageError, read_input

            try:
                text = read_input(str(Path(path).expanduser()))
            except UsageError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.app.push_screen(StepperScreen(text, title=path))

        self.app.push_screen(Ask("trace file to open in the stepper"), done)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "f-model-pick" and isinstance(event.value, str):
            self.query_one("#f-model-name", Input).value = event.value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.start_run()

    def start_run(self) -> None:
        """Check the form, then the model (in a worker: asking the hub may take a few seconds),
        then start the engine; a bad name fails here, not a minute into the run."""
        form = NewRunForm(self)
        sets, errors = form.settings()
        self._mark_errors(errors)
        if errors:
            return
        model = form.model()
        self.notify(f"checking {model}...", timeout=2)

        def check() -> None:
            why = problem(model)
            if why is None:
                self.app.call_from_thread(self._launch, sets, model)
            else:
                self.app.call_from_thread(self._mark_errors, [("f-model-name", why)])

        self.run_worker(check, thread=True, group="model-check", exclusive=True)

    def _mark_errors(self, errors: list[tuple[str, str]]) -> None:
        for field_id, message in errors:
            self.query_one(f"#{field_id}").add_class("-invalid")
            self.notify(message, severity="error")

    def _launch(self, sets: list[str], model: str) -> None:
        from .run import RunScreen

        folder = self.root / new_run_id(model)
        proc = start_engine(folder, sets)
        self.app.push_screen(RunScreen(str(folder), process=proc))


class NewRunForm:
    """The new-run fields; each maps to one config key and is checked as typed."""

    SPEC = [
        # (id, label, config key, validators); defaults come from the engine's own config
        ("f-model-name", "model (name, folder or hub id)", "model.name", [Function(bool, "a model is needed")]),
        ("f-layers", "layers to unfreeze", "model.unfreeze_layers", [Integer(0, 200)]),
        ("f-lora-rank", "LoRA rank", "model.lora_rank", [Integer(1, 1024)]),
        ("f-train-size", "SFT synthetic examples", "data.train_size", [Integer(1, 10_000_000)]),
        ("f-gsm8k-traces", "SFT GSM8K traces", "data.gsm8k_traces", [Integer(0, 10_000_000)]),
        ("f-epochs", "SFT epochs", "sft.epochs", [Number(0, 1000)]),
        ("f-lr", "SFT learning rate", "sft.lr", [Number(0, 1)]),
        ("f-rl-iters", "RL iterations", "rl.iterations", [Integer(0, 1_000_000)]),
        ("f-eval-syn", "eval: synthetic problems", "eval.synthetic", [Integer(0, 1_000_000)]),
        ("f-eval-gsm", "eval: GSM8K problems", "eval.gsm8k", [Integer(0, 1319)]),
        ("f-seed", "seed", "run.seed", [Integer()]),
    ]

    def __init__(self, screen):
        self.screen = screen

    def model(self) -> str:
        return self.screen.query_one("#f-model-name", Input).value.strip()

    def follow_model(self, name: str) -> None:
        """The tiny model gets the smoke run's sizes (a 150-step run of a random 3M model teaches
        nothing); leaving it puts back the defaults of the fields still at tiny's values."""
        defaults, tiny = config_mod.Config(), config_mod.SMOKE
        for fid, _, key, _ in self.SPEC:
            if key not in tiny:
                continue
            widget = self.screen.query_one(f"#{fid}", Input)
            section, field = key.split(".")
            small, normal = _show(tiny[key]), _show(getattr(getattr(defaults, section), field))
            if name == TINY and widget.value == normal:
                widget.value = small
            elif name != TINY and widget.value == small:
                widget.value = normal

    @classmethod
    def fields(cls):
        yield Static("New run", classes="title")
        yield Label("known models")
        yield Select([(f"{m.name} ({m.params})", m.name) for m in KNOWN.values()], id="f-model-pick", prompt="pick a known model")
        defaults = config_mod.Config()
        for fid, label, key, validators in cls.SPEC:
            section, name = key.split(".")
            value = getattr(getattr(defaults, section), name)
            yield Label(label)
            yield Input(_show(value), id=fid, validators=validators, validate_on=["changed", "blur"])
        yield Label("task")
        yield Select([(f"{name}: {task.summary}", name) for name, task in TASKS.items()], value="trace", id="f-task",
                     allow_blank=False)
        yield Label("train")
        yield Select([("last layers + lm_head", "last_layers"), ("LoRA", "lora"), ("everything", "full")], value="last_layers", id="f-train", allow_blank=False)
        yield Label("RL algorithm")
        yield Select([("GRPO (group-relative)", "grpo"), ("REINFORCE + baseline", "reinforce")], value="grpo", id="f-rl-alg", allow_blank=False)
        with Horizontal(classes="switch-row"):
            yield Switch(value=False, id="f-8bit")
            yield Label("load in 8-bit (bitsandbytes)")
        yield Button("Start run", id="start", variant="primary")

    def settings(self) -> tuple[list[str], list[tuple[str, str]]]:
        q = self.screen.query_one
        sets, errors = [], []
        for fid, label, key, _ in self.SPEC:
            widget = q(f"#{fid}", Input)
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                errors.append((fid, f"{label}: {'; '.join(result.failure_descriptions)}"))
            sets.append(f"{key}={widget.value.strip()}")
        sets += [f"model.train={q('#f-train', Select).value}", f"rl.algorithm={q('#f-rl-alg', Select).value}",
                 f"model.load_8bit={str(q('#f-8bit', Switch).value).lower()}", f"run.task={q('#f-task', Select).value}"]
        if self.model() == TINY:  # the smoke sizes the form has no field for (batch, lengths, RL group)
            shown = {k for _, _, k, _ in self.SPEC}
            sets = [f"{k}={v}" for k, v in config_mod.SMOKE.items() if k not in shown] + sets
        if not errors:
            try:
                config_mod.load(None, sets)  # the engine's own checks, before anything starts
            except config_mod.ConfigError as exc:
                key = str(exc).split(":")[0]
                fid = next((f for f, _, k, _ in self.SPEC if k == key), "f-model-name")
                errors.append((fid, str(exc)))
        return sets, errors


