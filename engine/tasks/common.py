"""What every task shares: an evaluation item, the score of one output, and the
GSM8K source a config names."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from ..trace import as_number


@dataclass
class Item:
    question: str
    answer: object  # a number for trace and cot; the reference text for instruct
    expert: str | None = None  # None where the set does not say (GSM8K)


@dataclass
class Score:
    outcome: str
    reward: float
    valid: bool
    answer: object = None
    codes: list[str] = field(default_factory=list)
    label: str = "all"  # the row of by_expert this output counts under
    error: str | None = None  # scoring itself failed (a checker bug): the output scores 0


def gsm8k_source(cfg) -> str | None:
    """The GSM8K source of the config: None is the copy shipped with the project."""
    return None if cfg.data.gsm8k == "auto" else cfg.data.gsm8k


def gsm8k_test(cfg) -> dict[str, list[Item]]:
    """The GSM8K test problems of `eval.gsm8k`/`eval.gsm8k_from`, named `gsm8k` from the first
    problem and `gsm8k-FIRST-LAST` otherwise, so sets of different problems never share a name."""
    from ..data import gsm8k

    if not cfg.eval.gsm8k:
        return {}
    span = gsm8k_test_span(cfg)
    probs = gsm8k.load(gsm8k_source(cfg), "test", span.stop)[span]
    name = "gsm8k" if span.start == 0 else f"gsm8k-{span.start + 1}-{span.start + len(probs)}"
    return {name: [Item(p.question, p.answer) for p in probs]} if probs else {}


def gsm8k_dev(cfg) -> dict[str, list[Item]]:
    """The development split (`eval.dev` of its problems) as the set `gsm8k-dev`: GSM8K training
    problems no run trains on (engine/protocol.py), where choices are made."""
    from ..protocol import dev_problems

    if not cfg.eval.dev:
        return {}
    return {"gsm8k-dev": [Item(p.question, p.answer) for p in dev_problems(gsm8k_source(cfg), cfg.eval.dev)]}


def gsm8k_test_span(cfg) -> slice:
    """Which GSM8K test problems the config evaluates on (`eval.gsm8k_from`, `eval.gsm8k`), 0-based."""
    start = cfg.eval.gsm8k_from - 1
    return slice(start, start + cfg.eval.gsm8k)


def plain(x) -> str:
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else str(float(x))


def problem_sets(cfg) -> dict[str, list[Item]]:
    """The extra eval sets of `eval.problems` (the first `eval.problems_limit` of each, read no
    further), each named after its file (`folder/name` where two files share a name)."""
    from ..data import problems

    names = problems.set_names(cfg.eval.problems)
    return {names[p]: [Item(q.question, q.answer, q.expert) for q in problems.load(p, cfg.eval.problems_limit or None)]
            for p in cfg.eval.problems}


def sample_record(item: Item, completion, s: Score) -> dict:
    """The fields of a `sample` event (docs/events.md) for one scored output: evaluations, RL
    and the TRL integration write the same record. `completion` has `text` and `cut`."""
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
