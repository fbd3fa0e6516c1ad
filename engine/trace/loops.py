"""Find repetition: steps or parts looped back to back, and raw text that loops.

Both are what a collapsed small model does: it writes its own template again
and again until the length limit cuts it off.
"""

from __future__ import annotations

import re
from typing import Hashable, Sequence

from .diagnostics import Diagnostic

MIN_COPIES = 3
_SPAN = re.compile(r"\b(.{8,}?)\1{2,}")  # spans start at a word: 4x fewer tries
# The searches below are polynomial in their input; a model's output is a few
# hundred lines, so these caps only ever bite on hostile or runaway input.
MAX_ITEMS = 2_000  # lines, steps or parts searched for back-to-back repeats
MAX_BLOCK = 64  # the longest repeated block looked for
MAX_SPAN_LINE = 2_000  # characters of one line searched for a repeated span


def repeats(seq: Sequence[Hashable], min_copies: int = MIN_COPIES) -> list[tuple[int, int, int]]:
    """Runs of a block repeated back to back: (start, block length, copies).

    At each position the longest covered span wins (the shortest block on a
    tie), and the scan continues after it, so runs never overlap.
    """
    seq = seq[:MAX_ITEMS]
    out, i, n = [], 0, len(seq)
    while i <= n - min_copies:
        best = None
        for length in range(1, min((n - i) // min_copies, MAX_BLOCK) + 1):
            block = seq[i : i + length]
            copies = 1
            while seq[i + copies * length : i + (copies + 1) * length] == block:
                copies += 1
            if copies >= min_copies and (best is None or copies * length > best[1] * best[2]):
                best = (i, length, copies)
        if best:
            out.append(best)
            i += best[1] * best[2]
        else:
            i += 1
    return out


def _loop(unit: str, start: int, length: int, copies: int, line, end_line, before: int = 0, **where) -> Diagnostic:
    # steps counted from 1 across the whole trace (`before`: the earlier parts' steps), as the stepper's
    # `step 6 of 8`; parts from 0, as subN names them
    first = before + start + 1 if unit == "step" else start
    what = f"{unit} {first}" if length == 1 else f"{unit}s {first}-{first + length - 1}"
    verb = "repeats" if length == 1 else "repeat"
    return Diagnostic("template_loop", f"{what} (a block of {length} {unit}{'s' if length > 1 else ''}) {verb} {copies} "
                      "times back to back", line=line, end_line=end_line, **where)


def template_loops(trace) -> list[Diagnostic]:
    diags, before = [], 0
    for part in trace.parts:
        sigs = [s.signature() for s in part.steps]
        before, earlier = before + len(part.steps), before
        if len(set(sigs)) == len(sigs):
            continue  # no step appears twice: nothing can repeat
        for start, length, copies in repeats(sigs):
            last = part.steps[start + length * copies - 1]
            diags.append(_loop("step", start, length, copies, part.steps[start].line, last.line, earlier,
                               step=start, part=part.index))
    if trace.composed:
        sigs = [p.signature() for p in trace.parts]
        for start, length, copies in repeats(sigs):
            last = trace.parts[start + length * copies - 1]
            end_line = last.steps[-1].line if last.steps else last.line
            diags.append(_loop("part", start, length, copies, trace.parts[start].line, end_line, part=start))
    return diags


def text_loops(text: str) -> list[Diagnostic]:
    """A line, a block of lines, or a span inside a line repeated 3+ times in a row."""
    lines = [(i + 1, ln) for i, ln in enumerate(map(str.strip, text.splitlines())) if ln and not ln.startswith("```")]
    texts = [ln for _, ln in lines]
    diags = []
    for start, length, copies in repeats(texts) if len(set(texts)) < len(texts) else ():
        first, last = lines[start][0], lines[start + length * copies - 1][0]
        what = "a line" if length == 1 else f"a block of {length} lines"
        diags.append(
            Diagnostic(
                "text_loop",
                f"{what} repeats {copies} times in a row (lines {first}-{last})",
                line=first,
                end_line=last,
            )
        )
    # one pass per line; `.` stops at line ends, so a span never crosses lines anyway
    for number, line in enumerate(text.splitlines()[:MAX_ITEMS], 1):
        for m in _SPAN.finditer(line[:MAX_SPAN_LINE]) if len(line) >= 24 else ():
            if not m.group(1).strip():
                continue
            copies = len(m.group(0)) // len(m.group(1))
            span = m.group(1) if len(m.group(1)) <= 40 else m.group(1)[:37] + "..."
            diags.append(Diagnostic("text_loop", f"the text {span!r} repeats {copies} times in a row", line=number, end_line=number))
    return diags
