"""The training recipe: setup, then the stages in order (evaluate, SFT, evaluate,
RL, evaluate), saving as it goes. In the shape of a torchtune recipe: the
run's state is named attributes; the loops (engine/train/) are generators that
yield after each step, and `Recipe.train` alone decides, between steps, what to
checkpoint, evaluate and whether to stop. engine/run.py wraps the recipe with
the session, signals, the process group and the final event.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import allocator, checkpoints, config, parallel, tasks, threads
from .events import SCHEMA_VERSION
from .health import collapsed
from .modeling import (autocast, load_model, load_tokenizer, load_trainable_state, make_optimizer, param_counts, pick_device,
                       setup_notes, trainable_state)
from .parallel import Collectives
from .recorder import Recorder
from .train.context import Asked, Control, Events, Handles


class Stopped(Exception):
    pass


class _Interrupted(Exception):
    """A stop seen between an evaluation's batches: leaves the decoder for the recipe to stop."""


def long_answers(lengths: list[int], cfg) -> str:
    """A note when 1% or more of the gold answers (in tokens) are longer than a limit that
    generates outputs in this run: a model that writes them in full is cut off and scored
    as truncated there. Empty when none is."""
    limits: dict[int, list[str]] = {}
    for key, limit, phase in (("rl.max_new_tokens", cfg.rl.max_new_tokens, "rl"), ("eval.max_new_tokens", cfg.eval.max_new_tokens, "eval")):
        if phase in cfg.run.phases:
            limits.setdefault(limit, []).append(key)
    parts = []
    for limit, keys in sorted(limits.items()):
        over = sum(n > limit for n in lengths)
        if lengths and over >= 0.01 * len(lengths):
            parts.append(f"{over} of {len(lengths)} training answers ({over / len(lengths):.1%}) are longer than "
                         f"{' and '.join(keys)} ({limit} tokens)")
    if not parts:
        return ""
    return "; ".join(parts) + f": outputs that long are cut off and scored as truncated (the longest answer is {max(lengths)} tokens)"


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
    if evals and not any(s[0] == "eval" for s in out):  # the eval phase with no point named: once, at the end
        trained = [s[0] for s in out]
        out.append(("eval", trained[-1] if trained else "start"))  # named for what it follows (it said "start")
    return out


class Recipe:
    """The run's state (model, optimizer, where it stands) and the one loop that decides, between
    steps, what happens: checkpoint, evaluation, stop. The loops of engine/train/ yield to it and
    hold no reference back to it."""

    def __init__(self, cfg, session_dir: Path, recorder: Recorder | None = None, dist: Collectives | None = None,
                 control: Control | None = None):
        self.cfg, self.session_dir = cfg, Path(session_dir)
        self.folder = self.session_dir / "checkpoints"
        self.events = Events(recorder or Recorder())
        self.dist = dist or Collectives()
        self.control = control or Control(self.events.recorder)
        self.plan = stages(cfg)
        self.handles: Handles | None = None  # built once, in setup
        # state, saved in every checkpoint
        self.model = self.tokenizer = self.optimizer = self.scheduler = None
        self.sharded = False  # FSDP: weights, gradients and optimizer state split over the ranks
        self.full_state = None  # FSDP: the trained weights whole, as the last refresh of the decoding copy gathered them
        self.stage = 0  # index into self.plan
        self.global_step = 0  # optimizer steps of the stages before this one
        self.best_accuracy = None
        self.rl_state = None  # train.rl.State: RL's baseline and running success, as the RL loop last yielded them
        self.backend = None  # where RL's rollouts come from: made at RL's start (vLLM starts from SFT's weights)
        self.collapsed = False
        self.step_in_stage = 0  # the current stage's last finished step: where a stop or a crash checkpoint resumes
        self.resume = {"stage": 0, "step": 0}  # where a resumed run starts

    # -- setup --

    def setup(self, resume: bool) -> None:
        cfg, events, dist = self.cfg, self.events, self.dist
        if resume:
            self.resume = self._resume_state()
        st = self.resume
        if st.get("world", dist.world) != dist.world and st.get("step"):
            raise checkpoints.CheckpointError(
                f"{st['path']} was written mid-stage by {st['world']} process(es); resume it with the same number "
                f"(torchrun --nproc_per_node {st['world']}), or from a stage boundary: the data order of a stage "
                f"depends on how many ranks share it")
        if st.get("parallel", "ddp") != cfg.run.parallel and st.get("step") and dist.world > 1:
            raise checkpoints.CheckpointError(
                f"{st['path']} was written mid-stage with run.parallel={st.get('parallel', 'ddp')}; resume it with the same "
                f"(--set run.parallel={st.get('parallel', 'ddp')}), or from a stage boundary")
        self.global_step, self.best_accuracy = st.get("global_step", 0), st.get("best_accuracy")
        device = pick_device(cfg.model.device)
        notes = setup_notes(cfg, device)
        if device.type == "cpu":
            threads.manage(cfg.run.cpu_threads)
        self.tokenizer = load_tokenizer(cfg.model.name)
        start = None
        if cfg.model.init_from and not resume:  # every rank loads the session's own copy (checkpoints.keep_start)
            cfg, start = self._start_copy(cfg)
        self.model = model = load_model(cfg, self.tokenizer, device)
        cfg = self.cfg
        if st.get("trainable"):
            load_trainable_state(model, st["trainable"])
        total, trainable = param_counts(model)
        events.emit("run_started", schema=SCHEMA_VERSION, run=self.session_dir.name, config=cfg.to_dict(),
                    model=cfg.model.name, params_total=total, params_trainable=trainable, device=str(device),
                    load_8bit=cfg.model.load_8bit, world_size=dist.world, resumed=resume, allocator=allocator.in_use() or "system",
                    resumed_from=st.get("path"), stages=[f"{a}:{b}" if b else a for a, b in self.plan],
                    eval_sets=tasks.eval_set_sizes(cfg), **({"init_from_sha256": start} if start else {}))
        for note in notes:
            events.alert("warning", note, phase="setup")
        advice = allocator.advice() if device.type == "cpu" else None
        if advice:
            events.alert("info", advice, phase="setup")
        from .rollout import Sampler, decode_dtype

        self.sharded = dist.world > 1 and cfg.run.parallel == "fsdp"
        # decoding needs whole weights: under FSDP a copy, made before sharding
        sampler = (parallel.FullCopy(model, decode_dtype(model, cfg.model.generate_dtype)) if self.sharded
                   else Sampler(model, cfg.model.generate_dtype))
        forward = parallel.wrap(model, dist.world, cfg.run.parallel)
        if cfg.model.compile:
            forward, seconds = compile_forward(forward, model, self.tokenizer, lambda: autocast(model, cfg.model.autocast))
            events.alert("info", f"model.compile: the training forward pass compiled in {seconds:.1f} s (one warm-up step)",
                         phase="setup", compile_seconds=round(seconds, 2))
        self.handles = Handles(forward=forward, autocast=lambda: autocast(model, cfg.model.autocast), sampler=sampler)

    def _start_copy(self, cfg):
        """(cfg loading model.init_from from the session's copy, its sha256 on rank 0): rank 0
        copies it and tells every rank where the copy is and the source's sha256; a rank that
        sees the copy loads it, one that does not (another machine) loads the source only if it
        still has that sha256. FSDP broadcasts no weights: ranks loading different bytes would
        train different models. Whatever stops rank 0's copy stops every rank at once."""
        dist = self.dist
        copy = start = problem = None
        if dist.rank == 0:
            try:
                copy, start = checkpoints.keep_start(self.session_dir, Path(cfg.model.init_from).expanduser())
            except Exception as exc:  # noqa: BLE001 - a damaged source, a full disk: every rank must hear of it
                problem = exc
        said = dist.share(None if problem else (str(copy), start))
        if said is None:
            raise problem or checkpoints.CheckpointError(f"model.init_from: rank 0 could not copy {cfg.model.init_from} "
                                                         f"into the session (its own error says why)")
        path, digest = said
        if dist.rank and not (Path(path) / checkpoints.STATE).is_file():  # the session is on another machine
            path = cfg.model.init_from if checkpoints.sha256_of(Path(cfg.model.init_from).expanduser()) == digest else None
        if dist.agree(path is None):
            raise checkpoints.CheckpointError(f"model.init_from: {cfg.model.init_from} is not what rank 0 copied (it "
                                              f"changed, or a rank cannot read it): every rank must start from the same weights")
        return replace(cfg, model=replace(cfg.model, init_from=path)), start

    def _resume_state(self) -> dict:
        folder, state, skipped = checkpoints.for_resume(self.session_dir)
        for problem in skipped:
            self.events.alert("warning", f"resume skips a checkpoint that cannot be used: {problem}")
        if folder is None:
            if skipped:
                raise checkpoints.CheckpointError("no usable checkpoint to resume from: " + "; ".join(skipped))
            return {"stage": 0, "step": 0}
        state["path"] = str(folder)
        return state

    # -- the stages: the one loop that decides --

    def train(self) -> None:
        """Every stage from where the run starts; raises Stopped when a stop ends it early."""
        cfg, events, dist, control = self.cfg, self.events, self.dist, self.control
        if dist.agree(control.asked()):  # asked for while the engine was starting: nothing to save yet
            events.alert("info", "stopped before the first step: a stop was asked for while the engine was starting")
            raise Stopped()
        for index, (kind, which) in enumerate(self.plan):
            if index < self.resume["stage"]:
                continue
            self.stage = index
            start = self.resume["step"] if index == self.resume["stage"] else 0
            self.step_in_stage = start
            events.progress = {"phase": kind, "step": start, "total": 0}  # the loops say more as they go
            if kind == "eval":
                self.evaluate(which, self.global_step)
                dist.barrier()
                asked = control.poll(dist)
                if asked.checkpoint:
                    self.save(0)
                if asked.stop:
                    self.save(0, next_stage=True)
                    raise Stopped()
                continue
            step = start
            for done in (self.sft(start) if kind == "sft" else self.rl(start)):
                step = self.step_in_stage = done.step
                if kind == "rl":
                    self.rl_state = done.state
                    self.check_health("rl", step, done.health)
                asked = control.poll(dist)
                if not asked.stop and "eval" in cfg.run.phases and due(cfg.eval.every, step, done.total):
                    self.evaluate(f"{kind}@{step}", self.global_step + step)
                    again = control.poll(dist)  # a collapse the evaluation saw stops the run at this step, on every rank
                    asked = Asked(again.stop, asked.checkpoint or again.checkpoint)
                if asked.stop:
                    self.stop_here(step)
                if asked.checkpoint or due(cfg.run.checkpoint_every, step, done.total):
                    self.save(step)
            self.global_step += step
            self.save(0, next_stage=True)
            dist.barrier()
            asked = control.poll(dist)
            if asked.checkpoint:  # asked for while the stage's own checkpoint was being written: it is the answer
                events.alert("info", f"a checkpoint was asked for as {kind} ended: the one saved at its end answers it",
                             phase=kind)
            if asked.stop:  # a stop asked for at a stage's very end
                raise Stopped()

    def sft(self, start: int):
        from .data.prompts import IGNORE, training_ids
        from .protocol import Drops
        from .train import sft

        cfg, events = self.cfg, self.events
        system = tasks.system_prompt(cfg)
        drops = Drops()  # what the protocol keeps out: development problems, test questions in disguise
        rows = [training_ids(self.tokenizer, q, a, system, cfg.data.max_len + 1) for q, a in tasks.training_pairs(cfg, drops)]
        if drops.message():
            events.alert("info", drops.message(), phase="sft")
        fits = [r for r in rows if len(r[0]) <= cfg.data.max_len]  # a cut example would teach outputs that never end
        quiet = config.smoke_lengths(cfg)  # the tiny preset's short lengths are its own choice: no note on them
        if len(fits) < len(rows) and not quiet:
            events.alert("info", f"{len(rows) - len(fits)} of {len(rows)} training examples are longer than "
                         f"data.max_len={cfg.data.max_len} tokens; they are skipped", phase="sft")
        note = long_answers([sum(t != IGNORE for t in labels) for _, labels in fits], cfg)
        if note and not quiet:
            events.alert("info", note, phase="sft")
        self.optimizer = make_optimizer(self.model, cfg.sft.optimizer, cfg.sft.lr, cfg.sft.weight_decay)
        _, total = sft.plan(len(fits), cfg, self.dist.world)
        self.scheduler = sft.schedule(self.optimizer, cfg, total)
        if start and self.resume.get("optimizer"):
            self._load_optimizer(self.resume["optimizer"])
            self.scheduler.load_state_dict(self.resume["scheduler"])
        return sft.train(self.model, self.tokenizer, fits, self.optimizer, self.scheduler, cfg, self.handles, self.dist,
                         self.events, start)

    def rl(self, start: int):
        from .train import rl

        cfg = self.cfg
        ref = _reference(self.model) if cfg.rl.kl_coef > 0 else None
        self.optimizer, self.scheduler = make_optimizer(self.model, cfg.rl.optimizer, cfg.rl.lr), None
        if start and self.resume.get("optimizer"):
            self._load_optimizer(self.resume["optimizer"])
        self.rl_state = rl_state_from(self.resume if start else {})
        self.refresh_sampler()  # rollouts decode with the weights SFT left
        if self.backend is None:
            from .backends import make_backend

            self.backend = make_backend(cfg, self.model, self.tokenizer, self.handles.sampler)
        return rl.train(self.model, ref, self.tokenizer, self.optimizer, cfg, self.handles, self.backend, self.dist,
                        self.events, self.rl_state, start)

    def stop_here(self, step: int) -> None:
        """The run stops: a checkpoint at `step` of this stage (where a resume goes on), and why."""
        self.save(step)
        if self.collapsed and (self.folder / checkpoints.BEST).exists():
            self.events.alert("warning", f"stopped early: the model collapsed; the best checkpoint is {self.folder / checkpoints.BEST}")
        raise Stopped()

    def check_health(self, phase: str, step: int, h: dict) -> None:
        """A collapsing model (engine/health.py) is said, and stops the run under run.stop_on_collapse."""
        why = collapsed(h)
        if why:
            self.collapsed = True
            self.events.alert("warning", f"the model may be collapsing: {why}", phase=phase, step=step, health=h)
            if self.cfg.run.stop_on_collapse:
                self.control.stop("collapse")

    # -- evaluate --

    def evaluate(self, which: str, step: int) -> None:
        """Every evaluation set of the task; keeps the best checkpoint by accuracy on the first set.
        A stop asked for during it (one process: no rank waits at a barrier) ends it between batches
        and stops the run at the stage's step: a stage's evaluation is redone on resume, a periodic
        one's stage goes on from the step it followed."""
        from .train import evaluate as ev

        cfg, events = self.cfg, self.events
        self.refresh_sampler()  # every rank: under FSDP a collective
        if self.dist.rank != 0:
            return
        for i, (name, items) in enumerate(tasks.eval_sets(cfg).items()):
            def progress(done: int, total: int, name=name) -> None:
                events.progress = {"phase": "eval", "set": name, "at": which, "step": done, "total": total}  # heartbeats say it
                if self.dist.world == 1 and self.control.asked():  # with ranks waiting at a barrier, stop after it instead
                    raise _Interrupted()

            try:
                progress(0, len(items))
                fields, samples = ev.evaluate(self.handles.sampler(), self.tokenizer, items, cfg, on_batch=progress)
            except _Interrupted:
                self.stop_here(self.step_in_stage)
            events.emit("eval", phase="eval", step=step, at=which, set=name, **fields)
            self.ledger(name, fields)
            for s in samples[:8]:
                events.sample("eval", step, {"set": name, "at": which, **s})
            if fields.get("scoring_errors"):
                events.alert("error", f"{fields['scoring_errors']['count']} output(s) of the {name} evaluation could not be "
                             f"scored and count as wrong: {fields['scoring_errors']['first']}", phase="eval")
            if fields["parse_rate"] == 0 and fields["total"]:
                events.alert("warning", f"no parseable output in the {name} evaluation ({which})", phase="eval")
            self.check_health("eval", step, fields["health"])
            # `best`: the trained weights with the best accuracy on the first set (the earliest among
            # ties); the untrained start is no checkpoint and competes with none
            if i == 0 and which != "start" and (self.best_accuracy is None or fields["accuracy"] > self.best_accuracy):
                self.best_accuracy = fields["accuracy"]
                self._write(checkpoints.BEST, -1, 0)
                events.emit("checkpoint", path=str(self.folder / checkpoints.BEST), step=step, phase=which, best=True,
                            accuracy=fields["accuracy"])

    def ledger(self, name: str, fields: dict) -> None:
        """A scoring of GSM8K test problems, in the sessions folder's ledger (engine/protocol.py):
        a run that evaluates on the sealed problems counts as a look at them."""
        from . import protocol
        from .tasks.common import gsm8k_test_span

        if not (name == "gsm8k" or name.startswith("gsm8k-") and name != "gsm8k-dev"):
            return
        first = gsm8k_test_span(self.cfg).start + 1
        try:
            protocol.record(self.session_dir.parent, {
                "family": protocol.family(self.cfg, "trained"), "target": str(self.session_dir), "set": name,
                "first": first, "last": first + fields["total"] - 1, "correct": fields["correct"], "total": fields["total"],
                "accuracy": fields["accuracy"], "by": "engine train"})
        except OSError as exc:  # a read-only sessions folder: the run goes on, and says so
            self.events.alert("warning", f"the held-out ledger could not be written: {exc}", phase="eval")

    # -- save --

    def refresh_sampler(self) -> None:
        """FSDP: gather the trained weights into the decoding copy (every rank, at the same point)."""
        if self.sharded:
            self.full_state = self.handles.sampler.refresh(self.model)

    def _load_optimizer(self, state: dict) -> None:
        if self.sharded:
            parallel.load_full_optimizer_state(self.model, self.optimizer, state)
        else:
            self.optimizer.load_state_dict(state)

    def save(self, step: int, next_stage: bool = False) -> Path | None:
        """A checkpoint at `step` of this stage, or (next_stage) one that resumes at the next stage.
        Every rank calls it; under FSDP every rank takes part in gathering what rank 0 writes."""
        if self.model is None:
            return None
        whole = None
        if self.sharded:
            self.refresh_sampler()
            whole = (self.full_state, parallel.full_optimizer_state(self.model, self.optimizer) if self.optimizer else None)
        if self.dist.rank != 0:
            return None
        at = self.global_step + (0 if next_stage else step)
        path = self._write(f"step-{at:06d}", self.stage + 1 if next_stage else self.stage, 0 if next_stage else step, whole)
        checkpoints.rotate(self.session_dir, path)
        self.events.emit("checkpoint", path=str(path), step=step, phase=self.plan[self.stage][0] if self.plan else "setup",
                         global_step=at)
        return path

    def save_after_failure(self) -> None:
        """What a crash leaves: a checkpoint of the weights as they are (best effort). Not under
        FSDP: gathering the shards needs every rank, and the others may be gone."""
        if self.model is None or self.handles is None or self.sharded:
            return
        try:
            self.save(self.step_in_stage)
        except Exception:
            pass

    def _write(self, name: str, stage: int, step: int, whole: tuple | None = None) -> Path:
        """`whole`: (trained weights, optimizer state) gathered from FSDP's shards; else the model's own."""
        if whole is None and self.sharded:  # the best checkpoint, during rank 0's evaluation: weights only
            whole = (self.full_state, None)
        trained, optimizer = whole or (trainable_state(self.model), self.optimizer.state_dict() if self.optimizer else None)
        return checkpoints.save(self.session_dir, name, {
            "stage": stage, "step": step, "global_step": self.global_step, "trainable": trained,
            "world": self.dist.world, "parallel": self.cfg.run.parallel,
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "baseline": self.rl_state.baseline if self.rl_state else None,
            "rl_success": self.rl_state.success if self.rl_state else {}, "best_accuracy": self.best_accuracy,
            "config": self.cfg.to_dict(),
        })


def compile_forward(forward, model, tokenizer, autocast_context) -> tuple[object, float]:
    """`forward` compiled with torch.compile (dynamic shapes: SFT batches differ in length, and a
    recompile per length would cost more than it saves), and the seconds one warm-up forward and
    backward took on a small batch: the compile time, paid in setup instead of inside the first
    step, where a failure to compile also shows first. Its gradients are cleared: no weight changes."""
    import time

    import torch

    from .data.prompts import training_ids
    from .modeling import fusable
    from .train.loss import answer_loss
    from .train.sft import collate

    compiled = torch.compile(forward, dynamic=True)
    device = next(model.parameters()).device
    rows = [training_ids(tokenizer, "What is 2 + 3?", "5"), training_ids(tokenizer, "What is 10 - 4?", "6 6 6")]
    t = time.perf_counter()
    with autocast_context():
        loss = answer_loss(compiled, collate(rows, tokenizer.pad_token_id, device), fusable(model))
    loss.backward()
    model.zero_grad(set_to_none=True)
    return compiled, time.perf_counter() - t


def due(every: int, step: int, total: int) -> bool:
    """Something done every `every` steps (0: never), not at the stage's last step (the stage's end does its own)."""
    return bool(every) and step % every == 0 and step < total


def rl_state_from(saved: dict):
    """RL's state as a checkpoint saved it (rank 0's running success, on every rank)."""
    from .train.rl import State

    return State(saved.get("baseline"), dict(saved.get("rl_success") or {}))


def _reference(model):
    """A frozen copy of the starting model for the KL penalty."""
    import copy

    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref.eval()
