"""An instruction-tuning report (`engine report`) beside the session, when there is one.

report.json comes from a session folder, so from anywhere: it is read in a worker
(regular file, at most MAX_BYTES), checked field by field, and its text cleaned
before anything is shown; what does not fit is said in the note, never raised."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from engine.events import clean_text, finite_number
from engine.safefile import read_bytes

from ..runstate import RunView
from .pane import Pane

MAX_BYTES = 4 << 20
MAX_ROWS = 2000


def read_report(path: Path) -> tuple[dict | None, str]:
    """(report, note): the report as the pane shows it ({base, tuned, note, rows}), or None and why not.
    No report (no file) is (None, "")."""
    try:
        raw = read_bytes(path, MAX_BYTES)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, clean_text(f"report.json cannot be read: {exc}")
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        return None, f"report.json is not JSON ({type(exc).__name__})"
    if not isinstance(data, dict) or not isinstance(data.get("sets"), dict):
        return None, "report.json is not a report (no `sets` mapping in it)"
    rows, skipped = [], 0
    for name, metrics in data["sets"].items():
        if not isinstance(metrics, dict):
            skipped += 1
            continue
        for metric, v in metrics.items():
            if not isinstance(v, dict) or len(rows) >= MAX_ROWS:
                skipped += 1
                continue
            rows.append((_text(name), _text(metric), *(finite_number(v.get(k)) for k in ("base", "tuned", "delta"))))
    note = f" ({skipped} entries were not report rows and are left out)" if skipped else ""
    return {"base": _text(data.get("base")), "tuned": _text(data.get("tuned")), "note": _text(data.get("note")) + note,
            "rows": rows}, ""


def _text(value) -> str:
    return clean_text(value[:300]) if isinstance(value, str) else ""


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


NO_REPORT = {  # what the tab says before a report.json is there, by the run's task
    "instruct": "No report yet: `engine report SESSION FILE.jsonl...` scores the tuned model against its base on "
                "instruction files and writes report.json here.",
    "other": "A {task} run is scored by its evaluations (tab 3: accuracy by expert, diagnostic codes); "
             "`engine eval SESSION` scores a checkpoint again. This tab is for instruct runs' `engine report`.",
}


def no_report_note(task: str | None) -> str:
    return NO_REPORT["instruct"] if task in (None, "instruct") else NO_REPORT["other"].format(task=task)


class ReportPane(Pane, Vertical):
    TITLE, TAB, ID = "Report", "tab-report", "report-pane"
    ALWAYS = True  # cheap: report.json is read once, and the note follows the run's task as soon as it is known

    def compose(self) -> ComposeResult:
        yield Static(no_report_note(None), id="report-note")
        yield DataTable(id="report", zebra_stripes=True)

    def show(self, view: RunView) -> None:
        if not self.loading and view.target:
            self.loading = True
            self.load(Path(view.target) / "report.json")
        if self.run_task is None and view.state.started:  # run_started's config names the task
            cfg = view.state.started.get("config")
            run = cfg.get("run") if isinstance(cfg, dict) else None
            self.for_task(clean_text(str(run.get("task") or "trace")[:40]) if isinstance(run, dict) else "trace")

    def for_task(self, task: str | None) -> None:
        """The run's task is known (run_started): say what applies to it, unless a report is shown."""
        self.run_task = task
        if not self.said:  # a report, or why report.json cannot be shown, says more
            self.query_one("#report-note", Static).update(Text(no_report_note(task)))

    def load(self, path: Path) -> None:
        """Read in a worker; the table is filled on the UI thread when the reading is done."""
        self.run_worker(lambda: self.app.call_from_thread(self._show, *read_report(path)), thread=True, group="report")

    said = False  # a report or its problem is shown: the task's note no longer replaces it
    run_task: str | None = None
    loading = False  # report.json asked for (once, at the first redraw)

    def _show(self, report: dict | None, why: str) -> None:
        self.said = self.said or report is not None or bool(why)
        note = self.query_one("#report-note", Static)
        if report is None:
            if why:
                note.update(Text(why))
            return
        table = self.query_one("#report", DataTable)
        table.clear(columns=True)
        table.add_columns("set", "metric", "base", "tuned", "delta")
        for name, metric, base, tuned, delta in report["rows"]:
            table.add_row(Text(name), Text(metric), _fmt(base), _fmt(tuned), _fmt(delta))
        note.update(Text(f"base {report['base']} vs tuned {report['tuned']}. {report['note']}"))
