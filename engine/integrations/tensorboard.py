"""A run's metrics and evaluations in TensorBoard: mirrored while it trains
(`run.tensorboard: DIR`), or exported from a finished session
(`engine export SESSION --tensorboard DIR`). Needs the `tensorboard` package
(`pip install tensorboard`, or the project's `tensorboard` extra).

Tags: `sft/<metric>` and `rl/<metric>` at their phase's step; `eval/<set>/accuracy`
(and parse_rate, valid_rate, mean_reward, expert/<name>) at the number of
training steps taken so far, so evaluations line up after the training they
follow; the config, alerts and a few samples as text.
"""

from __future__ import annotations

import json
from pathlib import Path

SKIP = {"t", "step", "total", "epoch", "phase", "kind"}
EVAL_SCALARS = ("accuracy", "parse_rate", "valid_rate", "mean_reward")


class MissingTensorBoard(RuntimeError):
    pass


def writer(logdir: str | Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingTensorBoard("TensorBoard output needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(log_dir=str(logdir))


class TensorBoardMirror:
    def __init__(self, logdir: str | Path, samples_per_step: int = 2):
        self.w = writer(logdir)
        self.last: dict[str, int] = {}  # phase -> last step seen
        self.samples_per_step, self.samples_seen = samples_per_step, {}
        self.scalars = 0

    def _scalar(self, tag: str, value, step: int, wall) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.w.add_scalar(tag, value, step, walltime=wall)
            self.scalars += 1

    def on_event(self, e: dict) -> None:
        kind, wall = e.get("kind"), e.get("t")
        if kind == "metrics":
            phase, step = str(e.get("phase") or "train"), e.get("step") or 0
            self.last[phase] = step
            for key, value in e.items():
                if key not in SKIP:
                    self._scalar(f"{phase}/{key}", value, step, wall)
        elif kind == "eval":
            step, name = sum(self.last.values()), e.get("set") or "eval"
            for key in EVAL_SCALARS:
                self._scalar(f"eval/{name}/{key}", e.get(key), step, wall)
            for expert, slot in (e.get("by_expert") or {}).items():
                if isinstance(slot, dict) and slot.get("total"):
                    self._scalar(f"eval/{name}/expert/{expert}", slot.get("correct", 0) / slot["total"], step, wall)
        elif kind == "run_started":
            self.w.add_text("config", "```\n" + json.dumps(e.get("config", {}), indent=1, default=str) + "\n```", 0, walltime=wall)
        elif kind == "alert":
            self.w.add_text("alerts", f"**{e.get('level')}**: {e.get('message')}", sum(self.last.values()), walltime=wall)
        elif kind == "sample":
            key = (e.get("phase"), e.get("step"))
            self.samples_seen[key] = self.samples_seen.get(key, 0) + 1
            if self.samples_seen[key] <= self.samples_per_step:
                body = (f"**{e.get('outcome')}** (reward {e.get('reward')}; expected {e.get('expected_answer')}, "
                        f"got {e.get('answer')}; codes {', '.join(e.get('codes') or []) or 'none'})\n\n"
                        f"{e.get('question')}\n\n```yaml\n{e.get('text')}\n```")
                self.w.add_text(f"samples/{e.get('phase')}", body, e.get("step") or 0, walltime=wall)
        elif kind == "run_finished":
            self.w.flush()

    def close(self) -> None:
        self.w.flush()
        self.w.close()


def export(session: str | Path, logdir: str | Path) -> int:
    """Write a session's events as TensorBoard summaries; returns the number of scalars written."""
    from ..events import EventReader

    path = Path(session) / "events.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{session} has no events.jsonl (is it a session folder?)")
    mirror = TensorBoardMirror(logdir)
    reader = EventReader(path, checked=True)
    while True:
        before = reader.offset
        for e in reader.read():
            mirror.on_event(e)
        if reader.offset == before:
            break
    mirror.close()
    return mirror.scalars
