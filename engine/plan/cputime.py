"""About how long a run takes on a CPU like this project's, before it starts: the new-run form's
"about N minutes" and the run screen's time left for stages not started yet. Rates measured on
the project's 2-core CPU with the default 135M model, scaled by a model's size; the SFT examples
counted as training will make them."""

from __future__ import annotations

import os
from pathlib import Path

from ..modelshape import Shape
from ..algorithms import for_config


# Measured on this project's 2-core CPU with the 135M model (docs/training.md, session 8's default
# run): SFT 25 min for 2,182 examples, two evaluations of 500 problems 10 min, RL 6 x 16 samples 4 min
CPU_SFT_S_PER_EXAMPLE = 0.69
CPU_EVAL_S_PER_PROBLEM = 0.54
CPU_RL_S_PER_SAMPLE = 2.5
LOAD_S = 20
VARIANTS_PER_TRACE = 0.63  # verified number variants made per GSM8K trace and per k asked (measured, k = 1-4)


def sft_examples(cfg) -> int:
    """About how many examples SFT trains on: synthetic, GSM8K gold traces, their number variants
    and the model's own traces (the variants are counted from their measured yield, not made)."""
    from ..data.gsm8k_traces import SHIPPED_TRAINABLE_GOLD

    if cfg.run.task != "trace":
        return cfg.data.train_size
    gold = min(cfg.data.gsm8k_traces, SHIPPED_TRAINABLE_GOLD)  # asking for more gives these
    examples = cfg.data.train_size + gold + round(gold * cfg.data.gsm8k_variants * VARIANTS_PER_TRACE)
    if cfg.data.self_traces:
        examples += count_lines(Path(cfg.data.self_traces).expanduser())
    return examples


COUNT_BYTES = 4 << 20  # lines counted exactly up to here; beyond, the rest is estimated from the file's size


def count_lines(path: Path) -> int:
    """About how many non-empty lines a JSONL file holds, reading at most COUNT_BYTES of it (the
    new-run form asks on its UI thread: a 10 GB file costs no more than a small one); a FIFO, a
    device or a missing file counts 0 (the config check says what is wrong with it)."""
    from ..safefile import open_regular

    try:
        with open_regular(path) as f:
            head = f.read(COUNT_BYTES)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return 0
    lines = sum(1 for line in head.split(b"\n") if line.strip())
    if size <= len(head) or not head:
        return lines
    return round(lines * size / len(head))


def stage_seconds(cfg, shape: Shape, eval_sets: dict[str, int] | None = None) -> dict[str, float]:
    """About how long each kind of stage takes on a CPU like this project's ("sft", "rl", and
    "eval" for one evaluation), from the measured rates of the default model scaled by the
    model's size: the form's estimate, and the run screen's for stages not started yet.
    `eval_sets` ({name: problems}): a run's own, as its run_started event says; by default the
    sets the config makes, counted by the function the run uses (tasks.eval_set_sizes)."""
    scale = shape.params() / 134.5e6
    out = {}
    if "sft" in cfg.run.phases:
        out["sft"] = sft_examples(cfg) * cfg.sft.epochs * CPU_SFT_S_PER_EXAMPLE * scale
    if "rl" in cfg.run.phases:
        algo = for_config(cfg)
        group = algo.group_size
        draws = 1.4 if cfg.rl.dynamic_sampling and algo.grouped else 1.0  # measured: 5.5 questions drawn per 4
        out["rl"] = cfg.rl.iterations * cfg.rl.questions * group * CPU_RL_S_PER_SAMPLE * scale * draws
    if "eval" in cfg.run.phases:
        sizes = _eval_sizes(cfg) if eval_sets is None else eval_sets
        out["eval"] = sum(sizes.values()) * CPU_EVAL_S_PER_PROBLEM * scale
    return out


def _eval_sizes(cfg) -> dict[str, int]:
    """{set: problems} of the config's evaluations; a problem file that cannot be read counts no
    time (the run refuses it at its start: engine/cli/train.py checks it before a session is made)."""
    from ..tasks import eval_set_sizes

    try:
        return eval_set_sizes(cfg)
    except (OSError, ValueError):
        return {}


def cpu_minutes(cfg, shape: Shape) -> float:
    """About how long a run takes on a CPU like this project's: for the new-run form's "about N minutes"."""
    parts = stage_seconds(cfg, shape)
    return (LOAD_S + parts.get("sft", 0.0) + parts.get("rl", 0.0) + len(cfg.eval.at) * parts.get("eval", 0.0)) / 60
