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

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from .selfexec import child_env, engine_argv

ENV = "TRACEBENCH_MALLOC"
NAMES = ("tcmalloc_minimal", "tcmalloc")  # Debian/Ubuntu: libtcmalloc-minimal4; Fedora: gperftools-libs
LDCONFIG = ("/sbin/ldconfig", "/usr/sbin/ldconfig")  # by absolute path: never one found through PATH


def _system_dirs() -> list[str]:
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    return [d for base in ("/lib", "/usr/lib", "/usr/local/lib") for d in (f"{base}/{arch}" if arch else "", f"{base}64", base) if d]


def _linker_cache() -> dict[str, str]:
    """soname -> file, from the dynamic linker's cache (the folders the system's administrator configured)."""
    for exe in LDCONFIG:
        try:
            out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10, env={"LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        return {m[1]: m[2] for m in re.finditer(r"^\s*(\S+) \(.*\) => (/\S+)$", out, re.M)}
    return {}


def tcmalloc() -> str | None:
    """The installed tcmalloc's file, by absolute path (in the linker's cache or a system folder), or
    None. Never a soname: the dynamic linker would search LD_LIBRARY_PATH for it, where an empty
    entry is the current folder, and a `libtcmalloc_minimal.so.4` planted there would be loaded."""
    cache = _linker_cache()
    for name in NAMES:
        soname = f"lib{name}.so.4"
        candidates = [cache[soname]] if soname in cache else []
        candidates += [os.path.join(d, soname) for d in _system_dirs()]
        for path in candidates:
            if os.path.isabs(path) and os.path.isfile(path):
                return path
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
    env = child_env(LD_PRELOAD=":".join(p for p in (os.environ.get("LD_PRELOAD"), lib) if p))
    sys.stdout.flush()
    sys.stderr.flush()
    try:  # not `-m engine`: that would import an engine.py or json.py of the current folder (engine/selfexec.py)
        os.execve(sys.executable, engine_argv(sys.argv[1:]), env)
    except OSError:  # cannot restart (a sandbox): go on with glibc's
        return


def advice() -> str | None:
    """What a CPU run without tcmalloc could gain, for the run's alerts; None where it has it."""
    if in_use() or os.environ.get(ENV) == "system":
        return None
    return ("memory allocator: glibc's malloc. With tcmalloc installed (Debian/Ubuntu: apt install "
            "libtcmalloc-minimal4) the engine preloads it: CPU training steps measured a quarter "
            "shorter, in less memory (docs/benchmarks.md)")
