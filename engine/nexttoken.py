"""What both decoders (engine/rollout.py, engine/speculate.py) share: choosing the next token,
the fence that ends a trace, and how the KV cache grows."""

from __future__ import annotations

from functools import lru_cache

import torch

FENCE = "```"
GROW = 64  # cache positions added at a time


@lru_cache(maxsize=4)
def _backtick_ids(tokenizer) -> frozenset[int]:
    """Tokens that can end a fence; found once per tokenizer, not once per batch."""
    return frozenset(i for t, i in tokenizer.get_vocab().items() if "`" in t)


def pick(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Greedy at temperature 0, else a sample from the tempered (and top-p cut) distribution."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest set whose mass reaches top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    return torch.multinomial(probs, 1).squeeze(-1)


def _closed(tokenizer, tokens: list[int]) -> bool:
    return tokenizer.decode(tokens, skip_special_tokens=True).count(FENCE) >= 2


def _grow(cache, size: int) -> None:
    for layer in cache.layers:
        if not getattr(layer, "is_initialized", True):
            continue
        old = layer.keys.shape[2]
        pad = (0, 0, 0, size - old)
        layer.keys = torch.nn.functional.pad(layer.keys, pad)
        layer.values = torch.nn.functional.pad(layer.values, pad)
        layer.max_cache_len = size
