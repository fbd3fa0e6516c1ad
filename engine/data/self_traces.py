"""Expert iteration's data: traces the model itself wrote for GSM8K training problems, kept
only when the executor runs them to the right answer with no error diagnostic, from
numbers the question writes, reading every one (`ungrounded`).

For each problem, k outputs (the first greedy, the rest sampled); a kept trace is
deduplicated by its steps (whitespace and the fence aside), so k samples of one trace
count once. Problems without a gold trace (no annotation, an invented number, ...) can
gain one here: the model's own program, checked by running it. Test problems never
come here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from ..numbers import BadNumber, decimal, shown
from ..trace import check
from ..trace.parser import extract, parse
from ..trace.diagnostics import ERROR


@dataclass
class Found:
    index: int
    question: str
    answer: object
    traces: list[str] = field(default_factory=list)  # kept, deduplicated
    lucky: int = 0  # outputs right and clean but not grounded in the question: left out


# numbers a trace may start from without the question writing them: what words say (twice,
# half, a dozen, a week, an hour, percent) and the unit facts a solution states
CONSTANTS = frozenset(Fraction(x) for x in (1, 2, 3, 4, 5, 7, 10, 12, 24, 30, 52, 60, 100, 365, 1000, "1/2", "1/4"))


def kept_trace(text: str, answer, question: str | None = None) -> str | None:
    """The trace of an output (its YAML, without the fence) when it runs to `answer` with no
    error diagnostic and, given the question, is grounded in it (`ungrounded`); None otherwise."""
    report = check(text, answer)
    if report.outcome != "correct" or any(d.severity == ERROR for d in report.diagnostics):
        return None
    body, _, _ = extract(text)  # the YAML the checker read: the chatter around it is not trained on
    if question is not None and ungrounded(body, question):
        return None
    return body.strip() + "\n"


def ungrounded(trace: str, question: str) -> str | None:
    """Why a trace that reaches the right answer may have reached it by luck, or None: it starts
    from a number the question does not write (and no word says: twice, a dozen, an hour), or
    leaves a number of the question unread. A 5%-accurate model lands on answers through wrong
    computations (6 x 6 - 30 = 6 from misread numbers); these two rules keep such traces out."""
    from .gsm8k_traces import MAX_TEXT
    from .variants import _scalar, mentions

    if len(question) > MAX_TEXT:  # reading its numbers would cost the square of its length
        return f"the question is longer than {MAX_TEXT:,} characters"
    parsed = parse(trace)
    if parsed.trace is None:
        return "unreadable"
    inits = []
    for part in parsed.trace.parts:
        for step in part.steps:
            if step.op == "init" and "value" in step.fields:
                value = step.fields["value"]
                try:  # the trace reader gives a bounded Fraction; anything else is read as bounded text
                    inits.append(value if isinstance(value, Fraction) else decimal(str(value)))
                except BadNumber:
                    return f"init value {shown(str(value))} is not a number"
    written = {m.value for m in mentions(question) if not m.in_fraction}
    written |= {v / 100 for v in written}  # 25% read as 0.25
    invented = [v for v in inits if v not in written and v not in CONSTANTS]
    if invented:
        return f"starts from {_scalar(invented[0])}, which the question does not write"
    unread = [m for m in mentions(question) if not m.in_fraction and m.value not in inits and m.value / 100 not in inits
              and m.value != 0 and not (m.value.denominator == 1 and 1900 <= m.value <= 2100)]  # a year, a zero: not inputs
    if unread:
        return f"never reads the question's {unread[0].text}"
    return None


def _key(trace: str) -> str:
    return re.sub(r"\s+", " ", trace).strip()


def collect(items: list[tuple[int, str, object]], outputs: list[list[str]]) -> list[Found]:
    """`items`: (index, question, answer); `outputs[i]`: the k texts written for item i."""
    found = []
    for (index, question, answer), texts in zip(items, outputs):
        f = Found(index, question, answer)
        seen = set()
        for text in texts:
            trace = kept_trace(text, answer)
            if trace and ungrounded(trace, question):
                f.lucky += 1
            elif trace and _key(trace) not in seen:
                seen.add(_key(trace))
                f.traces.append(trace)
        found.append(f)
    return found
