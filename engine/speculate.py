"""Fast decoding: draft tokens checked by the model in the pass that decodes anyway.

A trace is mostly text the model does not choose: after `compute,` comes
` compute_op:`, a variable's name is one already written, a number one the
question holds. Each step proposes, for every row, up to DRAFT tokens from

- `forced`: what the trace writer always writes after the last few tokens (a table
  built from gold traces: a context with exactly one successor there), and
- `question` / `history`: the tokens that followed the latest earlier occurrence of
  the row's last n tokens in its prompt or in its own output (prompt-lookup decoding),

and one forward pass over [last token, draft] gives the model's distribution at
every draft position. Greedy keeps the longest draft prefix that is the model's
argmax at each position, then the argmax after it: the same tokens as decoding one
at a time (up to near-ties of the top two logits, summed in another order). Sampling
accepts a draft token x with probability p(x) and on rejection samples from p with
x's mass removed (the speculative-sampling rule for a draft that is certain), so the
sampled distribution is the plain decoder's.

Rows accept different numbers of tokens: every row writes the same cache columns,
and the columns of a row's rejected tokens are masked out (its positions count only
what it kept). When the cache is full, those holes are squeezed out before it grows.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache

import torch
from transformers import StaticCache

from . import threads
from .prefix import move_first, shared_cache

DRAFT = 4  # draft tokens per row and pass
# token positions one pass may run (rows x (1 + draft)): on a CPU a pass costs about its positions'
# matrix products once the batch is large (docs/benchmarks.md), so a full batch drafts less
BUDGET = 256
NGRAMS = (3, 2)  # lookup contexts, longest first: one token matches too often to pay
CONTEXT = 3  # tokens of context a forced successor is keyed by
SOURCES = ("forced", "question", "history")


@lru_cache(maxsize=4)
def forced_table(tokenizer) -> dict[tuple[int, ...], int]:
    """{last CONTEXT tokens: the one token every gold trace writes next}, from synthetic gold
    traces tokenized as training tokenizes them (prompt and answer apart), single and composed."""
    from .data.prompts import end_of_turn, prompt_text, trace_answer
    from .data.synthetic import generate as synthesize

    tail = tokenizer(prompt_text(tokenizer, "q"), add_special_tokens=False)["input_ids"][-CONTEXT:]
    seen: dict[tuple[int, ...], dict[int, int]] = {}
    for e in synthesize(600, 4242):
        ids = tail + tokenizer(trace_answer(e.trace) + end_of_turn(tokenizer), add_special_tokens=False)["input_ids"]
        for i in range(CONTEXT, len(ids)):
            after = seen.setdefault(tuple(ids[i - CONTEXT : i]), {})
            after[ids[i]] = after.get(ids[i], 0) + 1
    # forced: one successor, seen often enough that it is the grammar and not one problem's name
    return {ctx: next(iter(after)) for ctx, after in seen.items() if len(after) == 1 and sum(after.values()) >= 4}


class Drafter:
    """Draft proposals for the rows of one batch: the forced table, then n-gram lookup."""

    def __init__(self, tokenizer, prompts: list[list[int]], k: int = DRAFT):
        self.table, self.k = forced_table(tokenizer), k
        self.prompt_len = [len(p) for p in prompts]
        self.seq = [list(p) for p in prompts]
        # per row and n: n-gram -> where the tokens after its latest occurrence start
        self.index = [{n: {} for n in NGRAMS} for _ in prompts]
        for r in range(len(prompts)):
            for i in range(1, len(self.seq[r])):
                self._register(r, i)

    def _register(self, r: int, i: int) -> None:
        seq = self.seq[r]
        for n, found in self.index[r].items():
            if i >= n:
                found[tuple(seq[i - n : i])] = i

    def extend(self, r: int, tokens: list[int]) -> None:
        for t in tokens:
            self.seq[r].append(t)
            self._register(r, len(self.seq[r]) - 1)

    def propose(self, r: int) -> tuple[list[int], list[str]]:
        seq, draft, source = self.seq[r], [], []
        ctx = tuple(seq[-CONTEXT:])
        while len(draft) < self.k and ctx in self.table:
            draft.append(self.table[ctx])
            source.append("forced")
            ctx = ctx[1:] + (draft[-1],)
        if len(draft) < self.k:
            tail = (seq[-CONTEXT:] + draft)
            for n in NGRAMS:
                at = self.index[r][n].get(tuple(tail[-n:])) if len(tail) >= n else None
                if at is not None and at < len(seq):
                    more = seq[at : at + self.k - len(draft)]
                    draft += more
                    source += ["question" if at < self.prompt_len[r] else "history"] * len(more)
                    break
        return draft, source


@contextmanager
def grouped_attention(device: torch.device):
    """On a CPU, let SDPA read the cache's key/value heads grouped (enable_gqa) also under a mask.

    transformers otherwise copies every layer's whole cache, repeated to all query heads, before
    attention whenever a mask is given (it avoids masked GQA for CUDA's kernels): a pass over 3
    positions per row cost 2.8x a single-position one, 1.6x with this (135M, 32 rows, cache 250,
    bit-identical logits; docs/benchmarks.md). Set only around the fast decoder's passes."""
    if device.type != "cpu" or "TRANSFORMERS_SDPA_FORCE_GQA" in os.environ:
        yield
        return
    os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = "1"
    try:
        yield
    finally:
        os.environ.pop("TRANSFORMERS_SDPA_FORCE_GQA", None)


def probabilities(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution `nexttoken.pick` samples from: tempered, cut to the top-p mass (unnormalised)."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    return probs


def accept(logits: torch.Tensor, draft: torch.Tensor, lengths: torch.Tensor, temperature: float,
           top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(accepted draft tokens per row, the token after them) for logits (rows, T, vocab) at
    [last token, draft...], drafts (rows, T - 1) of which the first `lengths` are real."""
    real = torch.arange(draft.shape[1], device=draft.device)[None, :] < lengths[:, None]
    rows = torch.arange(len(draft), device=draft.device)
    if temperature <= 0:
        best = logits.argmax(-1)
        agree = (best[:, :-1] == draft) & real
        n = agree.long().cumprod(1).sum(1)
        return n, best[rows, n]
    probs = probabilities(logits, temperature, top_p)
    total = probs.sum(-1)  # top-p leaves the kept mass unnormalised
    p_draft = probs[:, :-1].gather(-1, draft.clamp(min=0)[..., None]).squeeze(-1) / total[:, :-1]
    agree = (torch.rand(p_draft.shape, device=draft.device) < p_draft) & real
    n = agree.long().cumprod(1).sum(1)
    p = probs[rows, n]
    rejected = n < lengths  # the draft token at n was refused: sample from p without it
    p[rows[rejected], draft[rows[rejected], n[rejected]]] = 0.0
    return n, torch.multinomial(p, 1).squeeze(-1)


def squeeze(cache, mask: torch.Tensor) -> torch.Tensor:
    """Drop the masked-out columns (rejected drafts, padding) of every row, keeping the order of
    the rest, right-aligned; returns the new mask. Keys carry their rotary positions already."""
    keep = mask.bool()
    width = int(keep.sum(1).max())
    column = torch.arange(mask.shape[1], device=mask.device)
    order = torch.sort(torch.where(keep, column + mask.shape[1], column), dim=1).indices[:, -width:]
    for layer in cache.layers:
        if not getattr(layer, "is_initialized", True):
            continue
        for name in ("keys", "values"):
            old = getattr(layer, name)
            at = order[:, None, :, None].expand(old.shape[0], old.shape[1], width, old.shape[3])
            new = torch.zeros_like(old)
            new[:, :, :width] = old.gather(2, at)
            setattr(layer, name, new)
        layer.cumulative_length.fill_(width)
    return keep.gather(1, order).to(mask.dtype)


def grow(cache, size: int) -> None:
    for layer in cache.layers:
        if not getattr(layer, "is_initialized", True):
            continue
        pad = (0, 0, 0, size - layer.keys.shape[2])
        layer.keys = torch.nn.functional.pad(layer.keys, pad)
        layer.values = torch.nn.functional.pad(layer.values, pad)
        layer.max_cache_len = size


def decode(model, tokenizer, ids, *args, **kwargs) -> list[tuple[list[int], bool]]:
    """`rollout.decode` with drafts: (new tokens, ended by the model) per row of a left-padded batch.
    `tally` (if given) counts passes and, per source, draft tokens proposed and accepted."""
    with grouped_attention(ids.device):
        return _decode(model, tokenizer, ids, *args, **kwargs)


@torch.no_grad()
def _decode(model, tokenizer, ids, mask, max_new: int, temperature: float, top_p: float, ends: list[int],
            min_new: int = 0, on_rows=None, tally: dict | None = None) -> list[tuple[list[int], bool]]:
    from .nexttoken import GROW, _backtick_ids, _closed, pick

    tally = tally if tally is not None else {}
    batch, width = ids.shape
    prompts = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
    cache = StaticCache(config=model.config, max_cache_len=width + GROW)
    n, ids, mask = move_first(ids, mask, tokenizer.pad_token_id or 0)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if n:
        for layer, first in zip(cache.layers, shared_cache(model, ids, mask, n).layers):
            layer.update(first.keys.expand(batch, -1, -1, -1), first.values.expand(batch, -1, -1, -1))
    logits = model(input_ids=ids[:, n:], attention_mask=mask, position_ids=positions[:, n:], past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1]
    if min_new > 0:
        logits[:, ends] = float("-inf")
    position = positions[:, -1] + 1  # of the next token each row feeds
    pending = pick(logits, temperature, top_p)  # the token each row feeds next (its first output token)
    drafter = Drafter(tokenizer, prompts)
    live, tokens, ended = list(range(batch)), [[] for _ in range(batch)], [False] * batch
    stops, ticks = set(ends), _backtick_ids(tokenizer)
    done, heard, passes, row_passes = 0, 0, 0, batch

    def take(r: int, new: list[int]) -> bool:
        """Append new tokens to row r up to its end; whether it is done."""
        nonlocal done
        for t in new:
            tokens[r].append(t)
            if len(tokens[r]) > min_new and (t in stops or (t in ticks and _closed(tokenizer, tokens[r]))):
                ended[r], done = True, done + 1
                return True
            if len(tokens[r]) >= max_new:
                return True
        return False

    finished = [take(r, [t]) for r, t in enumerate(pending.tolist())]
    for r in range(batch):
        drafter.extend(r, tokens[r])
    while True:
        if on_rows and done != heard:
            on_rows(done)
            heard = done
        keep = [j for j, r in enumerate(live) if not finished[r]]
        if not keep:
            break
        if passes % 16 == 0:
            threads.adjust()
        if len(keep) < len(live):
            index = torch.tensor(keep, device=mask.device)
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys[index], layer.values[index]
            mask, position, pending = mask[index], position[index], pending[index]
            live = [live[j] for j in keep]
        drafts = [drafter.propose(r) for r in live]
        room = max(0, BUDGET // len(live) - 1)
        drafts = [(d[: min(room, max_new - len(tokens[r]) - 1)], s[: min(room, max_new - len(tokens[r]) - 1)])
                  for (d, s), r in zip(drafts, live)]  # and room for the token after
        size = max(len(d) for d, _ in drafts)
        if mask.shape[1] + size + 1 > cache.layers[0].max_cache_len:
            mask = squeeze(cache, mask)
            if mask.shape[1] + size + 1 > cache.layers[0].max_cache_len:
                grow(cache, mask.shape[1] + size + 1 + GROW)
        draft = torch.tensor([d + [-1] * (size - len(d)) for d, _ in drafts], dtype=torch.long, device=mask.device)
        lengths = torch.tensor([len(d) for d, _ in drafts], device=mask.device)
        step = torch.cat([pending[:, None], draft.clamp(min=0)], dim=1)
        mask = torch.cat([mask, mask.new_ones(len(live), size + 1)], dim=1)
        at = position[:, None] + torch.arange(size + 1, device=mask.device)
        logits = model(input_ids=step, attention_mask=mask, position_ids=at, past_key_values=cache, use_cache=True,
                       logits_to_keep=size + 1).logits
        passes, row_passes = passes + 1, row_passes + len(live)
        if min_new > 0:  # an end token is not allowed before min_new tokens, at whichever draft position that falls
            count = torch.tensor([len(tokens[r]) for r in live], device=mask.device)[:, None] + at - position[:, None]
            logits[..., ends] = logits[..., ends].masked_fill((count < min_new)[..., None], float("-inf"))
        accepted, after = accept(logits, draft, lengths, temperature, top_p)
        # the columns of refused (and padding) draft tokens are masked out for every later step
        refused = torch.arange(size + 1, device=mask.device)[None, :] > accepted[:, None]
        mask[:, -(size + 1):] = mask[:, -(size + 1):].masked_fill(refused, 0)
        position = position + accepted + 1
        pending = after
        for j, r in enumerate(live):
            a, (d, source) = int(accepted[j]), drafts[j]
            for s in source:
                tally[f"drafted_{s}"] = tally.get(f"drafted_{s}", 0) + 1
            for s in source[:a]:
                tally[f"accepted_{s}"] = tally.get(f"accepted_{s}", 0) + 1
            new = d[:a] + [int(after[j])]
            before = len(tokens[r])
            finished[r] = take(r, new)
            drafter.extend(r, tokens[r][before:])
    tally["passes"] = tally.get("passes", 0) + passes + 1  # + the prompt's pass
    tally["row_passes"] = tally.get("row_passes", 0) + row_passes
    return [(tokens[r], ended[r]) for r in range(batch)]
