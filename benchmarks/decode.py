"""Decoding speed, where evaluation and RL spend their time: tokens/s of the engine's
batched generation at several batch sizes, where one decode step's time goes, and
the same decoding beside a competing process (a busy machine).

    python benchmarks/decode.py [--batches 24,64] [--tokens 128] [--profile] [--competitor]

Every row decodes exactly --tokens new tokens per prompt (no early stop), so the
figures compare equal work. The memory-bandwidth bound printed beside them is
bytes of weights read per step / measured copy bandwidth.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from engine import config
from engine.data.prompts import prompt_text
from engine.data.synthetic import generate as synthesize
from engine.modeling import load_model, load_tokenizer, pick_device
from engine.rollout import Sampler, generate


def bandwidth_gbs() -> float:
    a = torch.empty(64 * 2**20, dtype=torch.uint8)
    b = torch.empty_like(a)
    b.copy_(a)
    start = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    return 2 * 10 * a.numel() / (time.perf_counter() - start) / 1e9  # read + write


def burn(stop) -> None:
    """A competing process: what another job, or the workbench redrawing, does to the cores."""
    x = torch.randn(512, 512)
    while not stop.is_set():
        x = (x @ x).tanh()


def rate(model, tok, batch: int, tokens: int) -> float:
    prompts = [prompt_text(tok, e.question) for e in synthesize(batch, 3)]
    model.generation_config.min_new_tokens = tokens
    _, stats = generate(model, tok, prompts, tokens, 0.0, batch_size=batch)
    model.generation_config.min_new_tokens = None
    return stats["tokens_per_s"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batches", default="24,64")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--profile", action="store_true", help="where one decode step's time goes")
    p.add_argument("--competitor", action="store_true", help="decode again beside a process that keeps both cores busy")
    args = p.parse_args()
    cfg = config.load(sets=[f"model.name={args.model}"])
    tok = load_tokenizer(cfg.model.name)
    device = pick_device()
    model = Sampler(load_model(cfg, tok, device), cfg.model.generate_dtype)()
    weights = sum(q.numel() * q.element_size() for q in model.parameters())
    bw = bandwidth_gbs()
    print(f"model {args.model} on {device} ({next(model.parameters()).dtype}), threads {torch.get_num_threads()}, "
          f"weights {weights / 1e9:.2f} GB, copy bandwidth {bw:.1f} GB/s")
    rate(model, tok, 2, 4)  # warm up
    for batch in map(int, args.batches.split(",")):
        bound = batch * bw * 1e9 / weights
        print(f"batch {batch:4d}: {rate(model, tok, batch, args.tokens):7.0f} tokens/s "
              f"(bandwidth bound {bound:,.0f} tokens/s)", flush=True)
    if args.competitor:
        stop = mp.get_context("spawn").Event()
        proc = mp.get_context("spawn").Process(target=burn, args=(stop,))
        proc.start()
        time.sleep(2)
        for batch in map(int, args.batches.split(",")):
            print(f"batch {batch:4d} beside a busy process: {rate(model, tok, batch, args.tokens):7.0f} tokens/s", flush=True)
        stop.set()
        proc.join()
    if args.profile:
        from torch.profiler import profile

        prompts = [prompt_text(tok, e.question) for e in synthesize(64, 3)]
        model.generation_config.min_new_tokens = 16
        with profile() as prof:
            generate(model, tok, prompts, 16, 0.0, batch_size=64)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
