"""Decoding speed, where evaluation and RL spend their time: tokens/s of the engine's
batched generation at several batch sizes, where one decode step's time goes, and
the same decoding beside a competing process (a busy machine).

    python benchmarks/decode.py [--batches 24,64] [--tokens 128] [--profile] [--competitor]
    python benchmarks/decode.py --real 128 --checkpoint SESSION/checkpoints/step-N

Every row decodes exactly --tokens new tokens per prompt (no early stop), so the
figures compare equal work. The memory-bandwidth bound printed beside them is
bytes of weights read per step / measured copy bandwidth.

`--real N` is an evaluation as the engine runs it instead: N held-out problems
(half synthetic, half GSM8K test), greedy, stopping where each output ends,
decoded by the engine's decoder and by transformers' `generate` with a static
cache (the engine's decoder before it had its own), with the share of outputs
that came out identical. Give it a trained checkpoint: the base model writes
prose that runs to the limit, which is not what an evaluation decodes.

    python benchmarks/decode.py --compare 1219 --session sessions/NAME [--checkpoint best] [--batch 128]

`--compare N` decodes the first N problems the session's evaluation scores (its sets in
order: the verified recipe's 200 synthetic, then GSM8K test problems 301-1319) greedily
with the plain decoder and with model.fast_decode (engine/speculate.py), side by side
in one process: tokens/s, forward passes per kept token, each decoder's score per set
(a scoring of test problems is recorded in the ledger, as engine eval's), the share of
draft tokens kept by source (forced, question, history), and each output that differs, with the
gap between the top two logits where they part (a near-tie is the only acceptable
cause). `--session` is a session folder or a model name (default: the base model;
its acceptance rates say little about a trained trace writer's).

    python benchmarks/decode.py --compare 500 --dev --against bf16 --session sessions/NAME

`--against bf16` decodes the second time from a bf16 copy of the weights (what
model.generate_dtype=bfloat16 does), `bf16-fast` from that copy with fast decoding: other
weights give other outputs, so each set's flips are tested (McNemar's exact p-value and the
paired change in accuracy with its interval). `--dev` takes the development split (500
GSM8K training problems no run trains on) instead of the evaluation's sets: choices such
as the decoding precision are made there, and the test problems are not looked at.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from engine import config
from engine.data.prompts import prompt_text
from engine.data.synthetic import generate as synthesize
from engine.modeling import load_checkpoint, load_model, load_tokenizer, pick_device
from engine.rollout import Sampler, _cut_after_fence, generate, stop_ids


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
    _, stats = generate(model, tok, prompts, tokens, 0.0, batch_size=batch, min_new_tokens=tokens)
    return stats["tokens_per_s"]


class FenceStop(StoppingCriteria):
    """Done once a row's new text holds an opening and a closing fence (the engine's old stop)."""

    def __init__(self, tok, prompt_len: int):
        self.tok, self.prompt_len = tok, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        return torch.tensor([self.tok.decode(row[self.prompt_len :], skip_special_tokens=True).count("```") >= 2
                             for row in input_ids], dtype=torch.bool)


def hf_generate(model, tok, prompts: list[str], max_new: int, batch: int) -> tuple[list[str], int]:
    """transformers' generate over the same length-sorted batches (the reference)."""
    texts, made = [None] * len(prompts), 0
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    ends = stop_ids(tok)
    for i in range(0, len(prompts), batch):
        rows = order[i : i + batch]
        enc = tok([prompts[r] for r in rows], return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=ends, pad_token_id=tok.pad_token_id,
                             stopping_criteria=StoppingCriteriaList([FenceStop(tok, enc["input_ids"].shape[1])]),
                             cache_implementation="static")
        for r, row in zip(rows, out[:, enc["input_ids"].shape[1] :].tolist()):
            cut = next((k + 1 for k, t in enumerate(row) if t in ends), len(row))
            made += cut
            texts[r] = _cut_after_fence(tok.decode(row[:cut], skip_special_tokens=True))
    return texts, made


def real(model, tok, cfg, n: int, batch: int) -> None:
    from engine.data.gsm8k import load as gsm8k
    from engine.tasks import system_prompt

    qs = [e.question for e in synthesize(n // 2, 7)] + [p.question for p in gsm8k(None, "test", n - n // 2)]
    prompts = [prompt_text(tok, q, system_prompt(cfg)) for q in qs]
    prefill, forward = [0.0], model.forward

    def timed(*a, **kw):  # passes over more than one new token are prefill (the shared prompt start and the rest)
        t = time.perf_counter()
        out = forward(*a, **kw)
        if kw["input_ids"].shape[1] > 1:
            prefill[0] += time.perf_counter() - t
        return out

    model.forward = timed
    start = time.perf_counter()
    ours, stats = generate(model, tok, prompts, cfg.eval.max_new_tokens, 0.0, batch_size=batch)
    mine = time.perf_counter() - start
    model.forward = forward
    print(f"engine decoder:          {stats['tokens']:6d} tokens in {mine:6.1f} s = {stats['tokens'] / mine:5.0f} tokens/s "
          f"(prompts {prefill[0]:.1f} s, decoding {stats['tokens'] / (mine - prefill[0]):.0f} tokens/s)", flush=True)
    start = time.perf_counter()
    theirs, made = hf_generate(model, tok, prompts, cfg.eval.max_new_tokens, batch)
    ref = time.perf_counter() - start
    print(f"transformers generate:   {made:6d} tokens in {ref:6.1f} s = {made / ref:5.0f} tokens/s "
          f"(each row until its end; the batch runs to its longest)")
    same = sum(a.text == b for a, b in zip(ours, theirs))
    print(f"speed-up {ref / mine:.2f}x; identical outputs {same}/{len(prompts)}")


def held_out(cfg, n: int) -> list[tuple[str, object]]:
    """(set name, item) for the first n problems an evaluation of this config scores, its sets in
    its order (the verified recipe: 200 synthetic, then GSM8K test problems 301-1319)."""
    from engine.tasks import eval_sets

    return [(name, it) for name, items in eval_sets(cfg).items() for it in items][:n]


def record_look(target: str, cfg, ckpt, right: dict[str, list[bool]]) -> None:
    """Scoring GSM8K test problems is a look at them, whoever scores: one ledger line per set,
    written by engine eval's own writer (engine/cli/evaluate.py), once per run of this script
    (the plain decoder's scoring; the other one decodes the same checkpoint)."""
    from types import SimpleNamespace

    from engine.cli.evaluate import _ledger

    results = {k: {"correct": sum(v), "total": len(v), "accuracy": sum(v) / max(len(v), 1)} for k, v in right.items()}
    _ledger(SimpleNamespace(target=target, heldout=False), cfg, ckpt, results, by="benchmarks/decode.py")


@torch.no_grad()
def top_gap(model, tok, prompt: str, tokens: list[int]) -> tuple[float, list[int]]:
    """(top-1 minus top-2 logit, the top two tokens) where the model continues prompt + tokens alone."""
    ids = tok(prompt, add_special_tokens=False)["input_ids"] + tokens
    logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    top = logits.topk(2)
    return float(top.values[0] - top.values[1]), top.indices.tolist()


def compare(model, tok, cfg, n: int, batch: int, max_new: int, target: str, ckpt=None, against: str = "fast") -> None:
    """The plain decoder against `against` on the same problems: "fast" (model.fast_decode, the
    same weights: outputs must agree but for near-ties), "bf16" (a bf16 copy of the weights, as
    model.generate_dtype=bfloat16 decodes: outputs may differ, so the flips and McNemar's
    p-value say whether accuracy moved) or "bf16-fast" (both)."""
    from types import SimpleNamespace

    from engine import protocol
    from engine.cli.evaluate import _ledger_root
    from engine.stats import paired
    from engine.tasks import score, system_prompt

    unledgered = protocol.ledger_problem(_ledger_root(SimpleNamespace(target=target)))
    if unledgered:  # said before an hour of decoding, as engine eval says it
        print(f"decode.py: {unledgered}", flush=True)

    chosen = held_out(cfg, n)
    prompts = [prompt_text(tok, it.question, system_prompt(cfg)) for _, it in chosen]
    drafts = against.endswith("fast")
    other = Sampler(model, "bfloat16")() if against.startswith("bf16") else model
    if against.startswith("bf16") and other is model:  # the Sampler made no copy: nothing to compare
        raise SystemExit(f"decode.py: the weights already decode in {next(model.parameters()).dtype} here "
                         "(model.generate_dtype, a GPU's bf16 or 8-bit weights): --against bf16 would compare them with themselves")
    generate(model, tok, prompts[:2], 8, 0.0, batch_size=2)  # warm up both
    generate(other, tok, prompts[:2], 8, 0.0, batch_size=2, fast=drafts)  # (fast: builds the forced-text table)
    runs = {}
    for name, m, fast in (("plain", model, False), (against, other, drafts)):
        cpu = time.process_time()
        comps, stats = generate(m, tok, prompts, max_new, 0.0, batch_size=batch, fast=fast)
        cpu = time.process_time() - cpu  # on a machine others use too, the work done is the fairer comparison
        runs[name] = comps
        right: dict[str, list[bool]] = {}
        for (set_name, it), c in zip(chosen, comps):
            right.setdefault(set_name, []).append(score(cfg, it, c.text, c.cut).outcome == "correct")
        runs[f"{name}_right"] = right
        if name == "plain":
            record_look(target, cfg, ckpt, right)
        print(f"{name:9s}: {stats['tokens']:7d} tokens in {stats['seconds']:7.1f} s = {stats['tokens_per_s']:6.0f} tokens/s "
              f"(CPU time {cpu:.1f} s); "
              f"{stats['passes']} passes, {stats['row_passes'] / max(stats['tokens'], 1):.3f} row-passes per kept token; "
              + ", ".join(f"{k} {sum(v)}/{len(v)} right" for k, v in right.items()), flush=True)
        if fast:
            for s in ("forced", "question", "history"):
                made, kept = stats.get(f"drafted_{s}", 0), stats.get(f"accepted_{s}", 0)
                print(f"       {s:8s} drafted {made:7d}, kept {kept:7d} ({kept / max(made, 1):.1%}); "
                      f"{kept / max(stats['tokens'], 1):.1%} of the kept tokens")
        runs[f"{name}_speed"] = stats["tokens_per_s"]
    print(f"speed-up {runs[f'{against}_speed'] / runs['plain_speed']:.2f}x")
    for k, mine in runs["plain_right"].items():
        c = paired(mine, runs[f"{against}_right"][k])
        print(f"{k}: {against} right where plain was wrong {len(c['gained'])}, wrong where plain was right "
              f"{len(c['lost'])}; McNemar p {c['mcnemar_p']:.3f}; change {c['change']:+.1%} "
              f"[{c['change_ci'][0]:+.1%}, {c['change_ci'][1]:+.1%}]")
    differ = [i for i, (a, b) in enumerate(zip(runs["plain"], runs[against])) if a.tokens != b.tokens]
    print(f"outputs that differ: {len(differ)} of {len(prompts)}")
    if against != "fast":
        return  # other weights: outputs part where the rounding moves an argmax, not only at near-ties
    for i in differ:
        a, b = runs["plain"][i].tokens, runs[against][i].tokens
        k = next(j for j in range(min(len(a), len(b)) + 1) if j == min(len(a), len(b)) or a[j] != b[j])
        gap, top = top_gap(model, tok, prompts[i], a[:k])
        tie = gap < 1e-3 * max(1.0, abs(gap)) or gap < 1e-3
        mine = sorted(t for t in (a[k:k + 1] + b[k:k + 1]))
        print(f"  problem {i}: from token {k}: top-2 gap {gap:.2e} between {top}; "
              f"{'a near-tie' if tie and sorted(top) == mine else 'NOT a near-tie'}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batches", default="24,64")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--profile", action="store_true", help="where one decode step's time goes")
    p.add_argument("--competitor", action="store_true", help="decode again beside a process that keeps both cores busy")
    p.add_argument("--real", type=int, default=0, help="N held-out problems decoded as an evaluation, against transformers' generate")
    p.add_argument("--checkpoint", help="trained weights: for --real a checkpoint folder; for --compare best, last or a folder")
    p.add_argument("--compare", type=int, default=0, help="N held-out problems decoded plain and fast (model.fast_decode), side by side")
    p.add_argument("--session", help="--compare: a session folder (its config and checkpoint) or a model name")
    p.add_argument("--batch", type=int, default=0, help="--compare: rows decoded together (default eval.batch_size)")
    p.add_argument("--max-new", type=int, default=0, help="--compare: new tokens at most (default eval.max_new_tokens)")
    p.add_argument("--against", choices=("fast", "bf16", "bf16-fast"), default="fast",
                   help="--compare: the plain decoder against fast decoding, a bf16 copy of the weights, or both")
    p.add_argument("--dev", action="store_true", help="--compare: the development split (500 GSM8K training problems no "
                   "run trains on) instead of the evaluation's sets: where a choice is made")
    args = p.parse_args()
    if (args.dev or args.against != "fast") and not args.compare:
        p.error("--dev and --against choose what --compare N compares")
    if args.compare:
        from engine.cli.common import CannotLoad, session_model
        from engine.cli.evaluate import DEV_SETS

        try:
            dev = list(DEV_SETS) if args.dev else None
            cfg, tok, model, ckpt = session_model(args.session or args.model, args.checkpoint or "best", dev)
        except CannotLoad as exc:
            raise SystemExit(f"decode.py: {exc}") from None
        if args.dev and cfg.run.task == "instruct":
            raise SystemExit("decode.py: --dev is GSM8K's development split; an instruct session evaluates on its own sets")
        print(f"{ckpt or args.session or args.model}: {args.compare} problems, batch {args.batch or cfg.eval.batch_size}, "
              f"threads {torch.get_num_threads()}", flush=True)
        compare(model.eval(), tok, cfg, args.compare, args.batch or cfg.eval.batch_size, args.max_new or cfg.eval.max_new_tokens,
                args.session or args.model, ckpt, args.against)
        return
    cfg = config.load(sets=[f"model.name={args.model}"])
    if args.real:
        tok = load_tokenizer(cfg.model.name)
        model = load_model(cfg, tok, pick_device()).eval()
        if args.checkpoint:
            load_checkpoint(model, args.checkpoint)
        real(model, tok, cfg, args.real, cfg.eval.batch_size)
        return
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
        from engine import threads

        policy = threads.manage()  # what a run does on a CPU: threads follow the cores others leave free
        time.sleep(threads.MIN_INTERVAL)
        for batch in map(int, args.batches.split(",")):
            speed = rate(model, tok, batch, args.tokens)
            print(f"batch {batch:4d} beside a busy process, threads auto ({policy.current} now; changes {policy.changes}): "
                  f"{speed:7.0f} tokens/s", flush=True)
        stop.set()
        proc.join()
    if args.profile:
        from torch.profiler import profile

        prompts = [prompt_text(tok, e.question) for e in synthesize(64, 3)]
        with profile() as prof:
            generate(model, tok, prompts, 16, 0.0, batch_size=64, min_new_tokens=16)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
