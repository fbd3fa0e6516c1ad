"""RL from the trace reward: rollouts come from a generator, rewards are plain function calls
into the checker, and the algorithm (REINFORCE, GRPO, GSPO: engine/algorithms.py) decides
the group size, the advantages and each completion's loss."""

from __future__ import annotations

import contextlib
import random
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from .. import threads
from ..data.prompts import prompt_text
from ..health import health
from ..parallel import Collectives
from ..rollout import Completion, completion_logprobs
from ..tasks import Item, Score, rl_questions, score, system_prompt
from ..tasks.common import sample_record
from ..algorithms import for_config, sampler_mismatch
from .context import Events

RL_SEED_OFFSET = 20_011


@dataclass
class Batch:
    iteration: int
    items: list[Item]  # one per completion
    prompts: list[str]
    completions: list[Completion]
    rewards: list[float]
    scores: list[Score]
    gen: dict  # generation speed


def questions(cfg, iteration: int, rank: int, draw: int = 0) -> list[Item]:
    """The questions of one iteration (and of a further draw of it, under dynamic sampling):
    fixed by seed, iteration, rank and draw (so resume is exact)."""
    return rl_questions(cfg, (cfg.data.seed + RL_SEED_OFFSET) * 100_003 + iteration * 131 + rank + draw * 1_000_003)


SCREEN = "screen:"  # the record's keys of the screening pass (beside dynamic sampling's running success)


def screened(backend, tokenizer, cfg, record: dict, on_rows=None) -> tuple[list[Item], int]:
    """rl.screen: (the candidate questions of medium difficulty, the candidates screened). Each of
    rl.screen_pool candidates (fixed by seed) is sampled rl.screen times once; its (right, tries) go
    in `record` (saved in checkpoints), so a resumed run keeps the same questions without re-screening."""
    rc = cfg.rl
    pool, draw = [], 0
    while len(pool) < rc.screen_pool:  # the same candidates on every rank: rank 0's stream
        pool += questions(cfg, -1, 0, draw)
        draw += 1
    pool = list({q.question: q for q in pool[: rc.screen_pool]}.values())
    todo = [q for q in pool if SCREEN + q.question not in record]
    if todo:
        torch.manual_seed(cfg.run.seed * 7919 - 1)  # the same screening on a rerun
        system = system_prompt(cfg)
        prompts = [prompt_text(tokenizer, q.question, system) for q in todo for _ in range(rc.screen)]
        # in evaluation-sized batches (the plan's decoding peak): a pool of 2,000 x 4 in one batch is 8,000 rows
        comps, _ = backend.generate(tokenizer, prompts, rc.max_new_tokens, rc.temperature, rc.top_p,
                                    min(len(prompts), cfg.eval.batch_size), on_rows=on_rows)
        for n, q in enumerate(todo):
            right = sum(score(cfg, q, c.text, c.cut).outcome == "correct" for c in comps[n * rc.screen : (n + 1) * rc.screen])
            record[SCREEN + q.question] = (right, rc.screen)
    return [q for q in pool if 0 < record[SCREEN + q.question][0] < record[SCREEN + q.question][1]], len(pool)


def rollouts(backend, tokenizer, cfg, start: int, rank: int = 0, on_rows=None, record: dict | None = None,
             medium: list[Item] | None = None):
    """Yield one scored batch of samples per iteration; `backend` generates (engine/backends.py);
    `on_rows(done, total)` hears how many of the iteration's samples are finished. With
    rl.dynamic_sampling, `record` keeps each question's running success (right, tries); `medium`
    (rl.screen's questions) replaces the fresh questions of each iteration where given."""
    rc = cfg.rl
    if medium:
        def ask(it: int, rank: int, draw: int = 0) -> list[Item]:  # fixed by seed, iteration, rank, draw, as questions()
            r = random.Random((cfg.data.seed + RL_SEED_OFFSET) * 7 + it * 131 + rank + draw * 1_000_003)
            return r.sample(medium, rc.questions) if len(medium) >= rc.questions else r.choices(medium, k=rc.questions)
    else:
        def ask(it: int, rank: int, draw: int = 0) -> list[Item]:
            return questions(cfg, it, rank, draw)
    algo = for_config(cfg)
    group = algo.group_size
    system = system_prompt(cfg)
    for it in range(start, rc.iterations):
        torch.manual_seed(cfg.run.seed * 7919 + it * 17 + rank)

        def sample(qs: list[Item]) -> tuple[list, list, list, list, dict]:
            items = [q for q in qs for _ in range(group)]
            prompts = [prompt_text(tokenizer, q.question, system) for q in items]
            comps, gen = backend.generate(tokenizer, prompts, rc.max_new_tokens, rc.temperature, rc.top_p, len(prompts),
                                          on_rows=on_rows)
            return items, prompts, comps, [score(cfg, q, c.text, c.cut) for q, c in zip(items, comps)], gen

        if rc.dynamic_sampling and algo.grouped:  # one sample per question never ties within a group
            items, prompts, comps, scores, gen = _dynamic(sample, cfg, it, rank, group, {} if record is None else record, ask)
        else:
            items, prompts, comps, scores, gen = sample(ask(it, rank))
        yield Batch(it, items, prompts, comps, [s.reward for s in scores], scores, gen)


def _dynamic(sample, cfg, it: int, rank: int, group: int, record: dict, ask=None):
    """DAPO's dynamic sampling: groups whose rewards all tie carry no signal, so draw more
    questions (up to rl.dynamic_draws more rounds) until rl.questions groups have a spread.
    Each round draws twice the questions still needed and samples those the model answers
    sometimes first (running success nearest one half; an unseen question counts as one half).
    Tied groups fill the batch when the rounds run out: every rank keeps the same batch size."""
    rc = cfg.rl
    spread, tied, gen_all, drawn = [], [], {"tokens": 0, "seconds": 0.0}, 0

    def rate(q: Item) -> float:
        right, n = record.get(q.question, (0, 0))
        return abs((right / n if n else 0.5) - 0.5)

    ask = ask or (lambda it, rank, draw=0: questions(cfg, it, rank, draw))
    for draw in range(rc.dynamic_draws + 1):
        need = rc.questions - len(spread)
        if need <= 0:
            break
        pool = ask(it, rank, draw)
        while len(pool) < 2 * need and draw:  # later rounds pick from a wider pool
            pool += ask(it, rank, draw + 1_000 * len(pool))
        picked = sorted(pool, key=rate)[:need] if draw else pool[:need]  # round 0: the questions a plain run asks
        drawn += len(picked)
        items, prompts, comps, scores, gen = sample(picked)
        gen_all["tokens"] += gen["tokens"]
        gen_all["seconds"] += gen["seconds"]
        for g in range(0, len(items), group):
            rows = (items[g : g + group], prompts[g : g + group], comps[g : g + group], scores[g : g + group])
            rewards = [s.reward for s in rows[3]]
            q = rows[0][0].question
            right, n = record.get(q, (0, 0))
            record[q] = (right + sum(s.outcome == "correct" for s in rows[3]), n + group)
            (spread if max(rewards) > min(rewards) else tied).append(rows)
    chosen = (spread + tied)[: rc.questions]
    gen_all["tokens_per_s"] = gen_all["tokens"] / max(gen_all["seconds"], 1e-9)
    gen_all["drawn"] = drawn
    return tuple([x for rows in chosen for x in rows[k]] for k in range(4)) + (gen_all,)


def old_logprobs(batch: Batch, adv: list[float], tokenizer, cfg, handles, dist=None) -> dict[int, torch.Tensor]:
    """Each completion's log-probs under the weights that sampled it (before any step on the
    batch): what the importance ratio of a reused batch is taken against."""
    dist = dist or Collectives()
    rows = [i for i, a in enumerate(adv) if a != 0] or [0]
    chunks = _even([rows[i : i + cfg.rl.micro_batch] for i in range(0, len(rows), cfg.rl.micro_batch)], dist)
    out = {}
    # under FSDP every forward pass is a collective, and a shared prompt prefix is one pass more
    # for a chunk of several rows than for _even's one-row padding: ranks would gather different
    # numbers of times and hang. Every row runs whole there (the same log-probs).
    from ..prefix import fsdp

    share = not fsdp(handles.forward)
    with torch.no_grad(), handles.autocast():
        for chunk in chunks:
            lps = completion_logprobs(handles.forward, tokenizer, [batch.prompts[j] for j in chunk],
                                      [batch.completions[j].tokens for j in chunk], cfg.rl.temperature, share_prefix=share)
            out.update({j: lp.detach() for j, lp in zip(chunk, lps)})
    return out


def update(model, ref_model, tokenizer, batch: Batch, adv: list[float], optimizer, cfg, handles, dist=None,
           events=None, old: dict | None = None, weights: dict | None = None) -> dict:
    """One policy-gradient step: -A * log p(token) averaged over every token of
    the batch (not per sample first, which favours short answers: the
    one-part trace over the composition it should have been); optional KL to the start.

    Each micro-batch is backpropagated before the next (one graph alive at a
    time), scaled by the batch's token count so the sum is the batch mean; under
    DDP only the last one all-reduces gradients. A batch whose advantages are all
    zero (every group tied) carries no signal and takes no step: Adam's momentum
    alone would still move the weights.

    `weights` (rl.vllm_is_cap, algorithms.sampler_mismatch): each row's correction of the
    sampler/trainer mismatch, applied by the algorithm's row_loss; the KL term stays unweighted, as TRL's.
    """
    dist, events = dist or Collectives(), events or Events()
    if dist.agree(all(a == 0 for a in adv), all_of=True):  # skipped only when every rank's batch tied
        return {"loss": 0.0, "kl": None, "skipped": True}
    rc = cfg.rl
    algo = for_config(cfg)
    tokens = [c.tokens for c in batch.completions]
    # the mean over every rank's tokens: DDP and FSDP average gradients over the ranks, so each rank
    # divides by the ranks' mean count (the global count / world), not by its own (batches differ in length)
    n_tokens = dist.mean(sum(max(len(t), 1) for t in tokens))
    # only completions with an advantage (or a KL term) contribute; tied groups cost no forward pass
    rows = [i for i, a in enumerate(adv) if a != 0 or (ref_model is not None and rc.kl_coef > 0)]
    rows = rows or [0]  # tied here but not on another rank: a zero-weight pass still joins the gradient all-reduce
    chunks = [rows[i : i + rc.micro_batch] for i in range(0, len(rows), rc.micro_batch)]
    own = len(chunks)
    chunks = _even(chunks, dist)
    weight = algo.row_weight(n_tokens, len(tokens))  # GSPO: every completion weighs the same, whatever its length
    total, kls, ents, clips = 0.0, [], [], []
    for n, chunk in enumerate(chunks):
        threads.adjust()
        prompts, toks = [batch.prompts[i] for i in chunk], [tokens[i] for i in chunk]
        sync = n == len(chunks) - 1 or not hasattr(handles.forward, "no_sync")
        with (contextlib.nullcontext() if sync else handles.forward.no_sync()), handles.autocast():
            logps, ent = completion_logprobs(handles.forward, tokenizer, prompts, toks, rc.temperature, entropy=True)
            ref = None
            if ref_model is not None and rc.kl_coef > 0:
                with torch.no_grad():
                    ref = completion_logprobs(ref_model, tokenizer, prompts, toks, rc.temperature)
            loss = 0.0
            for j, (lp, i) in enumerate(zip(logps, chunk)):
                # a row here for its KL term alone has no sampling log-probs; with them (a reused batch) the
                # algorithm clips its importance ratio against the sampling weights (PPO's surrogate)
                term, bit = algo.row_loss(lp, None if old is None or adv[i] == 0 else old[i], adv[i],
                                          None if weights is None or adv[i] == 0 else weights.get(i))
                loss = loss + (term if weight == 1.0 else term * weight)
                clips += [bit] * (n < own and bit is not None)  # the clip bit
                if ref is not None:
                    diff = ref[j] - lp
                    kl = torch.exp(diff) - diff - 1  # k3 estimator, always >= 0
                    loss = loss + rc.kl_coef * kl.sum()
                    kls += [kl.mean().item()] * (n < own)
            loss = loss / n_tokens * (n < own)  # a pass another rank's longer batch asked for weighs nothing
        loss.backward()
        total += loss.item()
        if n < own:
            ents += [e.mean().item() for e in ent]
    if not dist.agree(math.isfinite(total), all_of=True):
        optimizer.zero_grad(set_to_none=True)
        events.alert("error", f"RL loss is {total} at iteration {batch.iteration}; the update was skipped", phase="rl")
        return {"loss": total}
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], rc.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": total, "kl": sum(kls) / len(kls) if kls else None, "entropy": sum(ents) / len(ents) if ents else None,
            "clip_ratio": sum(clips) / len(clips) if clips else None}


def _even(chunks: list[list[int]], dist) -> list[list[int]]:
    """As many micro-batches as the rank with the most: under FSDP every forward pass gathers
    weights from all ranks, so a rank that ran fewer would leave the others waiting. The
    extra ones repeat this rank's first row; the update weighs them zero."""
    return chunks + [chunks[0][:1]] * (dist.most(len(chunks)) - len(chunks))


@dataclass
class State:
    """What RL carries from one iteration to the next, saved with every checkpoint: the running
    reward baseline, and each question's running success (right, tries) on this rank, for
    dynamic sampling and rl.screen (rank 0's, on every rank, after a resume)."""

    baseline: float | None = None
    success: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """What one iteration left: where the stage stands, the batch's health (the recipe watches
    it for collapse) and the state to checkpoint."""

    step: int
    total: int
    health: dict
    state: State


def train(model, ref_model, tokenizer, optimizer, cfg, handles, backend, dist=None, events=None,
          state: State | None = None, start: int = 0) -> Iterator[Step]:
    """RL iterations from `start`: rollouts from `backend`, an update, the weights pushed back to
    the backend; yields after each iteration, whose metrics and samples it has reported. The loop
    owns `state` (a copy of the one given) and yields it with every step."""
    dist, events = dist or Collectives(), events or Events()
    state = State(state.baseline, dict(state.success)) if state else State()
    rc = cfg.rl
    algo = for_config(cfg)
    group = algo.group_size

    def at(step: int, stage: str) -> None:  # what heartbeats report between metrics
        events.progress = {"phase": "rl", "step": step, "total": rc.iterations, "stage": stage}

    def rows(done: int, total: int) -> None:  # heartbeats say `rollouts 8/16`
        events.progress = {**events.progress, "done": done, "of": total}

    medium = None
    if rc.screen:
        at(start, "screening")
        medium, screened_n = screened(backend, tokenizer, cfg, state.success, on_rows=rows)
        events.alert("info" if medium else "warning", f"rl.screen: {len(medium)} of {screened_n} candidate questions were "
                     f"answered right in some but not all of {rc.screen} samples; RL asks " + ("only those" if medium else
                     "the usual fresh questions (none was of medium difficulty)"), phase="rl")
    at(start, "rollouts")
    asked = time.perf_counter()
    for batch in rollouts(backend, tokenizer, cfg, start, dist.rank, on_rows=rows, record=state.success, medium=medium):
        t0 = time.perf_counter()
        rollout_time = t0 - asked  # generating and scoring the batch (and dynamic sampling's further draws)
        at(batch.iteration, "update")
        adv = algo.advantages(batch.rewards, state.baseline)
        # decided by every rank together: old_logprobs runs collectives (agreeing on the pass count, FSDP's
        # gathers), and a rank whose batch tied would skip them while the others wait in them
        # rl.vllm_is_cap: the same pass gives the trainer's side of the sampler/trainer mismatch. Whether the
        # backend returns the sampler's log-probs is the run's config (rl.backend, rl.vllm_is_cap): alike on every rank
        correct = bool(getattr(backend, "logprobs", False))
        signal = (rc.batch_reuse > 1 or correct) and dist.agree(any(a != 0 for a in adv))
        before = old_logprobs(batch, adv, tokenizer, cfg, handles, dist) if signal else None
        old = before if rc.batch_reuse > 1 else None  # the clipped ratio only where the batch is reused
        weights, gap = sampler_mismatch(algo, before, batch.completions, rc.vllm_is_cap) if correct and signal else (None, {})
        stats = update(model, ref_model, tokenizer, batch, adv, optimizer, cfg, handles, dist, events, old, weights)
        for _ in range(rc.batch_reuse - 1):
            if stats.get("skipped"):
                break
            stats = update(model, ref_model, tokenizer, batch, adv, optimizer, cfg, handles, dist, events, old, weights)
        if not stats.get("skipped"):
            backend.sync_weights(model)  # the next rollouts sample from the weights just trained
        update_time = time.perf_counter() - t0  # the update passes and the push of the weights to the backend
        mean = sum(batch.rewards) / len(batch.rewards)
        m = rc.baseline_momentum
        state.baseline = mean if state.baseline is None else m * state.baseline + (1 - m) * mean
        step = batch.iteration + 1
        parsed = sum(1 for s in batch.scores if s.outcome != "parse_fail")
        h = health([c.text for c in batch.completions], [c.cut for c in batch.completions], batch.prompts,
                   [len(c.tokens) for c in batch.completions])
        lengths = [len(c.tokens) for c in batch.completions]
        events.metrics("rl", step, rc.iterations, loss=stats["loss"], kl=stats.get("kl"), lr=rc.lr, reward=mean,
                       skipped=stats.get("skipped", False), entropy=stats.get("entropy"),
                       tied_groups=algo.tied(batch.rewards),
                       completion_length=sum(lengths) / len(lengths), completion_length_max=max(lengths),
                       reward_std=statistics.pstdev(batch.rewards) if len(batch.rewards) > 1 else 0.0,
                       baseline=state.baseline, parse_rate=parsed / len(batch.scores),
                       accuracy=sum(1 for s in batch.scores if s.outcome == "correct") / len(batch.scores),
                       tokens_per_s=batch.gen["tokens_per_s"], step_time=rollout_time + update_time,
                       rollout_time=rollout_time, update_time=update_time,
                       clip_ratio=stats.get("clip_ratio"), drawn=batch.gen.get("drawn"), health=h, **gap)
        errors = [s.error for s in batch.scores if s.error]
        if errors:
            events.alert("error", f"{len(errors)} sample(s) could not be scored and count as 0: {errors[0]}", phase="rl", step=step)
        if batch.iteration % cfg.run.sample_every == 0:
            for g in range(0, min(len(batch.items), 2 * group), group):
                events.sample("rl", step, sample_record(batch.items[g], batch.completions[g], batch.scores[g]))
        yield Step(step, rc.iterations, h, state)
        at(step, "rollouts")
        asked = time.perf_counter()
