"""What a run pays before its first step, in a fresh process each time (every torchrun rank pays
it again): the imports a training process makes, the GSM8K gold traces of the trace mix, and a
whole tiny run (`--model tiny`, 8 SFT steps) from the command line to its end.

    python benchmarks/startup.py [--repeat 3] [--gold 3,100]

Prints the median wall seconds of each over --repeat fresh processes (min-max beside it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.selfexec import engine_argv  # as the engine restarts itself: nothing of the current folder imported

IMPORTS = "import engine.run, engine.train.sft, engine.train.rl"
GOLD = ("from engine import config; from engine.tasks import gsm8k_gold; "
        "assert len(gsm8k_gold(config.load(sets=['data.gsm8k_traces={n}']))) == {n}")
TINY = ["train", "--model", "tiny", "--plain", "--set", "run.phases=sft", "--set", "data.train_size=37",
        "--set", "data.gsm8k_traces=3", "--set", "sft.batch_size=4", "--set", "sft.epochs=2", "--set", "sft.grad_accum=2"]


def timed(argv: list[str], env: dict) -> float:
    t = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"startup.py: {' '.join(argv[:6])}... failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--gold", default="3,100", help="data.gsm8k_traces values to time (comma-separated)")
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")  # as the gloo tests run their ranks
    cases = [("imports of a training process", [sys.executable, "-c", IMPORTS])]
    cases += [(f"imports + {n} GSM8K gold traces", [sys.executable, "-c", f"{IMPORTS}; {GOLD.format(n=int(n))}"])
              for n in args.gold.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        cases.append(("a tiny run, command to end (8 SFT steps)", None))
        for label, argv in cases:
            times = []
            for i in range(args.repeat):
                if argv is None:
                    times.append(timed(engine_argv([*TINY, "--session", str(Path(tmp) / f"tiny{i}")]), env))
                else:
                    times.append(timed(argv, env))
            print(f"{label:45} {statistics.median(times):6.2f} s  ({min(times):.2f}-{max(times):.2f}, {args.repeat} runs)")


if __name__ == "__main__":
    main()
