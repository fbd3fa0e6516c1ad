"""Numbers read from text that came from elsewhere (a GSM8K file, a problem file, a trace, a
config), bounded: no reader of ours turns `1e999` into infinity, asks Python's int() for 5,000
digits (a ValueError of Python's own wording, raised wherever the text is first read), or
builds a Fraction whose arithmetic takes minutes. Every number that text holds goes through
here, and one that cannot be read is a `BadNumber` that says why in words a user can act on.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

MAX_DIGITS = 40  # digits of a number, integer and decimal parts together (GSM8K's largest has 10)
MAX_EXPONENT = 30  # 2.5e3 is a number a person writes; 1e400 is not
_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


class BadNumber(ValueError):
    """A number too long, out of range or not finite; the message says which, and shows the text (cut short)."""


def shown(text: str, width: int = 24) -> str:
    """The text as an error message quotes it: a 5,000-digit number is not repeated in full."""
    text = str(text)
    return repr(text if len(text) <= width else text[:width] + "...") + (f" ({len(text):,} characters)" if len(text) > width else "")


def decimal(text: str) -> Fraction:
    """`-12`, `3.50`, `.5`, `2.5e3` (commas already removed) as an exact Fraction; BadNumber otherwise."""
    t = text.strip()
    if len(t) > MAX_DIGITS + 8:  # checked before any regex or int() sees the text
        raise BadNumber(f"{shown(t)} has more than {MAX_DIGITS} digits")
    m = _DECIMAL.match(t)
    if not m or not (m[2] or m[3]):
        low = t.lower().lstrip("+-")
        if low in ("inf", "infinity", "nan", ".inf", ".nan"):
            raise BadNumber(f"{shown(t)} is not a finite number")
        raise BadNumber(f"{shown(t)} is not a number")
    whole, frac, exp = m[2], m[3] or "", m[4]
    if len(whole.lstrip("0")) + len(frac) > MAX_DIGITS:
        raise BadNumber(f"{shown(t)} has more than {MAX_DIGITS} digits")
    e = int(exp) if exp and len(exp.lstrip("+-")) <= 4 else (10**9 if exp else 0)
    if abs(e) > MAX_EXPONENT:
        raise BadNumber(f"{shown(t)}: exponents beyond {MAX_EXPONENT} are out of range")
    value = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac)) * Fraction(10) ** e
    return -value if m[1] == "-" else value


def of_value(value) -> Fraction:
    """An int or float from JSON or YAML as a Fraction, bounded the same way (a bool is no number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise BadNumber(f"{shown(repr(value))} is not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadNumber(f"{value!r} is not a finite number")
        if value and not 10.0 ** -MAX_EXPONENT <= abs(value) < 10.0 ** MAX_EXPONENT:
            raise BadNumber(f"{value!r} is out of range")
        return Fraction(repr(value))  # the number as written (0.1 is 1/10, not a binary fraction)
    if isinstance(value, int) and value.bit_length() > 3.33 * MAX_DIGITS:
        raise BadNumber(f"an integer of {value.bit_length():,} bits has more than {MAX_DIGITS} digits")
    return Fraction(value)


def why_not_json(exc: BaseException) -> str:
    """A JSON reader's failure in words a user can act on (Python's own mention a setting of the interpreter)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc)
    if "Exceeds the limit" in text:
        return "a number has thousands of digits"
    msg = getattr(exc, "msg", None)
    if msg and getattr(exc, "colno", None):
        return f"{msg.removesuffix(' at')} at column {exc.colno}"  # json's own: "Unterminated string starting at"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def brief(value, width: int = 60) -> str:
    """repr(value), cut short for an error message (a 5,000-digit value is not repeated in full)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width]}... ({len(text):,} characters)"
