"""`engine plan`'s estimate against the measured peak memory of the same moments on this
machine (the default model on the CPU): an SFT step, an RL update, and decoding, each in
a fresh process at the exact sizes the estimate assumes (batches padded to data.max_len,
completions of rl.max_new_tokens after 192-token prompts, outputs decoded to the limit).

    python benchmarks/plan.py [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, torch
from engine import config, threads
from engine.modeling import load_model, load_tokenizer, make_optimizer, pick_device
from engine.plan import PROMPT_TOKENS
moment, sets = sys.argv[1], sys.argv[2:]
cfg = config.load(sets=sets)
tok = load_tokenizer(cfg.model.name)
model = load_model(cfg, tok, pick_device("cpu"))
g = torch.Generator().manual_seed(0)
def rand(*shape):
    return torch.randint(1000, 40000, shape, generator=g)
if moment == "sft step":
    from engine.train.loss import answer_loss, fusable
    ids = rand(cfg.sft.batch_size, cfg.data.max_len)
    labels = ids.clone(); labels[:, :PROMPT_TOKENS] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    opt = make_optimizer(model, cfg.sft.optimizer, cfg.sft.lr)
    answer_loss(model, batch, fusable(model), share_prefix=False).backward(); opt.step()
elif moment == "rl update":
    from engine.rollout import completion_logprobs
    opt = make_optimizer(model, cfg.rl.optimizer, cfg.rl.lr)
    prompts = [tok.decode(rand(PROMPT_TOKENS).tolist()) for _ in range(cfg.rl.micro_batch)]
    comps = [rand(cfg.rl.max_new_tokens).tolist() for _ in range(cfg.rl.micro_batch)]
    lps, ent = completion_logprobs(model, tok, prompts, comps, cfg.rl.temperature, entropy=True, share_prefix=False)
    (sum(lp.sum() for lp in lps) / 1000).backward(); opt.step()
else:
    from engine.rollout import generate
    # as in a run, decoding comes after an optimizer step: Adam's state allocated, the gradients freed
    opt = make_optimizer(model, cfg.rl.optimizer, cfg.rl.lr)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    opt.step(); opt.zero_grad(set_to_none=True)
    prompts = [tok.decode(rand(PROMPT_TOKENS).tolist()) for _ in range(cfg.eval.batch_size)]
    generate(model, tok, prompts, cfg.eval.max_new_tokens, 0.0, 1.0, cfg.eval.batch_size, min_new_tokens=cfg.eval.max_new_tokens)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    from engine import config
    from engine.plan import GIB, estimate, known_shape

    cfg = config.load(sets=args.set)
    plan = estimate(cfg, known_shape(cfg.model.name), cfg.model.name, device="cpu")
    rows = []
    for m in plan.moments:
        out = subprocess.run([sys.executable, "-c", CHILD, m.name, *args.set], capture_output=True, text=True)
        if out.returncode:
            print(f"{m.name}: failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        peak = json.loads(out.stdout.strip().splitlines()[-1])["peak"]
        rows.append({"moment": m.name, "estimate_gib": round(m.total / GIB, 2), "measured_gib": round(peak / GIB, 2),
                     "error": round(m.total / peak - 1, 3)})
        print(f"{m.name:10} estimate {m.total / GIB:6.2f} GiB  measured peak RSS {peak / GIB:6.2f} GiB  error {m.total / peak - 1:+.1%}",
              flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
