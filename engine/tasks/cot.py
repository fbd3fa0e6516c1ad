"""cot: the model writes a worked GSM8K solution ending in `#### N`; the final number is compared."""

from __future__ import annotations

import random
import re

from ..data import gsm8k
from ..data.prompts import COT_SYSTEM
from ..trace import answers_match, as_number
from ..trace.loops import text_loops
from .common import Item, Score, gsm8k_dev, gsm8k_source, gsm8k_test, plain, problem_sets

name = "cot"
summary = "write a worked solution ending in `#### N` (GSM8K train); the final number is compared"
system = COT_SYSTEM

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def final_number(text: str):
    """The model's final answer: after `####` if it wrote one (read as GSM8K's own answers
    are read), else the last number in the text."""
    if "####" in text:
        try:
            return gsm8k.parse_answer(text)
        except ValueError:
            pass
    last = _NUMBER.findall(text)[-1:]
    try:
        return gsm8k.number(last[0]) if last else None
    except ValueError:
        return None


def _train_problems(cfg, drops=None) -> list:
    """The first data.train_size training problems that are neither development problems nor test
    questions in disguise (engine/protocol.py)."""
    from ..protocol import excluded_train

    skip = excluded_train(gsm8k_source(cfg))
    out = []
    for i, p in enumerate(gsm8k.load(gsm8k_source(cfg), "train", cfg.data.train_size + len(skip))):
        if len(out) >= cfg.data.train_size:
            break
        if drops is not None:
            drops.add("GSM8K training problems", skip.get(i))
        if i not in skip:
            out.append(p)
    return out


def training_pairs(cfg, drops=None) -> list[tuple[str, str]]:
    return [(p.question, f"{p.solution}\n#### {plain(p.answer)}") for p in _train_problems(cfg, drops)]


def eval_sets(cfg) -> dict[str, list[Item]]:
    sets = gsm8k_dev(cfg)
    sets |= gsm8k_test(cfg)
    return sets | problem_sets(cfg)


def rl_questions(cfg, seed: int) -> list[Item]:
    pool = [Item(p.question, p.answer) for p in _train_problems(cfg)]
    return random.Random(seed).sample(pool, min(cfg.rl.questions, len(pool)))


def score(cfg, item: Item, text: str, cut: bool) -> Score:
    codes = ["text_loop"] if text_loops(text) else []
    if cut:
        codes.append("truncated")
    value = final_number(text)
    if value is None:
        return Score("parse_fail", 0.0, False, None, codes, "gsm8k")
    ok = answers_match(value, item.answer)
    return Score("correct" if ok else "wrong_answer", 1.0 if ok else 0.0, True, as_number(value), codes, "gsm8k")
