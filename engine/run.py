"""One training run: the session, signals, heartbeats and the final event around
the recipe (engine/recipe.py), which does the stages.

Everything the run does is an event, recorded (engine/recorder.py) in
sessions/<run>/events.jsonl and the files derived from it. A stop
(SIGINT, SIGTERM, or `engine stop DIR`) ends the current step, saves a
checkpoint and writes `run_finished`; so does a crash, as far as it can.
Under torchrun every rank trains; rank 0 alone writes the session.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import traceback
from datetime import timedelta
from pathlib import Path

import torch

from . import parallel, system
from .recipe import Recipe, Stopped
from .recorder import Recorder
from .session import SessionBusy
from .train.context import Control, Events


def _init_process_group() -> None:
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    # rank 0 evaluates while the others wait at a barrier: the timeout must outlast an evaluation
    dist.init_process_group(**process_group_options(torch.cuda.is_available()),
                            timeout=timedelta(minutes=float(os.environ.get("TRACEBENCH_DIST_TIMEOUT_MIN", 120))))


def process_group_options(cuda: bool) -> dict:
    """init_process_group's backend and, on GPUs, `device_id`: this rank's own GPU
    (cuda:LOCAL_RANK), which binds NCCL's communicator to it at once; without it NCCL
    guesses the device at the first collective (a barrier may then wait on the wrong one)."""
    options: dict = {"backend": process_group_backend(cuda)}
    if cuda:
        options["device_id"] = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return options


def process_group_backend(cuda: bool) -> str:
    """One process group for both kinds of tensor: small CPU flags (stop, skip) travel
    over gloo, gradients over NCCL. NCCL alone refuses a CPU tensor."""
    return "cpu:gloo,cuda:nccl" if cuda else "gloo"


def own_gpu() -> int | None:
    """The GPU this process trains on (cuda:LOCAL_RANK, as pick_device chooses), or None."""
    return int(os.environ.get("LOCAL_RANK", 0)) if torch.cuda.is_available() else None


class Heartbeat:
    """Heartbeats every 10 s from a thread the run owns; and the way out when a second signal
    finds the main thread stuck (in a collective whose peer died, say): final event, status, exit.

    One event wakes the thread: `stop()` (the run is ending) or `force()` (a second signal).
    `stop()` joins it, and a heartbeat is emitted under the same lock that `stop()` takes,
    after looking at `done` again: once `stop()` returns none can follow, so `run_finished`
    is the session's last event. `force()` only sets flags: a signal handler calls it."""

    EVERY = 10.0

    def __init__(self, events: Events, control: Control):
        self.events, self.control, self.gpu = events, control, own_gpu()
        self.wake, self.lock = threading.Event(), threading.Lock()
        self.done = self.forced = False
        self.thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self.thread.start()
        return self

    def force(self) -> None:
        self.forced = True
        if not self.done:  # once stop() has begun the thread is leaving anyway; and a handler that
            self.wake.set()  # set the event while stop() held its lock would wait for itself

    def stop(self) -> None:
        with self.lock:
            self.done = True
        self.wake.set()
        # bounded: a snapshot stuck in a driver call must not hold up the run's end; the
        # lock above already keeps it from writing after this
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        events, noted = self.events, False
        while True:
            self.wake.wait(self.EVERY)
            self.wake.clear()
            if self.forced and not self.done:
                events.recorder.last_word(status="stopped", forced=True,
                                       error="a second signal while the run could not reach the end of its step; "
                                             "the last checkpoint is the one to resume from")
                os._exit(130)
            if self.done:
                return
            if self.control.signalled and not noted:
                noted = True
                events.alert("info", "signal: stopping after this step, with a checkpoint (a second signal stops at once)")
            snapshot = system.snapshot(self.gpu)  # outside the lock: it may take a while
            with self.lock:
                if self.done:
                    return
                events.emit("heartbeat", **events.progress, system=snapshot)


def run(cfg, session_dir: Path, resume: bool = False, sinks: tuple = ()) -> str:
    """Train as configured; returns the final status (completed, stopped, failed). `sinks`
    (the terminal reporter of engine/cli) see every event on rank 0.

    Raises SessionBusy, before writing anything, when another live run holds the session
    (on every rank under torchrun: rank 0 says why, the others that rank 0 could not start).
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    old = {s: signal.getsignal(s) for s in SIGNALS}
    world = int(os.environ.get("WORLD_SIZE", 1))
    try:
        # the group ends on the way out of this block, after _run's frames (the recipe and the wrapped
        # model that hold the group) are gone: barrier after a clean end, release, destroy
        with parallel.process_group(world, _init_process_group) as dist:
            status = _run(cfg, session_dir, resume, sinks, dist)
            dist.failed = status == "failed"
            return status
    finally:
        for s, h in old.items():
            signal.signal(s, h)


SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _exit_now(signum, frame):
    """A signal once `run_finished` is written: nothing is left to save, so the process ends at
    once, without the traceback a KeyboardInterrupt prints when it lands in interpreter exit
    (a second Ctrl-C a moment after the first did)."""
    os._exit(128 + signum)


def _run(cfg, session_dir: Path, resume: bool, sinks: tuple, dist: parallel.Collectives) -> str:
    rank = dist.rank
    recorder = _open_recorder(session_dir if rank == 0 else None, rank, dist.world, cfg, resume)
    if rank == 0:
        recorder.add(*sinks)
    control = Control(recorder)
    recipe = Recipe(cfg, session_dir, recorder, dist, control)
    events = recipe.events
    heartbeat = Heartbeat(events, control)

    def on_signal(signum, frame):
        # only flags: a handler that prints or imports can fail halfway through an import
        if control.signalled:
            heartbeat.force()
        control.signal()

    for s in SIGNALS:
        signal.signal(s, on_signal)
    heartbeat.start()
    status, error = "failed", None
    try:
        if rank == 0:
            recorder.add(*_mirrors(cfg, Path(session_dir).name))  # inside the try: a missing package is a failed run
        recipe.setup(resume)
        recipe.train()
        status = "completed"
    except Stopped:
        status = "stopped"
    except Exception as exc:  # the run must end with a final event, whatever happened
        lost = recorder.events.error
        full = disk_full(exc) or (lost if disk_full(lost) else None)
        if full:  # no checkpoint of the weights as they are: it would fill the disk again
            error = (f"disk full: no space left on the device while writing {full.filename or 'the session'}; "
                     f"free some space, then `engine train --resume {session_dir}` continues from the last checkpoint")
        else:
            error = f"{type(exc).__name__}: {exc}"[:20_000]  # a 1 MB message would be an events line no reader takes
        events.emit("alert", level="error", message=error, traceback=traceback.format_exc()[-4000:])
        if not full:
            recipe.save_after_failure()
    finally:
        heartbeat.stop()  # joined: no heartbeat after run_finished
        events.emit("run_finished", status=status, **({"error": error} if error else {}))  # status.json follows it
        recorder.close()
        for s in SIGNALS:  # only now: a signal must not interrupt the final event
            signal.signal(s, _exit_now)
    return status


def _open_recorder(folder: Path | None, rank: int, world: int, cfg, resume: bool) -> Recorder:
    """Rank 0 opens the session; every rank learns at once whether it could, so that a
    refusal (a live run holds the session) ends all of them now instead of leaving the
    others waiting at their first collective until the process group's timeout."""
    refused = None
    try:
        recorder = Recorder(folder).open(cfg.model.name, resume, cfg.to_yaml())
    except (SessionBusy, OSError) as exc:
        if world == 1:
            raise
        refused, recorder = exc, None
    if world > 1:
        import torch.distributed as dist

        said = [f"{type(refused).__name__}: {refused}" if refused else None]
        dist.broadcast_object_list(said, src=0)  # CPU objects: over gloo
        if refused is not None:
            raise refused
        if said[0] is not None:
            raise SessionBusy(f"rank 0 could not open the session ({said[0]})")
    return recorder


def disk_full(exc) -> OSError | None:
    """The OSError that says the disk is full, from `exc` or what caused it."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _mirrors(cfg, name: str) -> list:
    out = []
    if cfg.run.tensorboard:
        from .integrations.tensorboard import TensorBoardMirror

        out.append(TensorBoardMirror(Path(cfg.run.tensorboard).expanduser()))
    if cfg.run.wandb:
        from .integrations.wandb import WandbMirror

        out.append(WandbMirror(cfg.run.wandb, cfg.run.wandb_mode, name=name))
    return out
