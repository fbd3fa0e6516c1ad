"""Run a trace step by step.

`execute` is a generator of records: one `StepRecord` for every step (run,
failed, or not run) and one `PartEnd` per part. A stepper moves forward and
back over the list of records; the checker reads diagnostics off them. The
executor owns the semantics; nothing else re-implements them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

from .diagnostics import Diagnostic
from .parser import Part, Step, Trace
from .static import check_step, source_index

RAN, FAILED, SKIPPED = "ran", "failed", "skipped"


@dataclass(slots=True)
class Write:
    var: str
    old: Fraction | None
    new: Fraction
    lost: bool = False  # the old value was never read: an overwrite


@dataclass(slots=True)
class StepRecord:
    part: int
    step: int
    line: int
    op: object
    status: str  # RAN, FAILED, or SKIPPED (after a failure or after the query)
    reads: dict[str, Fraction] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    state: dict[str, Fraction] = field(default_factory=dict)  # the part's variables after the step
    written_at: dict[str, int] = field(default_factory=dict)  # variable -> step that last wrote it
    diagnostics: list[Diagnostic] = field(default_factory=list)
    answer: Fraction | None = None  # set by a query


@dataclass(slots=True)
class PartEnd:
    part: int
    answer: Fraction | None
    completed: bool  # ran to its query
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _StepFailed(Exception):
    def __init__(self, code: str, message: str):
        self.code, self.message = code, message


class _Machine:
    """The variables of one part and what is known about their reads and writes."""

    def __init__(self, part: Part, answers: list[Fraction | None]):
        self.part, self.answers = part, answers
        self.state: dict[str, Fraction] = {}
        self.unread: set[str] = set()  # written, not read since
        self.init_only: set[str] = set()
        self.init_unread: dict[str, Step] = {}  # set by init, never read
        self.written_at: dict[str, int] = {}
        self.diags: list[Diagnostic] = []

    def diag(self, step: Step, code: str, message: str) -> None:
        self.diags.append(Diagnostic(code, message, line=step.line, step=step.index, part=self.part.index))

    def read(self, step: Step, rec: StepRecord, operand) -> Fraction:
        if isinstance(operand, Fraction):
            return operand
        if operand not in self.state:
            raise _StepFailed("undefined_var", f"`{operand}` holds no value at this step; set it with `init` first")
        rec.reads[operand] = self.state[operand]
        self.unread.discard(operand)
        self.init_unread.pop(operand, None)
        return self.state[operand]

    def write(self, step: Step, rec: StepRecord, var: str, value: Fraction, op: str) -> None:
        old = self.state.get(var)
        lost = var in self.unread and var not in rec.reads
        if lost:
            was = self.part.steps[self.written_at[var]].line  # a line: one numbering for CLI, JSON and stepper
            self.diag(
                step,
                "overwrite",
                f"`{var}` is written again, but its value {fmt(old)} (set on line {was}) was never read: "
                "that value is lost; use a new variable name",
            )
            self.init_unread.pop(var, None)
        self.state[var] = value
        self.unread.add(var)
        self.written_at[var] = step.index
        if op == "init":
            self.init_only.add(var)
            self.init_unread[var] = step
        else:
            self.init_only.discard(var)
        rec.writes.append(Write(var, old, value, lost))

    def run(self, step: Step, rec: StepRecord) -> None:
        f, op = step.fields, step.op
        if op == "init":
            if "source" in f:
                index = source_index(f["source"], self.part.index)
                value = self.answers[index] if index is not None and index < len(self.answers) else None
                if value is None:
                    raise _StepFailed("undefined_var", f"`{f['source']}` holds no value: part {index} gave no answer")
                rec.reads[f["source"]] = value
            else:
                value = bounded(f["value"])
            self.write(step, rec, f["var"], value, op)
        elif op == "compute":
            args = [self.read(step, rec, a) for a in f["args"]]
            self.write(step, rec, f["var"], _compute(f["compute_op"], args), op)
        elif op in ("percent_off", "percent_increase", "percent_of"):
            base, rate = self.read(step, rec, f["base"]), self.read(step, rec, f["rate"])
            value = bounded({
                "percent_off": lambda: base * (1 - rate / 100),
                "percent_increase": lambda: base * (1 + rate / 100),
                "percent_of": lambda: base * rate / 100,
            }[op]())
            self.write(step, rec, f["var"], value, op)
        elif op == "transfer":
            amount = self.read(step, rec, f["amount"])
            src = self.read(step, rec, f["from"])
            dst = self.read(step, rec, f["to"]) if f["to"] in self.state else Fraction(0)
            self.write(step, rec, f["from"], bounded(src - amount), op)
            self.write(step, rec, f["to"], bounded(dst + amount), op)
        elif op in ("consume", "add_entity"):
            amount = self.read(step, rec, f["amount"])
            have = self.read(step, rec, f["entity"])
            self.write(step, rec, f["entity"], bounded(have - amount if op == "consume" else have + amount), op)
        elif op == "query":
            var = f["var"]
            rec.answer = self.read(step, rec, var)
            if var in self.init_only:
                self.diag(
                    step,
                    "query_init_only",
                    f"the answer `{var}` was only set by `init`: the part computed nothing; "
                    "query the result of the final operation",
                )


# Bounds that no word problem comes near; past them exact arithmetic would cost
# seconds to minutes (1e30 multiplied by itself a few dozen times).
MAX_MAGNITUDE = Fraction(10) ** 15
MAX_DIGITS = 30  # of a fraction's numerator or denominator


def bounded(value: Fraction) -> Fraction:
    if abs(value) > MAX_MAGNITUDE:
        raise _StepFailed("out_of_range", f"the result has magnitude over 1e15 ({_magnitude(value)}): "
                                          "no word problem needs it; check the operation and its operands")
    if value.denominator.bit_length() > MAX_DIGITS * 3.33 or value.numerator.bit_length() > MAX_DIGITS * 3.33 + 50:
        raise _StepFailed("out_of_range", f"the result needs more than {MAX_DIGITS} digits to hold exactly")
    return value


def _magnitude(value: Fraction) -> str:
    digits = len(str(abs(value.numerator))) - len(str(value.denominator))
    return f"about 1e{digits}"


def _compute(cop: str, args: list[Fraction]) -> Fraction:
    if cop == "add":
        out = Fraction(0)
        for a in args:
            out = bounded(out + a)
        return out
    if cop == "mul":
        out = Fraction(1)
        for a in args:
            out = bounded(out * a)  # checked at every factor: a long product never grows unbounded
        return out
    a, b = args
    if cop == "sub":
        return bounded(a - b)
    if b == 0:
        raise _StepFailed("div_zero", "division by zero")
    return bounded(a / b)


def execute(trace: Trace) -> Iterator[StepRecord | PartEnd]:
    answers: list[Fraction | None] = []
    for part in trace.parts:
        m = _Machine(part, answers)
        stopped, answer, completed = False, None, False
        query = next((s.index for s in part.steps if s.op == "query"), None)
        for step in part.steps:
            static, fatal = check_step(step, part, len(trace.parts))
            rec = StepRecord(part.index, step.index, step.line, step.op, SKIPPED)
            if stopped or completed:
                if query is not None and step.index == query + 1:
                    static = static + [
                        Diagnostic(
                            "steps_after_query",
                            f"{len(part.steps) - step.index} step(s) after the query are not run; "
                            "the query must be the last step",
                            line=step.line,
                            step=step.index,
                            part=part.index,
                        )
                    ]
                rec.diagnostics = static
                rec.state, rec.written_at = dict(m.state), dict(m.written_at)
                yield rec
                continue
            m.diags = []
            if fatal:
                rec.status, stopped = FAILED, True
            else:
                try:
                    m.run(step, rec)
                    rec.status = RAN
                except _StepFailed as exc:
                    m.diag(step, exc.code, exc.message)
                    rec.status, stopped = FAILED, True
            rec.diagnostics = static + m.diags
            rec.state, rec.written_at = dict(m.state), dict(m.written_at)
            if rec.answer is not None:
                answer, completed = rec.answer, True
            yield rec
        yield _part_end(part, m, answer, completed, stopped)
        answers.append(answer)


def _part_end(part: Part, m: _Machine, answer, completed: bool, stopped: bool) -> PartEnd:
    end = PartEnd(part.index, answer if completed else None, completed)
    if part.has_trace and not any(s.op == "query" for s in part.steps):
        last = part.steps[-1].line if part.steps else part.line
        end.diagnostics.append(
            Diagnostic(
                "missing_query",
                "the part has no `query` step, so it gives no answer; end it with `{op: query, var: ...}`",
                line=last,
                part=part.index,
            )
        )
    if completed:
        for var, step in m.init_unread.items():
            end.diagnostics.append(
                Diagnostic(
                    "unused_value",
                    f"`{var}` is set by init but never read; is an operation using it missing?",
                    line=step.line,
                    step=step.index,
                    part=part.index,
                )
            )
    return end


def fmt(value: Fraction | None) -> str:
    """A value as a person reads it: 12, 2.5, 0.333333 (exact underneath)."""
    if value is None:
        return "—"
    if value.denominator == 1:
        return str(value.numerator) if value.numerator.bit_length() < 200 else f"{_magnitude(value)} (integer)"
    try:
        as_float = float(value)
    except OverflowError:
        return _magnitude(value)
    text = f"{as_float:.6f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == value else text + "…"


def as_number(value: Fraction | None) -> int | float | None:
    """A value for JSON: an int when whole, else a float."""
    if value is None:
        return None
    if value.denominator == 1:
        return value.numerator
    try:
        return float(value)
    except OverflowError:  # only reachable from outside the executor's bounds (an expected answer)
        return float("inf") if value > 0 else float("-inf")
