"""GSM8K: the copy shipped in `engine/data/files/gsm8k/` (MIT, see its README),
a hub id (through `datasets`), or a local JSONL file or folder."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..numbers import BadNumber, shown, why_not_json

HUB_ID = "openai/gsm8k"
SHIPPED = Path(__file__).resolve().parent / "files" / "gsm8k"
_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)
# A whole answer, nothing around it: sign, optional $, digits (commas only in groups of three),
# decimals, an exponent up to 30, or a fraction a/b. Anything else is unparseable, never misread.
_ANSWER = re.compile(r"^(?P<sign>[+-]?)\$?(?P<sign2>[+-]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<dec>\.\d+)?\.?"
                     r"(?:[eE](?P<exp>[+-]?\d{1,3}))?$")
_FRACTION = re.compile(r"^(?P<sign>[+-]?)(?P<num>\d+)\s*/\s*(?P<den>\d+)$")
MAX_EXPONENT = 30
MAX_CHARS = 64  # an answer's text: 40 digits with their separators, sign, $ and point


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
    """An answer as people write it, the whole text: `$1,234`, `-5`, `3.50`, `12.`, `2.5e3`,
    `3/4`. Anything else (`1 000`, `1e400`, `12 apples`, `50%`) is a ValueError saying so: an
    answer is read as its value or not at all, never as a number found inside it."""
    t = text.strip()
    if len(t) > MAX_CHARS:  # 5,000 digits: said here, in words, before int() refuses in its own
        raise BadNumber(f"{shown(t)} is too long for an answer (at most {MAX_CHARS} characters)")
    f = _FRACTION.match(t)
    if f:
        if int(f["den"]) == 0:
            raise ValueError(f"{text!r} divides by zero")
        return Fraction(int(f["num"]), int(f["den"])) * (-1 if f["sign"] == "-" else 1)
    m = _ANSWER.match(t)
    if not m or not (m["int"] or m["dec"]) or (m["sign"] and m["sign2"]):
        raise ValueError(f"{shown(t)} is not a number (write it as 1234, 1,234.50, $12, -3, 2.5e3 or 3/4)")
    exp = int(m["exp"] or 0)
    if abs(exp) > MAX_EXPONENT:
        raise BadNumber(f"{shown(t)}: exponents beyond {MAX_EXPONENT} are not answers here")
    value = Fraction((m["int"] or "0").replace(",", "") + (m["dec"] or "")) * Fraction(10) ** exp
    return -value if "-" in (m["sign"], m["sign2"]) else value


def default_source() -> str:
    """$TRACEBENCH_GSM8K if set, else the copy shipped with the project."""
    return os.environ.get("TRACEBENCH_GSM8K") or str(SHIPPED)


def load(source: str | None = None, split: str = "test", limit: int | None = None) -> list[Problem]:
    """The problems with their answers read; an answer that is no number is an error naming its line."""
    out = []
    for where, r in _numbered_rows(source, split, limit):
        try:
            out.append(Problem(r["question"], r["answer"].split("####")[0].strip(), parse_answer(r["answer"])))
        except ValueError as exc:
            raise ValueError(f"GSM8K: {where}: {exc}") from None
    return out


def load_rows(source: str | None = None, split: str = "test", limit: int | None = None) -> list[dict]:
    """The raw records (`question`, `answer` with its `#### N`) in file order."""
    return [r for _, r in _numbered_rows(source, split, limit)]


def _numbered_rows(source: str | None, split: str, limit: int | None) -> list[tuple[str, dict]]:
    """(where: `file line N` or `id record N`, record) of each record in file order."""
    source = with_split(source or default_source(), split)
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / f"{split}.jsonl"
    if path.suffix == ".jsonl" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"GSM8K: there is no {path}")
        from ..events import valid_text
        from ..safefile import lines

        rows = []
        for n, line in lines(path):  # regular files only, lines bounded: never /dev/zero into memory
            if line.strip():
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as exc:  # a 5,000-digit number, deep nesting: not JSON here
                    raise ValueError(f"GSM8K: {path} line {n}: not JSON ({why_not_json(exc)})") from None
                if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not isinstance(row.get("answer"), str):
                    raise ValueError(f"GSM8K: {path} line {n}: needs `question` and `answer` (text)")
                row = {**row, "question": valid_text(row["question"]), "answer": valid_text(row["answer"])}  # no lone surrogate reaches a tokenizer
                rows.append((f"{path} line {n}", row))
                if limit and len(rows) >= limit:
                    break
        return rows
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
    return [(f"{source} record {i + 1}", ds[i]) for i in range(min(limit or len(ds), len(ds)))]


SPLITS = ("train", "test")


def _named(source: str) -> tuple[str, str | None]:
    """(path, split) of `FILE.jsonl:train`; (source, None) where no split is named."""
    head, sep, tail = source.rpartition(":")
    return (head, tail) if sep and tail in SPLITS and head else (source, None)


def unnamed_file(source: str | None) -> str | None:
    """Why this GSM8K source cannot be used, or None: one JSONL file would be both splits (train
    and test the same problems, without a word), so a file must name the split it holds."""
    env = source is None and os.environ.get("TRACEBENCH_GSM8K")
    source = source or default_source()
    path, split = _named(source)
    where = "$TRACEBENCH_GSM8K " if env else ""
    if split is None and Path(path).expanduser().is_file():
        return (f"{where}{source} is one file, which would be both the training and the test problems: name the split "
                f"it holds ({source}:train or {source}:test), or give a folder holding train.jsonl and test.jsonl")
    if split and not Path(path).expanduser().is_file():
        return f"{where}{source}: there is no file {path}"
    return None


def with_split(source: str, split: str) -> str:
    """The source to read `split` from: a file named for its split (`FILE.jsonl:train`) for that
    split, and the shipped copy for the other one."""
    path, named = _named(source)
    if named is None:
        return source
    return path if named == split else str(SHIPPED)
