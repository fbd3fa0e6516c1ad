"""Plain values from YAML text, built by our own resolver from the YAML reader's
events (never PyYAML's constructor, so no tag builds a Python object), with a
node budget that counts aliases in full; and the fast path that reads
generator-style traces line by line into the same values. `parser.py` shapes
these values into a `Trace`.
"""

from __future__ import annotations

import re
from fractions import Fraction

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_NODES = 5_000  # nodes one document may expand to, aliases counted in full
MAX_DEPTH = 48  # nesting allowed; the reader stops at the first event deeper than this
_TAG = "tag:yaml.org,2002:"


class Unreadable:
    """A scalar that looked like a number but cannot be one (1e999999, .nan)."""

    __slots__ = ("text", "why")

    def __init__(self, text: str, why: str):
        self.text, self.why = text, why

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unreadable) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class Refused(Exception):
    """Raised inside the node walk; becomes a parse_error."""


# Plain scalars resolve as in YAML 1.1, except that 012 is twelve (as in YAML 1.2):
# a model that writes a leading zero means a decimal number.
_INT = re.compile(r"^[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*(?::[0-5]?[0-9])*)$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")
# Only true/false are booleans (YAML 1.2): `var: on` or `var: n` is a name a model meant.
_BOOL = {"true": True, "false": False}
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_WORDY = frozenset("abcdeghijklmopqrsuvwxyzABCDEGHIJKLMOPQRSUVWXYZ_")  # cannot start null, bool or number
_ALLOWED_TAGS = {None, "!", _TAG + "str", _TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null", _TAG + "map", _TAG + "seq"}


class Seq(list):
    """A YAML sequence that remembers the 1-based line of each item."""

    __slots__ = ("line", "lines", "indent")


class Map(dict):
    """A YAML mapping that remembers its line and the line of each key."""

    __slots__ = ("line", "key_lines")


def _number(text: str, is_int: bool):
    clean = text.replace("_", "").strip()
    if len(clean) > 40:
        return Unreadable(text, "the number has too many digits")
    try:
        if is_int:
            sign = -1 if clean.startswith("-") else 1
            body = clean.lstrip("+-")
            for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
                if body.startswith(prefix):
                    return Fraction(sign * int(body[2:], base))
            if ":" in body:  # YAML 1.1 sexagesimal: 1:30 is 90
                total = 0
                for piece in body.split(":"):
                    total = total * 60 + int(piece)
                return Fraction(sign * total)
            return Fraction(int(clean, 10))
        low = clean.lower()
        if low.lstrip("+-") in (".inf", ".nan"):
            return Unreadable(text, "the number is not finite")
        _, _, exponent = low.partition("e")
        if exponent and abs(int(exponent)) > 30:
            return Unreadable(text, "the number is out of range")
        return Fraction(clean)
    except (ValueError, ZeroDivisionError):
        return Unreadable(text, "the number cannot be read")


def _plain(value: str):
    """A plain (unquoted, untagged) scalar, resolved implicitly."""
    if value and value[0] in _WORDY:  # most scalars are keys and names: no regex needed
        return value
    if value in _NULL:
        return None
    low = value.lower()
    if low in _BOOL and value in (low, low.title(), low.upper()):
        return _BOOL[low]
    if _INT.match(value):
        return _number(value, True)
    if _FLOAT.match(value):
        return _number(value, False)
    return value


def _scalar(event: yaml.ScalarEvent):
    """Resolve a scalar the way YAML 1.1 does, without PyYAML's resolver."""
    value, tag = event.value, event.tag
    if tag is None and event.implicit[0]:
        return _plain(value)
    if tag in (None, "!", _TAG + "str"):
        return value
    if tag == _TAG + "int":
        return _number(value, True)
    if tag == _TAG + "float":
        return _number(value, False)
    if tag == _TAG + "bool":
        return _BOOL.get(value.lower(), value)
    return None  # !!null


def read_yaml(content: str, offset: int):
    """Plain values (Fraction, str, bool, None, Seq, Map) from YAML events.

    Every node counts against a budget, and an alias counts as the size of
    what it names, so nested aliases cannot expand into gigabytes later.
    One flat loop with local names: this is the checker's hot path.
    """
    offset += 1  # event lines are 0-based within the YAML
    anchors: dict[str, tuple[object, int]] = {}
    open_anchors: set[str] = set()
    stack: list[list] = []  # [container, size, anchor, pending key]
    root, budget, docs = None, MAX_NODES, 0
    loader = _Loader(content)
    try:
        while loader.check_event():
            event = loader.get_event()
            kind = type(event)
            if kind is _SCALAR or kind is _ALIAS:
                if kind is _SCALAR:
                    if event.tag is not None and event.tag not in _ALLOWED_TAGS:
                        raise Refused(f"the YAML tag {event.tag!r} is not allowed in a trace")
                    value, size = _scalar(event), 1
                    if event.anchor:
                        anchors[event.anchor] = (value, 1)
                else:
                    if event.anchor in open_anchors:
                        raise Refused(f"the alias *{event.anchor} refers to itself")
                    if event.anchor not in anchors:
                        raise Refused(f"the alias *{event.anchor} names no anchor")
                    value, size = anchors[event.anchor]
                line = event.start_mark.line + offset
            elif kind is _MAPPINGSTART or kind is _SEQUENCESTART:
                if event.tag is not None and event.tag not in _ALLOWED_TAGS:
                    raise Refused(f"the YAML tag {event.tag!r} is not allowed in a trace")
                if len(stack) > MAX_DEPTH:
                    raise Refused(f"the YAML nests deeper than {MAX_DEPTH} levels")
                if kind is _SEQUENCESTART:
                    container = Seq()
                    container.lines = []
                else:
                    container = Map()
                    container.key_lines = {}
                container.line = event.start_mark.line + offset
                if event.anchor:
                    open_anchors.add(event.anchor)
                stack.append([container, 1, event.anchor, _NO_KEY])
                continue
            elif kind is _MAPPINGEND or kind is _SEQUENCEEND:
                value, size, anchor, _ = stack.pop()
                if anchor:
                    open_anchors.discard(anchor)
                    anchors[anchor] = (value, size)
                line = value.line
            else:
                if kind is _DOCUMENTSTART:
                    docs += 1
                    if docs > 1:
                        raise Refused("the output holds more than one YAML document")
                continue
            # attach the finished value to its parent
            budget -= size
            if budget < 0:
                raise Refused("the document is too large or expands aliases too far")
            if not stack:
                root = value
                continue
            top = stack[-1]
            top[1] += size
            container = top[0]
            if type(container) is Seq:
                container.append(value)
                container.lines.append(line)
            elif top[3] is _NO_KEY:
                key = value if isinstance(value, str) else repr(value)
                top[3] = key
                container.key_lines[key] = line
            else:
                container[top[3]] = value
                top[3] = _NO_KEY
    finally:
        loader.dispose()
    return root


_NO_KEY = object()
_SCALAR, _ALIAS, _DOCUMENTSTART = yaml.ScalarEvent, yaml.AliasEvent, yaml.DocumentStartEvent
_MAPPINGSTART, _SEQUENCESTART, _MAPPINGEND, _SEQUENCEEND = (
    yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.MappingEndEvent, yaml.SequenceEndEvent)


def yaml_error(exc: yaml.YAMLError, content: str, offset: int) -> tuple[str, int | None, bool]:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + offset + 1 if mark else None
    at_end = mark is not None and mark.index >= len(content.rstrip())
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return problem, line, at_end


# The fast path: traces written the way the generator and trained models write
# them (flow-style steps, plain scalars, one construct per line) are read line
# by line into the same values the YAML path builds. Anything else, down to a
# comment or a quote, goes to the YAML reader; tests check both paths agree.
_FAST_PART = re.compile(r"^(- )?expert: ([\w.+-]+)$")
_FAST_TRACE = re.compile(r"^( *)trace:$")
_FAST_STEP = re.compile(r"^( *)- \{(.*)\}$")
_FAST_PAIR = re.compile(r" *(\w+): (\[[\w.+\- ,]*\]|[\w.+-]+) *(?:,|$)")
_FAST_ITEM = re.compile(r"^[\w.+-]+$")


def read_fast(content: str, offset: int):
    lines = content.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    parts, part, steps, composed = [], None, None, None
    for i, line in enumerate(lines):
        number = i + offset + 1
        m = _FAST_STEP.match(line)
        if m:
            if steps is None or len(m.group(1)) != steps.indent:
                return None
            fields = Map()
            fields.key_lines = {}
            fields.line = number
            body, pos = m.group(2), 0
            while pos < len(body):
                pair = _FAST_PAIR.match(body, pos)
                if not pair:
                    return None
                key, raw = pair.group(1), pair.group(2)
                if raw.startswith("["):
                    items = [x.strip() for x in raw[1:-1].split(",")] if raw[1:-1].strip() else []
                    if any(not _FAST_ITEM.match(x) for x in items):
                        return None
                    value = Seq(_plain(x) for x in items)
                    value.lines = [number] * len(items)
                    value.line = number
                else:
                    value = _plain(raw)
                fields[key] = value
                fields.key_lines[key] = number
                pos = pair.end()
            steps.append(fields)
            steps.lines.append(number)
            continue
        m = _FAST_PART.match(line)
        if m:
            dash = bool(m.group(1))
            if composed is None:
                composed = dash
            if dash != composed or (not dash and parts):
                return None
            part = Map()
            part.key_lines = {"expert": number}
            part.line = number
            part["expert"] = _plain(m.group(2))
            parts.append(part)
            steps = None
            continue
        m = _FAST_TRACE.match(line)
        if m and part is not None and "trace" not in part and len(m.group(1)) == (2 if composed else 0):
            steps = Seq()
            steps.lines, steps.line, steps.indent = [], number, len(m.group(1))
            part["trace"], part.key_lines["trace"] = steps, number
            continue
        return None
    if not parts or any("trace" not in p or not p["trace"] for p in parts):
        return None
    for p in parts:
        p["trace"].line = p["trace"].lines[0]  # YAML places a block sequence at its first item
    if not composed:
        return parts[0]
    root = Seq(parts)
    root.lines, root.line = [p.line for p in parts], parts[0].line
    return root
