"""Tasks: what differs between runs that teach different things. Everything else
(sessions, events, loops, dashboard) is shared.

A task is a module in this package with `name`, `summary`, `system` (the system
prompt) and four functions: `training_pairs(cfg)` (user turn, assistant turn
for SFT), `eval_sets(cfg)` (name -> items), `rl_questions(cfg, seed)` (what
one RL iteration asks) and `score(cfg, item, text, cut)`. A new task is one
new file and one entry in TASKS.
"""

from __future__ import annotations

from . import cot, instruct, trace
from .common import Item, Score
from .cot import final_number
from .instruct import INSTRUCT_SYSTEM, instruction_prompt, read_instructions
from .trace import EVAL_SEED_OFFSET, gsm8k_gold

TASKS = {t.name: t for t in (trace, cot, instruct)}

__all__ = ["EVAL_SEED_OFFSET", "INSTRUCT_SYSTEM", "Item", "Score", "TASKS", "eval_set_sizes", "eval_sets", "final_number", "get",
           "gsm8k_gold", "instruction_prompt", "read_instructions", "rl_questions", "score", "system_prompt",
           "training_pairs"]


def get(cfg):
    return TASKS[cfg.run.task]


def system_prompt(cfg) -> str:
    return get(cfg).system


def training_pairs(cfg, drops=None) -> list[tuple[str, str]]:
    """`drops` (engine/protocol.Drops) hears what the protocol's checks kept out of training."""
    return get(cfg).training_pairs(cfg, drops)


def eval_sets(cfg) -> dict[str, list[Item]]:
    return get(cfg).eval_sets(cfg)


def eval_set_sizes(cfg) -> dict[str, int]:
    """The evaluation sets, in order, and their problem counts: what run_started says (`eval_sets`)
    and what the plan's time estimate counts, from the sets themselves (0.2-0.5 s: GSM8K read,
    synthetic problems made). {} when the run evaluates nothing."""
    if "eval" not in cfg.run.phases:
        return {}
    return {name: len(items) for name, items in eval_sets(cfg).items()}


def rl_questions(cfg, seed: int) -> list[Item]:
    return get(cfg).rl_questions(cfg, seed)


def score(cfg, item: Item, text: str, cut: bool) -> Score:
    """The outcome and reward of one output. Never raises: one odd sample must not end a
    run, so a failure inside scoring scores 0 and carries `error` for the loop to alert on."""
    try:
        return get(cfg).score(cfg, item, text, cut)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the run goes on
        return Score("parse_fail", 0.0, False, None, ["scoring_error"], item.expert or "unparsed",
                     error=f"{type(exc).__name__}: {str(exc)[:200]}")
