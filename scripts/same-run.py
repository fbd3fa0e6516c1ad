#!/usr/bin/env python3
"""Do two sessions hold the same run, to the digit? Compares what the training computed, kind by
kind, each in its order: every metrics event (loss, learning rate, gradient norm, reward, ...), every evaluation
(accuracy, counts, health) and every sample's text, leaving out what depends on the machine
(times, speeds, threads, system snapshots, paths). The proof that a change to the code left a run
as it was (docs/training.md, "Reproducing the default run").

    scripts/same-run.py sessions/before sessions/after

Prints the number of values compared and the first differences; exit 0 when none differ, 1 when
some do, 2 when a session cannot be read.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

MACHINE = {"t", "tokens_per_s", "step_time", "rollout_time", "update_time", "threads", "system", "path", "seconds"}  # differ by machine and load
COMPARED = ("metrics", "eval", "sample", "checkpoint", "run_finished")


def records(folder: Path) -> list[tuple[str, dict]]:
    path = folder / "events.jsonl"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would wait or never end
            raise SystemExit(f"same-run: {path} is not a regular file")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise SystemExit(f"same-run: cannot read {path}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            if n == len(lines):  # a torn last line: a run still writing, or killed mid-line
                break
            raise SystemExit(f"same-run: {path} line {n} is not JSON") from None
        if isinstance(event, dict) and event.get("kind") in COMPARED:
            where = f"{event['kind']} {event.get('phase', '')} step {event.get('step', '')} {event.get('set', '')}".strip()
            out.append((where, {k: v for k, v in event.items() if k not in MACHINE}))
    return out


def order(record: tuple[str, dict]):
    """Kinds apart, each in its order (a stable sort); a step's checkpoints by what they are (the
    step's own and `best` may be written in either order)."""
    where, event = record
    kind = where.split()[0]
    if kind == "checkpoint":
        return COMPARED.index(kind), str(event.get("global_step", event.get("step", ""))).zfill(20), json.dumps(event, sort_keys=True, default=str)
    return COMPARED.index(kind), "", ""


def leaves(value, prefix: str = ""):
    """(dotted key, value) for every number, string and flag inside an event."""
    if isinstance(value, dict):
        for k in sorted(value):
            yield from leaves(value[k], f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        a, b = (records(Path(p)) for p in argv)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    differences, compared = [], 0
    # each kind in its own order: how events of different kinds interleave (a checkpoint before or
    # after the evaluation of the same step) is not what the run computed
    a, b = (sorted(x, key=order) for x in (a, b))
    for kind in COMPARED:
        na, nb = (sum(1 for w, _ in x if w.split()[0] == kind) for x in (a, b))
        if na != nb:
            differences.append(f"{na} {kind} events against {nb}")
    for (where_a, ea), (where_b, eb) in zip(a, b):
        if where_a != where_b:
            differences.append(f"{where_a} against {where_b}")
            continue
        la, lb = dict(leaves(ea)), dict(leaves(eb))
        for key in sorted(la.keys() | lb.keys()):
            compared += 1
            if la.get(key) != lb.get(key):
                differences.append(f"{where_a}: {key} {la.get(key)!r} against {lb.get(key)!r}")
    if not a and not b:
        print("no metrics, evaluations or samples in either session: nothing to compare", file=sys.stderr)
        return 1
    kinds = {k: sum(1 for w, _ in a if w.startswith(k)) for k in COMPARED}
    print(f"{compared} values compared in {len(a)} events ({', '.join(f'{n} {k}' for k, n in kinds.items() if n)})")
    if differences:
        print(f"{len(differences)} differ; the first:")
        for line in differences[:20]:
            print("  " + line)
        return 1
    print("the same run, to the digit")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
