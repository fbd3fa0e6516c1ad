"""Batched generation with the KV cache, and the log-probs the update needs.

Generation stops a sequence at the end of its turn or at the fence that
closes its ```yaml block; a sequence that reaches the length limit instead is
marked `cut` and scored as truncated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from .data.prompts import end_of_turn

FENCE = "```"


@dataclass
class Completion:
    text: str
    tokens: list[int]
    cut: bool  # stopped by the length limit, not by the model


@lru_cache(maxsize=4)
def _backtick_ids(tokenizer) -> frozenset[int]:
    """Tokens that can end a fence; found once per tokenizer, not once per batch."""
    return frozenset(i for t, i in tokenizer.get_vocab().items() if "`" in t)


class FenceStop(StoppingCriteria):
    """Done once the new text holds an opening and a closing fence."""

    def __init__(self, tokenizer, prompt_len: int):
        self.tokenizer, self.prompt_len = tokenizer, prompt_len
        self.tick = _backtick_ids(tokenizer)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        last = input_ids[:, -1].tolist()
        for row, token in enumerate(last):
            if token in self.tick:
                text = self.tokenizer.decode(input_ids[row, self.prompt_len :], skip_special_tokens=True)
                done[row] = text.count(FENCE) >= 2
        return done


class Sampler:
    """The model that generates: the trained model itself, or a bf16 copy of it.

    On a GPU, bf16 weights decode faster (half the bytes read per token). On
    this project's CPU, fp32 decodes faster than bf16 at evaluation batch
    sizes (220 against 138 tokens/s at batch 64, benchmarks/rollout.py), so
    `auto` keeps fp32 there. The copy's trainable parameters are refreshed
    from the fp32 master weights before each use.
    """

    def __init__(self, model, mode: str = "auto"):
        self.model, self.copy, self.pairs = model, None, []
        p = next(model.parameters())
        from .modeling import fast_bf16

        if getattr(model, "is_loaded_in_8bit", False):
            return
        low = mode == "bfloat16" or (mode == "auto" and p.device.type == "cuda" and fast_bf16(p.device))
        dtype = torch.bfloat16 if low else torch.float32
        if all(q.dtype == dtype for q in model.parameters()):
            return  # decoding with the model itself (fp32 on a CPU)
        # a copy in one dtype: fp32 masters beside bf16 frozen weights cannot decode without autocast
        import copy

        self.copy = copy.deepcopy(model).to(dtype).eval()
        for q in self.copy.parameters():
            q.requires_grad_(False)
        own = dict(self.copy.named_parameters())
        self.pairs = [(p, own[n]) for n, p in model.named_parameters() if p.requires_grad and n in own]

    @torch.no_grad()
    def __call__(self):
        if self.copy is None:
            return self.model
        for master, low in self.pairs:
            low.copy_(master)
        return self.copy


def stop_ids(tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    eot = end_of_turn(tokenizer)
    if eot:
        ids.add(tokenizer.convert_tokens_to_ids(eot))
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, batch_size: int = 32) -> tuple[list[Completion], dict]:
    """Complete every prompt; returns completions and {tokens, seconds, tokens_per_s}."""
    device = next(model.parameters()).device
    out: list[Completion | None] = [None] * len(prompts)
    new_tokens, start = 0, time.perf_counter()
    ends = stop_ids(tokenizer)
    was_training = model.training
    model.eval()
    # A batch decodes until its longest output ends; similar questions (by prompt length)
    # write similar lengths, so batching them together wastes fewer steps on finished rows.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for i in range(0, len(prompts), batch_size):
        rows = order[i : i + batch_size]
        chunk = [prompts[r] for r in rows]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        prompt_len = enc["input_ids"].shape[1]
        sample = temperature > 0
        gen = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature if sample else None,
            top_p=top_p if sample else None, top_k=None, eos_token_id=ends, pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList([FenceStop(tokenizer, prompt_len)]), use_cache=True,
            cache_implementation="static",  # a growing cache re-copies itself every step: half of decode time on CPU
        )
        for r, row in zip(rows, gen[:, prompt_len:].tolist()):
            tokens = _until_end(row, ends, tokenizer.pad_token_id)
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            ended = len(tokens) < len(row) or (tokens and tokens[-1] in ends) or text.count(FENCE) >= 2
            cut = len(tokens) >= max_new_tokens and not ended
            out[r] = Completion(_cut_after_fence(text), tokens, cut)
            new_tokens += len(tokens)
    model.train(was_training)
    seconds = time.perf_counter() - start
    return out, {"tokens": new_tokens, "seconds": seconds, "tokens_per_s": new_tokens / max(seconds, 1e-9)}


def _until_end(row: list[int], ends: list[int], pad: int) -> list[int]:
    for i, t in enumerate(row):
        if t in ends:
            return row[: i + 1]
    while row and row[-1] == pad and pad not in ends:
        row = row[:-1]
    return row


def _cut_after_fence(text: str) -> str:
    first = text.find(FENCE)
    if first < 0:
        return text
    second = text.find(FENCE, first + 3)
    return text if second < 0 else text[: second + 3]


def completion_logprobs(model, tokenizer, prompts: list[str], completions: list[list[int]],
                        temperature: float = 1.0, entropy: bool = False):
    """Per-token log-probs of each completion under `model` (with grad if enabled), one forward pass.

    The caller chooses the micro-batch (RL backpropagates each one before the next, so
    only one graph is alive). Logits are divided by the sampling temperature, so the
    log-probs are those of the distribution the tokens were drawn from. Only the
    sampled tokens' log-probs are gathered; with `entropy`, also each position's
    entropy (no grad). Prompt and completion are left-padded together, so every
    completion ends at the right edge and only the last max(len) positions need logits.
    """
    device = next(model.parameters()).device
    p_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    c_ids = [c if c else [tokenizer.eos_token_id] for c in completions]
    seqs = [p + c for p, c in zip(p_ids, c_ids)]
    width = max(map(len, seqs))
    keep = max(map(len, c_ids))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, width - len(s) :] = torch.tensor(s)
        mask[r, width - len(s) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep + 1).logits
    logits = logits[:, :-1].float() / max(temperature, 1e-6)
    targets = ids[:, -keep:]
    # log p(token) = logit(token) - logsumexp(logits): no full log-softmax tensor is kept for backward
    token_logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    out = [token_logp[r, keep - len(c) :] for r, c in enumerate(c_ids)]
    if not entropy:
        return out
    with torch.no_grad():
        logp = torch.log_softmax(logits.detach(), dim=-1)
        ent = -(logp.exp() * logp).sum(-1)
    return out, [ent[r, keep - len(c) :] for r, c in enumerate(c_ids)]
