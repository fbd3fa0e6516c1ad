"""The training reward of trace-format.md section 5, as plain functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .diagnostics import EXPERT_CODES, UNREADABLE, Diagnostic

CORRECT, WRONG_ANSWER, INVALID, WRONG_EXPERT, PARSE_FAIL = (
    "correct",
    "wrong_answer",
    "invalid_trace",
    "wrong_expert",
    "parse_fail",
)
OUTCOMES = (CORRECT, WRONG_ANSWER, INVALID, WRONG_EXPERT, PARSE_FAIL)


@dataclass
class RewardWeights:
    """The reward of each outcome; a run's config (`reward.*`) may change them."""

    correct: float = field(default=1.0, metadata={"doc": "reward of a valid trace whose answer matches"})
    wrong_answer: float = field(default=0.7, metadata={"doc": "reward of a valid trace with another answer"})
    invalid: float = field(default=0.5, metadata={"doc": "reward of a readable trace for the right expert with an error (overwrite, undefined_var, ...)"})
    wrong_expert: float = field(default=0.3, metadata={"doc": "reward of a trace for another or an unknown expert"})
    unreadable: float = field(default=0.0, metadata={"doc": "reward of an output that is no trace (parse_error) or was cut off (truncated)"})
    warning_penalty: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0, "doc": "subtracted once per warning, never below 0"})
    # graded pays for format as well as for the answer, so a group that differs only in validity
    # ([.7, .7, .7, .5]) pushes as hard as one that differs in correctness; correct pays for the answer alone
    mode: str = field(default="graded", metadata={"choices": ("graded", "correct"), "doc": "graded: each outcome its reward above; correct: reward.correct for a right answer, 0 for anything else (RL's signal is then about the answer only)"})


DEFAULT_WEIGHTS = RewardWeights()


MAX_EXPONENT = 30


def expected_number(value) -> Fraction | None:
    """An expected answer as an exact number, or None when it is not one. `1e999999999`
    is refused rather than built (that integer would take minutes and gigabytes)."""
    if isinstance(value, Fraction):
        return value
    text = str(value).strip().lower()
    mantissa, _, exponent = text.partition("e")
    try:
        if exponent and abs(int(exponent)) > MAX_EXPONENT:
            return None
        if len(mantissa) > 60:
            return None
        return Fraction(text)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def answers_match(answer, expected) -> bool:
    """Within 0.01 absolute or 1e-6 relative, whichever is larger."""
    if answer is None or expected is None:
        return False
    a, e = Fraction(answer), Fraction(expected)
    return abs(a - e) <= max(Fraction(1, 100), abs(e) * Fraction(1, 10**6))


def outcome(diagnostics: list[Diagnostic], answer, expected) -> str:
    codes = {d.code for d in diagnostics if d.is_error}
    if codes & UNREADABLE:
        return PARSE_FAIL
    if codes & EXPERT_CODES:
        return WRONG_EXPERT
    if codes:
        return INVALID
    return CORRECT if answers_match(answer, expected) else WRONG_ANSWER


def reward(kind: str, warnings: int = 0, weights: RewardWeights = DEFAULT_WEIGHTS) -> float:
    if weights.mode == "correct" and kind != CORRECT:
        return 0.0
    base = {
        CORRECT: weights.correct,
        WRONG_ANSWER: weights.wrong_answer,
        INVALID: weights.invalid,
        WRONG_EXPERT: weights.wrong_expert,
        PARSE_FAIL: weights.unreadable,
    }[kind]
    return max(0.0, base - weights.warning_penalty * warnings)
