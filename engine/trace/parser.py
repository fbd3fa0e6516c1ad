"""Read model output into a `Trace`, keeping the source line of every step.

Model output arrives as it really comes: a fenced ```yaml block with chatter
around it, bare YAML, or something cut off by a length limit. Parsing never
raises: what cannot be read becomes a diagnostic. Values are built from the
YAML reader's events with our own small resolver (never PyYAML's constructor),
so no tag can build a Python object; every node and every alias expansion
counts against a budget, so an alias bomb is answered at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

import yaml

from .diagnostics import Diagnostic

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_CHARS = 64_000  # far beyond any trace; guards the YAML reader
MAX_NODES = 5_000  # nodes one document may expand to, aliases counted in full
MAX_DEPTH = 48  # nesting allowed; the reader stops at the first event deeper than this

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_.+-]*)[ \t]*$", re.M)
_BARE_START = re.compile(r"^[ \t]*(?:-[ \t]+)?expert[ \t]*:", re.M)
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


@dataclass(slots=True)
class Step:
    index: int
    line: int  # 1-based line in the original text
    fields: dict | None  # None when the step is not a mapping
    raw: object = None  # what was there instead of a mapping

    @property
    def op(self):
        return self.fields.get("op") if self.fields is not None else None

    def signature(self) -> str:
        """Canonical text of the step, equal for steps a model wrote identically."""
        return repr(self.raw) if self.fields is None else repr(self.fields)  # a looping model repeats its key order too


@dataclass(slots=True)
class Part:
    index: int
    line: int  # line of the part's first key
    expert: object  # normally a str; whatever the model wrote otherwise
    expert_line: int
    steps: list[Step] = field(default_factory=list)
    has_trace: bool = True  # the `trace` key exists and is a list

    def signature(self) -> str:
        return repr(self.expert) + "|" + "|".join(s.signature() for s in self.steps)


@dataclass(slots=True)
class Trace:
    parts: list[Part]
    composed: bool

    @property
    def expert(self):
        """A name for a single-expert trace, a list of names for a composed one."""
        names = [p.expert if isinstance(p.expert, str) else repr(p.expert) for p in self.parts]
        return names if self.composed else names[0]


@dataclass(slots=True)
class Parsed:
    text: str
    trace: Trace | None
    diagnostics: list[Diagnostic]
    first_line: int = 1  # where the YAML starts in the original text
    last_line: int = 1


class _Refused(Exception):
    """Raised inside the node walk; becomes a parse_error."""


def extract(text: str) -> tuple[str, int, bool]:
    """The YAML part of model output: (content, 0-based line offset, closed).

    The first fenced block wins; without a fence, start at the first line that
    opens a trace (`expert:`), so chatter before bare YAML is skipped.
    """
    fences = list(_FENCE.finditer(text))
    if fences:
        start = fences[0]
        offset = text.count("\n", 0, start.start()) + 1
        body_start = start.end() + 1
        for close in fences[1:]:
            if close.group(1) == "":
                return text[body_start : close.start()], offset, True
        return text[body_start:], offset, False
    m = _BARE_START.search(text)
    if m:
        line_start = text.rfind("\n", 0, m.start()) + 1
        return text[line_start:], text.count("\n", 0, line_start), True
    return text, 0, True


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


def _read(content: str, offset: int):
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
                        raise _Refused(f"the YAML tag {event.tag!r} is not allowed in a trace")
                    value, size = _scalar(event), 1
                    if event.anchor:
                        anchors[event.anchor] = (value, 1)
                else:
                    if event.anchor in open_anchors:
                        raise _Refused(f"the alias *{event.anchor} refers to itself")
                    if event.anchor not in anchors:
                        raise _Refused(f"the alias *{event.anchor} names no anchor")
                    value, size = anchors[event.anchor]
                line = event.start_mark.line + offset
            elif kind is _MAPPINGSTART or kind is _SEQUENCESTART:
                if event.tag is not None and event.tag not in _ALLOWED_TAGS:
                    raise _Refused(f"the YAML tag {event.tag!r} is not allowed in a trace")
                if len(stack) > MAX_DEPTH:
                    raise _Refused(f"the YAML nests deeper than {MAX_DEPTH} levels")
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
                        raise _Refused("the output holds more than one YAML document")
                continue
            # attach the finished value to its parent
            budget -= size
            if budget < 0:
                raise _Refused("the document is too large or expands aliases too far")
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


def _is_part(value) -> bool:
    return isinstance(value, Map) and ("expert" in value or "trace" in value)


def _part(index: int, node: Map, diags: list) -> Part:
    line = node.line
    if "expert" in node:
        expert, expert_line = node["expert"], node.key_lines["expert"]
    else:
        expert, expert_line = None, line
        diags.append(Diagnostic("missing_field", "the part has no `expert` key", line=line, part=index))
    part = Part(index, line, expert, expert_line)
    if "trace" not in node:
        part.has_trace = False
        diags.append(Diagnostic("missing_field", "the part has no `trace` list of steps", line=line, part=index))
        return part
    steps = node["trace"]
    if not isinstance(steps, Seq):
        part.has_trace = False
        message = "`trace` must be a list of steps"
        diags.append(Diagnostic("missing_field", message, line=node.key_lines["trace"], part=index))
        return part
    for i, (item, sline) in enumerate(zip(steps, steps.lines)):
        if isinstance(item, Map):
            part.steps.append(Step(i, sline, item))
        else:
            part.steps.append(Step(i, sline, None, item))
    return part


def _yaml_error(exc: yaml.YAMLError, content: str, offset: int) -> tuple[str, int | None, bool]:
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


def _read_fast(content: str, offset: int):
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


def parse(text: str) -> Parsed:
    """Parse model output. Never raises; problems become diagnostics."""
    if not isinstance(text, str):
        text = str(text)
    total_lines = len(text.rstrip().splitlines()) or 1  # the last line that holds anything
    if len(text) > MAX_CHARS:
        return Parsed(text, None, [Diagnostic("parse_error", f"the output is over {MAX_CHARS} characters")])
    content, offset, closed = extract(text)
    diags: list[Diagnostic] = []
    if not closed:
        diags.append(
            Diagnostic(
                "truncated",
                "the ```yaml fence is never closed: the output stopped inside the trace",
                line=total_lines,
            )
        )
    first, last = offset + 1, offset + max(1, content.count("\n") + 1)
    if not content.strip():
        diags.append(Diagnostic("parse_error", "no YAML was found in the output", line=first))
        return Parsed(text, None, diags, first, last)
    try:
        root = _read_fast(content, offset) if closed else None
        if root is None:
            root = _read(content, offset)
    except _Refused as exc:
        diags.append(Diagnostic("parse_error", str(exc), line=first))
        return Parsed(text, None, diags, first, last)
    except yaml.YAMLError as exc:
        problem, line, at_end = _yaml_error(exc, content, offset)
        cut = content.rstrip().rfind("\n")
        if (at_end or not closed) and cut > 0:
            # The last line was cut mid-step: report that, and read what came before it.
            if closed:
                diags.append(Diagnostic("truncated", f"the last line was cut mid-step ({problem})", line=line))
            salvaged = _salvage(text, content[:cut], offset, first, last)
            salvaged.diagnostics[:0] = diags
            return salvaged
        diags.append(Diagnostic("parse_error", f"the YAML cannot be read: {problem}", line=line))
        return Parsed(text, None, diags, first, last)
    trace, more = _shape(root, first)
    return Parsed(text, trace, diags + more, first, last)


def _salvage(text: str, content: str, offset: int, first: int, last: int) -> Parsed:
    try:
        root = _read(content, offset)
    except (yaml.YAMLError, _Refused):
        return Parsed(text, None, [], first, last)
    trace, _ = _shape(root, first)
    # What survived the cut is shown; the shape of a cut document proves nothing.
    return Parsed(text, trace, [], first, last)


def _shape(root, first: int) -> tuple[Trace | None, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    if root is None:
        return None, [Diagnostic("parse_error", "the YAML is empty", line=first)]
    if _is_part(root):
        return Trace([_part(0, root, diags)], composed=False), diags
    if isinstance(root, Seq) and root and all(_is_part(n) for n in root):
        return Trace([_part(i, n, diags) for i, n in enumerate(root)], composed=True), diags
    line = getattr(root, "line", first)
    what = "a list" if isinstance(root, Seq) else "a mapping" if isinstance(root, Map) else "plain text"
    hint = "a mapping with `expert` and `trace`, or a list of such parts"
    return None, [Diagnostic("parse_error", f"read {what}, not a trace: expected {hint}", line=line)]
