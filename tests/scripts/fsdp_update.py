"""One RL update under FSDP with ranks holding different numbers of signal rows (run by
tests/test_fsdp.py with 2 gloo ranks): every rank must run as many forward passes as the others."""

import torch
import torch.distributed as dist

from engine import config
from engine.modeling import load_tokenizer, make_optimizer, tiny_model
from engine.parallel import Collectives, end_process_group, wrap
from engine.rollout import Completion
from engine.train.context import Handles
from engine.train.rl import Batch, update

dist.init_process_group("gloo")
rank = dist.get_rank()
tok = load_tokenizer("smollm2-135m-instruct")
model = tiny_model(tok)
wrap(model, 2, "fsdp")
cfg = config.load(sets=["rl.micro_batch=1", "rl.lr=1e-2"])
ctx = Handles(model)
ids = tok("expert: a\ntrace: []", add_special_tokens=False)["input_ids"]
n = 4
batch = Batch(0, [], ["q"] * n, [Completion("", ids, False)] * n, [0.0] * n, [], {})
adv = [1.0, -1.0, 0.5, 0.0] if rank == 0 else [1.0, 0.0, 0.0, 0.0]  # 3 passes on rank 0, 1 on rank 1
stats = update(model, None, tok, batch, adv, make_optimizer(model, "adamw", 1e-2), cfg, ctx, Collectives(rank, 2))
print(f"rank {rank} updated, loss finite: {torch.isfinite(torch.tensor(stats['loss'])).item()}", flush=True)
del model, ctx  # the sharded model holds the group: freed before it ends
end_process_group()
