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
    from ..safefile import NotRegular, open_regular

    try:
        with open_regular(Path(name)) as f:  # a FIFO or a device is refused, never waited on
            raw = f.read(4 * (MAX_CHARS + 1))
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file")
    except NotRegular as exc:
        raise UsageError(f"{name}: cannot read it ({exc.why})")
    except OSError as exc:
        raise UsageError(f"{name}: cannot read it ({exc.strerror or exc})")
    if is_binary(raw):
        raise UsageError(f"{name}: binary file, not a trace")
    return raw.decode("utf-8", errors="replace")[: MAX_CHARS + 1]


def is_binary(raw: bytes) -> bool:
    """NUL bytes, or mostly bytes that are not UTF-8 text, in the first 8 KiB (as `file` and git decide)."""
    head = raw[:8192]
    if b"\0" in head:
        return True
    text = head.decode("utf-8", errors="replace")
    return bool(text) and text.count("\ufffd") > len(text) * 0.1
