"""The fixed vocabulary of diagnostic codes (trace-format.md section 4).

Code that *finds* a problem creates a `Diagnostic`; how a diagnostic is shown
(text, colour, JSON) lives here too, so finding and reporting stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"

# code -> (severity, one-line summary used in legends and help screens)
CODES: dict[str, tuple[str, str]] = {
    "parse_error": (ERROR, "no trace could be read"),
    "truncated": (ERROR, "the output stopped inside the trace"),
    "unknown_expert": (ERROR, "the expert is not one of the five"),
    "wrong_expert": (ERROR, "the trace names another expert than expected"),
    "unknown_op": (ERROR, "an invented operation"),
    "expert_boundary": (ERROR, "an operation this expert may not use"),
    "missing_field": (ERROR, "a required field is absent or has the wrong type"),
    "conflicting_init": (ERROR, "an init with both value and source"),
    "string_value": (ERROR, "a value that is a string, not a number"),
    "undefined_var": (ERROR, "a variable read before it holds a value"),
    "bad_source": (ERROR, "a source naming a part that does not exist yet"),
    "overwrite": (ERROR, "a value overwritten before it was read"),
    "missing_query": (ERROR, "a part without a query"),
    "query_init_only": (ERROR, "the answer was only initialised, never computed"),
    "div_zero": (ERROR, "a division by zero"),
    "out_of_range": (ERROR, "a value too large or too precise for a word problem (the executor's bounds)"),
    "steps_after_query": (WARNING, "steps after the query are not run"),
    "template_loop": (WARNING, "the same steps or parts repeat back to back"),
    "text_loop": (WARNING, "the raw output repeats itself"),
    "unused_value": (WARNING, "an initialised value is never read"),
}

# Outcomes that decide the reward before anything else is looked at.
UNREADABLE = frozenset({"parse_error", "truncated"})
EXPERT_CODES = frozenset({"wrong_expert", "unknown_expert"})


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    line: int | None = None  # 1-based line in the original text
    step: int | None = None  # 0-based step within its part
    part: int = 0
    end_line: int | None = None  # last line of a repeated block (loops only)
    # the step counted across the whole trace from 1, as the stepper's `step 6 of 8` counts it
    # (check() sets it; not in the JSON, whose `step` is within the part)
    number: int | None = field(default=None, compare=False)
    severity: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", CODES[self.code][0])

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def to_json(self) -> dict:
        out = {
            "code": self.code,
            "severity": self.severity,
            "line": self.line,
            "part": self.part,
            "step": self.step,
            "message": self.message,
        }
        if self.end_line is not None:
            out["end_line"] = self.end_line
        return out

    def location(self) -> str:
        where = [f"line {self.line}" if self.line else "no line"]
        if self.step is not None:
            where.append(self.step_label())
        return ", ".join(where)

    def step_label(self) -> str:
        """`step 6, part 1`: one count for a person, the stepper's (`step 6 of 8`) across all parts;
        JSON's `step` is the contract's 0-based index within the part."""
        return f"step {self.number or self.step + 1}, part {self.part}"

    def render(self) -> str:
        """One plain line: `error overwrite (line 10, step 6, part 1): message`."""
        return f"{self.severity} {self.code} ({self.location()}): {self.message}"


def sort_key(d: Diagnostic) -> tuple:
    return (d.line if d.line is not None else 10**9, d.part, d.step if d.step is not None else -1, d.code)


# rich style per severity, shared by the terminal report and the workbench
STYLE = {ERROR: "bold red", WARNING: "yellow"}
