"""trace: the model writes a YAML trace; the checker runs it (the reward of the spec).

Trains on synthetic problems plus GSM8K training solutions converted to gold
traces; evaluates on held-out synthetic problems, GSM8K test and any problem
files; RL draws fresh questions in the proportions of the SFT mix."""

from __future__ import annotations

import random
from functools import lru_cache

from ..data import gsm8k
from ..data.prompts import SYSTEM, trace_answer
from ..data.synthetic import generate as synthesize
from ..trace import as_number, check, expert_label
from .common import Item, Score, gsm8k_dev, gsm8k_source, gsm8k_test, problem_sets

EVAL_SEED_OFFSET = 10_007  # held-out synthetic problems come from another stream of the generator

name = "trace"
summary = "write a YAML trace that the checker runs (synthetic problems + GSM8K as gold traces)"
system = SYSTEM


def gsm8k_gold(cfg, drops=None) -> list:
    """The GSM8K training problems of the trace mix, as gold traces: never the test split, never
    the development split, none that matches a test question (engine/protocol.py; `drops` counts them)."""
    if not cfg.data.gsm8k_traces:
        return []
    out = []  # the first data.gsm8k_traces kept traces, in the seed's order, of the problems not skipped
    for c, why in _gold(cfg.data.gsm8k_traces, cfg.data.seed, gsm8k_source(cfg)):
        if drops is not None:
            drops.add("GSM8K gold traces", why)
        if not why:
            out.append(c)
    return out


@lru_cache(maxsize=8)
def _gold(n: int, seed: int, source: str | None) -> tuple:
    """(trace, why it is skipped or None) in the seed's order, up to the n-th not skipped; a run
    asks three times. Rows are checked as they come, not all 7,473 first."""
    from .. import protocol
    from ..data import gsm8k_traces
    from ..data.gsm8k import load_rows

    rows = load_rows(source, "train")
    out, wanted = [], 0
    for c in gsm8k_traces.kept(rows, seed):
        if wanted >= n:
            break
        why = protocol.excluded_row(c.index, rows[c.index]["question"], len(rows), source)
        out.append((c, why))
        wanted += why is None
    return tuple(out)


def training_pairs(cfg, drops=None) -> list[tuple[str, str]]:
    from ..protocol import clean

    ex = synthesize(cfg.data.train_size, cfg.data.seed, cfg.data.mix or None, cfg.data.phrasings)
    pairs = [(e.question, trace_answer(e.trace)) for e in ex]
    gold = gsm8k_gold(cfg, drops)
    pairs += [(c.question, trace_answer(c.trace)) for c in gold]
    source = gsm8k_source(cfg)
    if cfg.data.gsm8k_variants:  # the same problems with other numbers, answers verified by running their traces
        from ..data.variants import of_gold

        found = [(v["question"], trace_answer(v["trace"])) for v in of_gold(gold, cfg.data.gsm8k_variants, cfg.data.seed)]
        pairs += [p for p, ok in zip(found, clean([q for q, _ in found], "number variants", source, drops)) if ok]
    if cfg.data.self_traces:  # the model's own right, clean traces (expert iteration)
        from ..data import problems
        from ..data.self_traces import kept_trace

        # checked again here: a file from elsewhere teaches only traces that run to their answer, clean,
        # of no test question and no development problem
        found = [(p.question, trace_answer(p.trace)) for p in problems.load(cfg.data.self_traces)
                 if p.trace and kept_trace(trace_answer(p.trace), p.answer, p.question)]
        pairs += [p for p, ok in zip(found, clean([q for q, _ in found], cfg.data.self_traces, source, drops)) if ok]
    random.Random(cfg.data.seed).shuffle(pairs)
    return pairs


def eval_sets(cfg) -> dict[str, list[Item]]:
    sets = gsm8k_dev(cfg)  # first where asked for: the best checkpoint is chosen on it
    if cfg.eval.synthetic:
        ex = synthesize(cfg.eval.synthetic, cfg.data.seed + EVAL_SEED_OFFSET, cfg.eval.mix or None, cfg.data.phrasings)
        sets["synthetic"] = [Item(e.question, e.answer, e.expert) for e in ex]
    if cfg.eval.synthetic_unseen and cfg.data.phrasings == "one":  # under `all` training saw every wording
        ex = synthesize(cfg.eval.synthetic_unseen, cfg.data.seed + EVAL_SEED_OFFSET + 1, cfg.eval.mix or None, "unseen")
        sets["synthetic-unseen"] = [Item(e.question, e.answer, e.expert) for e in ex]
    sets |= gsm8k_test(cfg)
    return sets | problem_sets(cfg)


def rl_questions(cfg, seed: int) -> list[Item]:
    """Fresh synthetic problems and GSM8K training problems, in the proportions of the SFT mix."""
    r = random.Random(seed)
    real = gsm8k_gold(cfg)
    share = len(real) / (len(real) + cfg.data.train_size)
    n_real = sum(r.random() < share for _ in range(cfg.rl.questions))
    ex = synthesize(cfg.rl.questions - n_real, seed, cfg.data.mix or None, cfg.data.phrasings)
    items = [Item(e.question, e.answer, e.expert) for e in ex]
    items += [Item(c.question, c.answer) for c in r.sample(real, min(n_real, len(real)))]  # any expert may solve it
    r.shuffle(items)
    return items


def score(cfg, item: Item, text: str, cut: bool) -> Score:
    return score_with(cfg.reward, item, text, cut)


def score_with(weights, item: Item, text: str, cut: bool) -> Score:
    """The trace reward with these weights (also TRL's reward, integrations/trl.py)."""
    r = check(text, item.answer, item.expert, weights, cut_off=cut)
    label = item.expert or (expert_label(r.expert) if r.expert is not None else "unparsed")
    return Score(r.outcome, r.reward, r.valid, as_number(r.answer), r.codes, label)
