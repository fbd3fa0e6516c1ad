"""The events contract (architecture.md): one JSON object per line, appended
and flushed as it happens, never rewritten.

The reader accepts a torn last line (still being written: it is left for the
next read), skips lines that are not JSON, and passes unknown kinds and fields
through, so the file can grow new kinds without breaking old readers.
"""

from __future__ import annotations

import json
import math
import time
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
    """Appends events to a session's events.jsonl. Disabled on ranks other than 0."""

    def __init__(self, path: Path | None):
        self.path = path
        self._file = open(path, "a", encoding="utf-8") if path else None

    def emit(self, kind: str, **fields) -> dict:
        event = {"kind": kind, "t": round(time.time(), 3), **fields}
        if self._file:
            self._file.write(json.dumps(_clean(event), default=str) + "\n")
            self._file.flush()
        return event

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


class EventReader:
    """Reads the complete lines appended since the last read."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.bad_lines = 0
        self._partial = b""

    def feed(self, chunk: bytes) -> list[dict]:
        """Events from a chunk of bytes (for followers that get bytes from elsewhere, e.g. ssh)."""
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # a torn last line waits for the rest of it
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.bad_lines += 1
                continue
            if isinstance(event, dict) and "kind" in event:
                out.append(event)
            else:
                self.bad_lines += 1
        return out

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        return self.feed(chunk)


def read_all(path: Path) -> list[dict]:
    return EventReader(path).read()
