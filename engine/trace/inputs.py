"""Reading a trace from a file or standard input, bounded: the CLI and the workbench share it."""

from __future__ import annotations

import sys
from pathlib import Path

from .parser import MAX_CHARS


class UsageError(Exception):
    """A missing or unreadable input: exit status 2."""


def read_input(name: str) -> str:
    """At most MAX_CHARS + 1 characters: enough for the parser to say "too long", never
    gigabytes (`/dev/zero`, a log file passed by mistake)."""
    if name == "-":
        return sys.stdin.read(MAX_CHARS + 1)
    path = Path(name)
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return f.read(MAX_CHARS + 1)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file")
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise UsageError(f"{name}: cannot read it ({exc.strerror or exc})")
