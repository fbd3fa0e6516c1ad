"""Where a trace stepper stands: a cursor over the executor's step records,
breakpoints, and the navigation of terminal debuggers. No trace semantics
here: everything comes from `engine.trace.check`."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.events import clean_text
from engine.trace import Report, check


@dataclass
class Stepper:
    text: str
    expect_answer: object = None
    expect_expert: str | None = None
    report: Report = None
    position: int = -1  # -1: before the first step; else index into report.records
    breakpoints: set[int] = field(default_factory=set)  # source lines

    def __post_init__(self):
        self.load(self.text)

    def load(self, text: str) -> None:
        """(Re)check the text; keep the position where it still makes sense. Control
        sequences are removed first: a trace file cannot drive the terminal."""
        text = clean_text(text)
        self.text = text
        self.report = check(text, self.expect_answer, self.expect_expert, source="<stepper>")
        self.position = min(self.position, len(self.records) - 1)

    @property
    def records(self):
        return self.report.records

    @property
    def current(self):
        return self.records[self.position] if 0 <= self.position < len(self.records) else None

    @property
    def at_end(self) -> bool:
        return self.position >= len(self.records) - 1

    def step(self) -> bool:
        if self.at_end:
            return False
        self.position += 1
        return True

    def back(self) -> bool:
        if self.position < 0:
            return False
        self.position -= 1
        return True

    def to_end(self) -> None:
        self.position = len(self.records) - 1

    def restart(self) -> None:
        self.position = -1

    def goto(self, index: int) -> None:
        self.position = max(-1, min(index, len(self.records) - 1))

    @property
    def next(self):
        """The step that runs on the next `n` (the ▶ line), or None at the end."""
        i = self.position + 1
        return self.records[i] if i < len(self.records) else None

    def step_lines(self) -> list[int]:
        return sorted({rec.line for rec in self.records})

    def goto_step(self, answer: str) -> str:
        """`g`: steps are numbered from 1, as the header counts them; a number outside the
        trace is refused, never clamped to the nearest step without a word."""
        n = len(self.records)
        if not n:
            return "this trace has no steps to go to"
        number = _number(answer)
        if number is None:
            return f"not a step number: {answer!r}; steps are 1-{n}"
        if not 1 <= number <= n:
            return f"there is no step {number}: this trace has {n} step{'s' if n != 1 else ''} (1-{n})"
        self.position = number - 1
        return f"at step {number} of {n} (line {self.current.line})"

    def break_at(self, answer: str) -> str:
        """`B`: a breakpoint on a line that holds a step (where a step starts); any other
        line, a line past the end or a non-number is refused with the lines that would do."""
        lines = self.step_lines()
        shown = _ranges(lines)
        number = _number(answer)
        if number is None:
            return f"not a line number: {answer!r}; steps start on lines {shown}"
        if number not in lines:
            total = len(self.text.splitlines())
            where = f"the text has {total} lines" if not 1 <= number <= total else "no step starts there"
            return f"no breakpoint at line {number}: {where}; steps start on lines {shown}"
        on = self.toggle_breakpoint(number)
        return f"breakpoint {'set' if on else 'cleared'} at line {number}" + (" (c stops before it runs)" if on else "")

    def cont(self) -> str:
        """Run forward until a breakpoint's step is next (stopped before it runs, as a debugger
        does), or a step that ran shows a diagnostic; at the end, name the diagnostics that belong
        to no single step (`wrong_expert`, `missing_query`), so `c` never runs silently past them.
        The step that is next when `c` is pressed runs even if it holds a breakpoint: that is
        where the last `c` stopped."""
        before = self.current.line if self.current is not None else 0
        loose = self.stepless()
        first = True
        while self.next is not None:
            if not first and self.next.line in self.breakpoints:
                return f"breakpoint at line {self.next.line}: stopped before its step runs (n runs it)"
            first = False
            self.step()
            rec = self.current
            found = self.of_step(rec)
            if found:
                return f"{found[0].code} at line {rec.line}: {found[0].message}"
            passed = [d for d in loose if d.line is not None and before < d.line <= rec.line]
            if passed:  # a part's diagnostic, reached where its line is
                return f"{passed[0].code} at line {passed[0].line}: {passed[0].message}"
            before = rec.line
        rest = [d for d in loose if d.line is None or d.line > before]
        every = self.report.diagnostics
        summary = f" ({len(every)} diagnostic{'s' if len(every) != 1 else ''} in all: " \
                  f"{', '.join(sorted({d.code for d in every}))})" if every else ""
        if rest:
            return "end of trace" + summary + "; " + "; ".join(f"{d.code}: {d.message}" for d in rest)
        return "end of trace" + summary

    def of_step(self, rec) -> list:
        """A step's diagnostics: those the executor found there, and those found later that name it
        (`unused_value` is known only once the trace has run)."""
        later = [d for d in self.report.diagnostics if d.step is not None and (d.part, d.step) == (rec.part, rec.step)]
        return list(rec.diagnostics) + [d for d in later if d not in rec.diagnostics]

    def stepless(self) -> list:
        """Diagnostics of the whole trace or a part, not of one step."""
        return [d for d in self.report.diagnostics if d.step is None]

    def toggle_breakpoint(self, line: int) -> bool:
        if line in self.breakpoints:
            self.breakpoints.discard(line)
            return False
        self.breakpoints.add(line)
        return True

    def jump_to(self, diagnostic) -> None:
        """Go to the step a diagnostic belongs to (or the first step on its line)."""
        for i, rec in enumerate(self.records):
            if rec.part == diagnostic.part and rec.step == diagnostic.step and diagnostic.step is not None:
                self.position = i
                return
        for i, rec in enumerate(self.records):
            if diagnostic.line is not None and rec.line >= diagnostic.line:
                self.position = i
                return

    def variables(self) -> list[dict]:
        """The current part's variables: value, previous value, step that wrote it, and how it changed."""
        rec = self.current
        if rec is None:
            return []
        written = {w.var: w for w in rec.writes}
        number = {(r.part, r.step): i + 1 for i, r in enumerate(self.records)}  # the header's count, across parts
        rows = []
        for name, value in rec.state.items():
            w = written.get(name)
            if w is None:
                style = "same"
            elif w.lost:
                style = "overwritten"
            elif w.old is None:
                style = "new"
            else:
                style = "changed"
            at = rec.written_at.get(name)
            rows.append({"name": name, "value": value, "previous": w.old if w else None,
                         "step": number.get((rec.part, at)), "style": style})
        return rows

    def wiring(self) -> list[dict]:
        """For composed traces: which part read which earlier answer, and the value that flowed."""
        out = []
        for rec in self.records:
            for name, value in rec.reads.items():
                if name.endswith(".result") and rec.op == "init":
                    out.append({"part": rec.part, "line": rec.line, "source": name, "value": value,
                                "var": rec.writes[0].var if rec.writes else None})
        return out


def _number(answer: str) -> int | None:
    text = (answer or "").strip()
    return int(text) if text.isascii() and text.lstrip("-").isdigit() else None


def _ranges(lines: list[int]) -> str:
    """3, 4, 5, 9 -> `3-5, 9`: the lines a breakpoint may go on, short enough for one status line."""
    if not lines:
        return "(none)"
    out, start = [], lines[0]
    for prev, cur in zip(lines, lines[1:] + [None]):
        if cur != prev + 1:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(out)
