"""Expert iteration's data: traces the model itself wrote for GSM8K training problems, kept
only when the executor runs them to the right answer with no error diagnostic.

For each problem, k outputs (the first greedy, the rest sampled); a kept trace is
deduplicated by its steps (whitespace and the fence aside), so k samples of one trace
count once. Problems without a gold trace (no annotation, an invented number, ...) can
gain one here: the model's own program, checked by running it. Test problems never
come here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..trace import check
from ..trace.parser import extract
from ..trace.diagnostics import ERROR


@dataclass
class Found:
    index: int
    question: str
    answer: object
    traces: list[str] = field(default_factory=list)  # kept, deduplicated


def kept_trace(text: str, answer) -> str | None:
    """The trace of an output (its YAML, without the fence) when it runs to `answer` with no
    error diagnostic; None otherwise."""
    report = check(text, answer)
    if report.outcome != "correct" or any(d.severity == ERROR for d in report.diagnostics):
        return None
    body, _, _ = extract(text)  # the YAML the checker read: the chatter around it is not trained on
    return body.strip() + "\n"


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
            if trace and _key(trace) not in seen:
                seen.add(_key(trace))
                f.traces.append(trace)
        found.append(f)
    return found
