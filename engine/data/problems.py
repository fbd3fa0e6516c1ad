"""Any problem set as JSONL: `question`, `answer` (a number, or text ending in
`#### N`), and optionally `expert`. Eval sets are named after their files."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..events import valid_text
from ..numbers import of_value
from .gsm8k import number, parse_answer


@dataclass
class Problem:
    question: str
    answer: Fraction
    expert: str | None = None
    trace: str | None = None  # a gold or self-written trace, where the file has one


def answer_value(value) -> Fraction:
    """A number, a numeric string, or a worked answer ending in `#### N`."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an answer")
    if isinstance(value, (int, float)):
        return of_value(value)  # bounded: JSON's 1e999 is infinity, not an answer
    if isinstance(value, str):
        return parse_answer(value) if "####" in value else number(value)
    raise ValueError(f"expected a number or text ending in `#### N`, got {type(value).__name__}")


def set_name(path: str | Path) -> str:
    return Path(path).stem


def set_names(paths: list[str]) -> dict[str, str]:
    """Each file's set name: its stem, or `parent/stem` where stems collide (two sets are never
    merged under one name). The same file listed twice is an error."""
    resolved = [Path(p).expanduser().resolve() for p in paths]
    if len(set(resolved)) < len(resolved):
        twice = next(str(p) for p, r in zip(paths, resolved) if resolved.count(r) > 1)
        raise ValueError(f"{twice}: the same problem file is listed twice")
    stems = [set_name(p) for p in paths]
    names = {p: (s if stems.count(s) == 1 else f"{r.parent.name}/{s}") for p, s, r in zip(paths, stems, resolved)}
    if len(set(names.values())) < len(names):
        clash = next(n for n in names.values() if list(names.values()).count(n) > 1)
        raise ValueError(f"two problem files would both be called {clash!r}: rename one")
    return names


def load(path: str | Path, limit: int | None = None) -> list[Problem]:
    """Every record of the file (up to `limit`, read no further); a bad line is an error naming
    the file and line; an empty file is an error, never a score of 0 out of 0."""
    from ..trace.language import COMPOSITION, EXPERTS
    from .tracefile import read

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such problem file")
    out = []
    for n, row in read(path):  # a line that is no JSON object: an error naming the file and line
        try:
            if not isinstance(row.get("question"), str) or "answer" not in row:
                raise ValueError("needs `question` (text) and `answer`")
            expert = row.get("expert")
            if expert is not None and expert not in (*EXPERTS, COMPOSITION):
                raise ValueError(f"`expert` {expert!r} is not one of {', '.join((*EXPERTS, COMPOSITION))}")
            trace = valid_text(row["trace"]) if isinstance(row.get("trace"), str) else None
            out.append(Problem(valid_text(row["question"]), answer_value(row["answer"]), expert, trace))
        except (ValueError, ZeroDivisionError, RecursionError) as exc:
            raise ValueError(f"{path} line {n}: {exc}") from None
        if limit and len(out) >= limit:
            break
    if not out:
        raise ValueError(f"{path}: no problems in it (one JSON object per line: question, answer)")
    return out
