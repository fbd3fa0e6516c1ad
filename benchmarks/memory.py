"""Peak memory and speed with and without 8-bit loading: load the default model, take
training steps (LoRA over 8-bit weights, over bf16 weights, over fp32 weights; the last
layers in full precision), and report the process's peak resident memory (and GPU
memory where there is one) and the seconds per step (the median of 4 after a first).

    python benchmarks/memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, statistics, sys, time, torch
from engine import config
from engine.data.prompts import trace_answer, training_ids
from engine.data.synthetic import generate
from engine.modeling import load_model, load_tokenizer, make_optimizer, pick_device
from engine.train.loss import answer_loss, fusable
from engine.train.sft import collate
cfg = config.load(sets=sys.argv[1:])
tok = load_tokenizer(cfg.model.name)
dev = pick_device()
model = load_model(cfg, tok, dev)
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
rows = [training_ids(tok, e.question, trace_answer(e.trace)) for e in generate(8, 0)]
opt = make_optimizer(model, cfg.sft.optimizer, 1e-4)
batch = collate(rows, tok.pad_token_id, dev)
times, losses = [], []
for _ in range(5):
    t = time.perf_counter()
    loss = answer_loss(model, batch, fusable(model))
    loss.backward(); opt.step(); opt.zero_grad()
    times.append(time.perf_counter() - t)
    losses.append(loss.item())
gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print(json.dumps({"loaded_mb": loaded, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gpu_mb": gpu,
                  "step_s": statistics.median(times[1:]), "loss": losses[0]}))  # the first step's: the weights as loaded
"""

MODES = {
    "fp32/bf16, last 16 layers": ["model.train=last_layers"],
    "fp32/bf16, LoRA": ["model.train=lora"],
    "bf16 weights, LoRA": ["model.train=lora", "model.dtype=bfloat16"],
    "8-bit, LoRA": ["model.load_8bit=true", "model.train=lora"],
    "8-bit, LoRA, 8-bit AdamW": ["model.load_8bit=true", "model.train=lora", "sft.optimizer=adamw8bit"],
}


def main() -> None:
    for name, sets in MODES.items():
        out = subprocess.run([sys.executable, "-c", CHILD, *sets], capture_output=True, text=True)
        if out.returncode:
            print(f"{name}: failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        gpu = f", GPU peak {r['gpu_mb']:,.0f} MiB" if r["gpu_mb"] else ""
        print(f"{name:28} peak RSS after loading {r['loaded_mb']:,.0f} MiB, after training steps {r['rss_mb']:,.0f} MiB{gpu}, "
              f"{r['step_s']:.2f} s a step (batch of 8)")


if __name__ == "__main__":
    main()
