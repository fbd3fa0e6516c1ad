"""Greedy, batched evaluation on held-out synthetic problems and GSM8K."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..data import gsm8k
from ..data.prompts import prompt_text
from ..data.synthetic import generate as synthesize
from ..health import health, top_codes
from ..rollout import generate
from ..trace import OUTCOMES, RewardWeights, as_number, check, expert_label

EVAL_SEED_OFFSET = 10_007  # held-out problems come from another stream of the generator


@dataclass
class Item:
    question: str
    answer: object
    expert: str | None  # None where the set does not say (GSM8K)


def eval_sets(cfg) -> dict[str, list[Item]]:
    sets = {}
    if cfg.eval.synthetic:
        ex = synthesize(cfg.eval.synthetic, cfg.data.seed + EVAL_SEED_OFFSET, cfg.data.mix or None, cfg.data.phrasings)
        sets["synthetic"] = [Item(e.question, e.answer, e.expert) for e in ex]
    if cfg.eval.gsm8k:
        source = None if cfg.data.gsm8k == "auto" else cfg.data.gsm8k
        sets["gsm8k"] = [Item(p.question, p.answer, None) for p in gsm8k.load(source, "test", cfg.eval.gsm8k)]
    return sets


def weights(cfg) -> RewardWeights:
    r = cfg.reward
    return RewardWeights(r.correct, r.wrong_answer, r.invalid, r.wrong_expert, r.unreadable, r.warning_penalty)


def evaluate(model, tokenizer, items: list[Item], cfg) -> tuple[dict, list[dict]]:
    """The `eval` event's fields and one sample record per item."""
    prompts = [prompt_text(tokenizer, it.question) for it in items]
    comps, speed = generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, 0.0, batch_size=cfg.eval.batch_size)
    w = weights(cfg)
    counts, by_expert, codes, samples = Counter(), {}, [], []
    for it, c in zip(items, comps):
        r = check(c.text, it.answer, it.expert, w, cut_off=c.cut)
        counts[r.outcome] += 1
        label = it.expert or (expert_label(r.expert) if r.expert is not None else "unparsed")
        slot = by_expert.setdefault(label, {"total": 0, "correct": 0})
        slot["total"] += 1
        slot["correct"] += r.outcome == "correct"
        codes.append(r.codes)
        samples.append(sample_record(it, c, r))
    n = max(len(items), 1)
    fields = {
        "accuracy": counts["correct"] / n,
        "parse_rate": (n - counts["parse_fail"]) / n,
        "valid_rate": sum(1 for s in samples if s["valid"]) / n,
        **{k: counts[k] for k in OUTCOMES},
        "total": len(items),
        "by_expert": by_expert,
        "diagnostic_counts": top_codes(codes),
        "health": health([c.text for c in comps], [c.cut for c in comps], prompts, [len(c.tokens) for c in comps]),
        "tokens_per_s": speed["tokens_per_s"],
    }
    return fields, samples


def sample_record(item: Item, completion, report) -> dict:
    return {
        "question": item.question,
        "expected_answer": as_number(report.expected_answer),
        "expected_expert": item.expert,
        "text": completion.text,
        "answer": as_number(report.answer),
        "reward": report.reward,
        "outcome": report.outcome,
        "valid": report.valid,
        "codes": report.codes,
        "cut": completion.cut,
    }
