"""What the SFT, RL and evaluation loops read from the run, declared in one place.

The run (engine/recipe.py) builds one `Context` with its recorder, its
checkpoint hook and, once the model is loaded, the model handles. A test
builds one with `Context(cfg, forward_model=model)`: every other field has a
working default (nothing recorded, one rank, nothing saved).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

import torch

from ..health import collapsed
from ..recorder import Recorder
from ..session import CHECKPOINT_NOW, Session


def _no_checkpoint(step: int, next_stage: bool = False):
    return None


@dataclass
class Context:
    cfg: Any  # engine.config.Config
    # the model handles, set by the run once the model is loaded
    forward_model: Any = None  # what training passes call (DDP-wrapped under torchrun)
    autocast: Callable[[], ContextManager] = contextlib.nullcontext  # the training autocast context
    sampler: Any = None  # rollout.Sampler: the weights evaluations decode with
    backend: Any = None  # backends.py: what RL rollouts come from
    recorder: Recorder = field(default_factory=Recorder)  # every event goes through it; holds no session off rank 0
    rank: int = 0
    world: int = 1
    # the run's hooks: save a checkpoint at a step of the current stage; an evaluation every eval.every steps
    checkpoint: Callable[..., Any] = _no_checkpoint
    periodic_eval: Callable[[int], None] | None = None
    # state the loops change, read by checkpoints and heartbeats
    baseline: float | None = None  # RL's running mean reward
    rl_success: dict = field(default_factory=dict)  # dynamic sampling: question -> (right, tries) on this rank
    progress: dict = field(default_factory=lambda: {"phase": "setup", "step": 0, "total": 0})
    stop_signal: bool = False  # set by the signal handler
    stopping: bool = False  # a stop is decided (request, signal or collapse)
    collapsed: bool = False

    @property
    def session(self) -> Session | None:
        return self.recorder.session

    def emit(self, kind: str, **fields) -> dict:
        return self.recorder.emit(kind, **fields)

    def metrics(self, phase: str, step: int, total: int, **values) -> None:
        self.progress = {"phase": phase, "step": step, "total": total}
        self.emit("metrics", phase=phase, step=step, total=total, **{k: v for k, v in values.items() if v is not None})

    def alert(self, level: str, message: str, **fields) -> None:
        self.emit("alert", level=level, message=message, **fields)

    def sample(self, phase: str, step: int, record: dict) -> None:
        self.emit("sample", phase=phase, step=step, **record)

    def health_check(self, phase: str, step: int, h: dict) -> None:
        why = collapsed(h)
        if why:
            self.collapsed = True
            self.alert("warning", f"the model may be collapsing: {why}", phase=phase, step=step, health=h)
            if self.cfg.run.stop_on_collapse:
                self.stopping = True

    # -- the one place where ranks agree on what changes control flow --

    def agree(self, flag: bool, all_of: bool = False) -> bool:
        """Any rank's True (or, with all_of, every rank's) counts for all: stop, skip a
        step, skip a batch. A rank that decided alone would leave the others waiting in a
        collective."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([float(not flag if all_of else flag)])  # CPU: the group has a gloo side for it
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item()) != all_of

    def most(self, value: int) -> int:
        """The largest of a number over the ranks: how many passes every rank must run when a
        sharded model's every forward pass is a collective."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([float(value)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def mean(self, value: float) -> float:
        """A number's mean over the ranks (the step's loss over every rank's batch, not rank 0's alone)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([float(value)])
        dist.all_reduce(t)
        return t.item() / self.world

    def _requested(self) -> tuple[bool, bool]:
        stop = self.stop_signal or self.stopping  # stopping: a collapse that rank 0's evaluation saw
        stop |= self.recorder.stop_asked()
        ckpt = self.recorder.take_request(CHECKPOINT_NOW)
        return self.agree(stop), self.agree(ckpt)

    def stop_requested(self) -> bool:
        """A stop asked for by a signal or `engine stop`, seen between batches of an evaluation."""
        if self.stop_signal or self.stopping or self.recorder.stop_asked():
            self.stopping = True
        return self.stopping

    def after_step(self, phase: str, step: int, total: int) -> bool:
        """Between steps: honour stop and checkpoint requests; True means stop now."""
        stop, ckpt = self._requested()
        every = self.cfg.run.checkpoint_every
        if ckpt or (every and step % every == 0 and step < total):
            self.checkpoint(step)
        eval_every = self.cfg.eval.every
        if self.periodic_eval and eval_every and step % eval_every == 0 and step < total:
            self.periodic_eval(step)
        if stop or self.stopping:
            self.stopping = True
            return True
        return False
