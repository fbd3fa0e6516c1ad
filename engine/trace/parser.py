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

import yaml

from .diagnostics import Diagnostic
from .values import Map, Seq, read_yaml, read_fast, Refused, yaml_error

MAX_CHARS = 64_000  # far beyond any trace; guards the YAML reader

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_.+-]*)[ \t]*$", re.M)
_BARE_START = re.compile(r"^[ \t]*(?:-[ \t]+)?expert[ \t]*:", re.M)


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


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse(text: str) -> Parsed:
    """Parse model output. Never raises; problems become diagnostics."""
    if not isinstance(text, str):
        text = str(text)
    text = _SURROGATE.sub("\ufffd", text)  # a lone surrogate (a file's "\ud800") is no text the YAML reader takes
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
        root = read_fast(content, offset) if closed else None
        if root is None:
            root = read_yaml(content, offset)
    except Refused as exc:
        diags.append(Diagnostic("parse_error", str(exc), line=first))
        return Parsed(text, None, diags, first, last)
    except yaml.YAMLError as exc:
        problem, line, at_end = yaml_error(exc, content, offset)
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
        root = read_yaml(content, offset)
    except (yaml.YAMLError, Refused):
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
