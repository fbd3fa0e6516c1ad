"""`engine plan`: the memory a run will need per GPU, and whether it fits, before anything loads."""

from __future__ import annotations

from .. import config as config_mod
from .common import fail


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="the memory a run needs per GPU (weights, gradients, optimizer, activations, "
                                     "logits, KV cache, vLLM) and whether it fits; offline, loads nothing")
    p.add_argument("--model", help="a name `engine models` lists, or a local model folder (default: the config's)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs (torchrun ranks) the run uses")
    p.add_argument("--gpu-memory", type=float, metavar="GB", help="memory of one GPU in GiB, e.g. 80")
    p.add_argument("--cpu", action="store_true", help="plan a CPU run instead (fp32, the CPU sizes)")
    p.add_argument("--config", help="YAML config file, as for engine train")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting, as for engine train")
    p.set_defaults(func=_plan)


def plan_config(args) -> config_mod.Config:
    """The config a run would use, resolved as engine train resolves it on that device (the GPU preset unless --cpu)."""
    from .train import resolve_config

    return resolve_config(args, cuda=not args.cpu)


def _plan(args) -> int:
    from ..plan import GIB, BadModelConfig, estimate, known_shape, render, sized

    if args.gpus < 1 or (args.gpu_memory is not None and not 0 < args.gpu_memory < 100_000):
        return fail("plan", "--gpus must be 1 or more and --gpu-memory a size in GiB")
    try:
        cfg = plan_config(args)
        chosen = config_mod.given_keys(args.config, args.set)  # what a run on a GPU never resizes
    except config_mod.ConfigError as exc:
        return fail("plan", str(exc))
    try:
        shape = known_shape(cfg.model.name)
    except BadModelConfig as exc:
        return fail("plan", str(exc))
    if shape is None:
        return fail("plan", f"{cfg.model.name}: no shape known; name a model `engine models` lists, or a local folder with a config.json")
    memory = args.gpu_memory * GIB if args.gpu_memory else None
    plan = estimate(cfg, shape, cfg.model.name, args.gpus, memory, device="cpu" if args.cpu else "cuda")
    print("\n".join(render(plan)))
    sized_fits = False  # the run as `engine train` on such a GPU sizes it before it loads (plan.sized)
    if memory and not args.cpu:
        changes, why = sized(cfg, args.gpus, memory, chosen)
        if changes and not why:
            sized_fits = True
            print(f"engine train on this GPU sets {', '.join(changes)}"
                  + (": then it fits" if plan.fits is False else ": the room spent on speed"))
    # the exit status answers "will `engine train` run here?", which is what a script asks
    return 0 if plan.fits is not False or sized_fits else 1

