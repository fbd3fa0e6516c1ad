"""A plan with what to change, and a run sized to its GPU: the estimate with advice where the peak
does not fit, the loop that halves micro-batches until it does, and the check a GPU run makes
before it loads (`sized`)."""

from __future__ import annotations

import copy

from ..modelshape import BadModelConfig, Shape
from .advice import advice
from .memory import Plan, known_shape, peaks, rollout_rows
from .render import render


def estimate(cfg, shape: Shape, model: str, gpus: int = 1, memory: float | None = None, device: str = "cuda") -> Plan:
    """The memory model's peaks (plan.memory), with what to change in its notes when they do not fit."""
    plan = peaks(cfg, shape, model, gpus, memory, device)
    if plan.fits is False:
        plan.notes += advice(cfg, plan)
    return plan


def fit(cfg, shape: Shape, model: str, gpus: int, memory: float) -> tuple[list[str], Plan]:
    """Micro-batches sized to the model: the `--set` changes (RL micro-batch halved, SFT batch
    halved with its accumulation doubled, the same batch in more passes) that make the run fit
    `memory`, and the plan with them. No changes when it fits as it is; the last plan when
    halving down to one still does not fit."""
    cfg = copy.deepcopy(cfg)
    changes: dict[str, str] = {}
    plan = estimate(cfg, shape, model, gpus, memory)
    while not plan.fits:
        peak = plan.peak.name
        if peak == "rl update" and cfg.rl.micro_batch > 1:
            cfg.rl.micro_batch //= 2
            changes["rl.micro_batch"] = str(cfg.rl.micro_batch)
        elif peak == "sft step" and cfg.sft.batch_size > 1:
            cfg.sft.batch_size //= 2
            cfg.sft.grad_accum *= 2
            changes["sft.batch_size"], changes["sft.grad_accum"] = str(cfg.sft.batch_size), str(cfg.sft.grad_accum)
        elif peak == "decode" and cfg.eval.batch_size > max(1, rollout_rows(cfg)):  # else hf rollouts set the batch
            cfg.eval.batch_size //= 2
            changes["eval.batch_size"] = str(cfg.eval.batch_size)
        else:
            break
        plan = estimate(cfg, shape, model, gpus, memory)
    return [f"{k}={v}" for k, v in changes.items()], plan


def sized(cfg, gpus: int, memory: float, chosen: set[str]) -> tuple[list[str], str | None]:
    """For a GPU run about to load: micro-batches sized to the model and this GPU (`--set`s to
    apply; none that the user chose), or why it will not fit even so, with what to change."""
    try:
        shape = known_shape(cfg.model.name)
    except BadModelConfig as exc:
        return [], str(exc)
    if shape is None:
        return [], None
    changes, plan = fit(cfg, shape, cfg.model.name, gpus, memory)
    if any(c.split("=")[0] in chosen for c in changes):  # the user's own sizes are not changed behind their back
        changes, plan = [], estimate(cfg, shape, cfg.model.name, gpus, memory)
    return changes, None if plan.fits else "\n".join(render(plan))
