"""Greedy, batched evaluation of any task on its evaluation sets."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from ..data.prompts import prompt_text
from ..health import health, top_codes
from ..rollout import generate
from ..tasks import Item, Score, score, system_prompt
from ..trace import OUTCOMES, as_number


def evaluate(model, tokenizer, items: list[Item], cfg) -> tuple[dict, list[dict]]:
    """The `eval` event's fields and one sample record per item (`model`: what generates)."""
    system = system_prompt(cfg)
    prompts = [prompt_text(tokenizer, it.question, system) for it in items]
    comps, speed = generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, 0.0, batch_size=cfg.eval.batch_size)
    counts, by_expert, codes, samples = Counter(), {}, [], []
    for it, c in zip(items, comps):
        s = score(cfg, it, c.text, c.cut)
        counts[s.outcome] += 1
        slot = by_expert.setdefault(s.label, {"total": 0, "correct": 0})
        slot["total"] += 1
        slot["correct"] += s.outcome == "correct"
        codes.append(s.codes)
        samples.append(sample_record(it, c, s))
    n = max(len(items), 1)
    fields = {
        "accuracy": counts["correct"] / n,
        "parse_rate": (n - counts["parse_fail"]) / n,
        "valid_rate": sum(1 for s in samples if s["valid"]) / n,
        **{k: counts[k] for k in OUTCOMES},
        "total": len(items),
        "mean_reward": sum(s["reward"] for s in samples) / n,
        "by_expert": by_expert,
        "diagnostic_counts": top_codes(codes),
        "health": health([c.text for c in comps], [c.cut for c in comps], prompts, [len(c.tokens) for c in comps]),
        "tokens_per_s": speed["tokens_per_s"],
    }
    return fields, samples


def sample_record(item: Item, completion, s: Score) -> dict:
    return {
        "question": item.question,
        "expected_answer": item.answer if isinstance(item.answer, str) else _num(item.answer),
        "expected_expert": item.expert,
        "text": completion.text,
        "answer": s.answer,
        "reward": s.reward,
        "outcome": s.outcome,
        "valid": s.valid,
        "codes": s.codes,
        "cut": completion.cut,
    }


def _num(x):
    return as_number(Fraction(x)) if x is not None else None
