"""What differs between tasks: the training examples, the evaluation sets, the
system prompt, and how one output is scored. Everything else (sessions,
events, loops, dashboard) is shared.

- trace: the model writes a YAML trace; the checker runs it (the reward of the spec).
- cot: the model writes a worked GSM8K solution ending in `#### N`; the final number is compared.
- instruct: instruction tuning on JSONL files (instruction, input, output); scored by similarity to the reference.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .data import gsm8k, problems
from .data.prompts import COT_SYSTEM, SYSTEM, trace_answer
from .data.synthetic import generate as synthesize
from .trace import answers_match, as_number, check, expert_label
from .trace.loops import text_loops

EVAL_SEED_OFFSET = 10_007  # held-out synthetic problems come from another stream of the generator
INSTRUCT_SYSTEM = "You are a helpful assistant. Follow the instruction."


@dataclass
class Item:
    question: str
    answer: object  # a number for trace and cot; the reference text for instruct
    expert: str | None = None  # None where the set does not say (GSM8K)


@dataclass
class Score:
    outcome: str
    reward: float
    valid: bool
    answer: object = None
    codes: list[str] = field(default_factory=list)
    label: str = "all"  # the row of by_expert this output counts under
    error: str | None = None  # scoring itself failed (a checker bug): the output scores 0


def system_prompt(cfg) -> str:
    return {"trace": SYSTEM, "cot": COT_SYSTEM, "instruct": INSTRUCT_SYSTEM}[cfg.run.task]


# ------------------------------------------------------------------ training data
def training_pairs(cfg) -> list[tuple[str, str]]:
    """(user turn, assistant turn) pairs for SFT."""
    task = cfg.run.task
    if task == "trace":
        ex = synthesize(cfg.data.train_size, cfg.data.seed, cfg.data.mix or None, cfg.data.phrasings)
        pairs = [(e.question, trace_answer(e.trace)) for e in ex]
        pairs += [(c.question, trace_answer(c.trace)) for c in gsm8k_gold(cfg)]
        random.Random(cfg.data.seed).shuffle(pairs)
        return pairs
    if task == "cot":
        probs = gsm8k.load(_gsm8k_source(cfg), "train", cfg.data.train_size)
        return [(p.question, f"{p.solution}\n#### {_plain(p.answer)}") for p in probs]
    rows = read_instructions(cfg.data.instruct_train, cfg.data.train_size)
    return [(instruction_prompt(r), r["output"]) for r in rows]


def gsm8k_gold(cfg) -> list:
    """The GSM8K training problems of the trace mix, as gold traces (never the test split)."""
    if not cfg.data.gsm8k_traces:
        return []
    from .data import gsm8k_traces

    return list(gsm8k_traces.sample(cfg.data.gsm8k_traces, cfg.data.seed, _gsm8k_source(cfg)))


def _gsm8k_source(cfg) -> str | None:
    return None if cfg.data.gsm8k == "auto" else cfg.data.gsm8k


def _plain(x) -> str:
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else str(float(x))


def read_instructions(path: str, limit: int | None = None) -> list[dict]:
    """Instruction JSONL: every line has `instruction` and `output`; `input` is optional."""
    if not path:
        raise ValueError("data.instruct_train: the instruct task needs a JSONL file of instruction/input/output")
    rows = []
    with open(Path(path).expanduser(), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {n}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "instruction" not in row or "output" not in row:
                raise ValueError(f"{path} line {n}: needs `instruction` and `output`")
            rows.append(row)
            if limit and len(rows) >= limit:
                break
    return rows


def instruction_prompt(row: dict) -> str:
    return row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")


# ------------------------------------------------------------------ evaluation sets
def eval_sets(cfg) -> dict[str, list[Item]]:
    sets = {}
    task = cfg.run.task
    if task == "trace" and cfg.eval.synthetic:
        ex = synthesize(cfg.eval.synthetic, cfg.data.seed + EVAL_SEED_OFFSET, cfg.eval.mix or None, cfg.data.phrasings)
        sets["synthetic"] = [Item(e.question, e.answer, e.expert) for e in ex]
    if task in ("trace", "cot") and cfg.eval.gsm8k:
        sets["gsm8k"] = [Item(p.question, p.answer) for p in gsm8k.load(_gsm8k_source(cfg), "test", cfg.eval.gsm8k)]
    if task in ("trace", "cot"):
        for path in cfg.eval.problems:
            sets[problems.set_name(path)] = [Item(p.question, p.answer, p.expert) for p in problems.load(path)]
    if task == "instruct":
        for path in cfg.eval.instruct_sets:
            rows = read_instructions(path, cfg.eval.synthetic or None)
            sets[Path(path).stem] = [Item(instruction_prompt(r), r["output"]) for r in rows]
    return sets


# ------------------------------------------------------------------ scoring
_FINAL = re.compile(r"####\s*([-$\d.,]+)")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def final_number(text: str):
    """The model's final answer: after `####` if it wrote one, else the last number in the text."""
    m = _FINAL.search(text)
    candidates = [m.group(1)] if m else _NUMBER.findall(text)[-1:]
    for c in candidates:
        try:
            return gsm8k.number(c)
        except ValueError:
            continue
    return None


def score(cfg, item: Item, text: str, cut: bool) -> Score:
    """The outcome and reward of one output. Never raises: one odd sample must not end a
    run, so a failure inside scoring scores 0 and carries `error` for the loop to alert on."""
    try:
        return _score(cfg, item, text, cut)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the run goes on
        return Score("parse_fail", 0.0, False, None, ["scoring_error"], item.expert or "unparsed",
                     error=f"{type(exc).__name__}: {str(exc)[:200]}")


def _score(cfg, item: Item, text: str, cut: bool) -> Score:
    task = cfg.run.task
    if task == "trace":
        r = check(text, item.answer, item.expert, cfg.reward, cut_off=cut)
        label = item.expert or (expert_label(r.expert) if r.expert is not None else "unparsed")
        return Score(r.outcome, r.reward, r.valid, as_number(r.answer), r.codes, label)
    codes = ["text_loop"] if text_loops(text) else []
    if cut:
        codes.append("truncated")
    if task == "cot":
        value = final_number(text)
        if value is None:
            return Score("parse_fail", 0.0, False, None, codes, "gsm8k")
        ok = answers_match(value, item.answer)
        return Score("correct" if ok else "wrong_answer", 1.0 if ok else 0.0, True, as_number(value), codes, "gsm8k")
    from .report import rouge_l

    sim = rouge_l(text, str(item.answer))
    return Score("correct" if sim >= 0.5 else "wrong_answer", sim, True, None, codes, "instruct")

