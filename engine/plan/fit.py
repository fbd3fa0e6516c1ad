"""A plan with what to change, and a run sized to its GPU: the estimate with advice where the peak
does not fit, the loop that halves micro-batches until it does, and the check a GPU run makes
before it loads (`sized`)."""

from __future__ import annotations

import copy

from ..algorithms import for_config
from ..config import bounds
from ..modelshape import BadModelConfig, Shape
from .advice import advice
from .memory import WORST_ACT, Plan, known_shape, peaks, rollout_rows
from .render import render


def estimate(cfg, shape: Shape, model: str, gpus: int = 1, memory: float | None = None, device: str = "cuda",
             act: float | None = None) -> Plan:
    """The memory model's peaks (plan.memory), with what to change in its notes when they do not fit."""
    plan = peaks(cfg, shape, model, gpus, memory, device, act)
    if plan.fits is False:
        plan.notes += advice(cfg, plan)
    return plan


def fit(cfg, shape: Shape, model: str, gpus: int, memory: float, chosen: set[str] = frozenset()) -> tuple[list[str], Plan]:
    """Micro-batches sized to the model: the `--set` changes (activation checkpointing on, RL
    micro-batch halved, SFT batch halved with its accumulation doubled: as many examples a
    step, in more passes) that make the run fit `memory`, and the plan with them; keys in
    `chosen` are left as they are. No changes when it fits as it is; the last plan when
    halving down to one still does not fit."""
    cfg = copy.deepcopy(cfg)
    changes: dict[str, str] = {}
    plan = estimate(cfg, shape, model, gpus, memory)
    while not plan.fits:
        peak = plan.peak.name
        if peak in ("sft step", "rl update") and not cfg.model.activation_checkpointing and \
                "model.activation_checkpointing" not in chosen:  # memory, not maths: before any batch changes
            cfg.model.activation_checkpointing = True
            changes["model.activation_checkpointing"] = "true"
        elif peak == "rl update" and cfg.rl.micro_batch > 1 and "rl.micro_batch" not in chosen:
            cfg.rl.micro_batch //= 2
            changes["rl.micro_batch"] = str(cfg.rl.micro_batch)
        elif peak == "sft step" and cfg.sft.batch_size > 1 and not {"sft.batch_size", "sft.grad_accum"} & chosen:
            cfg.sft.batch_size //= 2
            cfg.sft.grad_accum *= 2
            changes["sft.batch_size"], changes["sft.grad_accum"] = str(cfg.sft.batch_size), str(cfg.sft.grad_accum)
        elif peak == "decode" and cfg.eval.batch_size > max(1, rollout_rows(cfg)) and "eval.batch_size" not in chosen:
            cfg.eval.batch_size //= 2  # (else hf rollouts set the batch)
            changes["eval.batch_size"] = str(cfg.eval.batch_size)
        else:
            break
        plan = estimate(cfg, shape, model, gpus, memory)
    return [f"{k}={v}" for k, v in changes.items()], plan


# Grow only while the peak stays under this share of the GPU with every activation counted at its
# most (WORST_ACT, fp32: the plan's 2.5 bytes a value on a GPU is unmeasured, and without
# checkpointing activations are most of the peak). The rest of the plan was within +9% / -4% of
# measured peaks on the CPU and +6% of one RL update on an H200; the 15% left is for that and the
# allocator's fragmentation. Shrinking (`fit`) goes to the whole GPU at the plan's own figure:
# there the choice is between a run that may fit and one that surely does not.
GROW_HEADROOM = 0.85


def grow(cfg, shape: Shape, model: str, gpus: int, memory: float, chosen: set[str] = frozenset()) -> list[str]:
    """Where the run fits with room to spare, the `--set` changes that spend the room on speed
    without changing what is trained on: activation checkpointing off (it recomputes each layer
    in backward, ~1/3 more compute), then the RL update's micro-batch doubled up to an
    iteration's every sample on this rank (the same sums in fewer passes). Each only while the
    peak, its activations at their most, stays under GROW_HEADROOM of `memory`; keys in
    `chosen` (the user's own) are never changed. SFT's batch stays: which examples make a step
    depends on it."""
    cfg = copy.deepcopy(cfg)
    changes: dict[str, str] = {}

    def roomy() -> bool:
        return estimate(cfg, shape, model, gpus, memory, act=WORST_ACT).peak.total <= GROW_HEADROOM * memory

    def attempt(key: str, value) -> bool:
        """Set `key` (a `section.name`) to `value`; kept, and recorded, only where the run still has room."""
        top = bounds(key)[2]
        if key in chosen or (top is not None and not isinstance(value, bool) and value > top):
            return False
        section, name = getattr(cfg, key.split(".")[0]), key.split(".")[1]
        before = getattr(section, name)
        setattr(section, name, value)
        if roomy():
            changes[key] = str(value).lower() if isinstance(value, bool) else str(value)
            return True
        setattr(section, name, before)
        return False

    if not roomy():
        return []
    if cfg.model.activation_checkpointing:
        attempt("model.activation_checkpointing", False)
    rl = cfg.rl
    rows = rl.questions * for_config(cfg).group_size  # one iteration's samples on one rank
    while "rl" in cfg.run.phases and rl.micro_batch < rows and attempt("rl.micro_batch", min(2 * rl.micro_batch, rows)):
        pass
    return [f"{k}={v}" for k, v in changes.items()]


def sized(cfg, gpus: int, memory: float, chosen: set[str], room: bool = True) -> tuple[list[str], str | None]:
    """For a GPU run about to load: micro-batches sized to the model and this GPU (`--set`s to
    apply; none that the user chose): smaller until the run fits, or, where it fits with room
    (and `room`: not for a resumed run), larger and without activation checkpointing (`grow`);
    or why it will not fit even so, with what to change."""
    try:
        shape = known_shape(cfg.model.name)
    except BadModelConfig as exc:
        return [], str(exc)
    if shape is None:
        return [], None
    changes, plan = fit(cfg, shape, cfg.model.name, gpus, memory, chosen)  # the user's own sizes are kept
    if room and plan.fits and not changes:
        changes = grow(cfg, shape, cfg.model.name, gpus, memory, chosen)
    return changes, None if plan.fits else "\n".join(render(plan))
