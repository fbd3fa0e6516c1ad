"""RANK, WORLD_SIZE and LOCAL_RANK, torchrun's word on where this process stands, read and checked
once before a command that runs a model makes anything: `WORLD_SIZE=1e999` or `LOCAL_RANK=abc` is
one line naming the variable, not a traceback after a session folder is made, nor a silent exit."""

from __future__ import annotations

import os

NAMES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def problem(env=os.environ) -> str | None:
    """Why the launch variables in `env` cannot be, or None: each a whole number (WORLD_SIZE at
    least 1, the others at least 0), and RANK and LOCAL_RANK below WORLD_SIZE."""
    values = {}
    for name in NAMES:
        text = env.get(name)
        if text is None:
            continue
        if not (text.isascii() and text.isdigit() and len(text) <= 6):
            return f"{name}={text[:40]!r}: torchrun sets it to a whole number of at most 6 digits"
        values[name] = int(text)
    world = values.get("WORLD_SIZE", 1)
    if world < 1:
        return f"WORLD_SIZE={world}: at least 1 process"
    for name in ("RANK", "LOCAL_RANK"):
        if values.get(name, 0) >= world:
            return f"{name}={values[name]} with WORLD_SIZE={world}: a rank is 0 to WORLD_SIZE-1"
    return None
