"""Checker throughput: traces per second on one core, on generated 4-to-8-step traces.

    python benchmarks/trace_check.py [--n 5000]

Each trace is checked in full as the RL reward does: parse, execute, loops,
reward against its expected answer and expert.
"""

from __future__ import annotations

import argparse
import os
import time

from engine.data.synthetic import generate
from engine.data.prompts import trace_answer
from engine.trace import check


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    examples = []
    seed = 0
    while len(examples) < args.n:
        for e in generate(2000, seed):
            steps = e.trace.count("{op:")
            if 4 <= steps <= 8:
                examples.append((trace_answer(e.trace), e.answer, e.expert))
        seed += 1
    examples = examples[: args.n]
    mean_steps = sum(t.count("{op:") for t, _, _ in examples) / len(examples)
    best = 0.0
    for _ in range(args.repeat):
        start = time.perf_counter()
        for text, answer, expert in examples:
            check(text, answer, None if expert == "composition" else expert)
        rate = len(examples) / (time.perf_counter() - start)
        best = max(best, rate)
    print(f"checked {len(examples)} traces ({mean_steps:.1f} steps on average), best of {args.repeat}: {best:,.0f} traces/s on one core")


if __name__ == "__main__":
    main()
