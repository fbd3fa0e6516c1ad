"""What the SFT, RL and evaluation loops are handed, one small object per concern.

- `Handles`: the model as training and decoding use it, built once in the run's setup.
- `Events`: where the loops report (metrics, alerts, samples, progress for heartbeats).
- `Control`: whether to stop or checkpoint, decided in one `poll()` between steps.
- engine/parallel.py's `Collectives`: what the ranks agree on.

The loops hold no reference back to the run: they take these, yield at step
boundaries, and the recipe (engine/recipe.py) decides checkpoints, evaluations
and stops. A test builds `Handles(model)`; the others default to one rank that
records nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

from ..metrics import unknown
from ..recorder import Recorder
from ..session import CHECKPOINT_NOW


@dataclass(frozen=True)
class Handles:
    forward: Any  # what training passes call: the model, its DDP wrapper, or the model sharded by FSDP
    autocast: Callable[[], ContextManager] = contextlib.nullcontext  # the training autocast context
    sampler: Any = None  # rollout.Sampler or parallel.FullCopy: the whole weights that decoding uses


@dataclass
class Events:
    """Every event goes through the recorder (which holds no session off rank 0). `progress` is
    what heartbeats say between metrics; the loops keep it current."""

    recorder: Recorder = field(default_factory=Recorder)
    progress: dict = field(default_factory=lambda: {"phase": "setup", "step": 0, "total": 0})
    uncatalogued: set = field(default_factory=set)  # metric names said once to be missing from engine/metrics.py

    def emit(self, kind: str, **fields) -> dict:
        return self.recorder.emit(kind, **fields)

    def metrics(self, phase: str, step: int, total: int, **values) -> None:
        self.progress = {"phase": phase, "step": step, "total": total}
        values = {k: v for k, v in values.items() if v is not None}
        self.emit("metrics", phase=phase, step=step, total=total, **values)
        # a metric the catalogue lacks has no label or unit on any screen: said once, never a stop
        new = [name for name in unknown(phase, values) if name not in self.uncatalogued]
        if new:
            self.uncatalogued.update(new)
            self.alert("info", f"metric(s) {', '.join(new)} of {phase} are not in engine/metrics.py's catalogue: they "
                       "are in events.jsonl and the TensorBoard/W&B mirrors, on no pane", phase=phase)

    def alert(self, level: str, message: str, **fields) -> None:
        self.emit("alert", level=level, message=message, **fields)

    def sample(self, phase: str, step: int, record: dict) -> None:
        self.emit("sample", phase=phase, step=step, **record)


@dataclass(frozen=True)
class Asked:
    stop: bool = False
    checkpoint: bool = False


class Control:
    """Stop and checkpoint requests: a signal (`signal()`, from the handler), `engine stop` or
    `engine checkpoint` (files the recorder reads), or the run itself (`stop()`, a collapse).
    `poll()` is the one place they are read and agreed on: every rank calls it at the same point,
    and once it has said stop, it says stop from then on."""

    def __init__(self, recorder: Recorder | None = None):
        self.recorder = recorder or Recorder()
        self.signalled = False  # set by the signal handler: a flag and nothing else
        self.reason = ""  # why the run itself asked to stop ("collapse")
        self.stopping = False

    def signal(self) -> None:
        self.signalled = True

    def stop(self, reason: str) -> None:
        self.reason = reason

    def asked(self) -> bool:
        """A stop asked for, as this rank alone sees it (between batches of rank 0's evaluation)."""
        return self.stopping or self.signalled or bool(self.reason) or self.recorder.stop_asked()

    def poll(self, dist) -> Asked:
        """Between steps, on every rank: what the ranks together ask for now."""
        stop = dist.agree(self.asked())
        checkpoint = dist.agree(self.recorder.take_request(CHECKPOINT_NOW))
        self.stopping = self.stopping or stop
        return Asked(self.stopping, checkpoint)
