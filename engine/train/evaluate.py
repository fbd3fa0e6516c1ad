"""Greedy, batched evaluation of any task on its evaluation sets."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from ..data.prompts import prompt_text
from ..health import health, top_codes
from ..rollout import generate
from ..tasks import Item, Score, score, system_prompt
from ..tasks.common import sample_record
from ..stats import majority, paired, wilson
from ..trace import OUTCOMES, answers_match


def evaluate(model, tokenizer, items: list[Item], cfg, on_batch=None) -> tuple[dict, list[dict]]:
    """The `eval` event's fields and one sample record per item (`model`: what generates).

    The first output per item is greedy and gives accuracy; with eval.samples = k > 1,
    k - 1 more are sampled at eval.temperature for pass@k and majority-vote@k.
    """
    system = system_prompt(cfg)
    prompts = [prompt_text(tokenizer, it.question, system) for it in items]
    comps, speed = generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, 0.0, batch_size=cfg.eval.batch_size,
                            on_batch=on_batch, fast=cfg.model.fast_decode)
    counts, by_expert, codes, samples = Counter(), {}, [], []
    scores = []
    for it, c in zip(items, comps):
        s = score(cfg, it, c.text, c.cut)
        scores.append(s)
        counts[s.outcome] += 1
        slot = by_expert.setdefault(s.label, {"total": 0, "correct": 0})
        slot["total"] += 1
        slot["correct"] += s.outcome == "correct"
        codes.append(s.codes)
        samples.append(sample_record(it, c, s))
    for slot in by_expert.values():
        slot["ci"] = list(wilson(slot["correct"], slot["total"]))
    errors = [s.error for s in scores if s.error]
    n = max(len(items), 1)
    fields = {
        "accuracy": counts["correct"] / n,
        "accuracy_ci": list(wilson(counts["correct"], len(items))),
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
    if errors:
        fields["scoring_errors"] = {"count": len(errors), "first": errors[0]}
    if cfg.eval.samples > 1 and items:
        fields.update(_k_samples(model, tokenizer, items, prompts, scores, cfg, [c.text for c in comps]))
    return fields, samples


def _k_samples(model, tokenizer, items, prompts, greedy: list[Score], cfg, greedy_texts: list[str]) -> dict:
    """pass@k (any of k outputs right) and maj@k (the most common answer of the valid outputs is
    right); with eval.vote=grounded also grounded-maj@k: only outputs that run clean and are
    grounded in the question vote (the executor chooses among samples)."""
    import time

    k = cfg.eval.samples
    many = [p for p in prompts for _ in range(k - 1)]
    t0 = time.perf_counter()
    comps, _ = generate(model, tokenizer, many, cfg.eval.max_new_tokens, cfg.eval.temperature,
                        batch_size=cfg.eval.batch_size, fast=cfg.model.fast_decode)
    seconds = time.perf_counter() - t0
    passed, voted, grounded = 0, [], []
    for i, it in enumerate(items):
        mine = comps[i * (k - 1) : (i + 1) * (k - 1)]
        outs = [greedy[i]] + [score(cfg, it, c.text, c.cut) for c in mine]
        passed += any(s.outcome == "correct" for s in outs)
        vote = majority([Fraction(str(s.answer)) if s.valid and s.answer is not None else None for s in outs])
        voted.append(vote is not None and answers_match(vote, it.answer))
        if cfg.eval.vote == "grounded":
            texts = [greedy_texts[i]] + [c.text for c in mine]
            vote = majority([grounded_answer(t, s, it.question) for t, s in zip(texts, outs)])
            grounded.append(vote is not None and answers_match(vote, it.answer))
    n, right = len(items), [s.outcome == "correct" for s in greedy]
    out = {"samples": k, "temperature": cfg.eval.temperature, "sample_seconds": round(seconds, 1),
           "pass_at_k": passed / n, "pass_at_k_ci": list(wilson(passed, n)),
           "maj_at_k": sum(voted) / n, "maj_at_k_ci": list(wilson(sum(voted), n)),
           "maj_vs_greedy": paired(right, voted)}  # the vote as B, greedy as A: same problems, paired
    if cfg.eval.vote == "grounded":
        out |= {"grounded_maj_at_k": sum(grounded) / n, "grounded_maj_at_k_ci": list(wilson(sum(grounded), n)),
                "grounded_vs_greedy": paired(right, grounded)}
    return out


def grounded_answer(text: str, s: Score, question: str):
    """The answer of an output that may vote under eval.vote=grounded, or None: its trace runs with
    no error diagnostic to an answer (valid; right or wrong is not known here) and reads every input
    from the question, inventing none (engine/data/self_traces.py's `ungrounded`)."""
    from ..data.self_traces import ungrounded
    from ..trace.parser import extract

    if not s.valid or s.answer is None or s.outcome not in ("correct", "wrong_answer"):
        return None
    body, _, _ = extract(text)
    return None if ungrounded(body, question) else Fraction(str(s.answer))
