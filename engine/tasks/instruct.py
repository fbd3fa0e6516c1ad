"""instruct: instruction tuning on JSONL files (instruction, input, output); scored by
similarity to the reference (ROUGE-L)."""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

from ..trace.loops import text_loops
from .common import Item, Score

name = "instruct"
summary = "instruction tuning on a JSONL of instruction/input/output (data.instruct_train); scored by ROUGE-L"
system = "You are a helpful assistant. Follow the instruction."
INSTRUCT_SYSTEM = system


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    return _rouge().score(reference, prediction)["rougeL"].fmeasure


def read_instructions(path: str, limit: int | None = None) -> list[dict]:
    """Instruction JSONL: every line has `instruction` and `output`; `input` is optional."""
    if not path:
        raise ValueError("data.instruct_train: the instruct task needs a JSONL file of instruction/input/output")
    from ..events import valid_text
    from ..numbers import why_not_json
    from ..safefile import lines

    rows = []
    for n, line in lines(Path(path).expanduser()):  # regular files only (a FIFO never hangs), lines bounded
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # bad JSON, a 5,000-digit number, 10,000 brackets
            raise ValueError(f"{path} line {n}: not JSON ({why_not_json(exc)})") from None
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not isinstance(row.get("output"), str) \
                or not isinstance(row.get("input", ""), (str, type(None))):
            raise ValueError(f"{path} line {n}: needs `instruction` and `output` (text; `input` text if given)")
        # no lone surrogate ("\ud800") reaches the tokenizer, which refuses it with a traceback
        rows.append({k: valid_text(row[k]) if isinstance(row.get(k), str) else row.get(k) for k in ("instruction", "input", "output")})
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise ValueError(f"{path}: no examples in it (one JSON object per line: instruction, input, output)")
    return rows


def instruction_prompt(row: dict) -> str:
    return row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")


def training_pairs(cfg, drops=None) -> list[tuple[str, str]]:  # instructions: no GSM8K problem to check
    return [(instruction_prompt(r), r["output"]) for r in read_instructions(cfg.data.instruct_train, cfg.data.train_size)]


def eval_sets(cfg) -> dict[str, list[Item]]:
    sets = {}
    for path in cfg.eval.instruct_sets:
        rows = read_instructions(path, cfg.eval.synthetic or None)
        sets[Path(path).stem] = [Item(instruction_prompt(r), r["output"]) for r in rows]
    return sets


def rl_questions(cfg, seed: int) -> list[Item]:
    pool = [Item(q, a) for q, a in training_pairs(cfg)]
    return random.Random(seed).sample(pool, min(cfg.rl.questions, len(pool)))


def score(cfg, item: Item, text: str, cut: bool) -> Score:
    codes = ["text_loop"] if text_loops(text) else []
    if cut:
        codes.append("truncated")
    sim = rouge_l(text, str(item.answer))
    return Score("correct" if sim >= 0.5 else "wrong_answer", sim, True, None, codes, "instruct")
