"""The training recipe: setup, then the stages in order (evaluate, SFT, evaluate,
RL, evaluate), saving as it goes. In the shape of a torchtune recipe: the
run's state is named attributes, the loops (engine/train/) read a declared
`Context`, and engine/run.py wraps the recipe with the session, signals and
the final event.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import allocator, checkpoints, config, parallel, tasks, threads
from .events import SCHEMA_VERSION
from .modeling import (autocast, load_model, load_tokenizer, load_trainable_state, make_optimizer, param_counts, pick_device,
                       setup_notes, trainable_state)
from .train.context import Context


class Stopped(Exception):
    pass


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
    if evals and not any(s[0] == "eval" for s in out):
        out.append(("eval", "start"))
    return out


class Recipe:
    def __init__(self, cfg, session_dir: Path, ctx_fields: dict):
        self.cfg, self.session_dir = cfg, Path(session_dir)
        self.folder = self.session_dir / "checkpoints"
        self.ctx = Context(cfg, checkpoint=self.save, periodic_eval=self.periodic_eval, **ctx_fields)
        self.plan = stages(cfg)
        # state, saved in every checkpoint
        self.model = self.tokenizer = self.optimizer = self.scheduler = None
        self.sharded = False  # FSDP: weights, gradients and optimizer state split over the ranks
        self.full_state = None  # FSDP: the trained weights whole, as the last refresh of the decoding copy gathered them
        self.stage = 0  # index into self.plan
        self.global_step = 0  # optimizer steps of the stages before this one
        self.best_accuracy = None
        self.resume = {"stage": 0, "step": 0}  # where a resumed run starts

    # -- setup --

    def setup(self, resume: bool) -> None:
        cfg, ctx = self.cfg, self.ctx
        if resume:
            self.resume = self._resume_state()
        st = self.resume
        if st.get("world", ctx.world) != ctx.world and st.get("step"):
            raise checkpoints.CheckpointError(
                f"{st['path']} was written mid-stage by {st['world']} process(es); resume it with the same number "
                f"(torchrun --nproc_per_node {st['world']}), or from a stage boundary: the data order of a stage "
                f"depends on how many ranks share it")
        if st.get("parallel", "ddp") != cfg.run.parallel and st.get("step") and ctx.world > 1:
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
        if cfg.model.init_from and not resume and ctx.rank == 0:  # loaded from the session's own copy (checkpoints.keep_start)
            copy, start = checkpoints.keep_start(self.session_dir, Path(cfg.model.init_from).expanduser())
            cfg = replace(cfg, model=replace(cfg.model, init_from=str(copy)))
        self.model = model = load_model(cfg, self.tokenizer, device)
        cfg = self.cfg
        if st.get("trainable"):
            load_trainable_state(model, st["trainable"])
        total, trainable = param_counts(model)
        ctx.emit("run_started", schema=SCHEMA_VERSION, run=self.session_dir.name, config=cfg.to_dict(),
                 model=cfg.model.name, params_total=total, params_trainable=trainable, device=str(device),
                 load_8bit=cfg.model.load_8bit, world_size=ctx.world, resumed=resume, allocator=allocator.in_use() or "system",
                 resumed_from=st.get("path"), stages=[f"{a}:{b}" if b else a for a, b in self.plan],
                 **({"init_from_sha256": start} if start else {}))
        for note in notes:
            ctx.alert("warning", note, phase="setup")
        advice = allocator.advice() if device.type == "cpu" else None
        if advice:
            ctx.alert("info", advice, phase="setup")
        # the model handles the loops use
        from .rollout import Sampler, decode_dtype

        self.sharded = ctx.world > 1 and cfg.run.parallel == "fsdp"
        if self.sharded:  # decoding needs whole weights: a copy, made before sharding
            ctx.sampler = parallel.FullCopy(model, decode_dtype(model, cfg.model.generate_dtype))
        else:
            ctx.sampler = Sampler(model, cfg.model.generate_dtype)
        ctx.forward_model = parallel.wrap(model, ctx.world, cfg.run.parallel)
        ctx.autocast = lambda: autocast(model, cfg.model.autocast)

    def _resume_state(self) -> dict:
        folder, state, skipped = checkpoints.for_resume(self.session_dir)
        for problem in skipped:
            self.ctx.alert("warning", f"resume skips a checkpoint that cannot be used: {problem}")
        if folder is None:
            if skipped:
                raise checkpoints.CheckpointError("no usable checkpoint to resume from: " + "; ".join(skipped))
            return {"stage": 0, "step": 0}
        state["path"] = str(folder)
        return state

    # -- the stages --

    def train(self) -> None:
        """Every stage from where the run starts; raises Stopped when a stop ends it early."""
        ctx = self.ctx
        if ctx.agree(ctx.stop_requested()):  # asked for while the engine was starting: nothing to save yet
            ctx.alert("info", "stopped before the first step: a stop was asked for while the engine was starting")
            raise Stopped()
        for index, (kind, which) in enumerate(self.plan):
            if index < self.resume["stage"]:
                continue
            self.stage = index
            start = self.resume["step"] if index == self.resume["stage"] else 0
            ctx.progress = {"phase": kind, "step": start, "total": 0}  # the loops say more as they go
            if kind == "eval":
                self.evaluate(which, self.global_step)
                _barrier(ctx)
                if ctx.after_step("eval", 0, 0):
                    self.save(0, next_stage=True)
                    raise Stopped()
                continue
            step = self.sft(start) if kind == "sft" else self.rl(start)
            if ctx.stopping:
                self.save(step)
                if ctx.collapsed and (self.folder / checkpoints.BEST).exists():
                    ctx.alert("warning", f"stopped early: the model collapsed; the best checkpoint is {self.folder / checkpoints.BEST}")
                raise Stopped()
            self.global_step += step
            self.save(0, next_stage=True)
            _barrier(ctx)
            if ctx.after_step(kind, step, step):  # a stop asked for at a stage's very end
                raise Stopped()

    def sft(self, start: int) -> int:
        from .data.prompts import IGNORE, training_ids
        from .train import sft

        cfg, ctx = self.cfg, self.ctx
        system = tasks.system_prompt(cfg)
        from .protocol import Drops

        drops = Drops()  # what the protocol keeps out: development problems, test questions in disguise
        rows = [training_ids(self.tokenizer, q, a, system, cfg.data.max_len + 1) for q, a in tasks.training_pairs(cfg, drops)]
        if drops.message():
            ctx.alert("info", drops.message(), phase="sft")
        fits = [r for r in rows if len(r[0]) <= cfg.data.max_len]  # a cut example would teach outputs that never end
        quiet = config.smoke_lengths(cfg)  # the tiny preset's short lengths are its own choice: no note on them
        if len(fits) < len(rows) and not quiet:
            ctx.alert("info", f"{len(rows) - len(fits)} of {len(rows)} training examples are longer than "
                      f"data.max_len={cfg.data.max_len} tokens; they are skipped", phase="sft")
        note = long_answers([sum(t != IGNORE for t in labels) for _, labels in fits], cfg)
        if note and not quiet:
            ctx.alert("info", note, phase="sft")
        self.optimizer = make_optimizer(self.model, cfg.sft.optimizer, cfg.sft.lr, cfg.sft.weight_decay)
        _, total = sft.plan(len(fits), cfg, ctx.world)
        self.scheduler = sft.schedule(self.optimizer, cfg, total)
        if start and self.resume.get("optimizer"):
            self._load_optimizer(self.resume["optimizer"])
            self.scheduler.load_state_dict(self.resume["scheduler"])
        return sft.train(self.model, self.tokenizer, fits, self.optimizer, self.scheduler, cfg, ctx, start)

    def rl(self, start: int) -> int:
        from .train import rl

        cfg, ctx = self.cfg, self.ctx
        ref = _reference(self.model) if cfg.rl.kl_coef > 0 else None
        self.optimizer, self.scheduler = make_optimizer(self.model, cfg.rl.optimizer, cfg.rl.lr), None
        if start and self.resume.get("optimizer"):
            self._load_optimizer(self.resume["optimizer"])
        ctx.baseline = self.resume.get("baseline") if start else None
        ctx.rl_success = dict(self.resume.get("rl_success") or {}) if start else {}  # rank 0's, on every rank
        self.refresh_sampler()  # rollouts decode with the weights SFT left
        if ctx.backend is None:  # at RL's start: vLLM starts from the weights SFT left
            from .backends import make_backend

            ctx.backend = make_backend(cfg, self.model, self.tokenizer, ctx.sampler)
        return rl.train(self.model, ref, self.tokenizer, self.optimizer, cfg, ctx, start)

    def periodic_eval(self, step: int) -> None:
        kind = self.plan[self.stage][0]
        if kind != "eval" and "eval" in self.cfg.run.phases:
            self.evaluate(f"{kind}@{step}", self.global_step + step)

    # -- evaluate --

    def evaluate(self, which: str, step: int) -> None:
        """Every evaluation set of the task; keeps the best checkpoint by accuracy on the first set."""
        from .train import evaluate as ev

        cfg, ctx = self.cfg, self.ctx
        self.refresh_sampler()  # every rank: under FSDP a collective
        if ctx.rank != 0:
            return
        for i, (name, items) in enumerate(tasks.eval_sets(cfg).items()):
            def progress(done: int, total: int, name=name) -> None:
                ctx.progress = {"phase": "eval", "set": name, "at": which, "step": done, "total": total}  # heartbeats say it
                if ctx.world == 1 and ctx.stop_requested():  # with ranks waiting at a barrier, stop after it instead
                    self.save(0)  # resume redoes this evaluation
                    raise Stopped()

            progress(0, len(items))
            fields, samples = ev.evaluate(ctx.sampler(), self.tokenizer, items, cfg, on_batch=progress)
            ctx.emit("eval", phase="eval", step=step, at=which, set=name, **fields)
            self.ledger(name, fields)
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
            if i == 0 and which != "start" and (self.best_accuracy is None or fields["accuracy"] > self.best_accuracy):
                self.best_accuracy = fields["accuracy"]
                self._write(checkpoints.BEST, -1, 0)
                ctx.emit("checkpoint", path=str(self.folder / checkpoints.BEST), step=step, phase=which, best=True,
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
            self.ctx.alert("warning", f"the held-out ledger could not be written: {exc}", phase="eval")

    # -- save --

    def refresh_sampler(self) -> None:
        """FSDP: gather the trained weights into the decoding copy (every rank, at the same point)."""
        if self.sharded:
            self.full_state = self.ctx.sampler.refresh(self.model)

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
        if self.ctx.rank != 0:
            return None
        at = self.global_step + (0 if next_stage else step)
        path = self._write(f"step-{at:06d}", self.stage + 1 if next_stage else self.stage, 0 if next_stage else step, whole)
        checkpoints.rotate(self.session_dir, path)
        self.ctx.emit("checkpoint", path=str(path), step=step, phase=self.plan[self.stage][0] if self.plan else "setup",
                      global_step=at)
        return path

    def save_after_failure(self) -> None:
        """What a crash leaves: a checkpoint of the weights as they are (best effort). Not under
        FSDP: gathering the shards needs every rank, and the others may be gone."""
        if self.model is None or self.ctx.sampler is None or self.sharded:
            return
        try:
            self.save(0 if self.ctx.progress.get("phase") == "eval" else self.ctx.progress.get("step", 0))
        except Exception:
            pass

    def _write(self, name: str, stage: int, step: int, whole: tuple | None = None) -> Path:
        """`whole`: (trained weights, optimizer state) gathered from FSDP's shards; else the model's own."""
        if whole is None and self.sharded:  # the best checkpoint, during rank 0's evaluation: weights only
            whole = (self.full_state, None)
        trained, optimizer = whole or (trainable_state(self.model), self.optimizer.state_dict() if self.optimizer else None)
        return checkpoints.save(self.session_dir, name, {
            "stage": stage, "step": step, "global_step": self.global_step, "trainable": trained,
            "world": self.ctx.world, "parallel": self.cfg.run.parallel,
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "baseline": self.ctx.baseline, "rl_success": self.ctx.rl_success, "best_accuracy": self.best_accuracy, "config": self.cfg.to_dict(),
        })


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
