"""GSM8K solutions as gold traces of our language.

A GSM8K solution carries calculator annotations (`48/2 = <<48/2=24>>24 clips`)
and ends in `#### N`. Each annotation becomes `compute` steps; each number in
it is, in this order of preference, an earlier result (a reference), a mention
of a number in the question (an `init`), or a number that follows from a
stated fact (`twice` is 2, `hours` make 60 minutes, `20%` is 0.2). A number
that is none of these was invented by the solution's writer: such a trace
would teach the model to invent numbers, so it is dropped.

Names carry meaning because the model copies them: a mention is named after
the noun that follows it in its clause (`2 small pizzas`: `small_pizzas` once
`pizzas` is taken), a result after the words that follow it in the solution
(`32 large slices`: `large_slices`), and each mention of a number is its own
variable (`2 pounds ... another 2 pounds ... double`: three, not one read
three times), so a gold trace never multiplies by `pounds` to double.

Every converted trace is run by the checker against the reference answer and
kept only if it scores 1.0 without warnings. `convert` never raises: a problem
that cannot be converted comes back with the reason, for `engine data stats`.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Iterator

from ..numbers import BadNumber, decimal, of_value
from ..trace import answers_match, check
from .gsm8k import parse_answer
from .tracewriter import compute, init, query, single

PATTERN = "gsm8k"
MAX_STEPS = 24  # longer traces do not fit the length limits of training and decoding
MAX_TEXT = 8_000  # characters of a question or an answer (GSM8K's longest answer has 1,228): the work per problem stays bounded
# The shipped copy's training split (files/gsm8k): 6,404 of its 7,473 problems convert to a gold
# trace, and 5,963 of those are what a run may train on once the development split and the test
# look-alikes are kept out (engine/protocol.py). Counted once here for the plan's time estimate,
# which cannot spend the 25 s the counting takes; tests/test_plan.py counts them again from the data.
SHIPPED_GOLD, SHIPPED_TRAINABLE_GOLD = 6404, 5963

# Why a problem was not kept (the order is the order the checks run in).
REASONS = {
    "text_too_long": f"the question or the answer is longer than {MAX_TEXT:,} characters",
    "bad_number": "a number is too long, out of range or not finite (1e999, 5,000 digits)",
    "no_annotation": "the solution has no <<expr=result>> annotation",
    "bad_expression": "an annotation is not plain arithmetic",
    "wrong_arithmetic": "an annotation's result does not follow from its expression",
    "invented_number": "a number appears nowhere in the question and follows from no stated fact",
    "answer_not_computed": "no computed result equals the final answer",
    "too_long": f"more than {MAX_STEPS} steps",
    "checker_rejected": "the checker did not score the trace 1.0 without warnings",
}

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
# A step written as plain text, `$43 - $18 = $25`: two or more numbers joined by operators, then `= N`.
# Read in two parts so that a scan is linear in the text: the longest chain of numbers and operators
# (possessive: never given back, and never begun inside a number), then `= N` right after it. One
# pattern for both took the square of the length (`1+1+1...` without `=`: 64 KB, 25 s), since every
# start inside a chain ran to its end again; a start inside a chain ends where the chain ends, so
# only the chain's first start needs trying.
_NUM_TEXT = r"\$?\(?\d[\d,]*+(?:\.\d++)?\)?"
_CHAIN = re.compile(rf"\$?\(?(?<!\d)(?<!\d,)(?=\d)(?>{_NUM_TEXT}\s*+[-+*/x×−÷]\s*+)+{_NUM_TEXT}")
_EQUALS = re.compile(r"\s*+=\s*+\$?(-?\d[\d,]*+(?:\.\d++)?)")
_FRACTION = re.compile(r"(?<![\w./])(\d+)/(\d+)(?![\w/])")
_QNUM = re.compile(r"(?<![\w.])\$?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+)(\s*%|\s*percent)?")
_WORD = re.compile(r"[A-Za-z]+")
_STOP = {
    "a", "an", "the", "of", "and", "or", "to", "in", "on", "at", "for", "each", "per", "every", "is", "are", "was",
    "were", "be", "by", "with", "from", "as", "than", "that", "this", "it", "its", "his", "her", "their", "he",
    "she", "they", "we", "you", "i", "if", "so", "then", "more", "less", "many", "much", "how", "what", "which",
    "who", "has", "have", "had", "will", "would", "can", "could", "does", "did", "do", "there", "also", "into",
    "over", "after", "before", "about", "all", "total", "altogether", "only", "just", "other", "another", "one",
    "x", "times", "them", "him", "me", "my", "our", "your", "s", "t", "but", "not", "no", "because", "since",
    "therefore", "thus", "hence", "now", "first", "next", "finally", "means", "should", "up", "out",
}
# Words YAML would read as something other than a name, and the language's own words.
_RESERVED = {"yes", "no", "on", "off", "true", "false", "null", "y", "n", "prev", "result", "inf", "nan"}
_WORD_NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "hundred": 100, "thousand": 1000, "dozen": 12, "dozens": 12, "twice": 2, "double": 2, "doubles": 2,
    "half": 2, "halves": 2, "pair": 2, "pairs": 2, "triple": 3, "triples": 3, "thrice": 3, "third": 3,
    "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4, "fifth": 5, "tenth": 10, "once": 1, "one": 1,
}
# Facts a unit word states: `hours` and `minutes` in a question make 60 a stated number.
_PARTS = {"half", "halves", "quarter", "quarters", "fourth", "third", "thirds"}  # also state 1/2, 1/4, 1/3
_UNIT_FACTS = {
    "minute": (60, "minutes_per_hour"), "minutes": (60, "minutes_per_hour"), "hour": (60, "minutes_per_hour"),
    "hours": (60, "minutes_per_hour"), "second": (60, "seconds_per_minute"), "seconds": (60, "seconds_per_minute"),
    "day": (24, "hours_per_day"), "days": (24, "hours_per_day"), "week": (7, "days_per_week"),
    "weeks": (7, "days_per_week"), "weekly": (7, "days_per_week"), "year": (12, "months_per_year"),
    "years": (12, "months_per_year"), "month": (30, "days_per_month"), "months": (30, "days_per_month"),
    "cents": (100, "cents_per_dollar"), "cent": (100, "cents_per_dollar"), "foot": (12, "inches_per_foot"),
    "feet": (12, "inches_per_foot"), "inches": (12, "inches_per_foot"), "yard": (3, "feet_per_yard"),
    "yards": (3, "feet_per_yard"), "pound": (16, "ounces_per_pound"), "pounds": (16, "ounces_per_pound"),
    "meter": (100, "cm_per_meter"), "meters": (100, "cm_per_meter"), "kilogram": (1000, "grams_per_kg"),
    "kilograms": (1000, "grams_per_kg"), "liter": (1000, "ml_per_liter"), "liters": (1000, "ml_per_liter"),
    "decade": (10, "years_per_decade"), "century": (100, "years_per_century"), "gallon": (4, "quarts_per_gallon"),
}
_MORE_UNIT_FACTS = {"year": [(52, "weeks_per_year"), (365, "days_per_year")], "years": [(52, "weeks_per_year"), (365, "days_per_year")],
                    "day": [(1440, "minutes_per_day")], "hour": [(3600, "seconds_per_hour")]}


@dataclass
class Converted:
    index: int
    question: str
    answer: Fraction
    trace: str | None = None
    reason: str | None = None  # a key of REASONS when trace is None
    detail: str = ""
    steps: int = 0
    facts: list[str] = field(default_factory=list)  # constants taken from stated facts, not from the question's digits

    @property
    def kept(self) -> bool:
        return self.trace is not None

    def to_json(self) -> dict:
        from ..trace import as_number

        return {"question": self.question, "expert": "arithmetic", "pattern": PATTERN, "trace": self.trace,
                "answer": as_number(self.answer), "gsm8k_index": self.index, "facts": self.facts}

    def rejected_json(self) -> dict:
        """A problem that did not convert, with why (REASONS): a line of the rejects file."""
        return {"gsm8k_index": self.index, "question": self.question, "reason": self.reason, "detail": self.detail}


def rejected_path(out: Path) -> Path:
    """Where `engine data gsm8k-traces` puts the problems it did not keep (and `data stats` finds them)."""
    return out.with_name(out.stem + ".rejected.jsonl")


class _Reject(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _number(text: str) -> Fraction:
    """A number as the text writes it (`1,234.5`), bounded: BadNumber (a ValueError) says why not."""
    return decimal(text.replace(",", ""))


_CLAUSE_END = re.compile(r"[.;:?!,](?:\s|$)|\n")


def _words_after(text: str, end: int, n: int = 6) -> list[str]:
    """The words after a number, up to the end of its clause (`$100. Betty has` names nothing after)."""
    window = text[end : end + 60]
    stop = _CLAUSE_END.search(window)
    return [w.lower() for w in _WORD.findall(window[: stop.start() if stop else None])][:n]


def _words_before(text: str, start: int, n: int = 4) -> list[str]:
    """The words before a position, nearest first, back to the start of its clause."""
    window = text[max(0, start - 60) : start]
    ends = list(_CLAUSE_END.finditer(window))
    return [w.lower() for w in _WORD.findall(window[ends[-1].end() if ends else 0 :])][-n:][::-1]


def _content(w: str) -> bool:
    return w not in _STOP and w not in _WORD_NUMBERS and w not in _RESERVED and len(w) > 1


def _names_from(after: list[str], before: list[str], fallback: str) -> list[str]:
    """Candidate names, best first: the noun after the number (`2 large pizzas`: pizzas), then
    that noun with its modifier or a later word of the clause (`small_pizzas`, `clips_may`), so
    two quantities of one unit get names that say which is which rather than `pizzas_2`; with
    nothing after it in the clause, the nearest word before (`costs $100.`: costs)."""
    words = [w[:20] for w in after]
    while words and not _content(words[0]):
        words.pop(0)
    run = []  # the content words right after the number: `large pizzas`
    for w in words[:2]:
        if not _content(w):
            break
        run.append(w)
    if not run:
        return [next((w[:20] for w in before if _content(w)), fallback)]
    head = run[-1]
    names = [head] if len(run) == 1 else [head, f"{run[0]}_{head}"]
    later = [w for w in words[len(run) :] if _content(w)][:2]
    return names + [f"{head}_{w}" for w in later]


class _Names:
    """Unique variable names: a name is never written twice (no `overwrite`)."""

    def __init__(self):
        self.used: set[str] = set()

    def new(self, *candidates: str) -> str:
        """The first candidate not yet used, else the first with a number (`pizzas_2`)."""
        clean = []
        for c in candidates:
            c = re.sub(r"[^a-z0-9_]", "", c.lower()) or "value"
            clean.append(c if c[0].isalpha() else "n_" + c)
        for c in clean:
            if c not in self.used:
                self.used.add(c)
                return c
        base, k = clean[0], 2
        while f"{base}_{k}" in self.used:
            k += 1
        self.used.add(f"{base}_{k}")
        return f"{base}_{k}"


def _question_numbers(question: str) -> list[tuple[Fraction, tuple[str, ...], bool]]:
    """(value, candidate names, written in digits) for every mention of a number in the question, in
    this order: digits, fractions, number words (each in the question's order), then the facts unit
    words state (once each)."""
    out = []
    for m in _QNUM.finditer(question):
        value = _number(m.group(1))
        names = _names_from(_words_after(question, m.end()), _words_before(question, m.start()), "amount")
        if m.group(2):  # 20% states 20 and the rate 0.2
            out.append((value, tuple(n + "_percent" for n in names), True))
            out.append((value / 100, tuple(n + "_rate" for n in names), False))
        else:
            out.append((value, tuple(names), True))
    for m in _FRACTION.finditer(question):  # `1/2 your hourly wage`
        num, den = _number(m.group(1)), _number(m.group(2))  # bounded: BadNumber for 5,000 digits
        if den:
            out.append((num / den, ("fraction",), True))
    lowered = [w.lower() for w in _WORD.findall(question)]
    for w in lowered:
        if w in _WORD_NUMBERS:
            out.append((Fraction(_WORD_NUMBERS[w]), (w,), False))
            if w in _PARTS:
                out.append((Fraction(1, _WORD_NUMBERS[w]), (w,), False))
    facts = []
    for w in lowered:
        if w in _UNIT_FACTS:
            facts.append(_UNIT_FACTS[w])
        facts += _MORE_UNIT_FACTS.get(w, [])
    if "percent" in lowered or "%" in question:
        facts += [(100, "percent"), (Fraction(1, 100), "per_percent")]
    facts.append((1, "whole"))  # 1 - 0.2 of a price
    out += [(Fraction(v), (name,), False) for v, name in dict.fromkeys(facts)]
    return out


_OPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}


def _expression(text: str) -> ast.expr:
    clean = text.replace("$", "").replace("×", "*").replace("x", "*").replace("÷", "/").replace("−", "-").replace("%", "*0.01")
    clean = re.sub(r"(?<=\d),(?=\d{3})", "", clean).strip()
    if not clean or len(clean) > 200:
        raise _Reject("bad_expression", text)
    try:
        node = ast.parse(clean, mode="eval").body
    except SyntaxError:
        raise _Reject("bad_expression", text) from None
    for sub in ast.walk(node):
        if not isinstance(sub, (ast.BinOp, ast.Constant, *(_OPS.keys()))):
            raise _Reject("bad_expression", text)
        if isinstance(sub, ast.BinOp) and type(sub.op) not in _OPS:
            raise _Reject("bad_expression", text)
        if isinstance(sub, ast.Constant) and not isinstance(sub.value, (int, float)):
            raise _Reject("bad_expression", text)
        if isinstance(sub, ast.Constant):
            try:
                of_value(sub.value)  # `1e999` is infinity to Python: no number of a solution
            except BadNumber as exc:
                raise _Reject("bad_number", str(exc)) from None
    return node


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "div" and b == 0:
        raise _Reject("wrong_arithmetic", "division by zero")
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b if b else a}[op]


def _value(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant):
        return of_value(node.value)
    return _apply(_OPS[type(node.op)], _value(node.left), _value(node.right))


class _Builder:
    def __init__(self, question: str):
        self.names = _Names()
        self.stated = _question_numbers(question)
        self.bound: dict[Fraction, str] = {}  # the variable last given to a question number
        self.mentioned: set[int] = set()  # indices into `stated` given an init
        self.results: list[tuple[Fraction, str]] = []  # computed so far, newest last
        self.steps: list[str] = []
        self.facts: list[str] = []

    def operand(self, value: Fraction) -> str:
        for v, var in reversed(self.results):
            if v == value:
                return var
        # the next mention of the number not yet given an init: a solution uses each mention once as a
        # rule (`2 pounds`, `another 2 pounds`, `double`: three variables, not one read three times)
        for i, (v, names, digits) in enumerate(self.stated):
            if v == value and i not in self.mentioned:
                self.mentioned.add(i)
                var = self.names.new(*names)
                self.steps.append(init(var, value))
                self.bound[value] = var
                if not digits:
                    self.facts.append(f"{var}={value}")
                return var
        if value in self.bound:
            return self.bound[value]
        derived = self.derive(value)
        if derived:
            return derived
        raise _Reject("invented_number", str(float(value)) if value.denominator != 1 else str(value.numerator))

    def derive(self, value: Fraction) -> str | None:
        """`3 sets of 20 minutes` in an hour: a constant that one division or product of two numbers
        the trace can hold (question, stated facts, results) gives; computed, not invented."""
        held = [(v, None) for v, _, _ in self.stated] + [(v, var) for v, var in self.results]
        for a, _ in held:
            for b, _ in held:
                for op, got in (("div", a / b if b else None), ("mul", a * b)):
                    if got == value and a != value and b != value and (a, b) != (value, 1):
                        args = [self.operand(a), self.operand(b)]
                        var = self.names.new("derived")
                        self.steps.append(compute(op, args, var))
                        self.results.append((value, var))
                        return var
        return None

    def node(self, node: ast.expr, names: list[str]) -> tuple[str, Fraction]:
        """The variable holding `node`'s value; compute steps for what is not yet held."""
        if isinstance(node, ast.Constant):
            value = of_value(node.value)
            return self.operand(value), value
        op = _OPS[type(node.op)]
        parts = _flatten(node, type(node.op)) if op in ("add", "mul") else [node.left, node.right]
        args, values = [], []
        for p in parts:
            var, val = self.node(p, names)
            args.append(var)
            values.append(val)
        value = values[0]
        for v in values[1:]:
            value = _apply(op, value, v)
        var = self.names.new(*names)
        self.steps.append(compute(op, args, var))
        self.results.append((value, var))
        return var, value


def _flatten(node: ast.expr, kind) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, kind):
        return _flatten(node.left, kind) + _flatten(node.right, kind)
    return [node]


def _plain_steps(text: str):
    """(expression, result, start, end) of each `a + b = c` written as text, left to right."""
    pos = 0
    while True:
        chain = _CHAIN.search(text, pos)
        if not chain:
            return
        equals = _EQUALS.match(text, chain.end())
        if equals:
            yield chain.group(0), equals.group(1), chain.start(), equals.end()
        pos = equals.end() if equals else chain.end()


def _steps(solution: str) -> list[tuple[str, str, int, int]]:
    """(expression, result, start, end offset) of every calculation, annotated or written as plain text."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in _ANNOTATION.finditer(solution)]
    blanked = _ANNOTATION.sub(lambda m: "#" * len(m.group(0)), solution)  # same offsets; no match runs across one
    for expression, result, start, end in _plain_steps(blanked):
        try:  # plain text is read loosely: a match whose arithmetic does not hold was misread, not wrong
            if answers_match(_value(_expression(expression)), _number(result)):
                found.append((expression, result, start, end))
        except (_Reject, ValueError, ZeroDivisionError):
            pass
    return sorted(found, key=lambda f: f[2])


def convert(index: int, question: str, answer_text: str) -> Converted:
    """One GSM8K problem as a gold trace, or the reason it is not one."""
    if not isinstance(question, str) or not isinstance(answer_text, str):
        return Converted(index, str(question)[:200], Fraction(0), reason="answer_not_computed", detail="not text")
    if len(question) > MAX_TEXT or len(answer_text) > MAX_TEXT:
        return Converted(index, question[:MAX_TEXT], Fraction(0), reason="text_too_long",
                         detail=f"{max(len(question), len(answer_text)):,} characters")
    try:
        answer = parse_answer(answer_text)
    except BadNumber as exc:
        return Converted(index, question, Fraction(0), reason="bad_number", detail=str(exc))
    except ValueError:
        return Converted(index, question, Fraction(0), reason="answer_not_computed", detail="no #### line")
    out = Converted(index, question, answer)
    try:
        solution = answer_text.split("####")[0]
        notes = _steps(solution)
        if not notes:
            raise _Reject("no_annotation")
        b = _Builder(question)
        for expr_text, result_text, start, end in notes:
            expr = _expression(expr_text)
            try:
                stated = _number(result_text.replace("$", "").strip().rstrip("."))
            except (ValueError, ZeroDivisionError):
                raise _Reject("bad_expression", f"{expr_text}={result_text}") from None
            if isinstance(expr, ast.Constant):
                continue  # `<<5=5>>` restates a number: nothing to compute
            if not answers_match(_value(expr), stated):
                raise _Reject("wrong_arithmetic", f"{expr_text}={result_text}")
            b.node(expr, _names_from(_words_after(solution, end), _words_before(solution, start), "value"))
        final = next((var for v, var in reversed(b.results) if answers_match(v, answer)), None)
        if final is None:
            raise _Reject("answer_not_computed", str(answer))
        b.steps.append(query(final))
        if len(b.steps) > MAX_STEPS:
            raise _Reject("too_long", f"{len(b.steps)} steps")
        trace = single("arithmetic", b.steps)
        report = check(trace, answer)
        if report.reward != 1.0 or report.diagnostics:
            raise _Reject("checker_rejected", ", ".join(report.codes) or f"answer {report.answer}")
    except _Reject as r:
        out.reason, out.detail = r.reason, r.detail
        return out
    except BadNumber as exc:  # a number of the question or the solution that no reader takes
        out.reason, out.detail = "bad_number", str(exc)
        return out
    out.trace, out.steps, out.facts = trace, len(b.steps), b.facts
    return out


def convert_all(rows: list[dict]) -> list[Converted]:
    """`rows`: GSM8K records (`question`, `answer`) in file order; the index is the line's."""
    return [convert(i, r["question"], r["answer"]) for i, r in enumerate(rows)]


def kept(rows: list[dict], seed: int) -> Iterator[Converted]:
    """The kept training traces of `rows` (the train split's records) in an order fixed by the
    seed, each converted only when asked for: a run that wants a few pays for a few."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    for i in order:
        c = convert(i, rows[i]["question"], rows[i]["answer"])
        if c.kept:
            yield c


@lru_cache(maxsize=8)
def sample(n: int, seed: int, source: str | None = None) -> tuple[Converted, ...]:
    """n kept training traces (all there are, if fewer), in an order fixed by the seed.

    Only ever the train split. Problems are converted in that order until n are kept,
    so a small sample costs little (all 7,473 take ~10 s).
    """
    from .gsm8k import load_rows

    return tuple(islice(kept(load_rows(source, "train"), seed), n))
