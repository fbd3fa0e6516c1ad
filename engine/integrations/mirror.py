"""What a run's events become in a metrics tracker (TensorBoard, W&B): scalars with their
step, and a few texts. One mapping, two writers.

Scalars: `sft/<metric>` and `rl/<metric>` at their phase's step; `eval/<set>/accuracy`
(and parse_rate, valid_rate, mean_reward, expert/<name>) at the number of training
steps taken so far, so evaluations line up after the training they follow.
Texts: the config, alerts, and a few samples per step.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..events import EVENTS, EventReader

SKIP = {"t", "step", "total", "epoch", "phase", "kind"}
EVAL_SCALARS = ("accuracy", "parse_rate", "valid_rate", "mean_reward")


class Mapping:
    def __init__(self, samples_per_step: int = 2):
        self.last: dict[str, int] = {}  # phase -> last step seen
        self.samples_per_step, self.samples_seen = samples_per_step, {}

    @property
    def trained(self) -> int:
        return sum(self.last.values())

    def scalars(self, e: dict) -> tuple[str, int, dict[str, float]]:
        """(step kind, step, {tag: value}) of one event; the kind is a phase or `eval`."""
        kind = e.get("kind")
        if kind == "metrics":
            phase, step = str(e.get("phase") or "train"), e.get("step") or 0
            self.last[phase] = step
            return phase, step, {f"{phase}/{k}": v for k, v in e.items() if k not in SKIP and _number(v)}
        if kind == "eval":
            name, out = e.get("set") or "eval", {}
            for key in EVAL_SCALARS:
                if _number(e.get(key)):
                    out[f"eval/{name}/{key}"] = e[key]
            for expert, slot in (e.get("by_expert") or {}).items():
                if isinstance(slot, dict) and slot.get("total"):
                    out[f"eval/{name}/expert/{expert}"] = slot.get("correct", 0) / slot["total"]
            return "eval", self.trained, out
        return "", 0, {}

    def texts(self, e: dict) -> list[tuple[str, str, int]]:
        """(tag, markdown, step) of one event."""
        kind = e.get("kind")
        if kind == "run_started":
            return [("config", "```\n" + json.dumps(e.get("config", {}), indent=1, default=str) + "\n```", 0)]
        if kind == "alert":
            return [("alerts", f"**{e.get('level')}**: {e.get('message')}", self.trained)]
        if kind == "sample":
            key = (e.get("phase"), e.get("step"))
            self.samples_seen[key] = self.samples_seen.get(key, 0) + 1
            if self.samples_seen[key] <= self.samples_per_step:
                body = (f"**{e.get('outcome')}** (reward {e.get('reward')}; expected {e.get('expected_answer')}, "
                        f"got {e.get('answer')}; codes {', '.join(e.get('codes') or []) or 'none'})\n\n"
                        f"{e.get('question')}\n\n```yaml\n{e.get('text')}\n```")
                return [(f"samples/{e.get('phase')}", body, e.get("step") or 0)]
        return []


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def replay(session, mirror) -> None:
    """Feed a finished session's events to a mirror (`on_event`, `close`)."""
    path = Path(session) / EVENTS
    if not path.is_file():
        raise FileNotFoundError(f"{session} has no events.jsonl (is it a session folder?)")
    reader = EventReader(path, checked=True)
    while True:
        before = reader.offset
        for e in reader.read():
            mirror.on_event(e)
        if reader.offset == before:
            break
    mirror.close()
