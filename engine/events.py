"""The events contract (architecture.md): one JSON object per line, appended
and flushed as it happens, never rewritten.

The reader accepts a torn last line (still being written: it is left for the
next read), skips lines that are not JSON, and passes unknown kinds and fields
through, so the file can grow new kinds without breaking old readers.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

SCHEMA_VERSION = 1
EVENTS = "events.jsonl"


def _clean(value):
    """JSON has no NaN or infinity: they travel as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventLog:
    """Appends events to a session's events.jsonl (`EventLog(None)` writes nothing).

    Each line is one `os.write` of the whole line. A write that fails (a full disk) is not
    fatal here: the run goes on to fail where it must (its checkpoint) and says why; the
    failed line is counted in `lost`, and the next line starts on a line of its own."""

    def __init__(self, path: Path | None):
        from .safefile import open_append

        self.path = path
        self._file = open_append(path.parent, path.name) if path else None  # never through a link
        self.lost = 0
        self.error: OSError | None = None
        self._torn = False

    def on_event(self, event: dict) -> None:
        """One event, one line (a sink of engine/recorder.py)."""
        if self._file:
            line = (b"\n" if self._torn else b"") + (json.dumps(_clean(event), default=str) + "\n").encode("utf-8")
            try:
                written = os.write(self._file.fileno(), line)
                self._torn = written < len(line)
            except OSError as exc:
                self._torn, self.error = True, self.error or exc
                self.lost += 1

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


# ------------------------------------------------------------------ reading what anyone may have written
MAX_LINE = 1 << 20  # a longer line is not an event of ours
MAX_DEPTH = 12
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
UNIT_FIELDS = ("accuracy", "parse_rate", "valid_rate")  # shares: a number in [0, 1] or the event is not shown


def clean_text(text: str) -> str:
    """Text safe to show in a terminal: escape sequences and control characters removed
    (newlines and tabs stay), so a trace or a model output cannot retitle or clear the screen;
    a lone surrogate (JSON's `"\\ud800"`, which no terminal or encoder takes) becomes U+FFFD."""
    return _CONTROL.sub(_unsafe, text)


def _unsafe(m: re.Match) -> str:
    return "\ufffd" if "\ud800" <= m.group(0) <= "\udfff" else ""


def valid_text(text: str) -> str:
    """The text with each lone surrogate replaced by U+FFFD, as bad UTF-8 bytes are on reading:
    a tokenizer, a file write or a terminal refuses a surrogate with a traceback."""
    return _SURROGATE.sub("\ufffd", text)


def finite_number(value):
    """A finite int or float, or None (NaN and infinity travel as strings and stay unplotted)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**15 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _sane(value, depth: int = 0):
    if isinstance(value, str):
        return clean_text(value[:100_000])
    if isinstance(value, (bool, type(None))):
        return value
    if isinstance(value, (int, float)):
        return finite_number(value)
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {clean_text(str(k))[:80]: _sane(v, depth + 1) for k, v in list(value.items())[:500]}
    if isinstance(value, list):
        return [_sane(v, depth + 1) for v in value[:2000]]
    return None


def sanitize(event) -> dict | None:
    """The event as the workbench may use it, checked field by field; None when it cannot be one.

    Strings lose control sequences, numbers must be finite and in range, the fields a
    view relies on have their types (a step is a count, an accuracy a share), and
    `kind` is a plain word: nothing in a line reaches code by name.
    """
    if not isinstance(event, dict) or not isinstance(event.get("kind"), str) or not _KIND.match(event["kind"]):
        return None
    e = _sane(event)
    t = finite_number(e.get("t"))
    e["t"] = t if t is not None and 0 <= t < 1e11 else None
    for key in ("step", "total"):
        if key in e:
            e[key] = count(e[key])
    for key in ("phase", "set", "stage", "status", "level", "message"):  # names a view files things under
        if key in e and not isinstance(e[key], str):
            e[key] = None if e[key] is None else str(e[key])
    if e["kind"] == "eval":
        for key in UNIT_FIELDS:
            v = e.get(key)
            if key == "accuracy" and not (isinstance(v, (int, float)) and 0 <= v <= 1):
                return None
            if key in e and not (isinstance(v, (int, float)) and 0 <= v <= 1):
                e[key] = None
        experts = e.get("by_expert")
        e["by_expert"] = {k: b for k, b in experts.items() if isinstance(b, dict) and count(b.get("total"), 1) and
                          count(b.get("correct")) is not None and b["correct"] <= b["total"]} if isinstance(experts, dict) else {}
        codes = e.get("diagnostic_counts")
        e["diagnostic_counts"] = {k: v for k, v in codes.items() if count(v) is not None} if isinstance(codes, dict) else {}
    if e["kind"] == "sample":
        codes = e.get("codes")
        e["codes"] = [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else []
        for key in ("question", "text", "outcome"):
            if key in e and not isinstance(e[key], str):
                e[key] = str(e[key]) if e[key] is not None else ""
    return e


def count(value, low: int = 0):
    """An int count in [low, 1e9), else None (a bool is not a count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value < 10**9 else None


class EventReader:
    """Reads the complete lines appended since the last read.

    With `checked`, every event goes through `sanitize` (what the workbench uses);
    lines that are not events are skipped and counted in `bad_lines`, never fatal.
    A file that shrank or was replaced is read again from its start (`restarts`).
    """

    def __init__(self, path: Path, checked: bool = False):
        self.path = Path(path)
        self.checked = checked
        self.offset = 0
        self.bad_lines = 0
        self.restarts = 0
        self._partial = b""
        self._inode = None

    def feed(self, chunk: bytes) -> list[dict]:
        """Events from a chunk of bytes (for followers that get bytes from elsewhere, e.g. ssh)."""
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # a torn last line waits for the rest of it
        if len(self._partial) > MAX_LINE:  # no event is this long: drop it rather than grow without end
            self._partial = b""
            self.bad_lines += 1
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line) if len(line) <= MAX_LINE else None
            except (ValueError, RecursionError):  # bad JSON, bad UTF-8, a 5,000-digit number, deep nesting
                event = None
            if self.checked:
                event = sanitize(event)
            if isinstance(event, dict) and isinstance(event.get("kind"), str):
                out.append(event)
            else:
                self.bad_lines += 1
        return out

    def read(self, limit: int = 16 << 20) -> list[dict]:
        from .safefile import open_regular

        try:
            with open_regular(self.path) as f:  # a FIFO or a device is no events file: never blocks
                st = os.fstat(f.fileno())
                if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self.offset:
                    self.offset, self._partial = 0, b""  # truncated or re-created: start again
                    self.restarts += 1
                self._inode = st.st_ino
                f.seek(self.offset)
                chunk = f.read(limit)
        except OSError:
            return []
        self.offset += len(chunk)
        return self.feed(chunk)


def read_all(path: Path) -> list[dict]:
    return EventReader(path).read()
