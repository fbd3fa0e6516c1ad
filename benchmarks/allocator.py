"""The memory allocator's share of a CPU training step: the same run's first SFT steps with
glibc's malloc, tcmalloc and jemalloc (those installed), one after another, each alone.

Each is a real `engine train` of the given recipe, killed once it has taken --steps steps; the
figures are read from its events: seconds per step and tokens/s over the steps after the
first ten (warm-up), resident memory at the last heartbeat, and the last loss (an allocator
must not change the numbers).

    python benchmarks/allocator.py [--config recipes/cpu-verified.yaml] [--steps 60]
"""

from __future__ import annotations

import argparse
import ctypes.util
import os
import subprocess
import tempfile
import time
from pathlib import Path

from engine import allocator
from engine.events import read_all
from engine.selfexec import engine_argv  # as the engine restarts itself: nothing of the current folder imported


def libraries() -> dict[str, str]:
    """name: what LD_PRELOAD gets ("" for glibc's own)."""
    found = {"glibc": "", "tcmalloc": allocator.tcmalloc(), "jemalloc": ctypes.util.find_library("jemalloc")}
    return {name: lib for name, lib in found.items() if lib is not None}


def sft_steps(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("kind") == "metrics" and e.get("phase") == "sft"]


def run(config: str, steps: int, preload: str, folder: Path) -> dict:
    env = dict(os.environ, TRACEBENCH_MALLOC="system", LD_PRELOAD=preload)  # exactly this allocator, nothing added
    proc = subprocess.Popen(engine_argv(["train", "--config", config, "--plain", "--session", str(folder)]),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events_file = folder / "events.jsonl"
    while proc.poll() is None:
        if events_file.exists() and len(sft_steps(read_all(events_file))) >= steps:
            break
        time.sleep(2)
    proc.kill()
    proc.wait()
    events = read_all(events_file)
    timed = [e for e in sft_steps(events) if 10 < e["step"] <= steps]
    seconds = sum(e["step_time"] for e in timed)
    tokens = sum(e["tokens_per_s"] * e["step_time"] for e in timed)
    rss = [e["system"]["rss"] for e in events if e.get("kind") == "heartbeat" and "rss" in e.get("system", {})]
    return {"steps": len(timed), "s_per_step": seconds / max(len(timed), 1), "tokens_per_s": tokens / max(seconds, 1e-9),
            "rss_gib": rss[-1] if rss else None, "last_loss": timed[-1]["loss"] if timed else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="recipes/cpu-verified.yaml")
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    print(f"{args.config}: the first {args.steps} SFT steps under each allocator (timed: steps 11-{args.steps})")
    print(f"{'allocator':10} {'s/step':>7} {'tokens/s':>9} {'RSS GiB':>8} {'last loss':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, preload in libraries().items():
            r = run(args.config, args.steps, preload, Path(tmp) / name)
            rss = f"{r['rss_gib']:.2f}" if r["rss_gib"] is not None else "-"
            loss = f"{r['last_loss']:.6f}" if r["last_loss"] is not None else "-"
            print(f"{name:10} {r['s_per_step']:7.2f} {r['tokens_per_s']:9.0f} {rss:>8} {loss:>10}", flush=True)


if __name__ == "__main__":
    main()
