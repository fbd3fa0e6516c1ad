"""Synthetic word problems for the five experts and their compositions.

Each pattern is a small function: it draws names, items and numbers, and
returns the question, the gold trace (the YAML a model should write) and the
answer. Every gold trace is run through the checker before it is used: a
pattern whose trace does not score 1.0 against its own answer raises.
Phrasings: a run can use one phrasing per pattern (what worked best for small
models in the seed experiments) or all of them.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from fractions import Fraction as F
from typing import Callable

from ..trace import as_number, check
from ..trace.language import COMPOSITION, EXPERTS
from .tracewriter import compute, composed, init, query, single, source, step

NAMES = ["Alice", "Ben", "Carla", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jamal",
         "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "cards", "shells", "stamps", "coins"]
GOODS = [("shirt", 12, 40), ("jacket", 40, 120), ("lamp", 15, 60), ("backpack", 20, 80), ("chair", 25, 90),
         ("bike", 90, 300), ("watch", 30, 150), ("kettle", 18, 50)]
MACHINES = [("printer", "pages"), ("machine", "widgets"), ("baker", "loaves"), ("robot", "boxes"), ("pump", "liters")]


class GeneratorBug(Exception):
    """A pattern produced a gold trace that the checker does not accept."""


@dataclass
class Example:
    question: str
    expert: str
    pattern: str
    trace: str
    answer: int | float

    def to_json(self) -> dict:
        return asdict(self)


Pattern = Callable[[random.Random, int], tuple[str, str, F]]
PATTERNS: dict[str, dict[str, Pattern]] = {e: {} for e in (*EXPERTS, COMPOSITION)}


def pattern(expert: str, name: str):
    def register(fn: Pattern) -> Pattern:
        PATTERNS[expert][name] = fn
        return fn

    return register


def pick(options: list, ph: int):
    """The phrasing `ph` of a question (phrasings=one always asks for the first)."""
    return options[ph % len(options)]


def two_names(r: random.Random) -> tuple[str, str]:
    a, b = r.sample(NAMES, 2)
    return a, b


# ---------------------------------------------------------------- arithmetic
@pattern("arithmetic", "price_chain")
def _price_chain(r, ph):
    good, lo, hi = r.choice(GOODS)
    base, tax, ship = r.randint(lo, hi), r.randint(2, 12), r.randint(3, 15)
    q = pick([
        f"A {good} costs ${base}. Tax adds ${tax} and shipping adds ${ship}. What is the total cost?",
        f"{r.choice(NAMES)} buys a {good} for ${base}, pays ${tax} in tax and ${ship} for delivery. How much does it cost in all?",
    ], ph)
    t = single("arithmetic", [init("base", base), init("tax", tax), compute("add", ["base", "tax"], "subtotal"),
                              init("shipping", ship), compute("add", ["subtotal", "shipping"], "result"), query("result")])
    return q, t, F(base + tax + ship)


@pattern("arithmetic", "subtraction_chain")
def _subtraction_chain(r, ph):
    a, b = two_names(r)
    item = r.choice(ITEMS)
    start, x, y = r.randint(30, 90), r.randint(3, 12), r.randint(3, 12)
    q = pick([
        f"{a} has {start} {item}. {a} gives away {x} {item} on Monday and {y} {item} on Tuesday. How many {item} are left?",
        f"There are {start} {item} in a jar. {b} takes {x} and then {a} takes {y}. How many {item} remain in the jar?",
    ], ph)
    t = single("arithmetic", [init("start", start), init("first", x), compute("sub", ["start", "first"], "left"),
                              init("second", y), compute("sub", ["left", "second"], "result"), query("result")])
    return q, t, F(start - x - y)


@pattern("arithmetic", "multiply_then_add")
def _multiply_then_add(r, ph):
    item = r.choice(ITEMS)
    boxes, per, loose = r.randint(2, 9), r.randint(3, 12), r.randint(1, 9)
    q = pick([
        f"There are {boxes} boxes with {per} {item} in each box, and {loose} more {item} on the table. How many {item} are there?",
        f"{r.choice(NAMES)} packs {boxes} bags of {per} {item} and has {loose} {item} left over. How many {item} does {r.choice(NAMES)} count in total?",
    ], ph)
    t = single("arithmetic", [init("boxes", boxes), init("per_box", per), compute("mul", ["boxes", "per_box"], "packed"),
                              init("loose", loose), compute("add", ["packed", "loose"], "result"), query("result")])
    return q, t, F(boxes * per + loose)


@pattern("arithmetic", "divide_then_multiply")
def _divide_then_multiply(r, ph):
    item = r.choice(ITEMS)
    groups, each, price = r.randint(2, 8), r.randint(2, 10), r.randint(2, 6)
    total = groups * each
    q = pick([
        f"{total} {item} are shared equally among {groups} friends. Each of the {item} is worth ${price}. How much are one friend's {item} worth?",
        f"A shop splits {total} {item} into {groups} equal packs and sells every one of the {item} for ${price}. What does one pack sell for?",
    ], ph)
    t = single("arithmetic", [init("total", total), init("groups", groups), compute("div", ["total", "groups"], "share"),
                              init("price", price), compute("mul", ["share", "price"], "result"), query("result")])
    return q, t, F(each * price)


@pattern("arithmetic", "interleaved_inits")
def _interleaved(r, ph):
    a = r.choice(NAMES)
    saved, week, spent = r.randint(20, 80), r.randint(5, 20), r.randint(5, 30)
    q = pick([
        f"{a} has ${saved} saved, earns ${week} more this week, then spends ${spent} on a game. How much money does {a} have now?",
        f"{a} starts with ${saved}. After earning ${week} and spending ${spent}, how many dollars does {a} have?",
    ], ph)
    t = single("arithmetic", [init("saved", saved), init("earned", week), compute("add", ["saved", "earned"], "total"),
                              init("spent", spent), compute("sub", ["total", "spent"], "result"), query("result")])
    return q, t, F(saved + week - spent)


# -------------------------------------------------------------- entity_track
@pattern("entity_track", "consume")
def _consume(r, ph):
    a, item = r.choice(NAMES), r.choice(ITEMS)
    have, used = r.randint(10, 60), r.randint(1, 9)
    var = f"{a.lower()}.{item}"
    q = pick([f"{a} has {have} {item}. {a} uses {used} of them. How many {item} does {a} have now?",
                 f"{a} owns {have} {item} and loses {used}. How many {item} does {a} still own?"], ph)
    t = single("entity_track", [init(var, have), step("consume", entity=var, amount=used), query(var)])
    return q, t, F(have - used)


@pattern("entity_track", "transfer")
def _transfer(r, ph):
    (a, b), item = two_names(r), r.choice(ITEMS)
    ha, hb, k = r.randint(10, 50), r.randint(1, 30), r.randint(1, 9)
    va, vb = f"{a.lower()}.{item}", f"{b.lower()}.{item}"
    q = pick([f"{a} has {ha} {item} and {b} has {hb} {item}. {a} gives {k} {item} to {b}. How many {item} does {b} have now?",
                 f"{b} owns {hb} {item}. {a}, who owns {ha}, hands {k} of them to {b}. How many {item} does {b} own after that?"], ph)
    t = single("entity_track", [init(va, ha), init(vb, hb), step("transfer", from_=va, to=vb, amount=k), query(vb)])
    return q, t, F(hb + k)


@pattern("entity_track", "find_and_lose")
def _find_and_lose(r, ph):
    a, item = r.choice(NAMES), r.choice(ITEMS)
    have, found, lost = r.randint(5, 40), r.randint(1, 15), r.randint(1, 5)
    var = f"{a.lower()}.{item}"
    q = pick([f"{a} has {have} {item}, finds {found} more, and then loses {lost}. How many {item} does {a} have?",
                 f"{a} keeps {have} {item}. {a} is given {found} and later drops {lost}. How many {item} are left with {a}?"], ph)
    t = single("entity_track", [init(var, have), step("add_entity", entity=var, amount=found),
                                step("consume", entity=var, amount=lost), query(var)])
    return q, t, F(have + found - lost)


@pattern("entity_track", "multi_transfer")
def _multi_transfer(r, ph):
    a, b, c = r.sample(NAMES, 3)
    item = r.choice(ITEMS)
    have, k1, k2 = r.randint(20, 60), r.randint(1, 9), r.randint(1, 9)
    va, vb, vc = (f"{n.lower()}.{item}" for n in (a, b, c))
    q = pick([f"{a} has {have} {item}. {a} gives {k1} to {b} and {k2} to {c}. How many {item} does {a} have left?",
                 f"{a} starts with {have} {item}, passes {k1} to {b}, then passes {k2} to {c}. How many {item} does {a} keep?"], ph)
    t = single("entity_track", [init(va, have), step("transfer", from_=va, to=vb, amount=k1),
                                step("transfer", from_=va, to=vc, amount=k2), query(va)])
    return q, t, F(have - k1 - k2)


# ------------------------------------------------------------- rate_equation
@pattern("rate_equation", "speed_time")
def _speed_time(r, ph):
    speed, hours = r.randint(20, 70), r.randint(2, 9)
    q = pick([f"A car drives at {speed} miles per hour for {hours} hours. How many miles does it travel?",
                 f"A train moves {speed} km each hour. How far does it go in {hours} hours?"], ph)
    t = single("rate_equation", [init("speed", speed), init("hours", hours), compute("mul", ["speed", "hours"], "result"), query("result")])
    return q, t, F(speed * hours)


@pattern("rate_equation", "work_rate")
def _work_rate(r, ph):
    machine, unit = r.choice(MACHINES)
    rate, hours, days = r.randint(5, 40), r.randint(2, 8), r.randint(2, 6)
    q = pick([f"A {machine} makes {rate} {unit} per hour and runs {hours} hours a day. How many {unit} does it make in {days} days?",
                 f"Each hour a {machine} produces {rate} {unit}. It works {hours} hours daily for {days} days. How many {unit} in all?"], ph)
    t = single("rate_equation", [init("rate", rate), init("hours", hours), init("days", days),
                                 compute("mul", ["rate", "hours", "days"], "result"), query("result")])
    return q, t, F(rate * hours * days)


@pattern("rate_equation", "earnings")
def _earnings(r, ph):
    a = r.choice(NAMES)
    wage, hours, bonus = r.randint(8, 30), r.randint(3, 40), r.randint(5, 50)
    q = pick([f"{a} earns ${wage} an hour, works {hours} hours, and gets a ${bonus} bonus. How much does {a} earn?",
                 f"Paid ${wage} per hour for {hours} hours plus a ${bonus} tip, how many dollars does {a} make?"], ph)
    t = single("rate_equation", [init("wage", wage), init("hours", hours), compute("mul", ["wage", "hours"], "pay"),
                                 init("bonus", bonus), compute("add", ["pay", "bonus"], "result"), query("result")])
    return q, t, F(wage * hours + bonus)


@pattern("rate_equation", "rate_from_total")
def _rate_from_total(r, ph):
    machine, unit = r.choice(MACHINES)
    rate, hours = r.randint(3, 30), r.randint(2, 9)
    total = rate * hours
    q = pick([f"A {machine} made {total} {unit} in {hours} hours at a steady rate. How many {unit} does it make per hour?",
                 f"In {hours} hours a {machine} finished {total} {unit}. What is its hourly rate?"], ph)
    t = single("rate_equation", [init("total", total), init("hours", hours), compute("div", ["total", "hours"], "result"), query("result")])
    return q, t, F(rate)


# ---------------------------------------------------------------- comparison
@pattern("comparison", "times_more")
def _times_more(r, ph):
    (a, b), item = two_names(r), r.choice(ITEMS)
    n, k = r.randint(3, 20), r.randint(2, 6)
    q = pick([f"{a} has {n} {item}. {b} has {k} times as many {item} as {a}. How many {item} does {b} have?",
                 f"{b} collected {k} times the {n} {item} that {a} collected. How many {item} did {b} collect?"], ph)
    t = single("comparison", [init("first", n), init("times", k), compute("mul", ["first", "times"], "result"), query("result")])
    return q, t, F(n * k)


@pattern("comparison", "sum_and_difference")
def _sum_and_difference(r, ph):
    (a, b), item = two_names(r), r.choice(ITEMS)
    n, more = r.randint(5, 40), r.randint(2, 15)
    q = pick([f"{a} has {n} {item}. {b} has {more} more {item} than {a}. How many {item} do they have together?",
                 f"{b} owns {more} {item} more than {a}, who owns {n}. How many {item} do the two own in total?"], ph)
    t = single("comparison", [init("first", n), init("more", more), compute("add", ["first", "more"], "second"),
                              compute("add", ["first", "second"], "result"), query("result")])
    return q, t, F(2 * n + more)


@pattern("comparison", "more_or_less")
def _more_or_less(r, ph):
    (a, b), item = two_names(r), r.choice(ITEMS)
    n, fewer = r.randint(15, 60), r.randint(2, 12)
    q = pick([f"{a} has {n} {item}. {b} has {fewer} fewer {item} than {a}. How many {item} does {b} have?",
                 f"{b} owns {fewer} {item} less than {a}. {a} owns {n}. How many {item} does {b} own?"], ph)
    t = single("comparison", [init("first", n), init("fewer", fewer), compute("sub", ["first", "fewer"], "result"), query("result")])
    return q, t, F(n - fewer)


@pattern("comparison", "half_as_many")
def _half_as_many(r, ph):
    (a, b), item = two_names(r), r.choice(ITEMS)
    n = 2 * r.randint(3, 30)
    q = pick([f"{a} has {n} {item}. {b} has half as many {item} as {a}. How many {item} do they have together?",
                 f"{b} has half the {n} {item} that {a} has. How many {item} do {a} and {b} have in all?"], ph)
    t = single("comparison", [init("first", n), init("parts", 2), compute("div", ["first", "parts"], "second"),
                              compute("add", ["first", "second"], "result"), query("result")])
    return q, t, F(n + n // 2)


# ---------------------------------------------------------------- percentage
def _pct(op, base, rate):
    return {"percent_off": base * (1 - F(rate, 100)), "percent_increase": base * (1 + F(rate, 100)),
            "percent_of": base * F(rate, 100)}[op]


@pattern("percentage", "percent_off")
def _percent_off(r, ph):
    good, lo, hi = r.choice(GOODS)
    price, rate = 5 * r.randint(lo // 5 + 1, hi // 5), r.choice([10, 15, 20, 25, 30, 40, 50])
    q = pick([f"A {good} costs ${price}. It is on sale for {rate}% off. What is the sale price?",
                 f"The ${price} {good} is discounted by {rate}%. How much does it cost now?"], ph)
    t = single("percentage", [init("price", price), init("rate", rate),
                              step("percent_off", base="price", rate="rate", var="result"), query("result")])
    return q, t, _pct("percent_off", price, rate)


@pattern("percentage", "percent_increase")
def _percent_increase(r, ph):
    rent, rate = 100 * r.randint(5, 20), r.choice([5, 10, 12, 15, 20])
    q = pick([f"The rent is ${rent} a month and goes up by {rate}%. What is the new rent?",
                 f"A ${rent} monthly rent rises {rate}%. How much is the rent after the rise?"], ph)
    t = single("percentage", [init("rent", rent), init("rate", rate),
                              step("percent_increase", base="rent", rate="rate", var="result"), query("result")])
    return q, t, _pct("percent_increase", rent, rate)


@pattern("percentage", "percent_of")
def _percent_of(r, ph):
    total, rate = 20 * r.randint(2, 30), r.choice([10, 15, 20, 25, 30, 40, 45, 60, 75])
    q = pick([f"There are {total} students and {rate}% of them walk to school. How many students walk?",
                 f"Of {total} people at a fair, {rate}% bought a ticket. How many bought a ticket?"], ph)
    t = single("percentage", [init("total", total), init("rate", rate),
                              step("percent_of", base="total", rate="rate", var="result"), query("result")])
    return q, t, _pct("percent_of", total, rate)


@pattern("percentage", "tip")
def _tip(r, ph):
    bill, rate = 4 * r.randint(5, 30), r.choice([10, 15, 20, 25])
    q = pick([f"A meal costs ${bill}. {r.choice(NAMES)} leaves a {rate}% tip. How much is paid in total?",
                 f"The bill is ${bill} and the tip is {rate}% of it. What is the bill plus the tip?"], ph)
    t = single("percentage", [init("bill", bill), init("rate", rate),
                              step("percent_of", base="bill", rate="rate", var="tip"),
                              compute("add", ["bill", "tip"], "result"), query("result")])
    return q, t, bill + _pct("percent_of", bill, rate)


# --------------------------------------------------------------- composition
@pattern(COMPOSITION, "discount_then_shipping")
def _discount_then_shipping(r, ph):
    good, lo, hi = r.choice(GOODS)
    price, rate, ship = 10 * r.randint(lo // 10 + 1, hi // 10), r.choice([10, 20, 25, 50]), r.randint(4, 15)
    q = pick([f"A {good} costs ${price} and is {rate}% off. Shipping adds ${ship}. What is the total?",
                 f"After a {rate}% discount on a ${price} {good}, a ${ship} delivery fee is added. How much is paid?"], ph)
    t = composed([("percentage", [init("price", price), init("rate", rate),
                                  step("percent_off", base="price", rate="rate", var="result"), query("result")]),
                  ("arithmetic", [source("prev", "prev.result"), init("shipping", ship),
                                  compute("add", ["prev", "shipping"], "result"), query("result")])])
    return q, t, _pct("percent_off", price, rate) + ship


@pattern(COMPOSITION, "earn_then_spend_percent")
def _earn_then_spend(r, ph):
    a = r.choice(NAMES)
    wage, hours, rate = r.randint(10, 25), 2 * r.randint(2, 10), r.choice([10, 20, 25, 50])
    q = pick([f"{a} earns ${wage} an hour for {hours} hours and saves {rate}% of it. How much does {a} save?",
                 f"Working {hours} hours at ${wage} per hour, {a} puts {rate}% of the pay in the bank. How many dollars is that?"], ph)
    t = composed([("rate_equation", [init("wage", wage), init("hours", hours), compute("mul", ["wage", "hours"], "result"), query("result")]),
                  ("percentage", [source("pay", "prev.result"), init("rate", rate),
                                  step("percent_of", base="pay", rate="rate", var="result"), query("result")])])
    return q, t, _pct("percent_of", wage * hours, rate)


@pattern(COMPOSITION, "give_then_compare")
def _give_then_compare(r, ph):
    (a, b), item = two_names(r), r.choice(ITEMS)
    have, gave, times = r.randint(20, 50), r.randint(2, 9), r.randint(2, 4)
    va = f"{a.lower()}.{item}"
    q = pick([f"{a} has {have} {item} and gives away {gave}. {b} has {times} times as many {item} as {a} has left. How many {item} does {b} have?",
                 f"{a} loses {gave} of {have} {item}. {b} owns {times} times what {a} has now. How many {item} does {b} own?"], ph)
    t = composed([("entity_track", [init(va, have), step("consume", entity=va, amount=gave), query(va)]),
                  ("comparison", [source("left", "prev.result"), init("times", times),
                                  compute("mul", ["left", "times"], "result"), query("result")])])
    return q, t, F((have - gave) * times)


@pattern(COMPOSITION, "three_part_trip")
def _three_part(r, ph):
    speed, hours, rate, toll = r.randint(30, 60), r.randint(2, 5), r.choice([10, 20, 50]), r.randint(3, 12)
    q = pick([f"A van drives {speed} miles per hour for {hours} hours. Fuel costs {rate}% of the miles in dollars, and a toll adds ${toll} plus the miles driven divided by 10. What is the cost of fuel and toll?",
                 f"Driving at {speed} mph for {hours} hours, a driver pays fuel worth {rate}% of the distance in dollars and a toll of ${toll} plus one dollar per 10 miles. What is the total cost?"], ph)
    t = composed([("rate_equation", [init("speed", speed), init("hours", hours), compute("mul", ["speed", "hours"], "result"), query("result")]),
                  ("percentage", [source("miles", "prev.result"), init("rate", rate),
                                  step("percent_of", base="miles", rate="rate", var="result"), query("result")]),
                  ("arithmetic", [source("fuel", "prev.result"), source("miles", "sub0.result"), init("per", 10),
                                  compute("div", ["miles", "per"], "distance_fee"), init("toll", toll),
                                  compute("add", ["fuel", "distance_fee", "toll"], "result"), query("result")])])
    miles = speed * hours
    return q, t, _pct("percent_of", miles, rate) + F(miles, 10) + toll


def make_example(r: random.Random, expert: str, name: str, ph: int) -> Example:
    question, trace, answer = PATTERNS[expert][name](r, ph)
    report = check(trace, answer, expert)
    if report.reward != 1.0 or report.diagnostics:
        problems = "; ".join(d.render() for d in report.diagnostics) or f"answer {report.answer} != {answer}"
        raise GeneratorBug(f"{expert}/{name}: the gold trace fails the checker: {problems}")
    return Example(question, expert, name, trace, as_number(answer))


def generate(n: int, seed: int = 0, mix: dict[str, float] | None = None, phrasings: str = "one") -> list[Example]:
    """n examples; deterministic for a seed. `mix` weights experts (and `composition`)."""
    r = random.Random(seed)
    mix = mix or {e: 1.0 for e in PATTERNS}
    experts = [e for e in mix if mix[e] > 0]
    weights = [mix[e] for e in experts]
    out = []
    for _ in range(n):
        expert = r.choices(experts, weights)[0]
        name = r.choice(sorted(PATTERNS[expert]))
        # `unseen`: the second wording of every pattern, which phrasings=one never trains on
        ph = 0 if phrasings == "one" else 1 if phrasings == "unseen" else r.randrange(8)
        out.append(make_example(r, expert, name, ph))
    return out
