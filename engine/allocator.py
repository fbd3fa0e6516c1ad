"""The memory allocator of the commands that run a model on a CPU: tcmalloc where installed.

glibc's malloc keeps what the variable-shaped tensors of training and decoding free in
fragmented arenas. With tcmalloc an SFT step of the verified recipe took a quarter less time
(3.83 s against 5.09, 578 tokens/s against 435, the same losses) in 26% less memory, and an
evaluation 11% less (docs/benchmarks.md); the whole recipe 50 minutes instead of ~92. An
allocator can only be chosen before the process starts, so the command re-executes itself
once with LD_PRELOAD. Not on a machine with an NVIDIA GPU: there the host allocator matters
less and the pairing is unmeasured here.

TRACEBENCH_MALLOC=system keeps glibc's (nothing preloaded).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

ENV = "TRACEBENCH_MALLOC"
NAMES = ("tcmalloc_minimal", "tcmalloc")  # Debian/Ubuntu: libtcmalloc-minimal4; Fedora: gperftools-libs


def tcmalloc() -> str | None:
    """The installed tcmalloc's soname (the dynamic linker finds it by that), or None."""
    for name in NAMES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def in_use() -> str | None:
    """The tcmalloc this process has loaded (its file), or None (glibc's malloc, or another)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            return next((line.split()[-1] for line in f if "tcmalloc" in line), None)
    except OSError:
        return None


def wanted() -> str | None:
    """The library to preload, or None: asked not to, tried already (a preload that failed to load
    is not tried again), a GPU machine, or none installed."""
    if os.environ.get(ENV, "auto") == "system" or "tcmalloc" in os.environ.get("LD_PRELOAD", ""):
        return None
    if not sys.platform.startswith("linux"):
        return None
    if Path("/dev/nvidiactl").exists():
        return None
    return tcmalloc()


def reexec_with_tcmalloc() -> None:
    """Restart this command with tcmalloc preloaded when `wanted`; returns only when not restarted."""
    lib = wanted()
    if not lib:
        return
    env = dict(os.environ, LD_PRELOAD=":".join(p for p in (os.environ.get("LD_PRELOAD"), lib) if p))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "engine", *sys.argv[1:]], env)
    except OSError:  # cannot restart (a sandbox): go on with glibc's
        return


def advice() -> str | None:
    """What a CPU run without tcmalloc could gain, for the run's alerts; None where it has it."""
    if in_use() or os.environ.get(ENV) == "system":
        return None
    return ("memory allocator: glibc's malloc. With tcmalloc installed (Debian/Ubuntu: apt install "
            "libtcmalloc-minimal4) the engine preloads it: CPU training steps measured a quarter "
            "shorter, in less memory (docs/benchmarks.md)")
