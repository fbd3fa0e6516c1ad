"""An instruction-tuning report (`engine report`) beside the session, when there is one."""

from __future__ import annotations

import json
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static


class ReportPane(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("No report yet: `engine report SESSION SETS...` writes report.json here.", id="report-note")
        yield DataTable(id="report", zebra_stripes=True)

    def load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            self.query_one("#report-note", Static).update(f"report.json cannot be read: {exc}")
            return
        table = self.query_one("#report", DataTable)
        table.add_columns("set", "metric", "base", "tuned", "delta")
        fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
        for name, rows in report.get("sets", {}).items():
            for metric, v in rows.items():
                table.add_row(name, metric, fmt(v.get("base")), fmt(v.get("tuned")), fmt(v.get("delta")))
        self.query_one("#report-note", Static).update(f"base {report.get('base')} vs tuned {report.get('tuned')}. {report.get('note') or ''}")
