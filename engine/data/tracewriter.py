"""Write gold traces as the YAML text a model should produce (flow-style steps)."""

from __future__ import annotations

from fractions import Fraction

_ORDER = ("op", "compute_op", "args", "base", "rate", "from", "to", "entity", "amount", "var", "value", "source")


def _scalar(v) -> str:
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else format(float(v), "g")
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    return str(v)


def step(op: str, **fields) -> str:
    fields = {"from": fields.pop("from_")} | fields if "from_" in fields else fields
    items = {"op": op, **fields}
    keys = sorted(items, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER))
    return "{" + ", ".join(f"{k}: {_scalar(items[k])}" for k in keys) + "}"


def init(var: str, value) -> str:
    return step("init", var=var, value=value)


def source(var: str, src: str) -> str:
    return step("init", var=var, source=src)


def compute(cop: str, args: list, var: str) -> str:
    return step("compute", compute_op=cop, args=args, var=var)


def query(var: str) -> str:
    return step("query", var=var)


def part(expert: str, steps: list[str], indent: str = "") -> str:
    lines = [f"{indent}expert: {expert}", f"{indent}trace:"] + [f"{indent}- {s}" for s in steps]
    return "\n".join(lines)


def single(expert: str, steps: list[str]) -> str:
    return part(expert, steps) + "\n"


def composed(parts: list[tuple[str, list[str]]]) -> str:
    out = []
    for expert, steps in parts:
        body = part(expert, steps, indent="  ")
        out.append("- " + body[2:])
    return "\n".join(out) + "\n"


def fenced(trace: str) -> str:
    return "```yaml\n" + trace + "```"
