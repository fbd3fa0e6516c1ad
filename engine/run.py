"""One training run, top to bottom: evaluate, SFT, evaluate, RL, evaluate.

Everything the run does is an event in sessions/<run>/events.jsonl. A stop
(SIGINT, SIGTERM, or `engine stop DIR`) ends the current step, saves a
checkpoint and writes `run_finished`; so does a crash, as far as it can.
Under torchrun every rank trains; rank 0 alone writes the session.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
import threading
import time
import traceback
from pathlib import Path

import torch

from . import checkpoints, threads
from .events import SCHEMA_VERSION, EventLog
from .modeling import (autocast, load_model, load_tokenizer, load_trainable_state, make_optimizer, param_counts, pick_device,
                       setup_notes, trainable_state)
from .progress import Reporter
from .session import CHECKPOINT_NOW, CONFIG, STOP, Session
from .health import collapsed


class Stopped(Exception):
    pass


def stages(cfg) -> list[tuple[str, str]]:
    """The run's stages in order: ("eval", "start"), ("sft", ""), ("eval", "sft"), ("rl", ""), ("eval", "rl")."""
    out = []
    evals = "eval" in cfg.run.phases
    if evals and "start" in cfg.eval.at:
        out.append(("eval", "start"))
    for phase in ("sft", "rl"):
        if phase in cfg.run.phases:
            out.append((phase, ""))
            if evals and phase in cfg.eval.at:
                out.append(("eval", phase))
    if evals and not any(s[0] == "eval" for s in out):
        out.append(("eval", "start"))
    return out


class Context:
    """What the loops need from the run: reporting, stop requests, checkpoints, DDP."""

    def __init__(self, cfg, session: Session | None, log: EventLog, reporter, rank: int, world: int):
        self.cfg, self.session, self.log, self.reporter = cfg, session, log, reporter
        self.rank, self.world = rank, world
        self.stop_signal = False
        self.stopping = False
        self.forward = None  # model call (DDP-wrapped under torchrun)
        self.forward_model = None
        self.baseline = None
        self.save = None  # set by the run: save(stage_step) -> path
        self.progress = {"phase": "setup", "step": 0, "total": 0}
        self.collapsed = False
        self.periodic_eval = None  # set during a phase when eval.every > 0
        self.autocast = None  # the training autocast context factory, set once the model is loaded
        self.sampler = None  # the model that evaluation decodes with (rollout.Sampler)
        self.backend = None  # what RL rollouts come from (backends.py)
        self.mirrors = []  # TensorBoard and/or W&B (run.tensorboard, run.wandb), on rank 0

    def emit(self, kind: str, **fields) -> None:
        event = self.log.emit(kind, **fields)
        if self.reporter:
            self.reporter.on_event(event)
        for mirror in self.mirrors:
            mirror.on_event(event)

    def metrics(self, phase: str, step: int, total: int, **values) -> None:
        self.progress = {"phase": phase, "step": step, "total": total}
        self.emit("metrics", phase=phase, step=step, total=total, **{k: v for k, v in values.items() if v is not None})
        if self.session and self.rank == 0:
            self.session.write_status(phase=phase, step=step, total=total)

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

    def agree(self, flag: bool, all_of: bool = False) -> bool:
        """The one place where ranks agree on a decision that changes control flow (stop,
        skip a step, skip a batch): any rank's True (or, with all_of, every rank's) counts
        for all. A rank that decided alone would leave the others waiting in a collective."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([float(not flag if all_of else flag)])  # CPU: the group has a gloo side for it
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item()) != all_of

    def _requested(self) -> tuple[bool, bool]:
        stop = self.stop_signal or self.stopping  # stopping: a collapse that rank 0's evaluation saw
        ckpt = False
        if self.session:
            stop |= self.session.take_request(STOP)
            ckpt = self.session.take_request(CHECKPOINT_NOW)
        return self.agree(stop), self.agree(ckpt)

    def stop_requested(self) -> bool:
        """A stop asked for by a signal or `engine stop`, seen between batches of an evaluation."""
        if self.stop_signal or self.stopping or (self.session and self.session.take_request(STOP)):
            self.stopping = True
        return self.stopping

    def after_step(self, phase: str, step: int, total: int) -> bool:
        """Between steps: honour stop and checkpoint requests; True means stop now."""
        stop, ckpt = self._requested()
        every = self.cfg.run.checkpoint_every
        if ckpt or (every and step % every == 0 and step < total):
            self.save(step)
        eval_every = self.cfg.eval.every
        if self.periodic_eval and eval_every and step % eval_every == 0 and step < total:
            self.periodic_eval(step)
        if stop or self.stopping:
            self.stopping = True
            return True
        return False


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


def _heartbeat(ctx: Context, done: threading.Event, forced: threading.Event) -> None:
    """Heartbeats every 10 s; and the way out when a second signal finds the main thread
    stuck (in a collective whose peer died, say): final event, status, exit."""
    noted = False
    while not done.is_set():
        if forced.wait(10.0):
            ctx.emit("run_finished", status="stopped", forced=True,
                     error="a second signal while the run could not reach the end of its step; "
                           "the last checkpoint is the one to resume from")
            if ctx.session:
                ctx.session.write_status(status="stopped", error="stopped by a second signal")
            ctx.log.close()
            os._exit(130)
        if done.is_set():
            break
        if ctx.stop_signal and not noted and ctx.reporter:
            noted = True
            ctx.reporter.note("signal: stopping after this step, with a checkpoint (a second signal stops at once)")
        ctx.emit("heartbeat", **ctx.progress)


def run(cfg, session_dir: Path, resume: bool = False, interactive: bool | None = None) -> str:
    """Train as configured; returns the final status (completed, stopped, failed).

    Raises SessionBusy, before writing anything, when another live run holds the session.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    rank, world = _setup_distributed()
    session = None
    if rank == 0:
        session = Session(Path(session_dir)).create()
        session.lock()
        session.clear_requests()  # a stop left from before this run must not end it
    log = EventLog(session.events if session else None)
    reporter = Reporter(interactive) if rank == 0 else None
    ctx = Context(cfg, session, log, reporter, rank, world)
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
    state = {"stage": 0, "step": 0}
    model = None
    try:
        state = _load_checkpoint_state(session_dir, ctx) if resume else state
        if state.get("world", world) != world and state.get("step"):
            raise checkpoints.CheckpointError(
                f"{state['path']} was written mid-stage by {state['world']} process(es); resume it with the same number "
                f"(torchrun --nproc_per_node {state['world']}), or from a stage boundary: the data order of a stage "
                f"depends on how many ranks share it")
        if rank == 0:
            ctx.mirrors = _mirrors(cfg, Path(session_dir).name)
        if session:
            (session.path / CONFIG).write_text(cfg.to_yaml())
            session.write_status(status="running", model=cfg.model.name, started=time.time() if not resume else session.status().get("started", time.time()), phase="setup")
        device = pick_device(cfg.model.device)
        notes = setup_notes(cfg, device)
        if device.type == "cpu":
            threads.manage(cfg.run.cpu_threads)
        tokenizer = load_tokenizer(cfg.model.name)
        model = load_model(cfg, tokenizer, device)
        if state.get("trainable"):
            load_trainable_state(model, state["trainable"])
        total, trainable = param_counts(model)
        ctx.emit("run_started", schema=SCHEMA_VERSION, run=Path(session_dir).name, config=cfg.to_dict(),
                 model=cfg.model.name, params_total=total, params_trainable=trainable, device=str(device),
                 load_8bit=cfg.model.load_8bit, world_size=world, resumed=resume,
                 resumed_from=state.get("path"), stages=[f"{a}:{b}" if b else a for a, b in stages(cfg)])
        for note in notes:
            ctx.alert("warning", note, phase="setup")
        _train(cfg, model, tokenizer, ctx, state, session_dir)
        status = "completed"
    except Stopped:
        status = "stopped"
    except Exception as exc:  # the run must end with a final event, whatever happened
        error = f"{type(exc).__name__}: {exc}"
        ctx.emit("alert", level="error", message=error, traceback=traceback.format_exc()[-4000:])
        if model is not None and ctx.save is not None:
            try:
                ctx.save(0 if ctx.progress.get("phase") == "eval" else ctx.progress.get("step", 0))
            except Exception:
                pass
    finally:
        done.set()
        for s, h in old.items():
            signal.signal(s, h)
        fields = {"status": status}
        if error:
            fields["error"] = error
        ctx.emit("run_finished", **fields)
        if session:
            session.write_status(status=status, error=error)
        if reporter:
            reporter.close()
        for mirror in ctx.mirrors:
            mirror.close()
        log.close()
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    return status


def _mirrors(cfg, name: str) -> list:
    out = []
    if cfg.run.tensorboard:
        from .integrations.tensorboard import TensorBoardMirror

        out.append(TensorBoardMirror(Path(cfg.run.tensorboard).expanduser()))
    if cfg.run.wandb:
        from .integrations.wandb import WandbMirror

        out.append(WandbMirror(cfg.run.wandb, cfg.run.wandb_mode, name=name))
    return out


def _load_checkpoint_state(session_dir: Path, ctx: Context) -> dict:
    folder, state, skipped = checkpoints.for_resume(Path(session_dir))
    for problem in skipped:
        ctx.alert("warning", f"resume skips a checkpoint that cannot be used: {problem}")
    if folder is None:
        if skipped:
            raise checkpoints.CheckpointError("no usable checkpoint to resume from: " + "; ".join(skipped))
        return {"stage": 0, "step": 0}
    state["path"] = str(folder)
    return state


def _train(cfg, model, tokenizer, ctx: Context, state: dict, session_dir: Path) -> None:
    from . import tasks
    from .train import evaluate as ev
    from .train import rl, sft

    plan = stages(cfg)
    best = {"accuracy": state.get("best_accuracy"), "health": None}
    global_step = state.get("global_step", 0)
    folder = Path(session_dir) / "checkpoints"
    optimizer = scheduler = None
    forward_model = model
    if ctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        p = next(model.parameters())
        forward_model = DDP(model, device_ids=[p.device.index] if p.device.type == "cuda" else None)
    ctx.forward, ctx.forward_model = forward_model, forward_model
    ctx.autocast = lambda: autocast(model, cfg.model.autocast)
    from .rollout import Sampler

    ctx.sampler = Sampler(model, cfg.model.generate_dtype)
    if "rl" in cfg.run.phases:
        from .backends import make_backend

        ctx.backend = make_backend(cfg.rl.backend, model, ctx.sampler, cfg.model.name)

    def write_state(path: Path, stage: int, step: int) -> None:
        checkpoints.save(path, {
            "stage": stage, "step": step, "global_step": global_step, "trainable": trainable_state(model), "world": ctx.world,
            "optimizer": optimizer.state_dict() if optimizer else None,
            "scheduler": scheduler.state_dict() if scheduler else None,
            "baseline": ctx.baseline, "best_accuracy": best["accuracy"], "config": cfg.to_dict(),
        })

    def evaluations(which: str, step: int) -> None:
        """Every evaluation set of the task; keeps the best checkpoint by accuracy on the first set."""
        if ctx.rank != 0:
            return
        if ctx.session:
            ctx.session.write_status(phase="eval")
        for i, (name, items) in enumerate(tasks.eval_sets(cfg).items()):
            def progress(done: int, total: int, name=name) -> None:
                ctx.progress = {"phase": "eval", "set": name, "at": which, "step": done, "total": total}
                if ctx.session:
                    ctx.session.write_status(phase="eval", step=done, total=total)
                if ctx.world == 1 and ctx.stop_requested():  # with ranks waiting at a barrier, stop after it instead
                    ctx.save(0)  # resume redoes this evaluation
                    raise Stopped()

            progress(0, len(items))
            fields, samples = ev.evaluate(ctx.sampler(), tokenizer, items, cfg, on_batch=progress)
            ctx.emit("eval", phase="eval", step=step, at=which, set=name, **fields)
            for s in samples[:8]:
                ctx.sample("eval", step, {"set": name, "at": which, **s})
            if fields.get("scoring_errors"):
                ctx.alert("error", f"{fields['scoring_errors']['count']} output(s) of the {name} evaluation could not be "
                          f"scored and count as wrong: {fields['scoring_errors']['first']}", phase="eval")
            if fields["parse_rate"] == 0 and fields["total"]:
                ctx.alert("warning", f"no parseable output in the {name} evaluation ({which})", phase="eval")
            ctx.health_check("eval", step, fields["health"])
            # `best`: the trained weights with the best accuracy on the first set (the earliest among
            # ties); the untrained start is no checkpoint and competes with none
            if i == 0 and which != "start" and (best["accuracy"] is None or fields["accuracy"] > best["accuracy"]):
                best["accuracy"] = fields["accuracy"]
                write_state(folder / checkpoints.BEST, -1, 0)
                ctx.emit("checkpoint", path=str(folder / checkpoints.BEST), step=step, phase=which, best=True, accuracy=fields["accuracy"])
                if ctx.session:
                    ctx.session.write_status(best_accuracy=best["accuracy"])

    for index, (kind, which) in enumerate(plan):
        if index < state["stage"]:
            continue
        start = state["step"] if index == state["stage"] else 0

        def save(step: int, next_stage: bool = False, index=index) -> Path | None:
            """A checkpoint at `step` of this stage, or (next_stage) one that resumes at the next stage."""
            if ctx.rank != 0:
                return None
            at = global_step + (0 if next_stage else step)
            path = folder / f"step-{at:06d}"
            write_state(path, index + 1 if next_stage else index, 0 if next_stage else step)
            checkpoints.rotate(session_dir, path)
            ctx.emit("checkpoint", path=str(path), step=step, phase=kind, global_step=at)
            return path

        ctx.save = save
        ctx.periodic_eval = None
        ctx.progress = {"phase": kind, "step": start, "total": 0}  # the loops say more as they go
        if kind == "eval":
            evaluations(which, global_step)
            _barrier(ctx)
            if ctx.after_step("eval", 0, 0):
                save(0, next_stage=True)
                raise Stopped()
            continue
        if cfg.eval.every and "eval" in cfg.run.phases:
            ctx.periodic_eval = lambda step, kind=kind: evaluations(f"{kind}@{step}", global_step + step)
        if kind == "sft":
            from .data.prompts import training_ids

            system = tasks.system_prompt(cfg)
            rows = [training_ids(tokenizer, q, a, system, cfg.data.max_len + 1) for q, a in tasks.training_pairs(cfg)]
            fits = [r for r in rows if len(r[0]) <= cfg.data.max_len]  # a cut example would teach outputs that never end
            if len(fits) < len(rows):
                ctx.alert("info", f"{len(rows) - len(fits)} of {len(rows)} training examples are longer than "
                          f"data.max_len={cfg.data.max_len} tokens; they are skipped", phase="sft")
            rows = fits
            optimizer = make_optimizer(model, cfg.sft.optimizer, cfg.sft.lr, cfg.sft.weight_decay)
            _, total = sft.plan(len(rows), cfg, ctx.world)
            scheduler = sft.schedule(optimizer, cfg, total)
            if start and state.get("optimizer"):
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
            step = sft.train(model, tokenizer, rows, optimizer, scheduler, cfg, ctx, start)
        else:
            ref = _reference(model) if cfg.rl.kl_coef > 0 else None
            optimizer, scheduler = make_optimizer(model, cfg.rl.optimizer, cfg.rl.lr), None
            if start and state.get("optimizer"):
                optimizer.load_state_dict(state["optimizer"])
            baseline = state.get("baseline") if start else None
            step, _ = rl.train(model, ref, tokenizer, optimizer, cfg, ctx, start, baseline)
            total = cfg.rl.iterations
        if ctx.stopping:
            save(step)
            if ctx.collapsed and (folder / checkpoints.BEST).exists():
                ctx.alert("warning", f"stopped early: the model collapsed; the best checkpoint is {folder / checkpoints.BEST}")
            raise Stopped()
        global_step += step
        save(0, next_stage=True)
        _barrier(ctx)
        if ctx.after_step(kind, step, step):  # a stop asked for at a stage's very end
            raise Stopped()


def _barrier(ctx: Context) -> None:
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _reference(model):
    """A frozen copy of the starting model for the KL penalty."""
    import copy

    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref.eval()
