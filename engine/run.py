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
import threading
import traceback
from datetime import timedelta
from pathlib import Path

import torch

from . import system
from .recipe import Recipe, Stopped
from .recorder import Recorder
from .train.context import Context


def _setup_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    # rank 0 evaluates while the others wait at a barrier: the timeout must outlast an evaluation
    dist.init_process_group(backend=process_group_backend(torch.cuda.is_available()),
                            timeout=timedelta(minutes=float(os.environ.get("TRACEBENCH_DIST_TIMEOUT_MIN", 120))))
    return dist.get_rank(), world


def process_group_backend(cuda: bool) -> str:
    """One process group for both kinds of tensor: small CPU flags (stop, skip) travel
    over gloo, gradients over NCCL. NCCL alone refuses a CPU tensor."""
    return "cpu:gloo,cuda:nccl" if cuda else "gloo"


def own_gpu() -> int | None:
    """The GPU this process trains on (cuda:LOCAL_RANK, as pick_device chooses), or None."""
    return int(os.environ.get("LOCAL_RANK", 0)) if torch.cuda.is_available() else None


def _heartbeat(ctx: Context, done: threading.Event, forced: threading.Event) -> None:
    """Heartbeats every 10 s; and the way out when a second signal finds the main thread
    stuck (in a collective whose peer died, say): final event, status, exit."""
    noted = False
    gpu = own_gpu()
    while not done.is_set():
        if forced.wait(10.0):
            ctx.recorder.last_word(status="stopped", forced=True,
                                   error="a second signal while the run could not reach the end of its step; "
                                         "the last checkpoint is the one to resume from")
            os._exit(130)
        if done.is_set():
            break
        if ctx.stop_signal and not noted:
            noted = True
            ctx.alert("info", "signal: stopping after this step, with a checkpoint (a second signal stops at once)")
        ctx.emit("heartbeat", **ctx.progress, system=system.snapshot(gpu))


def run(cfg, session_dir: Path, resume: bool = False, sinks: tuple = ()) -> str:
    """Train as configured; returns the final status (completed, stopped, failed). `sinks`
    (the terminal reporter of engine/cli) see every event on rank 0.

    Raises SessionBusy, before writing anything, when another live run holds the session.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    rank, world = _setup_distributed()
    recorder = Recorder(session_dir if rank == 0 else None).open(cfg.model.name, resume, cfg.to_yaml())
    if rank == 0:
        recorder.add(*sinks)
    recipe = Recipe(cfg, session_dir, dict(recorder=recorder, rank=rank, world=world))
    ctx = recipe.ctx
    forced = threading.Event()

    def on_signal(signum, frame):
        # only flags: a handler that prints or imports can fail halfway through an import
        if ctx.stop_signal:
            forced.set()
        ctx.stop_signal = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    done = threading.Event()
    threading.Thread(target=_heartbeat, args=(ctx, done, forced), daemon=True).start()
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
            error = f"{type(exc).__name__}: {exc}"
        ctx.emit("alert", level="error", message=error, traceback=traceback.format_exc()[-4000:])
        if not full:
            recipe.save_after_failure()
    finally:
        done.set()
        for s, h in old.items():
            signal.signal(s, h)
        ctx.emit("run_finished", status=status, **({"error": error} if error else {}))  # status.json follows it
        recorder.close()
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    return status


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
