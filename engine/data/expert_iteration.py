"""One round of expert iteration (`engine data self-traces`): a model writes k outputs for each
GSM8K training problem it may train on, the executor keeps the right, clean, grounded traces
(self_traces.collect), and they become a file for data.self_traces.

The steps are separate so the command can say where a round is between them (a round takes
hours on a CPU): `problems` (which ones, and which already have a gold trace), `outputs` (the
first greedy, the rest sampled), then self_traces.collect, and `records` for tracefile.write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..trace import as_number
from .self_traces import Found


@dataclass
class Problems:
    items: list[tuple[int, str, object]]  # (GSM8K training index, question, answer)
    gold: set[int]  # indices that have a gold trace (gsm8k_traces.convert keeps them)
    unreadable: int  # problems left out: their answer is no number


def problems(cfg, limit: int | None = None, without_gold: bool = False) -> Problems:
    """The GSM8K training problems of a round: never the development split or a test question in
    disguise (engine/protocol.py); with `without_gold`, only those with no gold trace; the first
    `limit`. Raises OSError/ValueError when the GSM8K source cannot be read."""
    from ..protocol import excluded_train
    from ..tasks.common import gsm8k_source
    from .gsm8k import load_rows, parse_answer
    from .gsm8k_traces import convert

    rows = load_rows(gsm8k_source(cfg), "train")
    gold = {i for i, r in enumerate(rows) if convert(i, r["question"], r["answer"]).kept}
    skip = excluded_train(gsm8k_source(cfg))  # the development split and test questions in disguise: never trained on
    indices = [i for i in range(len(rows)) if i not in skip and not (without_gold and i in gold)]
    indices = indices[:limit] if limit else indices
    items, unreadable = [], 0
    for i in indices:
        try:
            items.append((i, rows[i]["question"], parse_answer(rows[i]["answer"])))
        except ValueError:  # no `#### N`, 5,000 digits: a problem without an answer to check against
            unreadable += 1
    return Problems(items, gold, unreadable)


def outputs(model, tok, cfg, items: list, k: int, temperature: float,
            progress: Callable[[str, int, int], None] | None = None) -> list[list[str]]:
    """k texts for each item: the first greedy, the other k - 1 sampled at `temperature`, with the
    run's decoding settings (eval.max_new_tokens, eval.batch_size, model.fast_decode).
    `progress(what, done, total)` hears each batch."""
    from ..rollout import generate
    from ..tasks import system_prompt
    from .prompts import prompt_text

    def on_batch(what):
        return None if progress is None else (lambda done, total: progress(what, done, total))

    system = system_prompt(cfg)
    prompts = [prompt_text(tok, q, system) for _, q, _ in items]
    greedy, _ = generate(model, tok, prompts, cfg.eval.max_new_tokens, 0.0, batch_size=cfg.eval.batch_size,
                         on_batch=on_batch("greedy outputs"), fast=cfg.model.fast_decode)
    texts = [[c.text] for c in greedy]
    if k > 1:
        sampled, _ = generate(model, tok, [p for p in prompts for _ in range(k - 1)], cfg.eval.max_new_tokens,
                              temperature, batch_size=cfg.eval.batch_size, on_batch=on_batch("sampled outputs"),
                              fast=cfg.model.fast_decode)
        for i in range(len(items)):
            texts[i] += [c.text for c in sampled[i * (k - 1) : (i + 1) * (k - 1)]]
    return texts


def records(found: list[Found]):
    """The lines of the round's file (data.self_traces): each kept trace with its problem."""
    for x in found:
        for n, trace in enumerate(x.traces):
            yield {"question": x.question, "answer": as_number(x.answer), "expert": "arithmetic",
                   "pattern": "gsm8k-self", "trace": trace, "gsm8k_index": x.index, "sample": n}
