"""The terminal tables every command prints, written once: a plain table helper,
the evaluations table (`engine train`'s summary and `engine eval`) and the
sessions table (`engine ls`)."""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text

from ..stats import fmt_interval


def table(title: str, columns, rows=(), right=(), whole=()) -> Table:
    """A left-titled table; columns named in `right` are right-aligned (numbers); those named in
    `whole` are never cut or wrapped, however narrow the terminal (names a user types next)."""
    rows = list(rows)
    t = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        width = max([len(col), *(len(str(r[i])) for r in rows)]) if col in whole else None
        t.add_column(col, justify="right" if col in right else "left", no_wrap=col in whole, min_width=width)
    for row in rows:  # text is text: `[/]` in a status field is shown, never read as markup
        t.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
    return t


NARROW = 120  # below this the by-expert column goes under the table, one line per evaluation


class _Fitted:
    """The evaluations as a table that fits the width it is printed at: the wide one, or under
    NARROW columns a borderless one without the by-expert column, those counts wrapped below it."""

    def __init__(self, evals: list[dict]):
        self.evals = evals

    def __rich_console__(self, console, options):
        if options.max_width >= NARROW:
            yield _eval_table(self.evals)
            return
        from rich import box

        t = _eval_table(self.evals, experts=False)
        t.box, t.pad_edge, t.show_edge = box.SIMPLE_HEAD, False, False
        yield t
        below = Table.grid(padding=(0, 1))
        below.add_column(style="bold", no_wrap=True)
        below.add_column()  # wraps under itself, not under the label
        for e in self.evals:
            experts = ",  ".join(f"{k} {v['correct']}/{v['total']}" for k, v in sorted(e.get("by_expert", {}).items()))
            if experts:
                below.add_row(Text(f"{e.get('set', '')} @{e.get('at', '')}"), Text(experts))
        if below.row_count:
            yield Text("by expert", style="italic")
            yield below


def eval_table(evals: list[dict]):
    """The evaluations (see `_eval_table`), laid out for the terminal's width when printed."""
    return _Fitted(evals)


def _eval_table(evals: list[dict], experts: bool = True) -> Table:
    """One row per evaluation event: accuracy with its 95% interval, parse and valid
    rates, pass@k and majority-vote@k where sampled, correct by expert."""
    k_samples = any("pass_at_k" in e for e in evals)
    grounded = any("grounded_maj_at_k" in e for e in evals)
    rows = []
    for e in evals:
        by = "  ".join(f"{k} {v['correct']}/{v['total']}" for k, v in sorted(e.get("by_expert", {}).items()))
        extra = (fmt_interval(e["pass_at_k"], e.get("pass_at_k_ci")), fmt_interval(e["maj_at_k"], e.get("maj_at_k_ci"))) \
            if "pass_at_k" in e else ("", "")
        if grounded:
            extra += (fmt_interval(e["grounded_maj_at_k"], e.get("grounded_maj_at_k_ci")) if "grounded_maj_at_k" in e else "",)
        rows.append((e.get("at", ""), e.get("set", ""), fmt_interval(e["accuracy"], e.get("accuracy_ci")),
                     f"{e['parse_rate']:.1%}", f"{e['valid_rate']:.1%}", f"{e['correct']}/{e['total']}",
                     *(extra if k_samples else ()), *((by,) if experts else ())))
    cols = ("at", "set", "accuracy [95% CI]", "parse", "valid", "correct", *(("pass@k", "maj@k") if k_samples else ()),
            *(("grounded maj@k",) if grounded else ()), *(("by expert",) if experts else ()))
    return table("Evaluations", cols, rows)


def sessions_table(rows: list[dict], root: str) -> Text:
    """`engine ls`: one line per session, as session.list_sessions describes it, in plain aligned
    columns (10,000 sessions print in well under a second; a rich Table measures every cell). The
    run id, which a user types next, is never cut."""
    from ..session import progress_text

    cols = ("run", "status", "model", "progress", "best acc", "started")
    out = []
    for r in rows:
        best = f"{r['best_accuracy']:.1%}" if isinstance(r.get("best_accuracy"), (int, float)) else ""
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"])) if r.get("started") else ""
        out.append((r["run"], r["status"], str(r["model"]), progress_text(r), best, started))  # the workbench's text
    widths = [max([len(c), *(len(row[i]) for row in out)]) for i, c in enumerate(cols)]
    right = {4}
    line = lambda cells: "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()  # noqa: E731
    text = Text(f"Sessions in {root}/ ({len(out)})\n", style="italic")
    text.append(line(cols) + "\n", style="bold")
    text.append("\n".join(line(row) for row in out))
    return text
