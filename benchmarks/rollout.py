"""Rollout speed: the engine's batched generation (KV cache) against a plain
token-by-token loop without a cache (how the seed experiments sampled), on the
same model and prompts; then RL's update passes (forward and backward of the
completions' log-probs, one question's group per micro-batch) with the shared
prompt run once against every row whole.

    python benchmarks/rollout.py [--model smollm2-135m-instruct] [--prompts 16] [--tokens 64] [--groups 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from engine import config
from engine.data import gsm8k
from engine.data.prompts import prompt_text
from engine.data.synthetic import generate as synthesize
from engine.modeling import load_model, load_tokenizer, pick_device, select_trainable
from engine.rollout import Sampler, completion_logprobs, generate


@torch.no_grad()
def naive(model, tokenizer, prompt: str, new_tokens: int, temperature: float) -> int:
    """One prompt, one token at a time, the whole sequence re-run every step."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
    for _ in range(new_tokens):
        logits = model(ids, use_cache=False).logits[:, -1, :] / temperature
        nxt = torch.multinomial(torch.softmax(logits.float(), -1), 1)
        ids = torch.cat([ids, nxt], dim=1)
    return new_tokens


def update_passes(model, tok, cfg, groups: int, rounds: int = 2) -> dict[bool, float]:
    """Seconds of RL's update passes over `groups` groups of 8 sampled completions
    (half synthetic, half GSM8K questions), keyed by whether the prompt is shared."""
    questions = [e.question for e in synthesize(groups - groups // 2, 5)]
    questions += [p.question for p in gsm8k.load(split="train", limit=groups // 2)]
    model = select_trainable(model, cfg)
    work = []
    for q in questions:
        torch.manual_seed(0)
        prompts = [prompt_text(tok, q)] * 8
        done, _ = generate(model, tok, prompts, cfg.rl.max_new_tokens, temperature=cfg.rl.temperature, batch_size=8)
        work.append((prompts, [c.tokens for c in done]))
    model.train()
    seconds = {True: 0.0, False: 0.0}
    for r in range(rounds):
        for share in (True, False) if r % 2 == 0 else (False, True):  # alternate, so neither always runs second
            for prompts, completions in work:
                start = time.perf_counter()
                logp = completion_logprobs(model, tok, prompts, completions, cfg.rl.temperature, share_prefix=share)
                torch.stack([x.sum() for x in logp]).sum().backward()
                model.zero_grad(set_to_none=True)
                seconds[share] += time.perf_counter() - start
    return seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--naive-prompts", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--groups", type=int, default=6, help="RL groups of 8 for the update-pass timing (0: skip)")
    args = p.parse_args()
    cfg = config.load(sets=[f"model.name={args.model}"])
    tok = load_tokenizer(cfg.model.name)
    device = pick_device()
    model = load_model(cfg, tok, device).eval()
    prompts = [prompt_text(tok, e.question) for e in synthesize(args.prompts, 3)]
    generate(model, tok, prompts[:2], 4, 0.8)  # warm up

    # Same number of new tokens for every row: no early stop, so both sides do equal work.
    torch.manual_seed(0)
    _, stats = generate(model, tok, prompts, args.tokens, temperature=0.8, batch_size=len(prompts), min_new_tokens=args.tokens)
    sampler = Sampler(model, "bfloat16")
    low = sampler()
    torch.manual_seed(0)
    _, low_stats = generate(low, tok, prompts, args.tokens, temperature=0.8, batch_size=len(prompts), min_new_tokens=args.tokens)
    start = time.perf_counter()
    made = sum(naive(model, tok, pr, args.tokens, 0.8) for pr in prompts[: args.naive_prompts])
    naive_rate = made / (time.perf_counter() - start)
    print(f"model {args.model} on {device}, {args.tokens} new tokens per prompt")
    print(f"batched + KV cache ({len(prompts)} prompts): {stats['tokens_per_s']:,.0f} tokens/s")
    print(f"batched + KV cache, bf16 copy (what rollouts use where bf16 is fast): {low_stats['tokens_per_s']:,.0f} tokens/s")
    print(f"token-by-token, no cache ({args.naive_prompts} prompts): {naive_rate:,.0f} tokens/s")
    print(f"speed-up: {stats['tokens_per_s'] / naive_rate:.1f}x (fp32), {low_stats['tokens_per_s'] / naive_rate:.1f}x (bf16 copy)")
    if args.groups:
        seconds = update_passes(model, tok, cfg, args.groups)
        print(f"RL update passes, {args.groups} groups of 8 twice (the default's {cfg.model.unfreeze_layers} trained layers): "
              f"shared prompt {seconds[True]:.1f} s, every row whole {seconds[False]:.1f} s ({seconds[False] / seconds[True]:.2f}x)")


if __name__ == "__main__":
    main()
