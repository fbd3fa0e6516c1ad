"""The evaluation protocol: choices are made on a development split, the test problems stay sealed.

- The development split: DEV_SIZE GSM8K *training* problems, fixed by DEV_SEED whatever a run's
  seeds are, never trained on (gold traces, variants, self-traces, RL questions, the cot task all
  skip them); `engine eval SESSION --dev` scores them.
- Leak checks: every training question is compared with all GSM8K test questions, number-blind
  (digits read as one token, so a variant of a test problem matches its original): the same
  template, or NGRAM words in a row in common, and is dropped with the reason.
- The ledger: each scoring of GSM8K test problems is one line of `.heldout-ledger.jsonl` in the
  sessions folder, with the recipe's family (its config without seeds and evaluation settings),
  so `engine eval --heldout` can say how often this family has been scored on the sealed set.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from functools import lru_cache
from pathlib import Path

DEV_SIZE = 500
DEV_SEED = 43_043  # never a run's seed: the same development problems for every run
NGRAM = 13  # words in a row: GPT-3's contamination check; 13 number-blind words caught the 8 near-copies in GSM8K train
HELDOUT_FIRST, HELDOUT_LAST = 301, 1319  # the sealed problems (engine eval --heldout)
LEDGER = ".heldout-ledger.jsonl"
_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
_WORDS = re.compile(r"[a-z]+|#")

REASONS = {  # read after a count: "70 of the development split"
    "dev": "of the development split (engine eval --dev)",
    "template": "test questions with other numbers",
    "ngram": f"sharing {NGRAM} words in a row with a test question (numbers aside)",
}


def words(question: str) -> list[str]:
    """Lower-case words, every number one `#` token: what the checks compare."""
    return _WORDS.findall(_NUM.sub(" # ", question.lower()))


@lru_cache(maxsize=8)
def dev_indices(n_rows: int) -> frozenset[int]:
    """The development split's rows of a train split of n_rows: DEV_SIZE of them (a tenth of a
    small file), the same for every run."""
    return frozenset(random.Random(DEV_SEED).sample(range(n_rows), min(DEV_SIZE, n_rows // 10)))


@lru_cache(maxsize=4)
def _test_index(source: str | None) -> tuple[frozenset, frozenset]:
    """(templates, n-grams) of every test question: the configured source's and the shipped copy's."""
    from .data.gsm8k import SHIPPED, load_rows

    questions = [r["question"] for r in load_rows(str(SHIPPED), "test")]
    if source:
        try:
            questions += [r["question"] for r in load_rows(source, "test")]
        except (OSError, ValueError):  # no test split there: the shipped 1,319 are still checked
            pass
    templates, grams = set(), set()
    for q in questions:
        w = words(q)
        templates.add(" ".join(w))
        grams.update(" ".join(w[i : i + NGRAM]) for i in range(len(w) - NGRAM + 1))
    return frozenset(templates), frozenset(grams)


def leak(question: str, source: str | None = None) -> str | None:
    """Why a training question is a test question in disguise (a key of REASONS), or None."""
    templates, grams = _test_index(source)
    w = words(question)
    if " ".join(w) in templates:
        return "template"
    if any(" ".join(w[i : i + NGRAM]) in grams for i in range(len(w) - NGRAM + 1)):
        return "ngram"
    return None


@lru_cache(maxsize=4)
def excluded_train(source: str | None) -> dict[int, str]:
    """Rows of the train split no run trains on, with the reason: the development split and the
    problems that match a test question."""
    from .data.gsm8k import load_rows

    rows = load_rows(source, "train")
    reasons = ((i, excluded_row(i, r["question"], len(rows), source)) for i, r in enumerate(rows))
    return {i: why for i, why in reasons if why}


def excluded_row(index: int, question: str, n_rows: int, source: str | None) -> str | None:
    """Why row `index` of a train split of n_rows is never trained on (a key of REASONS), or None:
    excluded_train's answer for one row, without checking the other thousands (a second a run)."""
    return "dev" if index in dev_indices(n_rows) else leak(question, source)


def dev_problems(source: str | None, limit: int | None = None) -> list:
    """The development split as GSM8K problems, in file order (the first `limit`)."""
    from .data.gsm8k import load

    probs = load(source, "train")
    rows = sorted(dev_indices(len(probs)))
    return [probs[i] for i in (rows[:limit] if limit else rows)]


class Drops:
    """What the checks dropped from the training sources: (source, reason) -> count."""

    def __init__(self):
        self.counts: dict[tuple[str, str], int] = {}
        self.seen: dict[str, int] = {}

    def add(self, source: str, reason: str | None, n: int = 1) -> None:
        self.seen[source] = self.seen.get(source, 0) + n
        if reason:
            self.counts[(source, reason)] = self.counts.get((source, reason), 0) + n

    def message(self) -> str:
        """One line for the run's alert; empty when nothing was dropped."""
        if not self.counts:
            return ""
        parts = []
        for source in self.seen:
            mine = {r: n for (s, r), n in self.counts.items() if s == source}
            if mine:
                parts.append(f"{source}: {sum(mine.values())} of {self.seen[source]} dropped ("
                             + ", ".join(f"{n} {REASONS[r]}" for r, n in mine.items()) + ")")
        return "never trained on: " + "; ".join(parts)


def clean(questions: list[str], source_name: str, gsm8k_source: str | None, drops: Drops | None) -> list[bool]:
    """Which of these training questions may be trained on: none with a test problem's template or
    n-grams, none of the development split (by its text). Each drop is counted in `drops`."""
    dev = _dev_questions(gsm8k_source)
    keep = []
    for q in questions:
        why = "dev" if q in dev else leak(q, gsm8k_source)
        keep.append(why is None)
        if drops is not None:
            drops.add(source_name, why)
    return keep


@lru_cache(maxsize=4)
def _dev_questions(source: str | None) -> frozenset[str]:
    from .data.gsm8k import load_rows

    rows = load_rows(source, "train")
    return frozenset(rows[i]["question"] for i in dev_indices(len(rows)))


# -- the ledger of test scorings --


def family(cfg, checkpoint: str | None) -> str:
    """A recipe's family: what it trains on and how (model, data, SFT, RL, reward, task, phases),
    without the seeds and without how it is evaluated. An untrained model is its own family."""
    d = cfg.to_dict()
    if checkpoint is None or checkpoint == "untrained":
        what = {"untrained": d["model"]["name"]}
    else:
        skip = {"model": {"device", "dtype", "autocast", "generate_dtype", "activation_checkpointing", "compile", "fast_decode"},
                "data": {"seed"}, "rl": {"backend", "vllm_memory", "vllm_sleep", "vllm_is_cap", "micro_batch"}}
        # only what differs from the defaults: a key added to the config later (at its default) leaves
        # every earlier family as it was, and the ledger's counts with it
        from .config import Config

        defaults = Config().to_dict()
        what = {k: {f: v for f, v in d[k].items() if f not in skip.get(k, ()) and v != defaults[k].get(f, object())}
                for k in ("model", "data", "sft", "rl", "reward")}
        what["run"] = {"task": d["run"]["task"], "phases": d["run"]["phases"]}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]


def record(root: Path, entry: dict) -> None:
    """One scoring of test problems, appended to the sessions folder's ledger (through no link)."""
    from .safefile import open_append

    Path(root).mkdir(parents=True, exist_ok=True)  # the sessions folder, as `engine train` makes it
    with open_append(Path(root), LEDGER) as f:
        f.write(json.dumps({"t": round(time.time(), 3), **entry}, default=str) + "\n")


def ledger_problem(root: Path) -> str | None:
    """Why the ledger in `root` cannot be appended to (a link, a FIFO, a folder at its name), found
    without creating it; None when it can (or is not there yet). Asked before scoring, so a long
    evaluation is not run only to lose its line."""
    import stat

    path = Path(root) / LEDGER
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"{path}: {'a link' if stat.S_ISLNK(mode) else 'a folder' if stat.S_ISDIR(mode) else 'not a regular file'}, not the ledger"
    return None


def heldout_scorings(root: Path, fam: str) -> int:
    """How many ledger lines score this family on any of the sealed problems (301-1319)."""
    from .safefile import lines

    path = Path(root) / LEDGER
    if not path.is_file():
        return 0
    n = 0
    for _, line in lines(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a torn line: the next ones still count
        if isinstance(e, dict) and e.get("family") == fam and _overlaps(e.get("first"), e.get("last")):
            n += 1
    return n


def _overlaps(first, last) -> bool:
    return isinstance(first, int) and isinstance(last, int) and first <= HELDOUT_LAST and last >= HELDOUT_FIRST
