"""TRL's GRPOTrainer with the trace reward, written to a session the workbench follows.

    from engine.integrations.trl import TraceSession

    with TraceSession("sessions/grpo-1") as run:      # the folder `workbench attach` opens
        trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[run.reward],
                              train_dataset=dataset,    # columns: prompt, answer (and expert)
                              args=GRPOConfig(output_dir="out", logging_steps=1),
                              callbacks=[run.callback()])
        trainer.train()

`run.reward` is a TRL reward function (prompts, completions and the dataset's
columns in, one float per completion out) giving the graduated reward of the
trace spec; it also writes a few of each batch's completions as `sample`
events, with their diagnostic codes. `run.callback()` turns TRL's logs, saves
and the end of training into `run_started`, `metrics` (phase `rl`, under the
engine's metric names where TRL has one), `checkpoint` and `run_finished`
events. TRL is imported by `callback()` only; the reward needs nothing of it.
A folder that holds an earlier run is refused (SessionExists): nothing of it
is replaced; `TraceSession(folder, resume=True)` continues it. The callback
never raises into `trainer.train()`: a failure in it is said once.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from pathlib import Path

from ..data.problems import answer_value
from ..events import SCHEMA_VERSION
from ..recorder import Recorder
from ..rollout import Completion
from ..tasks import Item
from ..tasks.common import sample_record
from ..tasks.trace import score_with
from ..trace.reward import RewardWeights

# TRL's log keys -> the engine's metric names (docs/events.md); other numeric keys keep their
# own names with "/" as "_"
METRICS = {
    "loss": "loss", "reward": "reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy",
    "learning_rate": "lr", "grad_norm": "grad_norm", "frac_reward_zero_std": "tied_groups",
    "completions/mean_length": "completion_length", "completions/max_length": "completion_length_max",
    "completions/clipped_ratio": "cut_rate",
}


# the fields of our own events: a TRL log key of the same name is kept as trl_<key>, never in their place
EVENT_FIELDS = frozenset({"kind", "t", "phase", "step", "total"})


class TraceSession:
    def __init__(self, folder: str | Path, weights: RewardWeights | None = None, samples_per_batch: int = 4,
                 max_completion_length: int | None = None, resume: bool = False):
        # under torchrun / accelerate every rank builds one; rank 0 alone owns the session (the
        # others would be refused its lock), the other ranks score their own completions
        self.rank = int(os.environ.get("RANK", 0))
        # a second writer is refused (the lock), and the workbench sees the run as live. A folder
        # holding an earlier run is refused (SessionExists) unless `resume`: then this run's events
        # follow that run's, and its start and best accuracy are kept
        self.resumed = resume
        self.recorder = Recorder(Path(folder) if self.rank == 0 else None).open(
            model="trl", resume=resume, resume_hint="TraceSession('{path}', resume=True)")
        self.session = self.recorder.session
        self._hook_failed = False
        self.weights = weights or RewardWeights()
        self.samples_per_batch = samples_per_batch
        self.max_completion_length = max_completion_length
        self.finished = False
        self.reward = self.trace_reward  # TRL logs a reward under its function's name: rewards/trace_reward/mean

    # ------------------------------------------------------------------ the reward
    def trace_reward(self, prompts, completions, answer=None, expert=None, completion_ids=None, trainer_state=None,
               log_extra=None, **_) -> list[float]:
        """TRL reward function: the trace reward of each completion against its row's `answer`."""
        if answer is None:
            raise ValueError("the trace reward needs an `answer` column in the dataset (a number, or text ending in #### N)")
        step = (getattr(trainer_state, "global_step", 0) or 0) + 1
        rewards, codes = [], []
        for i, completion in enumerate(completions):
            text = _content(completion)
            cut = bool(self.max_completion_length and completion_ids is not None
                       and len(completion_ids[i]) >= self.max_completion_length)
            try:
                item = Item(_content(prompts[i], user=True), answer_value(answer[i]), (expert[i] if expert is not None else None) or None)
                score = score_with(self.weights, item, text, cut)
            except Exception as exc:  # noqa: BLE001 - one odd row must not end the trainer's run
                why = f"scoring failed: {type(exc).__name__}: {exc}"
                self.recorder.emit("alert", level="error", message=why, phase="rl")
                if not self.session:  # another rank's: it holds no session, so its terminal hears it
                    print(f"rank {self.rank}: {why}", file=sys.stderr)
                rewards.append(0.0)
                codes.append(["scoring_error"])
                continue
            rewards.append(score.reward)
            codes.append(score.codes)
            if i < self.samples_per_batch and self.session:
                self.recorder.emit("sample", phase="rl", step=step, **sample_record(item, Completion(text, [], cut), score))
        if log_extra is not None:  # the codes beside each completion in TRL's own completions table
            log_extra("trace_codes", [" ".join(c) for c in codes])
        return rewards

    # ------------------------------------------------------------------ the callback
    def callback(self):
        from transformers import TrainerCallback

        run = self

        class TraceCallback(TrainerCallback):
            @_guarded(run)
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                total = sum(p.numel() for p in model.parameters()) if model is not None else None
                trained = sum(p.numel() for p in model.parameters() if p.requires_grad) if model is not None else None
                name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
                if not run.session:
                    return
                run.recorder.emit("run_started", schema=SCHEMA_VERSION, run=run.session.path.name, model=name,
                             config={"trainer": "trl.GRPOTrainer", **_plain_args(args)}, params_total=total,
                             params_trainable=trained, device=str(getattr(args, "device", "")),
                             world_size=getattr(args, "world_size", 1), resumed=run.resumed, stages=["rl"])

            @_guarded(run)
            def on_log(self, args, state, control, logs=None, **kwargs):
                values = metric_values(logs)
                if values:
                    run.recorder.emit("metrics", phase="rl", step=state.global_step, total=state.max_steps, **values)

            @_guarded(run)
            def on_save(self, args, state, control, **kwargs):
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                run.recorder.emit("checkpoint", path=str(path), step=state.global_step, phase="rl")

            @_guarded(run)
            def on_train_end(self, args, state, control, **kwargs):
                run.finish("completed")

        return TraceCallback()

    def hook_failed(self, hook: str, exc: BaseException) -> None:
        """A failure in our callback: said once (terminal, and an alert when the session takes it),
        never raised into the user's trainer.train()."""
        if self._hook_failed:
            return
        self._hook_failed = True
        why = (f"the session's TRL callback failed in {hook} ({type(exc).__name__}: {str(exc)[:300]}); "
               f"training goes on, the session may lack some of its events")
        print(f"tracebench: {why}", file=sys.stderr)
        try:
            self.recorder.emit("alert", level="warning", message=why, phase="rl")
        except Exception:  # noqa: BLE001 - the terminal has heard it
            pass

    # ------------------------------------------------------------------ the end
    def finish(self, status: str, error: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.session:
            return
        self.recorder.emit("run_finished", status=status, **({"error": error} if error else {}))  # status.json follows it
        self.recorder.close()

    def __enter__(self) -> "TraceSession":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.finish("completed")
        elif issubclass(kind, KeyboardInterrupt):
            self.finish("stopped")
        else:
            self.finish("failed", error="".join(traceback.format_exception_only(kind, exc)).strip())


def metric_values(logs) -> dict:
    """TRL's numeric log values under the engine's metric names (METRICS) or their own ("/" as "_");
    a key named like a field of our events (EVENT_FIELDS) as trl_<key>."""
    values = {}
    for key, value in (logs.items() if isinstance(logs, dict) else ()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            name = METRICS.get(key, str(key).replace("/", "_"))
            values[f"trl_{name}" if name in EVENT_FIELDS else name] = value
    return values


def _guarded(run: TraceSession):
    """A callback method that never raises into the trainer: a failure is said once (hook_failed)."""
    def wrap(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a user's training never dies because of our hook
                run.hook_failed(method.__name__, exc)
                return None
        return call
    return wrap


def _content(value, user: bool = False) -> str:
    """A completion or prompt as text: TRL passes strings, or chat messages (lists of dicts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        turns = [m for m in value if isinstance(m, dict)]
        if user:
            turns = [m for m in turns if m.get("role") == "user"] or turns
        return str(turns[-1].get("content", "")) if turns else ""
    return str(value)


def _plain_args(args) -> dict:
    """The trainer's arguments that read as plain JSON values."""
    out = {}
    for key, value in (args.to_dict() if hasattr(args, "to_dict") else {}).items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out
