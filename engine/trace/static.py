"""Checks of a single step that need no execution: shape, fields, op, expert.

Each returns diagnostics; `fatal` says whether the step can still be run.
"""

from __future__ import annotations

from fractions import Fraction

from .diagnostics import Diagnostic
from .language import COMPUTE_OPS, EXPERT_OPS, NAME, OP_FIELDS, OPS, SOURCE, VAR_NAME
from .parser import Part, Step
from .values import Unreadable

NON_FATAL = frozenset({"expert_boundary"})


def _kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, Fraction):
        return "a number"
    return "a string"


def _name_problem(key: str, value) -> str | None:
    if isinstance(value, str) and VAR_NAME.match(value):
        return None
    if isinstance(value, str):
        return f"`{key}: {value}` is not a variable name (letters, digits, _ and . only)"
    return f"`{key}` must be a variable name, not {_kind(value)}"


def _operand_problem(key: str, value) -> str | None:
    if isinstance(value, Unreadable):
        return f"`{key}: {value.text}`: {value.why}"
    if isinstance(value, Fraction):
        return None
    if isinstance(value, str):
        return _name_problem(key, value)
    return f"`{key}` must be a number or a variable name, not {_kind(value)}"


def source_index(source: str, part: int) -> int | None:
    """The part a `source` names, or None when it is malformed."""
    m = SOURCE.match(source)
    if not m:
        return None
    return part - 1 if m.group(1) is None else int(m.group(1))


def check_step(step: Step, part: Part, n_parts: int) -> tuple[list[Diagnostic], bool]:
    """Static problems of one step, and whether they stop it from running."""
    out: list[Diagnostic] = []

    def add(code: str, message: str) -> None:
        out.append(Diagnostic(code, message, line=step.line, step=step.index, part=part.index))

    f = step.fields
    if f is None:
        add("missing_field", f"a step must be a mapping like `{{op: ..., ...}}`, not {_kind(step.raw)}")
        return out, True
    op = f.get("op")
    if op is None:
        add("missing_field", "the step has no `op`")
        return out, True
    if not isinstance(op, str) or op not in OPS:
        known = ", ".join(sorted(OPS))
        hint = " (use `compute` with `compute_op`)" if op in COMPUTE_OPS else ""
        add("unknown_op", f"`op: {op}` is not an operation{hint}; the operations are {known}")
        return out, True
    allowed = EXPERT_OPS.get(part.expert) if isinstance(part.expert, str) else None
    if allowed is not None and op not in allowed:
        add("expert_boundary", f"`{op}` is not an operation of the `{part.expert}` expert ({', '.join(sorted(allowed))})")

    for key, kind in OP_FIELDS[op].items():
        if key not in f:
            add("missing_field", f"`{op}` needs `{key}`")
            continue
        problem = _name_problem(key, f[key]) if kind == NAME else _operand_problem(key, f[key])
        if problem:
            add("missing_field", problem)

    if op == "init":
        _check_init(f, part, n_parts, add)
    elif op == "compute":
        _check_compute(f, add)
    fatal = any(d.code not in NON_FATAL for d in out)
    return out, fatal


def _check_init(f: dict, part: Part, n_parts: int, add) -> None:
    has_value, has_source = "value" in f, "source" in f
    if has_value and has_source:
        add("conflicting_init", "`init` has both `value` and `source`; keep one")
        return
    if not (has_value or has_source):
        add("missing_field", "`init` needs `value` (a number) or `source` (prev.result / subN.result)")
        return
    if has_value:
        value = f["value"]
        if isinstance(value, str):
            add(
                "string_value",
                f"`value: {value!r}` is a string, not a number; to read a variable use it as an operand, "
                "to read an earlier part use `source`",
            )
        elif isinstance(value, Unreadable):
            add("missing_field", f"`value: {value.text}`: {value.why}")
        elif not isinstance(value, Fraction):
            add("missing_field", f"`value` must be a number, not {_kind(value)}")
        return
    source = f["source"]
    index = source_index(source, part.index) if isinstance(source, str) else None
    if index is None:
        add("bad_source", f"`source: {source}` must be `prev.result` or `subN.result`")
    elif index < 0:
        add("bad_source", "`prev.result` in the first part: there is no earlier part")
    elif index >= part.index:
        which = "this part" if index == part.index else "a later part" if index < n_parts else "a part that does not exist"
        add("bad_source", f"`source: {source}` names {which}; a part can read only earlier parts")


def _check_compute(f: dict, add) -> None:
    cop = f.get("compute_op")
    if cop is None:
        add("missing_field", "`compute` needs `compute_op` (add, sub, mul or div)")
    elif cop not in COMPUTE_OPS:
        add("unknown_op", f"`compute_op: {cop}` is not one of add, sub, mul, div")
    args = f.get("args")
    if args is None:
        add("missing_field", "`compute` needs `args`, a list of two or more operands")
        return
    if not isinstance(args, list):
        add("missing_field", f"`args` must be a list of operands, not {_kind(args)}")
        return
    if len(args) < 2:
        add("missing_field", f"`args` has {len(args)} operand(s); compute needs two or more")
    elif cop in ("sub", "div") and len(args) != 2:
        add("missing_field", f"`{cop}` takes exactly two args, got {len(args)}")
    for i, arg in enumerate(args):
        problem = _operand_problem(f"args[{i}]", arg)
        if problem:
            add("missing_field", problem)
