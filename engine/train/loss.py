"""The SFT loss: next-token cross-entropy on the answer tokens, without full logits.

A batch of 8 examples has ~1,000 answer tokens; their logits over SmolLM2's
49,152-token vocabulary are 230 MB, and the log-softmax, its backward and the
zeroed gradient buffer each touch that much again. On this project's CPU those
three cost more than the output layer's matrix products (profile in
docs/benchmarks.md, SFT section). Here the output layer and the loss run
together, a chunk of tokens at a time: each chunk's gradient is taken in the
forward pass while its logits are small and in cache, the way fused
linear-cross-entropy kernels (Liger, Apple's cut cross-entropy) do it on GPUs.
"""

from __future__ import annotations

import torch

from ..chunks import LOSS_CHUNK_CPU as CPU_CHUNK, LOSS_CHUNK_GPU as GPU_CHUNK  # tokens per chunk (why: engine/chunks.py)
from ..data.prompts import IGNORE
from ..modeling import fusable  # noqa: F401 (loss.fusable: the name the loops and tests know)
from ..prefix import MIN_SHARED, continue_inputs


class LinearCrossEntropy(torch.autograd.Function):
    """mean over rows of cross_entropy(hidden @ weight.T, targets); gradients taken chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, dtype):
        n, chunk = targets.numel(), CPU_CHUNK if hidden.device.type == "cpu" else GPU_CHUNK
        w = weight.to(dtype)
        grad_h = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            for i in range(0, n, chunk):
                h, t = hidden[i : i + chunk].to(dtype), targets[i : i + chunk]
                logits = (h @ w.t()).float()
                lse = torch.logsumexp(logits, dim=-1)
                loss += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                # d loss / d logits = softmax - one_hot, over the mean's n rows
                grad = logits.sub_(lse[:, None]).exp_()
                grad[torch.arange(len(t), device=t.device), t] -= 1.0
                grad = grad.div_(n).to(dtype)
                if grad_h is not None:
                    grad_h[i : i + chunk] = grad @ w
                if grad_w is not None:
                    if grad.dtype == grad_w.dtype:
                        grad_w.addmm_(grad.t(), h)
                    else:
                        grad_w += (grad.t() @ h).float()
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_h, grad_w)
        return loss / n

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        # in place: a new 113 MB weight gradient would be fresh pages to fault in
        grad_w = None if grad_w is None else grad_w.mul_(grad_out).to(ctx.weight_dtype)
        grad_h = None if grad_h is None else grad_h.mul_(grad_out)
        return grad_h, grad_w, None, None


def send(t: torch.Tensor, device) -> torch.Tensor:
    """A host tensor on `device`. To a GPU from pinned memory without waiting: a copy from pageable
    memory makes the host wait for the GPU to finish its queue first (cudaMemcpy's rule), and
    the pinned block stays reserved until the copy has run (torch's caching host allocator)."""
    device = torch.device(device)
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def shared_prefix(batch: dict) -> int:
    """How many leading positions every row shares and trains nothing on: the system prompt
    and chat template, ~50 of an example's ~225 tokens. 0 when there is nothing to share.
    Counted on the batch's host copy (sft.Batch's `host`) where it has one: no device read."""
    host = getattr(batch, "host", batch)
    ids, mask, labels = host["input_ids"], host["attention_mask"], host["labels"]
    if ids.shape[0] < 2:
        return 0
    # position p is shared if every row has the same real token there and predicts no answer token from it
    same = (ids == ids[:1]).all(0)[:-1] & (mask == 1).all(0)[:-1] & (labels[:, 1:] == IGNORE).all(0)
    n = int(same.long().cumprod(0).sum())
    return n if n >= MIN_SHARED else 0


def answer_loss(forward, batch: dict, head: torch.nn.Linear | None = None, share_prefix: bool = True) -> torch.Tensor:
    """Mean next-token loss over the answer tokens (labels not IGNORE).

    `forward` is what training calls (the model, or its DDP wrapper, so gradients
    are synchronised); `head` is the model's output layer. With a head, the model
    returns hidden states only and the loss runs fused (above); without one, from
    logits of the answer positions.

    The prefix every row shares runs once, for one row, and the rows continue from
    its cached keys and values (expanded, so their gradients add up in the one
    prefix): the same loss and gradients, for less work (`share_prefix=False`
    runs every row whole; benchmarks/sft.py compares them).
    """
    ids, mask = batch["input_ids"], batch["attention_mask"]
    n, inputs = continue_inputs(forward, ids, mask, shared_prefix(batch) if share_prefix else 0)
    # which positions train, and their targets, from the host copy: a boolean mask over a GPU
    # tensor (or int() of one) would stop the host until the device caught up, every micro-batch
    labels = getattr(batch, "host", batch)["labels"]
    chosen = labels[:, 1:] != IGNORE
    targets = send(labels[:, 1:][chosen], ids.device)

    def rows_at(values: torch.Tensor, start: int) -> torch.Tensor:
        """values[:, :-1] at the chosen positions from `start` on, in the order a boolean mask gives."""
        b, p = (send(i, values.device) for i in chosen[:, start:].nonzero(as_tuple=True))
        return values[:, :-1][b, p]

    if head is None:
        first = int(chosen.any(0).nonzero()[0])  # the run keeps only examples with answer tokens
        logits = forward(**inputs, logits_to_keep=labels.shape[1] - first).logits
        return torch.nn.functional.cross_entropy(rows_at(logits, first).float(), targets)
    out = forward(**inputs, logits_to_keep=1, output_hidden_states=True)
    hidden = rows_at(out.hidden_states[-1], n)
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else head.weight.dtype
    return LinearCrossEntropy.apply(hidden, head.weight, targets, dtype)
