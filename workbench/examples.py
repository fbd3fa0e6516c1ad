"""The recorded example session shipped with the workbench (workbench/example/):
listed after the user's sessions, marked `example`, read-only."""

from __future__ import annotations

from pathlib import Path

from engine.session import summarize

ROOT = Path(__file__).resolve().parent / "example"


def example_sessions() -> list[dict]:
    rows = []
    for folder in sorted(ROOT.iterdir()) if ROOT.is_dir() else []:
        if (folder / "events.jsonl").is_file():
            row = summarize(folder)
            rows.append(row | {"run": f"example: {folder.name}", "status": "example", "example": True})
    return rows


def is_example(path: str | Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(ROOT)
    except OSError:
        return False
