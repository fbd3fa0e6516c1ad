"""The start of a prompt that every row of a batch shares, run once.

Every prompt opens with the same system prompt and chat template (~50 tokens);
an RL micro-batch is often one question's whole group. Running that start for
one row and letting every row continue from its keys and values gives the same
outputs (and, with grad, the same gradients: the expanded cache sums them back)
for 1.2x less work in SFT and evaluation (docs/benchmarks.md).
"""

from __future__ import annotations

import torch

MIN_SHARED = 8  # fewer shared tokens are not worth a second forward pass


def move_first(ids: torch.Tensor, mask: torch.Tensor, pad: int, most: int | None = None) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(n, ids, mask): left-padded rows with the first n tokens they all share moved before the padding.

    Positions come from the mask, so every token keeps its position and attends to
    the same tokens; only where the padding sits changes. Each row keeps at least
    one token after the n (and n <= `most`); n is 0 when fewer than MIN_SHARED are shared.
    """
    lengths = mask.sum(1)
    shortest = int(lengths.min())
    if len(ids) < 2 or shortest <= MIN_SHARED:
        return 0, ids, mask
    starts = ids.shape[1] - lengths
    own = ids.gather(1, starts[:, None] + torch.arange(shortest, device=ids.device))  # each row from its first token
    n = min(int((own == own[:1]).all(0).long().cumprod(0).sum()), shortest - 1, shortest if most is None else most)
    if n < MIN_SHARED:
        return 0, ids, mask
    column = torch.arange(ids.shape[1], device=ids.device)
    mask = ((column < n) | (column >= (starts + n)[:, None])).to(mask.dtype)
    ids = torch.where(mask.bool(), ids, pad)
    ids[:, :n] = own[0, :n]
    return n, ids, mask


def shared_cache(forward, ids: torch.Tensor, mask: torch.Tensor, n: int):
    """Keys and values of the first n tokens, run once, for the first row. `forward` may be
    the DDP wrapper: this runs on the model inside it, and its gradients reach the same
    parameters, synchronised by the pass over the rest."""
    model = getattr(forward, "module", forward)
    return model(input_ids=ids[:1, :n], attention_mask=mask[:1, :n], use_cache=True, logits_to_keep=1).past_key_values


def checkpointed(model) -> bool:
    """Whether the model's layers recompute their activations in backward (activation
    checkpointing). Such a layer drops a cache passed to it while training, so a shared
    prefix cannot be continued from: the rows run whole instead."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def fsdp(model) -> bool:
    """Sharded by FSDP2: a layer's weights are freed after its forward and gathered again by a
    hook on its outputs; a cache handed on as an output has no such hook, so backward through
    a shared prefix would read freed weights. The rows run whole instead."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(getattr(model, "_orig_mod", model), FSDPModule)  # _orig_mod: the module torch.compile wrapped


def continue_inputs(forward, ids: torch.Tensor, mask: torch.Tensor, n: int) -> tuple[int, dict]:
    """(n, model inputs) for the rows after their shared first n tokens, which run here once;
    (0, the rows whole) when n is 0 or the model's cache cannot be shared."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if n and torch.is_grad_enabled() and forward.training and (checkpointed(forward) or fsdp(forward)):
        n = 0
    cache = shared_cache(forward, ids, mask, n) if n else None
    if not getattr(cache, "layers", None):
        return 0, {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys.expand(len(ids), -1, -1, -1), layer.values.expand(len(ids), -1, -1, -1)
    return n, {"input_ids": ids[:, n:], "attention_mask": mask, "past_key_values": cache, "position_ids": positions[:, n:]}
