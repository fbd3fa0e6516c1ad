"""Show a checked trace to a person: the source with diagnostics under their
lines, and the execution step by step. Rich text; plain when not a terminal."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .checker import Report
from .diagnostics import STYLE
from .executor import FAILED, SKIPPED, fmt


def summary(report: Report, source: bool = True) -> Text:
    """One line: readable or not, valid or not, expert, answer, expected and reward
    (the CLI's title and the stepper's header)."""
    t = Text()
    if source:
        t.append(report.source, style="bold")
    if report.trace is None:
        t.append("  unreadable", style=STYLE["error"])
    else:
        t.append("  valid" if report.valid else "  invalid", style="bold green" if report.valid else STYLE["error"])
        expert = report.expert if isinstance(report.expert, str) else " → ".join(report.expert)
        t.append(f"  expert {expert}  answer {fmt(report.answer)}")
    if report.expected_answer is not None:
        t.append(f"  expected {fmt(report.expected_answer)}")
    if report.reward is not None:
        t.append(f"  reward {report.reward:g} ({report.outcome})", style="bold")
    return t


def source_view(report: Report) -> Group:
    """Every line of the output, each followed by the diagnostics found on it."""
    by_line: dict[int | None, list] = {}
    for d in report.diagnostics:
        by_line.setdefault(d.line, []).append(d)
    rows = [summary(report)]
    lines = report.parsed.text.splitlines() or [""]
    width = len(str(len(lines)))
    for number, line in enumerate(lines, 1):
        marks = by_line.get(number, [])
        gutter_style = STYLE["error"] if any(d.is_error for d in marks) else STYLE["warning"] if marks else "dim"
        row = Text(f"{number:>{width}} │ ", style=gutter_style)
        row.append(line)
        rows.append(row)
        for d in marks:
            rows.append(_diag_line(d, width))
    for d in by_line.get(None, []):
        rows.append(_diag_line(d, width))
    return Group(*rows)


def _diag_line(d, width: int) -> Text:
    t = Text(" " * width + " └ ", style="dim")
    t.append(f"{d.severity} {d.code}", style=STYLE[d.severity])
    where = f" ({d.step_label()})" if d.step is not None else ""  # the stepper's count, across parts
    t.append(f"{where}: {d.message}")
    return t


def steps_table(report: Report) -> Table:
    table = Table(title=summary(report), title_justify="left", expand=False)
    for name in ("part", "step", "line", "op", "read", "wrote (old → new)", "diagnostics"):
        table.add_column(name, overflow="fold")
    for number, r in enumerate(report.records, 1):  # `step`: the stepper's count across parts, from 1
        status_style = "dim" if r.status == SKIPPED else STYLE["error"] if r.status == FAILED else ""
        reads = ", ".join(f"{k}={fmt(v)}" for k, v in r.reads.items())
        writes = Text()
        for w in r.writes:
            if len(writes):
                writes.append(", ")
            writes.append(f"{w.var}: {fmt(w.old)} → {fmt(w.new)}", style="bold red" if w.lost else "green")
        if r.answer is not None:
            writes.append(f"answer = {fmt(r.answer)}", style="bold")
        diags = Text()
        for d in r.diagnostics:
            if len(diags):
                diags.append("\n")
            diags.append(d.code, style=STYLE[d.severity])
        op = str(r.op) + (" (not run)" if r.status == SKIPPED else "")
        table.add_row(str(r.part), str(number), str(r.line), Text(op, style=status_style), reads, writes, diags)
    return table
