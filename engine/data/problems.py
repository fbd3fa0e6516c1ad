"""Any problem set as JSONL: `question`, `answer` (a number, or text ending in
`#### N`), and optionally `expert`. Eval sets are named after their files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .gsm8k import number, parse_answer


@dataclass
class Problem:
    question: str
    answer: Fraction
    expert: str | None = None


def answer_value(value) -> Fraction:
    """A number, a numeric string, or a worked answer ending in `#### N`."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an answer")
    if isinstance(value, (int, float)):
        return Fraction(str(value))
    if isinstance(value, str):
        return parse_answer(value) if "####" in value else number(value)
    raise ValueError(f"expected a number or text ending in `#### N`, got {type(value).__name__}")


def set_name(path: str | Path) -> str:
    return Path(path).stem


def load(path: str | Path, limit: int | None = None) -> list[Problem]:
    """Every record of the file (up to `limit`); a bad line is an error naming the file and line."""
    from ..trace.language import COMPOSITION, EXPERTS

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such problem file")
    out = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("question"), str) or "answer" not in row:
                    raise ValueError("needs `question` (text) and `answer`")
                expert = row.get("expert")
                if expert is not None and expert not in (*EXPERTS, COMPOSITION):
                    raise ValueError(f"`expert` {expert!r} is not one of {', '.join((*EXPERTS, COMPOSITION))}")
                out.append(Problem(row["question"], answer_value(row["answer"]), expert))
            except (ValueError, ZeroDivisionError) as exc:
                raise ValueError(f"{path} line {n}: {exc}") from None
            if limit and len(out) >= limit:
                break
    return out
