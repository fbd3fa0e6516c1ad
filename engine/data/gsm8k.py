"""GSM8K: the copy shipped in `engine/data/files/gsm8k/` (MIT, see its README),
a hub id (through `datasets`), or a local JSONL file or folder."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

HUB_ID = "openai/gsm8k"
SHIPPED = Path(__file__).resolve().parent / "files" / "gsm8k"
_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)
_NUMBER = re.compile(r"-?\$?\s*-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


@dataclass
class Problem:
    question: str
    solution: str  # the worked answer text, without the final `#### N` line
    answer: Fraction


def parse_answer(text: str) -> Fraction:
    """The final number of a GSM8K answer (`... #### 1,234.50`)."""
    m = _FINAL.search(text)
    if not m:
        raise ValueError("no `#### answer` line")
    return number(m.group(1))


def number(text: str) -> Fraction:
    """A number as people write it: `$1,234`, `-5`, `3.50`, `12.`"""
    m = _NUMBER.search(text)
    if not m:
        raise ValueError(f"no number in {text!r}")
    clean = m.group(0).replace(",", "").replace("$", "").replace(" ", "")
    if clean.startswith("--"):
        clean = clean[1:]
    return Fraction(clean.rstrip("."))


def default_source() -> str:
    """$TRACEBENCH_GSM8K if set, else the copy shipped with the project."""
    return os.environ.get("TRACEBENCH_GSM8K") or str(SHIPPED)


def load(source: str | None = None, split: str = "test", limit: int | None = None) -> list[Problem]:
    return [
        Problem(r["question"], r["answer"].split("####")[0].strip(), parse_answer(r["answer"]))
        for r in load_rows(source, split, limit)
    ]


def load_rows(source: str | None = None, split: str = "test", limit: int | None = None) -> list[dict]:
    """The raw records (`question`, `answer` with its `#### N`) in file order."""
    source = source or default_source()
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / f"{split}.jsonl"
    if path.suffix == ".jsonl" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"GSM8K: there is no {path}")
        rows = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
                    if limit and len(rows) >= limit:
                        break
    else:
        from datasets import load_dataset

        from ..models import hub_offline, hub_unreachable

        why = None if hub_offline() else hub_unreachable()  # offline mode reads the local hub cache
        if why:
            raise FileNotFoundError(f"GSM8K: {source!r} is not a local file or folder and the hub cannot be reached ({why}); "
                                    f"pass a local JSONL path (or set HF_HUB_OFFLINE=1 to use a copy in the hub cache)")
        try:
            ds = load_dataset(source, "main", split=split)
        except Exception as exc:  # offline, unknown id: one clear sentence
            raise FileNotFoundError(f"GSM8K: cannot load {source!r} from the hub ({type(exc).__name__}); pass a local JSONL path") from None
        rows = [ds[i] for i in range(min(limit or len(ds), len(ds)))]
    return rows
