"""Batched generation with the KV cache, and the log-probs the update needs.

Generation stops a sequence at the end of its turn or at the fence that
closes its ```yaml block; a sequence that reaches the length limit instead is
marked `cut` and scored as truncated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from transformers import StaticCache

from . import speculate, threads
from .chunks import LOGPROB_CHUNK, WHOLE_LOGITS_BYTES  # noqa: F401 (rollout.WHOLE_LOGITS_BYTES: the name callers know)
from .nexttoken import FENCE, GROW, _backtick_ids, _closed, _grow, pick  # noqa: F401 (rollout.pick, rollout.FENCE: the names callers know)
from .data.prompts import end_of_turn
from .prefix import continue_inputs, move_first, shared_cache



@dataclass
class Completion:
    text: str
    tokens: list[int]
    cut: bool  # stopped by the length limit, not by the model
    # the sampler's own log-probs of `tokens` (rl.backend=vllm with rl.vllm_is_cap > 0: what vLLM returned,
    # to weigh the update by the sampler/trainer mismatch); None where the sampler is the trained model (hf)
    logprobs: list[float] | None = None


def decode_dtype(model, mode: str = "auto") -> torch.dtype:
    """bf16 where asked, or on a GPU that does it fast; else fp32."""
    from .modeling import fast_bf16

    p = next(model.parameters())
    low = mode == "bfloat16" or (mode == "auto" and p.device.type == "cuda" and fast_bf16(p.device))
    return torch.bfloat16 if low else torch.float32


class Sampler:
    """The model that generates: the trained model itself, or a bf16 copy of it.

    On a GPU, bf16 weights decode faster (half the bytes read per token). On a
    CPU `auto` keeps the fp32 weights: there a bf16 copy gives other outputs
    (182 of 500 development problems differ), and every CPU figure this
    project records was decoded in fp32. Where it is faster depends on the CPU: 1.46x on
    one with AMX tiles (329 against 225 tokens/s, batch 128), slower on one
    with AVX512-BF16 alone (138 against 220 at batch 64); docs/benchmarks.md.
    The copy's trainable parameters are refreshed from the fp32 master weights
    before each use.
    """

    def __init__(self, model, mode: str = "auto"):
        self.model, self.copy, self.pairs = model, None, []
        p = next(model.parameters())
        from .modeling import fast_bf16

        if getattr(model, "is_loaded_in_8bit", False):
            return
        dtype = decode_dtype(model, mode)
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
             top_p: float = 1.0, batch_size: int = 32, min_new_tokens: int = 0,
             on_batch=None, on_rows=None, fast: bool = False) -> tuple[list[Completion], dict]:
    """Complete every prompt; returns completions and {tokens, seconds, tokens_per_s, passes}.
    `on_batch(done, total)` is called after each batch (progress; it may raise to stop),
    `on_rows(done, total)` whenever outputs finish inside a batch (RL's `rollouts 8/16`).
    `fast`: drafts from the trace's forced text and n-gram lookup, checked in the same pass
    (engine/speculate.py; the same greedy tokens, the same sampled distribution); the stats
    then also count draft tokens proposed and accepted per source."""
    device = next(model.parameters()).device
    out: list[Completion | None] = [None] * len(prompts)
    new_tokens, start, tally = 0, time.perf_counter(), {}
    ends = stop_ids(tokenizer)
    was_training = model.training
    model.eval()
    # A batch decodes until its longest output ends; similar questions (by prompt length)
    # write similar lengths, so batching them together wastes fewer steps on finished rows.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for i in range(0, len(prompts), batch_size):
        rows = order[i : i + batch_size]
        enc = tokenizer([prompts[r] for r in rows], return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(device)
        report = (lambda n, before=i: on_rows(before + n, len(prompts))) if on_rows else None
        decoded = (speculate.decode if fast else decode)(model, tokenizer, enc["input_ids"], enc["attention_mask"],
                                                         max_new_tokens, temperature, top_p, ends, min_new_tokens, report, tally)
        for r, (tokens, ended) in zip(rows, decoded):
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            out[r] = Completion(_cut_after_fence(text), tokens, cut=not ended and len(tokens) >= max_new_tokens)
            new_tokens += len(tokens)
        if on_batch:
            on_batch(min(i + batch_size, len(prompts)), len(prompts))
    model.train(was_training)
    seconds = time.perf_counter() - start
    return out, {"tokens": new_tokens, "seconds": seconds, "tokens_per_s": new_tokens / max(seconds, 1e-9), **tally}




@torch.no_grad()
def decode(model, tokenizer, ids, mask, max_new: int, temperature: float, top_p: float, ends: list[int],
           min_new: int = 0, on_rows=None, tally: dict | None = None) -> list[tuple[list[int], bool]]:
    """Decode one left-padded batch: (new tokens, ended by the model) per row.

    Two things make this faster than `model.generate` on a CPU (1.6x on an
    evaluation, benchmarks/decode.py --real). Attention reads the whole preallocated
    cache every step, so the cache grows 64 positions at a time instead of
    being allocated at prompt + limit. And rows that are done leave the batch:
    when a quarter of them have finished (or the cache grows anyway), the cache
    keeps only the live rows, so the tail of a batch no longer pays for the
    rows that ended early. Greedy outputs are the same tokens `generate` gives.
    """
    batch, width = ids.shape
    limit = width + max_new
    cache = StaticCache(config=model.config, max_cache_len=min(limit, width + GROW))
    n, ids, mask = move_first(ids, mask, tokenizer.pad_token_id or 0)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if n:  # the prompt's start every row shares (system prompt, chat template) is run once, for one row
        for layer, first in zip(cache.layers, shared_cache(model, ids, mask, n).layers):
            layer.update(first.keys.expand(batch, -1, -1, -1), first.values.expand(batch, -1, -1, -1))
    logits = model(input_ids=ids[:, n:], attention_mask=mask, position_ids=positions[:, n:], past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1]
    positions = positions[:, -1:]
    live = list(range(batch))  # original row of each row of the batch as it is now
    tokens: list[list[int]] = [[] for _ in range(batch)]
    ended = [False] * batch
    stops, ticks = set(ends), _backtick_ids(tokenizer)
    done, row_passes = 0, batch  # rows ended so far; rows run through passes (the prompt's: every row)
    for step in range(max_new):
        if step % 16 == 0:
            threads.adjust()  # another process may have taken a core since the last batch
        if step < min_new:
            logits[:, ends] = float("-inf")
        chosen = pick(logits, temperature, top_p).tolist()
        keep, finished_before = [], done
        for j, (r, t) in enumerate(zip(live, chosen)):
            if ended[r]:  # finished, waiting for the next compaction
                continue
            tokens[r].append(t)
            if step >= min_new and (t in stops or (t in ticks and _closed(tokenizer, tokens[r]))):
                ended[r] = True
                done += 1
            else:
                keep.append(j)
        if on_rows and done != finished_before:
            on_rows(done)
        if not keep or step == max_new - 1:
            break
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
        positions = positions + 1
        full = mask.shape[1] > cache.layers[0].max_cache_len
        if len(keep) < len(live) and (full or len(keep) <= 0.75 * len(live)):
            index = torch.tensor(keep, device=mask.device)
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys[index], layer.values[index]
            mask, positions = mask[index], positions[index]
            chosen = [chosen[j] for j in keep]
            live = [live[j] for j in keep]
        if full:
            _grow(cache, min(limit, mask.shape[1] - 1 + GROW))
        row_passes += len(live)
        logits = model(input_ids=torch.tensor(chosen, device=mask.device)[:, None], attention_mask=mask,
                       position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    if tally is not None:  # forward passes: the prompt's and one per token after the first
        tally["passes"] = tally.get("passes", 0) + 1 + step
        tally["row_passes"] = tally.get("row_passes", 0) + row_passes
    return [(tokens[r], ended[r]) for r in range(batch)]


def _cut_after_fence(text: str) -> str:
    first = text.find(FENCE)
    if first < 0:
        return text
    second = text.find(FENCE, first + 3)
    return text if second < 0 else text[: second + 3]




def completion_logprobs(model, tokenizer, prompts: list[str], completions: list[list[int]],
                        temperature: float = 1.0, entropy: bool = False, share_prefix: bool = True,
                        chunk: int = LOGPROB_CHUNK, whole_logits_bytes: int = WHOLE_LOGITS_BYTES):
    """Per-token log-probs of each completion under `model` (with grad if enabled), one forward pass.

    The caller chooses the micro-batch (RL backpropagates each one before the next, so
    only one graph is alive). Logits are divided by the sampling temperature, so the
    log-probs are those of the distribution the tokens were drawn from; with `entropy`,
    also each position's entropy (no grad). Prompt and completion are left-padded
    together, so every completion ends at the right edge.

    Full-vocabulary logits are never built for the batch: the model returns hidden
    states, and the output layer runs on `chunk` completion tokens at a time (padding
    skipped) under activation checkpointing, so backward recomputes a chunk's logits
    instead of keeping them all (a GPU micro-batch of 64 x 400 tokens would otherwise
    hold 5 GB of fp32 logits for a 49k vocabulary, 16 GB for Qwen's 152k). A micro-batch
    whose logits fit `whole_logits_bytes`, or a model whose output layer is not a plain
    linear layer, takes the logits whole (the same values, to float rounding).
    The prompt start the rows share runs once (`share_prefix=False`: every row whole,
    the same log-probs; benchmarks/rollout.py times both).
    """
    from .modeling import fusable

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
    # an RL micro-batch is often one question's group: its prompt runs once, up to the token before the completions
    most = min(map(len, p_ids)) - 1 if share_prefix else 0
    n, ids, mask = move_first(ids, mask, tokenizer.pad_token_id or 0, most=most)
    _, inputs = continue_inputs(model, ids, mask, n)
    targets = ids[:, -keep:]
    # the positions that predict a completion token: the last len(c) of each row's last `keep`
    real = torch.arange(keep, device=device)[None, :] >= torch.tensor([keep - len(c) for c in c_ids], device=device)[:, None]
    head = fusable(getattr(model, "module", model))
    if head is None or len(c_ids) * keep * head.weight.shape[0] * 4 <= whole_logits_bytes:
        logits = model(**inputs, logits_to_keep=keep + 1).logits[:, :-1][real]
        logp, ent = _chunk_logprobs(logits, None, targets[real], temperature)
    else:
        hidden = model(**inputs, logits_to_keep=1, output_hidden_states=True).hidden_states[-1][:, -(keep + 1) : -1][real]
        parts = []
        for i in range(0, len(hidden), chunk):
            args = (hidden[i : i + chunk], head.weight, targets[real][i : i + chunk], temperature)
            grad = torch.is_grad_enabled() and (args[0].requires_grad or head.weight.requires_grad)
            parts.append(torch.utils.checkpoint.checkpoint(_chunk_logprobs, *args, use_reentrant=False) if grad
                         else _chunk_logprobs(*args))
        logp, ent = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    sizes = [len(c) for c in c_ids]
    out = list(logp.split(sizes))
    return (out, list(ent.split(sizes))) if entropy else out


def _chunk_logprobs(hidden, weight, targets, temperature: float):
    """(log p(target), entropy) per position; `weight` None: `hidden` are logits already."""
    logits = (hidden if weight is None else hidden @ weight.t().to(hidden.dtype)).float() / max(temperature, 1e-6)
    lse = torch.logsumexp(logits, dim=-1)
    # log p(token) = logit(token) - logsumexp(logits): no full log-softmax tensor is kept for backward
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
    with torch.no_grad():
        probs = torch.softmax(logits.detach(), dim=-1)
        ent = lse.detach() - (probs * logits.detach()).sum(-1)
    return logp, ent
