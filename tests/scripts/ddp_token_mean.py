"""One RL update and one SFT micro-batch on 2 gloo DDP ranks whose batches differ in length (run by
tests/test_fsdp.py): each gradient must be the one process's gradient of the mean over all the tokens
of both batches. Each rank dividing by its own token count weighed rank 0's 5 RL tokens as much as
rank 1's 26."""

import copy

import torch
import torch.distributed as dist

from engine import config
from engine.modeling import load_tokenizer, select_trainable, tiny_model
from engine.parallel import Collectives, end_process_group, wrap
from engine.rollout import Completion
from engine.train.context import Handles
from engine.data.prompts import training_ids
from engine.train.loss import answer_loss, fusable
from engine.train.rl import Batch, update
from engine.train.sft import collate, token_weights

dist.init_process_group("gloo")
rank = dist.get_rank()
tok = load_tokenizer("smollm2-135m-instruct")
cfg = config.load(sets=["model.train=last_layers", "model.unfreeze_layers=1", "rl.micro_batch=8", "rl.max_grad_norm=1e6"])
model = select_trainable(tiny_model(tok), cfg)
alone = copy.deepcopy(model)
ids = tok("\ntrace: [1, 2, 3, 4, 5, 6, 7, 8]", add_special_tokens=False)["input_ids"]
rows = {0: [(2, 1.0), (3, -1.0)], 1: [(8, 0.5), (6, -0.5), (7, 1.0), (5, -1.0)]}


class Grab:
    """An optimizer that keeps the gradient it was asked to step with."""

    def __init__(self, m):
        self.m, self.grads = m, {}

    def step(self):
        self.grads = {n: p.grad.clone() for n, p in self.m.named_parameters() if p.grad is not None}

    def zero_grad(self, set_to_none=True):
        self.m.zero_grad(set_to_none=set_to_none)


def batch(rs):
    return Batch(0, [], ["q"] * len(rs), [Completion("", ids[:n], False) for n, _ in rs], [0.0] * len(rs), [], {}), [a for _, a in rs]


shared = Grab(model)
update(model, None, tok, *batch(rows[rank]), shared, cfg, Handles(wrap(model, 2, "ddp")), Collectives(rank, 2))
whole = Grab(alone)
update(alone, None, tok, *batch(rows[0] + rows[1]), whole, cfg, Handles(alone))
same = shared.grads.keys() == whole.grads.keys() and all(
    torch.allclose(shared.grads[n], whole.grads[n], rtol=1e-4, atol=1e-7) for n in whole.grads)
print(f"rank {rank} RL gradient is the global token mean: {same}", flush=True)

# SFT: rank 0 a one-token answer, rank 1 a long one; the weights sft.train gives each micro-batch
model.zero_grad(set_to_none=True)
alone.zero_grad(set_to_none=True)
answers = ["[1]", "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]"]
examples = [training_ids(tok, "What is 1?", a) for a in answers]
ctx = Handles(wrap(model, 2, "ddp"))
mine = collate([examples[rank]], tok.pad_token_id, "cpu")
(answer_loss(ctx.forward, mine, fusable(model)) * token_weights([[examples[rank]]], Collectives(rank, 2))[0]).backward()
answer_loss(alone, collate(examples, tok.pad_token_id, "cpu"), fusable(alone)).backward()
grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
same = all(torch.allclose(grads[n], p.grad, rtol=1e-4, atol=1e-7) for n, p in alone.named_parameters() if p.grad is not None)
print(f"rank {rank} SFT gradient is the global token mean: {same and len(grads) > 2}", flush=True)
del ctx, model, shared  # the DDP wrapper holds the group: freed before it ends
end_process_group()
