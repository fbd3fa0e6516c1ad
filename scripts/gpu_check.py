"""What awaits a GPU, proven in one go (scripts/gpu-check.sh runs this; <10 min on one GPU, no network).

1. the default run with the GPU preset on the 135M model (trimmed: 2,000 synthetic + 2,000 GSM8K
   traces, 1 epoch, 6 RL iterations, 200 GSM8K and 100 synthetic test problems), its SFT tokens/s
2. vLLM rollouts (if vllm is installed): rollout tokens/s, and the weight sync: after an update,
   vLLM's log-probs of a fixed completion match the trained model's, and before the push they did
   not (the stale gap at least 10x the synced one: a check that cannot tell them apart proves nothing)
3. 8-bit loading + LoRA: one training step each of LoRA over 8-bit and over bf16 weights (the
   benchmarks/memory.py child); it fails when either step fails or their losses differ by more than 2%
4. `engine plan` against the measured peak of one RL update with activation checkpointing, for
   the 135M model (also as a run sizes itself to this GPU: checkpointing off, a larger
   micro-batch) and a randomly initialised model of SmolLM2-1.7B's shape (memory does not
   depend on the weights' values, so no download); measured as the allocator reserved it
   (max_memory_reserved: fragmentation included, what runs out first), allocated beside it

Prints one table and writes it as JSON (default gpu-check.json).
    python scripts/gpu_check.py [--out gpu-check.json] [--skip run,vllm,8bit,plan]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROWS: list[dict] = []


def row(check: str, result: str, ok: bool | None, **figures) -> None:
    ROWS.append({"check": check, "result": result, "ok": ok, **figures})
    print(f"{'ok  ' if ok else 'FAIL' if ok is False else '    '} {check:34} {result}", flush=True)


def check_run(tmp: Path) -> None:
    folder = tmp / "gpu-default"
    # trimmed to fit the check's time; dynamic sampling off: on a model that ties every group it
    # would draw four rounds per iteration (its own tests prove it on the CPU)
    sets = ["run.preset=gpu", "data.train_size=2000", "data.gsm8k_traces=2000", "sft.epochs=1", "rl.iterations=6",
            "rl.dynamic_sampling=false", "eval.gsm8k=200", "eval.synthetic=100"]
    t = time.time()
    from engine.selfexec import engine_argv  # the engine as its own restart starts it: nothing of the current folder imported

    out = subprocess.run(engine_argv(["train", "--plain", "--session", str(folder), *[a for s in sets for a in ("--set", s)]]),
                         capture_output=True, text=True, timeout=360)
    from engine.events import read_all

    events = read_all(folder / "events.jsonl") if (folder / "events.jsonl").exists() else []
    sft = [e for e in events if e["kind"] == "metrics" and e["phase"] == "sft" and e.get("tokens_per_s")]
    evals = {(e["at"], e["set"]): e["accuracy"] for e in events if e["kind"] == "eval"}
    tps = sum(e["tokens_per_s"] for e in sft) / max(len(sft), 1)
    ok = out.returncode == 0 and events and events[-1].get("status") == "completed"
    params = next((e.get("params_total") for e in events if e["kind"] == "run_started"), None)
    mfu = model_flop_utilisation(tps, params)
    rl = [e for e in events if e["kind"] == "metrics" and e["phase"] == "rl" and "rollout_time" in e]
    rollout = sum(e["rollout_time"] for e in rl) / max(len(rl), 1)
    update = sum(e["update_time"] for e in rl) / max(len(rl), 1)
    # what the run sized to this GPU before it loaded (plan.sized: checkpointing off and larger micro-batches where there is room)
    sized = next((line.split("sized for ", 1)[1] for line in out.stderr.splitlines() if "sized for " in line), "nothing")
    row("default run, GPU preset (trimmed)", f"{time.time() - t:.0f} s, SFT {tps:,.0f} tokens/s"
        + (f" (MFU {mfu:.1%})" if mfu else "") + f", RL iteration {rollout:.1f} s rollouts + {update:.1f} s update, evals {evals}"
        + f"; sized: {sized}" if ok else out.stderr[-300:], ok, sft_tokens_per_s=tps, mfu=mfu, rl_rollout_seconds=rollout,
        rl_update_seconds=update, seconds=time.time() - t, evals={f"{a}/{s}": v for (a, s), v in evals.items()}, sized=sized)


PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}  # dense bf16 FLOP/s, the vendors' figures


def model_flop_utilisation(tokens_per_s: float, params: int | None) -> float | None:
    """SFT's model FLOPs (6 per parameter per token: forward and backward, as nanoGPT and PaLM count them,
    whether or not a layer is trained) against the chip's dense bf16 peak; None for a chip not in the table."""
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return 6 * params * tokens_per_s / peak if peak and params and tokens_per_s else None


def check_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        row("vLLM rollouts + weight sync", "vllm not installed: skipped", None)
        return
    from vllm import SamplingParams

    from engine import config
    from engine.backends import make_backend
    from engine.data.prompts import prompt_text
    from engine.modeling import load_model, load_tokenizer, make_optimizer, pick_device
    from engine.rollout import completion_logprobs

    cfg = config.load(sets=["rl.backend=vllm"])
    tok = load_tokenizer(cfg.model.name)
    model = load_model(cfg, tok, pick_device())
    backend = make_backend(cfg, model, tok, None)
    prompts = [prompt_text(tok, f"Tom has {n} apples and buys {n + 3} more. How many now?") for n in range(256)]
    comps, gen = backend.generate(tok, prompts, 256, 1.0, 1.0, len(prompts))
    prompt, completion = prompts[0], comps[0].tokens
    opt = make_optimizer(model, "adamw", 1e-3)  # one step large enough that a stale engine shows it
    with torch.autocast("cuda", dtype=torch.bfloat16):
        (-completion_logprobs(model, tok, [prompt], [completion])[0].sum()).backward()
    opt.step()
    ids = tok(prompt, add_special_tokens=False)["input_ids"]

    def gap() -> float:  # mean |log-prob difference| over the completion, trained model against vLLM
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            ours = completion_logprobs(model, tok, [prompt], [completion])[0].float().cpu()
        out = backend.llm.generate([{"prompt_token_ids": ids + completion}],
                                   sampling_params=SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)[0]
        theirs = torch.tensor([d[t].logprob for d, t in zip(out.prompt_logprobs[len(ids):], completion)])
        return float((ours - theirs).abs().mean())

    stale = gap()  # vLLM still has the weights from before the step
    backend.sync_weights(model)
    synced = gap()
    ok = sync_ok(stale, synced)
    row("vLLM rollouts + weight sync", f"{gen['tokens_per_s']:,.0f} tokens/s; mean |log-prob gap| after an update: "
        f"{stale:.4f} before the push, {synced:.4f} after", ok, rollout_tokens_per_s=gen["tokens_per_s"],
        logprob_gap_stale=stale, logprob_gap_synced=synced)


def sync_ok(stale: float, synced: float) -> bool:
    """The push made vLLM agree with the trained model (under 0.1, bf16's rounding) and the
    check could have seen it fail: before the push the gap was at least 10x larger."""
    return math.isfinite(stale) and math.isfinite(synced) and synced < 0.1 and stale > 0 and stale >= 10 * synced


EIGHT_BIT = {"bf16 weights, LoRA": ["model.train=lora", "model.dtype=bfloat16"],
             "8-bit, LoRA": ["model.load_8bit=true", "model.train=lora"]}


def check_8bit() -> None:
    import runpy  # benchmarks/ is a folder of scripts, not a package: its child program read by path

    CHILD = runpy.run_path(str(Path(__file__).resolve().parent.parent / "benchmarks" / "memory.py"))["CHILD"]
    runs = {name: subprocess.run([sys.executable, "-c", CHILD, *sets], capture_output=True, text=True, timeout=240)
            for name, sets in EIGHT_BIT.items()}
    result, ok, figures = judge_8bit({k: (o.returncode, o.stdout, o.stderr) for k, o in runs.items()})
    row("8-bit loading + LoRA step", result, ok, **figures)


def judge_8bit(runs: dict[str, tuple[int, str, str]]) -> tuple[str, bool, dict]:
    """(result, ok, figures) from each mode's (exit status, stdout, stderr): a failed step, a
    missing result line, a non-finite loss or an 8-bit loss more than 2% from bf16's fails."""
    got = {}
    for name in EIGHT_BIT:
        code, out, err = runs.get(name, (None, "", "not run"))
        if code != 0:
            return f"{name}: failed: {(err.strip().splitlines() or ['exit ' + str(code)])[-1]}"[:300], False, {}
        try:
            got[name] = json.loads(out.strip().splitlines()[-1])
            loss = float(got[name]["loss"])
        except (IndexError, ValueError, KeyError, TypeError):
            return f"{name}: no result line in its output", False, {}
        if not math.isfinite(loss):
            return f"{name}: loss {loss}", False, {}
    bf16, eight = got["bf16 weights, LoRA"], got["8-bit, LoRA"]
    diff = eight["loss"] / bf16["loss"] - 1
    figures = {"loss_8bit": eight["loss"], "loss_bf16": bf16["loss"], "step_s_8bit": eight["step_s"],
               "gpu_mb_8bit": eight.get("gpu_mb")}
    return (f"loss {eight['loss']:.4f} against bf16's {bf16['loss']:.4f} ({diff:+.1%}); {eight['step_s']:.2f} s a step, "
            f"GPU peak {eight.get('gpu_mb') or 0:,.0f} MiB"), abs(diff) <= 0.02, figures


def check_plan() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine import config
    from engine.modeling import checkpoint_activations, load_model, load_tokenizer, make_optimizer, select_trainable
    from engine.config import GPU, parse_sets
    from engine.plan import GIB, PROMPT_TOKENS, estimate, grow, known_shape
    from engine.plan.memory import WORST_ACT
    from engine.rollout import completion_logprobs

    preset = parse_sets([f"{k}={v}" for k, v in GPU.items()])
    total = torch.cuda.get_device_properties(0).total_memory
    # the 135M model as the preset has it and as a run sizes itself to this GPU (plan.grow:
    # checkpointing off, a larger micro-batch: the regime whose activations the plan has not met)
    # (last: the likeliest to run out of memory, and a failure there must not cost the other rows)
    for name, sets, grown in (("smollm2-135m-instruct", [], False), ("smollm2-1.7b-instruct", ["model.train=full"], False),
                              ("smollm2-135m-instruct", [], True)):
        cfg = config.load(sets=[f"model.name={name}", *sets], base=preset)
        shape = known_shape(name)
        changes = grow(cfg, shape, name, 1, total) if grown else []
        if grown and not changes:
            row(f"plan vs one RL update: {name}, grown", "no room to grow on this GPU: nothing to measure", None)
            continue
        cfg = config.load(sets=[f"model.name={name}", *sets, *changes], base=preset)
        tok = load_tokenizer("smollm2-135m-instruct")
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        if name == "smollm2-135m-instruct":
            model = load_model(cfg, tok, torch.device("cuda"))
        else:  # the shape, random weights: memory is the same
            c = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                            num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                            tie_word_embeddings=shape.tied)
            model = select_trainable(LlamaForCausalLM(c).to("cuda", torch.bfloat16), cfg)
            from engine.modeling import keep_master_weights

            keep_master_weights(model)
            checkpoint_activations(model)
        model.train()
        opt = make_optimizer(model, cfg.rl.optimizer, cfg.rl.lr)
        rand = lambda n: torch.randint(1000, 40000, (n,)).tolist()
        prompts = [tok.decode(rand(PROMPT_TOKENS)) for _ in range(cfg.rl.micro_batch)]
        comps = [rand(cfg.rl.max_new_tokens) for _ in range(cfg.rl.micro_batch)]
        label = f"plan vs one RL update: {name}" + (f" ({', '.join(changes)})" if changes else "")
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                lps = completion_logprobs(model, tok, prompts, comps, 1.0, share_prefix=False)
                (sum(lp.sum() for lp in lps) / 1000).backward()
            opt.step()
        except torch.cuda.OutOfMemoryError as exc:  # the plan said it fits: that is the finding
            row(label, f"out of memory: {str(exc)[:200]}", False)
            del model, opt
            torch.cuda.empty_cache()
            continue
        finally:
            lps = None  # the graph holds the parameters and their gradients: freed before the next row measures
        allocated, measured = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        plan = estimate(cfg, shape, name, memory=total)
        # what the allocator counts here: no runtime (CUDA context) and no sampler copy (no run around it)
        rl = sum(p.bytes for p in {m.name: m for m in plan.moments}["rl update"].parts
                 if p.name not in ("runtime", "sampler's bf16 copy"))
        err = rl / measured - 1
        # what growing is held to: the peak with every activation at its most (plan.grow, WORST_ACT)
        worst = sum(p.bytes for p in {m.name: m for m in estimate(cfg, shape, name, memory=total, act=WORST_ACT).moments}
                    ["rl update"].parts if p.name not in ("runtime", "sampler's bf16 copy"))
        row(label, f"estimate {rl / GIB:.2f} GiB (at most {worst / GIB:.2f}), reserved {measured / GIB:.2f} GiB ({err:+.0%}; "
            f"allocated {allocated / GIB:.2f})", abs(err) < 0.25 and measured <= worst, estimate_gib=rl / GIB,
            worst_gib=worst / GIB, reserved_gib=measured / GIB, allocated_gib=allocated / GIB)
        del model, opt
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu-check.json")
    ap.add_argument("--skip", default="")
    ap.add_argument("--keep", help="a folder for the run's session (default: a temporary one, removed)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu-check: no CUDA device here; this script proves what the CPU cannot (docs/gpu.md)")
    skip = set(args.skip.split(","))
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        for name, check in (("run", lambda: check_run(Path(tmp))), ("vllm", check_vllm), ("8bit", check_8bit), ("plan", check_plan)):
            if name in skip:
                continue
            try:
                check()
            except Exception as exc:  # one failed check must not hide the others
                row(name, f"{type(exc).__name__}: {exc}"[:300], False)
    Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(0), "rows": ROWS}, indent=1))
    print(f"written: {args.out}")
    sys.exit(0 if all(r["ok"] is not False for r in ROWS) else 1)


if __name__ == "__main__":
    main()
