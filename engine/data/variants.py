"""Number variants of GSM8K problems, verified by running their gold traces.

A gold trace (gsm8k_traces.py) reads its inputs from numbers written in the
question. Change those numbers in the question and in the trace's `init` steps
together, run the trace, and the new answer is right by construction: no
text-only pipeline can make such data.

A problem qualifies when it has a gold trace and every `init` of a number written
in digits maps to exactly one mention of that number in the question (two
mentions of `2` could each be the one the trace reads: such a problem is left
out). Inputs that come from words (`twice`, `half`) or stated facts (60 minutes
an hour) and the parts of a written fraction (`3/4`) stay as they are.

New numbers keep their kind: integers stay integers (counts stay >= 1) within
half to one and a half times the original, amounts with decimals keep their
decimal places (money its two), percentages stay whole multiples of 5 in 5-95,
and a number written with thousands separators keeps them. A variant is kept
only when its trace runs without any diagnostic and its answer keeps the
original's kind (whole where the original is whole, never negative).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from fractions import Fraction

from ..numbers import BadNumber, decimal
from ..trace import check
from .gsm8k_traces import _FRACTION, _QNUM, Converted, _number

# Why a problem gives no variants (the order is the order the checks run in).
REASONS = {
    "no_gold_trace": "the problem has no gold trace (gsm8k_traces.py says why)",
    "ambiguous_number": "a trace input matches two or more numbers in the question",
    "no_digit_inputs": "no trace input is a number written in digits in the question",
    "no_clean_variant": "no variant ran clean with an answer of the original's kind",
}
_INIT = re.compile(r"^- \{op: init, var: (\w+), value: ([^}]+)\}$", re.M)
ATTEMPTS = 8  # tries per variant asked for


@dataclass
class Mention:
    start: int
    end: int
    text: str
    value: Fraction
    percent: bool
    in_fraction: bool


@dataclass
class Variants:
    index: int
    question: str
    answer: Fraction
    variants: list[dict] = field(default_factory=list)  # {"question", "trace", "answer", "numbers"}
    reason: str | None = None
    detail: str = ""


def mentions(question: str) -> list[Mention]:
    fractions = [(m.start(), m.end()) for m in _FRACTION.finditer(question)]
    out = []
    for m in _QNUM.finditer(question):
        start, end = m.span(1)
        inside = any(a <= start and end <= b for a, b in fractions)
        try:
            value = _number(m.group(1))
        except BadNumber:  # 5,000 digits: no trace reads it, so it is no input to vary or to ground in
            continue
        out.append(Mention(start, end, m.group(1), value, bool(m.group(2)), inside))
    return out


def _inputs(trace: str, facts: list[str]) -> list[tuple[int, int, Fraction]]:
    """(start, end, value) of every init's value in the trace text that was read from the
    question's digits: not the constants the converter took from words and stated facts
    (`twice=2` beside a digit 2 in the question)."""
    out = []
    for m in _INIT.finditer(trace):
        try:
            value = decimal(m.group(2))
        except BadNumber:
            continue
        if f"{m.group(1)}={value}" not in facts:
            out.append((m.start(2), m.end(2), value))
    return out


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def new_value(m: Mention, rng: random.Random) -> tuple[Fraction, str]:
    """Another number of the mention's kind, and how the question writes it."""
    if m.percent:
        choices = [p for p in range(5, 100, 5) if p != m.value]
        p = rng.choice(choices)
        return Fraction(p), str(p)
    places = _decimals(m.text)
    v = float(m.value)
    if places:
        scale = 10**places
        lo, hi = max(1, round(v * 0.5 * scale)), max(2, round(v * 1.5 * scale))
        n = rng.randint(lo, hi)
        if n == round(v * scale):
            n = n + 1
        return Fraction(n, scale), f"{n / scale:.{places}f}"
    lo, hi = max(1, int(v * 0.5)), max(int(v * 1.5), int(v) + 2)
    n = rng.randint(lo, hi)
    if n == int(v):
        n = n + 1 if n < hi else n - 1
    text = f"{n:,}" if "," in m.text else str(n)
    return Fraction(n), text


def _scalar(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else format(float(v), "g")


def make(converted: Converted, k: int, seed: int = 0) -> Variants:
    """Up to k verified variants of one converted problem, or the reason there are none."""
    out = Variants(converted.index, converted.question, converted.answer)
    if not converted.kept:
        out.reason, out.detail = "no_gold_trace", converted.reason or ""
        return out
    question, trace = converted.question, converted.trace
    ms = mentions(question)
    plan = []  # (trace start, trace end, mention, as a rate of the percentage)
    for start, end, value in _inputs(trace, converted.facts):
        digits = [m for m in ms if not m.in_fraction and m.value == value]
        rates = [m for m in ms if not m.in_fraction and m.percent and m.value / 100 == value]
        found = digits + rates
        if len(found) > 1:
            out.reason, out.detail = "ambiguous_number", _scalar(value)
            return out
        if found:
            plan.append((start, end, found[0], bool(rates)))
    if not plan:
        out.reason = "no_digit_inputs"
        return out
    rng = random.Random(seed * 1_000_003 + converted.index)
    whole = converted.answer.denominator == 1
    seen = set()
    for _ in range(k * ATTEMPTS):
        if len(out.variants) >= k:
            break
        chosen = {}
        for _, _, m, _ in plan:
            if id(m) not in chosen:
                chosen[id(m)] = (m, *new_value(m, rng))
        q = question
        for m, _, text in sorted(chosen.values(), key=lambda c: -c[0].start):
            q = q[: m.start] + text + q[m.end :]
        t = trace
        for start, end, m, rate in sorted(plan, key=lambda p: -p[0]):
            value = chosen[id(m)][1]
            t = t[:start] + _scalar(value / 100 if rate else value) + t[end:]
        if q in seen:
            continue
        seen.add(q)
        report = check(t)
        answer = report.answer
        if report.diagnostics or answer is None:
            continue
        answer = Fraction(answer).limit_denominator(10**6)
        if answer < 0 or (whole and answer.denominator != 1):
            continue
        out.variants.append({"question": q, "trace": t, "answer": answer,
                             "numbers": {m.text: text for m, _, text in chosen.values()}})
    if not out.variants:
        out.reason = "no_clean_variant"
    return out


def for_rows(rows: list[dict], k: int, seed: int = 0) -> list[Variants]:
    """Variants of GSM8K records (question, answer with its solution), the index being the row's."""
    from .gsm8k_traces import convert

    return [make(convert(i, r["question"], r["answer"]), k, seed) for i, r in enumerate(rows)]


def of_gold(gold, k: int, seed: int = 0) -> list[dict]:
    """k verified variants of each kept gold trace (training uses them beside the originals)."""
    return [v for c in gold for v in make(c, k, seed).variants]


def records(done: list[Variants]):
    """The lines of `engine data variants`' file: each variant with its problem's index, a problem
    file for `engine eval` (question, answer) that also carries the trace."""
    from ..trace import as_number

    for v in done:
        for n, x in enumerate(v.variants):
            yield {"question": x["question"], "answer": as_number(x["answer"]), "expert": "arithmetic",
                   "pattern": "gsm8k-variant", "trace": x["trace"], "gsm8k_index": v.index, "variant": n,
                   "numbers": x["numbers"]}


def summary(done: list[Variants]) -> list[tuple[str, int]]:
    """(outcome, problems) rows: how many gave variants, and why the rest did not."""
    from collections import Counter

    counts = Counter("variants" if v.variants else v.reason for v in done)
    return [("variants", counts.pop("variants", 0))] + [(r, counts[r]) for r in REASONS if counts.get(r)]
