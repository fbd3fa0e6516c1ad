"""How a model is shared between torchrun ranks (`run.parallel`).

- `ddp`: every rank holds the whole model; gradients are averaged after backward.
  `gradient_as_bucket_view`: the gradients live inside DDP's all-reduce buckets
  instead of beside them, one copy of the trained parameters' size less per rank.
- `fsdp`: FSDP2 (`torch.distributed.fsdp.fully_shard`), for models whose weights,
  gradients and optimizer state do not fit one GPU under DDP. Each decoder layer is
  one shard group and the root holds the embeddings, final norm and head; a rank keeps
  1/N of every weight, gradient and optimizer state (fp32, gathered in bf16 on a GPU).
  The root keeps its weights gathered from forward to backward: the fused loss and the
  chunked RL log-probs use the head's weight after the forward pass.
  Decoding (evaluations, hf rollouts) needs whole weights: a `FullCopy` of the model
  is kept for it and refreshed at agreed points (every rank takes part), which also
  yields the whole trained state that checkpoints save, so a checkpoint resumes on
  any number of ranks at a stage boundary.
"""

from __future__ import annotations

import contextlib
import copy

import torch


def wrap(model, world: int, how: str = "ddp"):
    """What training passes call: the model itself on one rank, its DDP wrapper on several,
    or the model sharded in place (FSDP2 makes it its own wrapper)."""
    if world == 1:
        return model
    p = next(model.parameters())
    if how == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        from .modeling import decoder_layers

        cuda = p.device.type == "cuda"
        if cuda:
            model.float()  # one dtype a shard group: every weight sharded in fp32, gathered in bf16 below
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if cuda else MixedPrecisionPolicy()
        for layer in decoder_layers(model):
            fully_shard(layer, mp_policy=policy)
        fully_shard(model, mp_policy=policy, reshard_after_forward=False)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[p.device.index] if p.device.type == "cuda" else None, gradient_as_bucket_view=True)


def whole(t: torch.Tensor) -> torch.Tensor:
    """A parameter or state tensor whole: a DTensor shard is gathered (every rank must call)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class FullCopy:
    """The whole model to decode with while training runs sharded. Built before sharding;
    `refresh(sharded)` gathers the trained weights into it (a collective: every rank calls
    it at the same point) and returns them whole, fp32, on the CPU, for a checkpoint."""

    def __init__(self, model, dtype: torch.dtype):
        self.copy = copy.deepcopy(model).to(dtype).eval()
        for q in self.copy.parameters():
            q.requires_grad_(False)
        self.own = dict(self.copy.named_parameters())

    def __call__(self):
        return self.copy

    @torch.no_grad()
    def refresh(self, model) -> dict:
        state = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                full = whole(p.detach())
                self.own[name].copy_(full)
                state[name] = full.float().cpu().clone()
        return state


def full_optimizer_state(model, optimizer) -> dict | None:
    """The optimizer's state whole, keyed by parameter name (rank 0 gets it; a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_optimizer_state(model, optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))


class Collectives:
    """What the ranks agree on: a stop, a skipped step, a pass count, a mean. One rank (the
    default) agrees with itself without a process group. Every rank must call each method at
    the same point: a rank that decided alone would leave the others waiting in a collective."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world = rank, world
        self.failed = False  # this rank's run failed: its peers may be anywhere, so its end waits for none

    def _reduce(self, value: float, op: str) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([float(value)])  # CPU: the group has a gloo side for it
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        return t.item()

    def agree(self, flag: bool, all_of: bool = False) -> bool:
        """Any rank's True (or, with all_of, every rank's) counts for all."""
        if all_of:
            return not self._reduce(not flag, "MAX")
        return bool(self._reduce(flag, "MAX"))

    def most(self, value: int) -> int:
        """The largest of a number over the ranks: how many passes every rank must run when a
        sharded model's every forward pass is a collective."""
        return int(self._reduce(value, "MAX"))

    def mean(self, value: float) -> float:
        """A number's mean over the ranks (the step's loss over every rank's batch, not rank 0's alone)."""
        return self._reduce(value, "SUM") / self.world if self.world > 1 else value

    def share(self, value):
        """Rank 0's `value` (a small picklable object) on every rank, over the group's CPU side."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


@contextlib.contextmanager
def process_group(world: int, init):
    """The process group for the run inside it: `init()` starts it (several ranks), and on the
    way out, whatever happened, the group ends: barrier (only after a clean end: after a failure,
    or where the body called `failed()`, the peers may never reach it), release (what held the
    group - the DDP or FSDP model, a FullCopy - is gone with the body's frames; gc frees the
    cycles among them), destroy. A group left to interpreter exit is destroyed with gloo's
    threads still holding work, and the process aborts ("terminate called without an active
    exception")."""
    if world == 1:
        yield Collectives()
        return
    import sys

    import torch.distributed as dist

    group, clean = None, False
    try:
        init()
        group = Collectives(dist.get_rank(), world)
        yield group
        clean = not group.failed
    finally:
        try:
            end_process_group(barrier=clean)
        except Exception as exc:  # a peer gone after the run's end: that end stands, said in one line
            rank = group.rank if group else "?"
            print(f"engine: rank {rank}: the process group's end failed: {exc}", file=sys.stderr)


def end_process_group(barrier: bool = True) -> None:
    """The process group's end, in the order that keeps every rank alive to the last line:
    what still holds the group must be unreachable by now; gc.collect() frees the cycles among
    them while the interpreter is whole. Then a barrier, so that no rank destroys the group while
    a peer still uses it (`barrier=False` after a failure), then destroy."""
    import gc

    import torch.distributed as dist

    gc.collect()
    if not dist.is_initialized():
        return
    try:
        if barrier:
            dist.barrier()
    finally:
        dist.destroy_process_group()
