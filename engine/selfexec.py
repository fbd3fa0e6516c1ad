"""How the engine starts itself as a new process (the tcmalloc restart, the workbench's runs):
nothing in the current folder is ever imported or preloaded.

`python -m engine` puts the current folder first on `sys.path`: an `engine.py`, `json.py` or
`typing_extensions.py` in the folder a user runs `engine eval .` from (a session someone sent)
would run as the user. So the child is the same interpreter with its own flags, started with
`-c` code that drops the current folder, and empty or relative entries, from `sys.path` before
it imports anything of the engine. Its environment loses the empty and relative entries of
PYTHONPATH and LD_LIBRARY_PATH (each means "the current folder" to Python or the dynamic linker).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# the engine's own install: only where it is not importable otherwise (a source tree run as
# `python -m engine` from its root, not installed); last, so it never shadows the standard library
_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = (
    "import os, sys\n"
    "here = os.path.realpath(os.getcwd())\n"
    "sys.path[:] = [p for p in sys.path if p and os.path.isabs(p) and os.path.realpath(p) != here]\n"
    "import importlib.util\n"
    f"if importlib.util.find_spec('engine') is None: sys.path.append({_ROOT!r})\n"
    "from engine.cli import main\n"
    "sys.exit(main())\n"
)
SEARCH_PATHS = ("PYTHONPATH", "LD_LIBRARY_PATH")


def engine_argv(args: list[str]) -> list[str]:
    """The command line that runs `engine ARGS` with this interpreter and its flags (-X, -W, -O ...)."""
    flags = subprocess._args_from_interpreter_flags()  # the stdlib's own way (multiprocessing, test.support)
    if sys.version_info >= (3, 11) and "-P" not in flags and "-I" not in flags:
        flags.append("-P")  # safe path: -c adds no '' to sys.path (the code above drops it on 3.10)
    return [sys.executable, *flags, "-c", _BOOT, *args]


def trusted_paths(value: str) -> str:
    """A search path without its empty and relative entries."""
    return os.pathsep.join(p for p in value.split(os.pathsep) if p and os.path.isabs(p))


def child_env(env: dict | None = None, **changes: str) -> dict:
    """`env` (default: this process's) for a child the engine starts, with `changes`."""
    out = dict(os.environ if env is None else env, **changes)
    for name in SEARCH_PATHS:
        if name in out:
            kept = trusted_paths(out[name])
            if kept:
                out[name] = kept
            else:
                del out[name]
    return out
