"""CPU threads that make way for other work on the same machine.

Measured on this project's 2-core CPU (docs/benchmarks.md): decoding with two
threads beside one busy process ran 5-7x slower than alone, not the 2x a fair
share would cost, because OpenMP threads spin at every barrier while the other
process holds their core. With as many threads as there are free cores there is
nothing to wait for. `Threads.adjust()` is called between steps and batches: it
reads how much CPU other processes used since the last call (/proc/stat minus
/proc/self/stat) and sets torch's thread count to the cores they leave free.
No-op where /proc is missing, on a GPU run, or when a count is fixed.
"""

from __future__ import annotations

import os
import time

MIN_INTERVAL = 2.0  # seconds between measurements: shorter ones are noise


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def free_cores(total: int, others: float) -> int:
    """Threads for this process: the cores that other processes leave free, at least one.
    A core counts as taken when others keep more than 60% of it busy."""
    return max(1, min(total, total - int(others + 0.4)))


def _busy_seconds() -> tuple[float, float] | None:
    """(CPU seconds of the whole machine, of this process) busy so far."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat", encoding="ascii") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, (int(own[11]) + int(own[12])) / tick  # utime + stime


class Threads:
    def __init__(self, fixed: int = 0):
        import torch

        self.torch, self.total = torch, cores()
        self.enabled = fixed == 0 and _busy_seconds() is not None
        self.current = fixed or torch.get_num_threads()
        if fixed:
            torch.set_num_threads(fixed)
        self.last = (time.monotonic(), _busy_seconds()) if self.enabled else None
        self.changes: list[tuple[int, float]] = []  # (threads, others' cores) at each change

    def adjust(self) -> int:
        """Threads now in use; changed when the share others take has changed."""
        if not self.enabled:
            return self.current
        now, (then, before) = time.monotonic(), self.last
        if now - then < MIN_INTERVAL:  # called every step: most calls read nothing
            return self.current
        busy = _busy_seconds()
        if busy is None:
            return self.current
        self.last = (now, busy)
        others = max(0.0, ((busy[0] - before[0]) - (busy[1] - before[1])) / (now - then))
        want = free_cores(self.total, others)
        if want != self.current:
            self.torch.set_num_threads(want)
            self.current = want
            self.changes.append((want, round(others, 2)))
        return self.current


_ACTIVE: Threads | None = None


def manage(fixed: int = 0) -> Threads:
    """Set this process's policy (run setup calls it once, on a CPU run)."""
    global _ACTIVE
    _ACTIVE = Threads(fixed)
    return _ACTIVE


def adjust() -> int | None:
    """Called between steps by the loops and the decoder; nothing unless `manage` was called."""
    return _ACTIVE.adjust() if _ACTIVE is not None else None
