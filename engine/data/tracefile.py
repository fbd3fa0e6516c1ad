"""The JSONL files `engine data` writes and training and evaluation read: synthetic problems,
GSM8K gold traces and their rejects, number variants, the model's own traces (data.self_traces),
problem files (eval.problems). One JSON object a line; this module is their one writer and reader.

Written whole or not at all (engine/safefile.replace: a temporary file renamed over the name),
so a round of expert iteration killed after hours leaves the previous file, never half of one
that training would read as complete. Read through safefile.lines: regular files only (a FIFO
never hangs the reader), lines bounded; a line that is no JSON object (a torn write, a garbage
line) is an error naming the file and the line, never skipped: a training set that silently
loses examples is worse than a run that stops and says where.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import safefile
from ..numbers import why_not_json


def write(path: str | Path, records: Iterable[dict]) -> int:
    """Write `records`, one JSON line each, to `path` (its folders made where missing), replacing
    the file whole only once every record is written. The number of records written."""
    path = Path(os.path.abspath(Path(path).expanduser()))  # `out/..` named by its real name
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with safefile.replace(path.parent, path.name) as f:
        for record in records:
            f.write((json.dumps(record) + "\n").encode("utf-8"))
            n += 1
    return n


def read(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-empty line, lazily (a caller with a limit stops reading).
    ValueError "PATH line N: ..." for a line that is not a JSON object; FileNotFoundError (and
    safefile.NotRegular for a FIFO, a device or a folder) when there is no file to read."""
    for n, line in safefile.lines(path):  # regular files only, lines bounded
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:  # a torn line, 5,000 digits, 10,000 brackets: said in words
            raise ValueError(f"{path} line {n}: not JSON ({why_not_json(exc)})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {n}: not a JSON object (one record a line)")
        yield n, record
