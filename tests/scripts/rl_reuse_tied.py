"""RL with rl.batch_reuse=2 under FSDP on 2 gloo ranks, rank 1's batch fully tied every iteration
(run by tests/test_fsdp.py). Whether to compute the sampling log-probs was decided per rank: rank 1
skipped the passes rank 0 ran in lockstep with it, and the ranks hung. Prints one line a rank at the end.
`--sampler-logprobs`: rl.batch_reuse=1, the backend returns the sampler's log-probs (as vLLM with
rl.vllm_is_cap > 0): the same pass then runs for the mismatch correction, decided together too."""

import sys

import torch
import torch.distributed as dist

from engine import config
from engine.modeling import load_tokenizer, make_optimizer, select_trainable, tiny_model
from engine.parallel import Collectives, end_process_group, wrap
from engine.rollout import Completion
from engine.tasks import Score
from engine.train import rl
from engine.train.context import Handles

dist.init_process_group("gloo")
rank = dist.get_rank()
tok = load_tokenizer("smollm2-135m-instruct")
cfg = config.load(sets=["model.train=last_layers", "model.unfreeze_layers=1", "rl.micro_batch=2", "rl.batch_reuse=2",
                        "rl.iterations=2", "rl.questions=2", "rl.group_size=2", "rl.algorithm=grpo",
                        "rl.dynamic_sampling=false", "rl.lr=1e-2", "run.parallel=fsdp"])
SAMPLER = "--sampler-logprobs" in sys.argv
if SAMPLER:
    cfg.rl.batch_reuse = 1
model = select_trainable(tiny_model(tok), cfg)
wrap(model, 2, "fsdp")


class Backend:
    """Completions of different lengths; the rewards below decide which rank has signal."""

    logprobs = SAMPLER

    def generate(self, tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, on_rows=None):
        ids = tokenizer("\ntrace: [1, 2, 3]", add_special_tokens=False)["input_ids"]
        comps = [Completion("", ids[: 2 + i % 3], False) for i in range(len(prompts))]
        for c in comps:
            c.logprobs = [-1.0] * len(c.tokens) if SAMPLER else None
        return comps, {"tokens": 1, "seconds": 1.0, "tokens_per_s": 1.0}

    def sync_weights(self, model):
        pass


rewards = iter(range(10_000))
rl.score = lambda cfg, item, text, cut: Score("wrong", float(next(rewards) % 2) if rank == 0 else 0.0, True)
ctx = Handles(model)
steps = [s.step for s in rl.train(model, None, tok, make_optimizer(model, "adamw", 1e-2), cfg, ctx, Backend(), Collectives(rank, 2))]
print(f"rank {rank} finished {steps[-1]} iterations", flush=True)
del ctx, model  # the sharded model holds the group: freed before it ends
end_process_group()
