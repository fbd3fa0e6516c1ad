"""What the trace language allows: experts, operations, fields (spec sections 2-3)."""

from __future__ import annotations

import re

BASE_OPS = frozenset({"init", "compute", "query"})
EXPERT_OPS: dict[str, frozenset[str]] = {
    "arithmetic": BASE_OPS,
    "rate_equation": BASE_OPS,
    "comparison": BASE_OPS,
    "percentage": BASE_OPS | {"percent_off", "percent_increase", "percent_of"},
    "entity_track": BASE_OPS | {"transfer", "consume", "add_entity"},
}
EXPERTS = tuple(EXPERT_OPS)
COMPOSITION = "composition"  # how composed traces are counted in per-expert statistics
OPS = frozenset().union(*EXPERT_OPS.values())
COMPUTE_OPS = ("add", "sub", "mul", "div")

# Field kinds: a variable NAME, an OPERAND (number or name), or special handling.
NAME, OPERAND = "name", "operand"
OP_FIELDS: dict[str, dict[str, str]] = {
    "init": {"var": NAME},  # plus exactly one of value / source
    "compute": {"var": NAME},  # plus compute_op and args
    "percent_off": {"base": OPERAND, "rate": OPERAND, "var": NAME},
    "percent_increase": {"base": OPERAND, "rate": OPERAND, "var": NAME},
    "percent_of": {"base": OPERAND, "rate": OPERAND, "var": NAME},
    "transfer": {"from": NAME, "to": NAME, "amount": OPERAND},
    "consume": {"entity": NAME, "amount": OPERAND},
    "add_entity": {"entity": NAME, "amount": OPERAND},
    "query": {"var": NAME},
}

VAR_NAME = re.compile(r"^[\w.]+$")
SOURCE = re.compile(r"^(?:prev|sub(\d+))\.result$")


def expert_label(expert) -> str:
    """The name a trace is counted under in per-expert statistics."""
    return COMPOSITION if isinstance(expert, list) else str(expert)
