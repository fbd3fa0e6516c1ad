"""Supervised fine-tuning with the prompt masked out of the loss."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.optim.lr_scheduler import LambdaLR

from .. import threads
from ..data.prompts import IGNORE
from ..parallel import Collectives, whole
from .context import Events
from .loss import answer_loss, fusable, send


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of similar length (little padding), in a shuffled order fixed by the seed."""
    r = random.Random(seed)
    order = list(range(len(lengths)))
    r.shuffle(order)
    # sort within windows of 16 batches: similar lengths together, still a different mix per epoch
    window = batch_size * 16
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    r.shuffle(batches)
    return batches


class Batch(dict):
    """The model's inputs on the device (a dict: `model(**batch)` takes it as it is); `host`:
    the same tensors on the CPU, from which the loss takes what it must know as numbers (the
    shared prefix, which positions train) without reading anything back from a GPU."""

    def __init__(self, host: dict, device):
        super().__init__({k: send(v, device) for k, v in host.items()})
        self.host = host


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int, device) -> Batch:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (i, l) in enumerate(rows):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(l)] = torch.tensor(l)
        mask[r, : len(i)] = 1
    return Batch({"input_ids": ids, "labels": labels, "attention_mask": mask}, device)


def plan(n_examples: int, cfg, world: int = 1) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps)."""
    per_epoch = math.ceil(n_examples / (cfg.sft.batch_size * world) / cfg.sft.grad_accum)
    return per_epoch, max(1, math.ceil(per_epoch * cfg.sft.epochs))


def rank_share(batches: list, rank: int, world: int, count: int) -> list:
    """This rank's `count` batches of an epoch. Every rank takes the same number of steps
    (a rank with fewer would leave the others waiting in all-reduce forever): a short
    share is topped up from its own start."""
    mine = batches[rank::world] or batches[:1]
    while len(mine) < count:
        mine = mine + mine[: count - len(mine)]
    return mine[:count]


def token_weights(group: list[list[tuple[list[int], list[int]]]], dist) -> list[float]:
    """What each micro-batch's mean loss is multiplied by so that the step's loss is the mean over
    every answer token of the step, on every rank: its share of the step's tokens. DDP and FSDP
    average gradients over the ranks, so the share is of the ranks' mean count (the global count /
    world); a rank dividing by its own count would weigh a short batch like a long one.
    One micro-batch on one process: 1, as before. Counted from the rows on the host (the loss's
    targets are the labels after the first position): no device synchronisation."""
    if len(group) == 1 and dist.world == 1:
        return [1.0]
    counts = [sum(sum(t != IGNORE for t in labels[1:]) for _, labels in rows) for rows in group]
    mean = dist.mean(sum(counts))
    return [c / mean for c in counts]


def lr_factor(step: int, name: str, warmup: int, total: int) -> float:
    """The learning rate's share of its peak at `step`: a linear warm-up, then cosine to 0, linear
    to 0 or constant. The same numbers as transformers' `get_scheduler` (a test compares them);
    written out because importing that one loads transformers' trainer, peft and bitsandbytes,
    2.5 s at the start of every run and of every torchrun rank."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if name == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if name == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    return 1.0


def schedule(optimizer, cfg, total: int) -> LambdaLR:
    warmup = int(cfg.sft.warmup * total)
    return LambdaLR(optimizer, lambda step: lr_factor(step, cfg.sft.schedule, warmup, total))


@dataclass(frozen=True)
class Step:
    """What one optimizer step left: where the stage stands (the recipe checkpoints at `step`)."""

    step: int
    total: int


def train(model, tokenizer, rows, optimizer, scheduler, cfg, handles, dist=None, events=None,
          start_step: int = 0) -> Iterator[Step]:
    """SFT from `start_step`: yields after every optimizer step, whose metrics it has reported.
    The caller decides checkpoints, evaluations and stops between steps; closing the generator
    ends the stage there.

    The batch order is a pure function of the seed and the epoch, so a resumed
    run sees exactly the batches it would have seen.
    """
    dist, events = dist or Collectives(), events or Events()
    sc = cfg.sft
    per_epoch, total = plan(len(rows), cfg, dist.world)
    device = next(model.parameters()).device
    step = start_step
    head = fusable(model)  # the output layer the loss runs fused with (None: logits, the plain way)
    model.train()
    while step < total:
        epoch = step // per_epoch
        batches = rank_share(length_grouped_batches([len(r[0]) for r in rows], sc.batch_size, cfg.run.seed * 1000 + epoch),
                             dist.rank, dist.world, per_epoch * sc.grad_accum)
        first = (step - epoch * per_epoch) * sc.grad_accum
        for b in range(first, len(batches), sc.grad_accum):
            if step >= total:
                break
            t0 = time.perf_counter()
            cpu_threads = threads.adjust()
            chosen = [[rows[i] for i in idx] for idx in batches[b : b + sc.grad_accum]]
            tokens = sum(len(ids) for part in chosen for ids, _ in part)
            weights = token_weights(chosen, dist)
            # the step's loss summed on the device (fp64: the same sum, in the same order, as adding each
            # micro-batch's value on the host) and read once: the step's own code never waits on a GPU
            # between micro-batches (transformers' mask builder still asks whether the mask is all ones)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            for part, weight in zip(chosen, weights):
                batch = collate(part, tokenizer.pad_token_id, device)
                with handles.autocast():
                    loss = answer_loss(handles.forward, batch, head) * weight
                loss.backward()
                loss_sum += loss.detach()
            loss_sum = loss_sum.item()  # the step's one synchronisation: the NaN check and the log need it
            if not dist.agree(math.isfinite(loss_sum), all_of=True):  # one rank's NaN is every rank's (DDP averaged it)
                optimizer.zero_grad(set_to_none=True)
                events.alert("error", f"SFT loss is {loss_sum} at step {step}; the update was skipped", phase="sft")
            else:
                grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], sc.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step += 1
            dt = time.perf_counter() - t0
            events.metrics("sft", step, total, loss=dist.mean(loss_sum), lr=scheduler.get_last_lr()[0],
                           tokens_per_s=tokens * dist.world / dt, step_time=dt, epoch=epoch,
                           grad_norm=float(whole(grad_norm)) if math.isfinite(loss_sum) else None, threads=cpu_threads)
            yield Step(step, total)
