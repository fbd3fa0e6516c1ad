"""The new-run form: one field per config key, checked as typed against the
config's own bounds; Enter moves to the next field. Start checks the model in a
worker and posts `NewRunForm.StartRequested`; the screen that holds it asks
"start it?" with the run's estimated time and checkpoint size, then starts the engine."""

from __future__ import annotations

import os
import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.validation import Function, Integer, Number
from textual.widgets import Button, Input, Label, Select, Static

from engine import config as config_mod
from engine.models import KNOWN, TINY, problem
from engine.tasks import TASKS
from engine.algorithms import ALGORITHMS  # the one table of RL algorithms (no torch)

# (id, label, config key); defaults and limits come from the engine's config
FIELDS = [
    ("f-model-name", "model (name, folder, hub id)", "model.name"),
    ("f-layers", "layers to unfreeze", "model.unfreeze_layers"),
    ("f-lora-rank", "LoRA rank", "model.lora_rank"),
    ("f-train-size", "SFT synthetic examples", "data.train_size"),
    ("f-gsm8k-traces", "SFT GSM8K traces", "data.gsm8k_traces"),
    ("f-variants", "SFT variants per GSM8K trace", "data.gsm8k_variants"),
    ("f-epochs", "SFT epochs", "sft.epochs"),
    ("f-lr", "SFT learning rate", "sft.lr"),
    ("f-rl-iters", "RL iterations", "rl.iterations"),
    ("f-eval-syn", "eval: synthetic problems", "eval.synthetic"),
    ("f-eval-gsm", "eval: GSM8K problems", "eval.gsm8k"),
    ("f-seed", "seed", "run.seed"),
    ("f-init-from", "start from checkpoint folder", "model.init_from"),
]


RUN_NAME_RULE = "letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit (it names a folder)"


def run_name_problem_free(name: str) -> bool:
    """A run name that is one plain folder name: no path, no space, no leading dot or dash."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name.strip()) is not None


def show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


DEFAULTS = config_mod.Config()  # read only: the values a new run starts from


def default(key: str):
    section, name = key.split(".")
    return getattr(getattr(DEFAULTS, section), name)


def optional(key: str) -> bool:
    """A setting whose default is empty (a path, model.init_from): left empty, the form sends nothing."""
    return default(key) == ""


def validators(key: str) -> list:
    kind, lo, hi = config_mod.bounds(key)
    if kind is int:
        return [Integer(lo, hi)]
    if kind is float:
        return [Number(lo, hi)]
    if optional(key):
        return []  # the engine's own check on Start says what is wrong with a path
    return [Function(bool, "a value is needed")]


class NewRunForm(VerticalScroll):
    BINDINGS = [Binding("escape", "leave", "Leave", tooltip="Leave the form: back to the list"),
                # from any field: the Start button is the form's last widget, a dozen Tabs away
                Binding("ctrl+s", "start", "Start run", tooltip="Check the form and start the run (asks first)")]

    class StartRequested(Message):
        """The form is valid and the model can be had: start `engine train` with `sets`, in a
        session folder named `name` (empty: the date and the model)."""

        def __init__(self, sets: list[str], model: str, name: str = ""):
            super().__init__()
            self.sets, self.model, self.name = sets, model, name

    class Refused(Message):
        """A field (by id) and why it cannot start."""

        def __init__(self, errors: list[tuple[str, str]]):
            super().__init__()
            self.errors = errors

    def compose(self) -> ComposeResult:
        yield Static("New run", classes="title")
        yield Label("known models")
        yield Select([(f"{m.name} ({m.params})", m.name) for m in KNOWN.values()], id="f-model-pick", prompt="pick a known model")
        for fid, label, key in FIELDS:
            yield Label(label)
            yield Input(show(default(key)), id=fid, validators=validators(key), validate_on=["changed", "blur"],
                        placeholder="none: the model above" if optional(key) else "")
        yield Label("task")
        yield Select([(f"{name}: {task.summary}", name) for name, task in TASKS.items()], value="trace", id="f-task",
                     allow_blank=False)
        yield Label("train")
        yield Select([("last layers + lm_head", "last_layers"), ("LoRA", "lora"), ("everything", "full")], value="last_layers",
                     id="f-train", allow_blank=False)
        yield Label("RL algorithm")
        yield Select([(a.label, name) for name, a in ALGORITHMS.items()], value=default("rl.algorithm"), id="f-rl-alg",
                     allow_blank=False)
        yield Label("load in 8-bit (bitsandbytes)")
        # a Select, not a Switch: its state in words ("off"), never only a colour, and no label on a border
        yield Select([("off: full precision", "off"), ("on: 8-bit weights (a GPU)", "on")], value="off", id="f-8bit",
                     allow_blank=False)
        yield Label("run name (its session folder)")
        yield Input("", id="f-run-name", validators=[Function(run_name_problem_free, RUN_NAME_RULE)],
                    validate_on=["changed", "blur"], placeholder="none: date and model")
        yield Button("Start run", id="start", variant="primary")

    def action_leave(self) -> None:
        """Esc in the form: back to the list beside it (the screen's keys work again)."""
        table = self.screen.query("#sessions")
        if table:
            table.first().focus()
        else:
            self.screen.focus_next()

    def action_start(self) -> None:
        self.start()

    def model(self) -> str:
        return self.query_one("#f-model-name", Input).value.strip()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "f-model-name":
            self.follow_model(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()  # Enter moves on; only Start starts (a run can take the machine for an hour)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "f-model-pick" and isinstance(event.value, str):
            self.query_one("#f-model-name", Input).value = event.value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            event.stop()
            self.start()

    def follow_model(self, name: str) -> None:
        """The tiny model gets the smoke run's sizes (a 150-step run of a random 3M model teaches
        nothing); leaving it puts back the defaults of the fields still at tiny's values."""
        for fid, _, key in FIELDS:
            if key not in config_mod.SMOKE:
                continue
            widget = self.query_one(f"#{fid}", Input)
            small, normal = show(config_mod.SMOKE[key]), show(default(key))
            if name == TINY and widget.value == normal:
                widget.value = small
            elif name != TINY and widget.value == small:
                widget.value = normal

    def settings(self) -> tuple[list[str], list[tuple[str, str]]]:
        """The `--set` list of the run, and (field id, message) for each field that is wrong."""
        q = self.query_one
        sets, errors = [], []
        for fid, label, key in FIELDS:
            widget = q(f"#{fid}", Input)
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                errors.append((fid, f"{label}: {'; '.join(result.failure_descriptions)}"))
            if widget.value.strip() or not optional(key):
                sets.append(f"{key}={widget.value.strip()}")
        sets += [f"model.train={q('#f-train', Select).value}", f"rl.algorithm={q('#f-rl-alg', Select).value}",
                 f"model.load_8bit={str(q('#f-8bit', Select).value == 'on').lower()}", f"run.task={q('#f-task', Select).value}"]
        if self.model() == TINY:  # the smoke sizes the form has no field for (batch, lengths, RL group)
            shown = {k for _, _, k in FIELDS}
            sets = [f"{k}={v}" for k, v in config_mod.SMOKE.items() if k not in shown] + sets
        name = q("#f-run-name", Input)
        if name.value.strip() and not run_name_problem_free(name.value):
            errors.append(("f-run-name", f"run name: {RUN_NAME_RULE}"))
        if not errors:
            try:
                config_mod.load(None, sets)  # the engine's own checks, before anything starts
            except config_mod.ConfigError as exc:
                key = str(exc).split(":")[0]
                errors.append((next((f for f, _, k in FIELDS if k == key), "f-model-name"), str(exc)))
        return sets, errors

    def start(self) -> None:
        """Check the form, then the model (in a worker: asking the hub may take a few seconds);
        a bad name fails here, not a minute into the run."""
        sets, errors = self.settings()
        if errors:
            self.post_message(self.Refused(errors))
            return
        model = self.model()
        self.notify(f"checking {model}...", timeout=2)

        def check() -> None:
            why = problem(model)
            name = self.query_one("#f-run-name", Input).value.strip()
            self.post_message(self.StartRequested(sets, model, name) if why is None else self.Refused([("f-model-name", why)]))

        self.run_worker(check, thread=True, group="model-check", exclusive=True)

    def mark(self, errors: list[tuple[str, str]]) -> None:
        for field_id, message in errors:
            self.query_one(f"#{field_id}").add_class("-invalid")
            self.notify(message, severity="error")


def cpu_load() -> float:
    """Threads already running on this machine: the 1-minute load average (0 where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def _minutes(m: float) -> str:
    return f"about {m:.0f} minutes" if m >= 1.5 else "under a minute" if m < 1 else "about a minute"


def _size(n: float) -> str:
    """A tiny run's checkpoint is a few MiB: "~0.0 GiB" said nothing."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.0f} KiB"


def estimate(sets: list[str], model: str, load: float = 0.0, running: list[str] | tuple = ()) -> str:
    """About how long the run takes on a CPU like this project's, and its checkpoints' size. A CPU
    already busy (`load`: threads running now; `running`: local runs still training) shares its
    cores: the run takes about (cores + load) / cores times as long while that lasts, and says so."""
    from engine.plan import BadModelConfig, checkpoint_bytes, cpu_minutes, known_shape

    cfg = config_mod.load(None, sets)
    try:
        shape = known_shape(model)
    except BadModelConfig as exc:  # 0 heads, a size in quotes: said here, before the run starts
        return f"{exc}."
    if shape is None:
        return f"{model}: its size is not known here, so neither is the run's time."
    minutes = cpu_minutes(cfg, shape)
    took = f"{_minutes(minutes)} on a 2-core CPU (a GPU is faster)"
    cores = os.cpu_count() or 2
    busy = max(load, float(len(running)) * min(cores, 2))  # a training run keeps its threads busy
    if busy >= 0.5:
        who = (f"{len(running)} run{'s' if len(running) > 1 else ''} still training here ({', '.join(running[:3])})"
               if running else f"the CPU is already busy (load {load:.1f} on {cores} cores)")
        took += f"; {who}: {_minutes(minutes * (cores + busy) / cores)} while that lasts"
    return (f"{took}. Each checkpoint ~{_size(checkpoint_bytes(cfg, shape))}, "
            f"at most two kept besides the best.")
