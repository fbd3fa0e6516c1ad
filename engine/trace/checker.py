"""Check one model output end to end: parse, execute, loops, reward."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from .diagnostics import Diagnostic, sort_key
from .executor import PartEnd, StepRecord, as_number, execute
from .language import EXPERT_OPS
from .loops import template_loops, text_loops
from .parser import MAX_CHARS, Parsed, Trace, parse
from .reward import DEFAULT_WEIGHTS, RewardWeights, expected_number, outcome, reward


@dataclass(slots=True)
class Report:
    source: str
    parsed: Parsed
    records: list[StepRecord] = field(default_factory=list)
    ends: list[PartEnd] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    answer: Fraction | None = None
    expected_answer: Fraction | None = None
    expected_expert: str | None = None
    outcome: str | None = None
    reward: float | None = None

    @property
    def trace(self) -> Trace | None:
        return self.parsed.trace

    @property
    def valid(self) -> bool:
        return self.trace is not None and not any(d.is_error for d in self.diagnostics)

    @property
    def expert(self):
        return self.trace.expert if self.trace else None

    @property
    def codes(self) -> list[str]:
        return sorted({d.code for d in self.diagnostics})

    def to_json(self) -> dict:
        out = {
            "source": self.source,
            "parsed": self.trace is not None,
            "valid": self.valid,
            "expert": self.expert,
            "answer": as_number(self.answer),
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }
        if self.reward is not None:
            out["reward"] = self.reward
            out["outcome"] = self.outcome
        return out


def _expert_diagnostics(trace: Trace, expected: str | None) -> list[Diagnostic]:
    out = []
    for part in trace.parts:
        if part.expert is not None and (not isinstance(part.expert, str) or part.expert not in EXPERT_OPS):
            out.append(
                Diagnostic(
                    "unknown_expert",
                    f"`expert: {part.expert}` is not an expert; the experts are {', '.join(EXPERT_OPS)}",
                    line=part.expert_line,
                    part=part.index,
                )
            )
    if expected and not trace.composed and trace.expert != expected:
        out.append(
            Diagnostic(
                "wrong_expert",
                f"the trace is written for `{trace.expert}`, but this problem is for `{expected}`",
                line=trace.parts[0].expert_line,
                part=0,
            )
        )
    return out


def check(
    text: str,
    expect_answer=None,
    expect_expert: str | None = None,
    weights: RewardWeights = DEFAULT_WEIGHTS,
    source: str = "<text>",
    cut_off: bool = False,
) -> Report:
    """Everything the checker knows about one output. Never raises.

    `cut_off` says the generator stopped the output at its length limit: that
    is `truncated`, whatever the text looks like.
    """
    parsed = parse(text)
    report = Report(source, parsed, expected_expert=expect_expert)
    diags = list(parsed.diagnostics)
    if cut_off and not any(d.code == "truncated" for d in diags):
        line = len(text.rstrip().splitlines()) or 1
        diags.append(Diagnostic("truncated", "the output was cut off by the length limit", line=line))
    if parsed.trace is not None:
        diags += _expert_diagnostics(parsed.trace, expect_expert)
        for rec in execute(parsed.trace):
            if isinstance(rec, StepRecord):
                report.records.append(rec)
            else:
                report.ends.append(rec)
            diags += rec.diagnostics
        diags += template_loops(parsed.trace)
        ends = report.ends
        if ends and all(e.completed for e in ends):
            report.answer = ends[-1].answer
    if len(text) <= MAX_CHARS:  # what the parser refused as too long is not searched either
        diags += text_loops(text)
    number = {(r.part, r.step): i for i, r in enumerate(report.records, 1)}  # the stepper's count

    def numbered(found: list[Diagnostic]) -> list[Diagnostic]:
        return [replace(d, number=number.get((d.part, d.step))) if d.step is not None else d for d in found]

    diags = numbered(diags)
    for rec in report.records:  # a step's own list too: the stepper shows those
        rec.diagnostics = numbered(rec.diagnostics)
    report.diagnostics = sorted(diags, key=sort_key)
    if expect_answer is not None:
        report.expected_answer = expected_number(expect_answer)
        report.outcome = outcome(report.diagnostics, report.answer, report.expected_answer)
        warnings = sum(1 for d in report.diagnostics if not d.is_error)
        report.reward = reward(report.outcome, warnings, weights)
    return report
