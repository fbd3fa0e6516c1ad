"""What every task shares: an evaluation item, the score of one output, and the
GSM8K source a config names."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


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
