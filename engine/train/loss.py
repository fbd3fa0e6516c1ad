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

from ..data.prompts import IGNORE

# tokens per chunk: on a CPU 128 x 49,152 fp32 logits = 25 MB, under the 32 MB above which glibc
# maps fresh pages for every allocation; a GPU wants fewer, larger products
CPU_CHUNK, GPU_CHUNK = 128, 1024


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


def fusable(model) -> torch.nn.Linear | None:
    """The plain output layer the fused loss can use, else None (a bias, a quantized or wrapped head)."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if get else None
    if type(head) is torch.nn.Linear and head.bias is None and head.weight.dtype in (torch.float32, torch.bfloat16, torch.float16):
        return head
    return None


def answer_loss(forward, batch: dict, head: torch.nn.Linear | None = None) -> torch.Tensor:
    """Mean next-token loss over the answer tokens (labels not IGNORE).

    `forward` is what training calls (the model, or its DDP wrapper, so gradients
    are synchronised); `head` is the model's output layer. With a head, the model
    returns hidden states only and the loss runs fused (above); without one, from
    logits of the answer positions.
    """
    labels = batch["labels"]
    targets = labels[:, 1:]
    chosen = targets != IGNORE
    if head is None:
        first = int(chosen.any(0).nonzero()[0])  # the run keeps only examples with answer tokens
        keep = labels.shape[1] - first
        logits = forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
        return torch.nn.functional.cross_entropy(logits[:, :-1][chosen[:, first:]].float(), targets[chosen])
    out = forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1, output_hidden_states=True)
    hidden = out.hidden_states[-1][:, :-1][chosen]
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else head.weight.dtype
    return LinearCrossEntropy.apply(hidden, head.weight, targets[chosen], dtype)
