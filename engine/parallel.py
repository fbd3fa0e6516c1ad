"""How a model is shared between torchrun ranks (`run.parallel`).

- `ddp`: every rank holds the whole model; gradients are averaged after backward.
  `gradient_as_bucket_view`: the gradients live inside DDP's all-reduce buckets
  instead of beside them, one copy of the trained parameters' size less per rank.
"""

from __future__ import annotations


def wrap(model, world: int):
    """What training passes call: the model itself on one rank, its DDP wrapper on several."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    p = next(model.parameters())
    return DDP(model, device_ids=[p.device.index] if p.device.type == "cuda" else None, gradient_as_bucket_view=True)
