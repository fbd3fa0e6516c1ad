"""What the machine running the engine is doing, for heartbeats: CPU, memory, and
the GPU's use and memory where there is one. psutil measures the host (a
dependency of accelerate, declared here too); torch asks NVML for GPU use
(`nvidia-ml-py`, installed with CUDA builds of torch), and any of it that
cannot be had is left out rather than guessed."""

from __future__ import annotations

GIB = 1 << 30


def snapshot(gpu: int | None = None) -> dict:
    """`gpu`: this process's own GPU (LOCAL_RANK under torchrun). Asked by index, never by
    "the current device": that is per thread, and in the heartbeat's thread it is GPU 0, so
    every rank would open a CUDA context there and report GPU 0's memory as its own."""
    out: dict = {}
    try:
        import psutil

        out["cpu"] = psutil.cpu_percent(interval=None)  # since the last call: the heartbeat's 10 s
        mem = psutil.virtual_memory()
        out["mem"] = round((mem.total - mem.available) / GIB, 2)
        out["mem_total"] = round(mem.total / GIB, 2)
        out["rss"] = round(psutil.Process().memory_info().rss / GIB, 2)
    except Exception:  # no psutil, or a sandbox that hides /proc
        pass
    try:
        import torch

        if gpu is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            free, total = torch.cuda.mem_get_info(gpu)
            out["gpu_mem"] = round((total - free) / GIB, 2)
            out["gpu_mem_total"] = round(total / GIB, 2)
            try:
                out["gpu"] = float(torch.cuda.utilization(gpu))
            except Exception:  # NVML missing: memory only
                pass
    except Exception:
        pass
    return out
