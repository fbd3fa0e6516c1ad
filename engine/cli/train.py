"""`engine train` and `engine config show`: a run's configuration resolved, then the run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import config as config_mod
from ..models import TINY, ModelNotFound
from .common import DEFAULT_ROOT, fail


def add_parser(sub) -> None:
    from ..tasks import TASKS

    t = sub.add_parser("train", help="train a model: SFT, RL and evaluation, written to a session folder")
    t.add_argument("--config", help="YAML config file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. sft.lr=1e-4")
    t.add_argument("--model", help="model name, folder or hub id (tiny: a 3M-parameter smoke run)")
    t.add_argument("--task", choices=list(TASKS), help="what the run teaches (run.task; default trace). "
                   + "; ".join(f"{name}: {task.summary}" for name, task in TASKS.items()))
    t.add_argument("--session", help="session folder (default: sessions/<run-id>)")
    t.add_argument("--resume", metavar="DIR", help="continue the session in DIR from its last checkpoint")
    t.add_argument("--plain", action="store_true", help="plain lines, no progress bars")
    t.set_defaults(func=_train, runs_model=True)


    c = sub.add_parser("config", help="show the resolved configuration").add_subparsers(dest="config_cmd", required=True)
    show = c.add_parser("show", help="print the resolved defaults (with --config/--set applied)")
    show.add_argument("--config")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    show.add_argument("--model")
    show.add_argument("--docs", action="store_true", help="list every key with its meaning")
    show.set_defaults(func=_show)


def resolve_config(args, note=lambda text: None, cuda: bool | None = None) -> config_mod.Config:
    """Defaults, the device's preset, --config, then --set (later wins). `cuda`: whether a CUDA
    device will be used (default: whether this machine has one; `engine plan` says which)."""
    base = {}
    sets = list(args.set)
    if getattr(args, "model", None):
        if args.model == TINY:
            base = config_mod.smoke_overrides()
        sets = [f"model.name={args.model}"] + sets
    if getattr(args, "task", None):
        sets = [f"run.task={args.task}"] + sets
    cfg = config_mod.load(getattr(args, "config", None), sets, base=base)
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    preset, why = config_mod.preset_for(cfg, cuda)
    if preset == "gpu":
        gpu = config_mod.parse_sets([f"{k}={v}" for k, v in config_mod.GPU.items()])
        cfg = config_mod.load(getattr(args, "config", None), sets, base={**gpu, **base})
        note(f"preset gpu ({why}): " + ", ".join(f"{k}={v}" for k, v in config_mod.GPU.items()) + "; --set overrides any")
    else:
        note(f"preset cpu ({why})")
    return cfg


def _train(args) -> int:
    from ..run import run
    from .reporter import Reporter
    from ..session import new_run_id

    try:
        if args.resume:
            folder = Path(args.resume)
            if not (folder / "config.yaml").exists():
                return fail("train", f"{folder} is not a session folder (it has no config.yaml)")
            cfg = config_mod.load(folder / "config.yaml", args.set)
        else:
            cfg = resolve_config(args)
            folder = Path(args.session) if args.session else Path(DEFAULT_ROOT) / new_run_id(cfg.model.name)
    except config_mod.ConfigError as exc:
        return fail("train", str(exc))
    from ..models import problem
    from ..session import SessionBusy

    cfg, sized, why = size_for_gpu(cfg, args.set, resize=not args.resume)
    why = why or (None if args.resume else problem(cfg.model.name))  # before a session folder is made
    if sized:
        print(f"engine train: {sized}", file=sys.stderr)
    if why:
        return fail("train", why, 1)
    try:
        reporter = Reporter(False if args.plain else None) if os.environ.get("RANK", "0") == "0" else None
        status = run(cfg, folder, resume=bool(args.resume), sinks=(reporter,) if reporter else ())
    except ModelNotFound as exc:
        return fail("train", str(exc), 1)
    except SessionBusy as exc:
        return fail("train", str(exc))
    print(f"session: {folder}")
    return 0 if status in ("completed", "stopped") else 1


def size_for_gpu(cfg, sets: list[str], resize: bool = True) -> tuple[config_mod.Config, str | None, str | None]:
    """On a GPU: (the config with micro-batches sized to the model and this GPU, a note of what was
    sized, or the run's memory plan when even that will not fit), said before anything loads
    instead of an out-of-memory error minutes into the run. Sizes the user set are kept."""
    import torch

    if cfg.model.device not in ("auto", "cuda") or not torch.cuda.is_available():
        return cfg, None, None
    from ..plan import sized

    props = torch.cuda.get_device_properties(int(os.environ.get("LOCAL_RANK", 0)))
    chosen = {s.partition("=")[0].strip() for s in sets}
    if not resize:  # a resumed run keeps its batches: the data order of a stage depends on them
        chosen |= {"rl.micro_batch", "sft.batch_size", "sft.grad_accum", "eval.batch_size"}
    changes, why = sized(cfg, int(os.environ.get("WORLD_SIZE", 1)), props.total_memory, chosen)
    if why:
        return cfg, None, f"this run will not fit the GPU ({props.name}):\n{why}"
    if not changes:
        return cfg, None, None
    cfg = config_mod.load(None, changes, base=cfg.to_dict())  # checked as any --set is
    return cfg, f"sized for {props.name} ({props.total_memory / 2**30:.0f} GiB): " + ", ".join(changes), None


def _show(args) -> int:
    try:
        cfg = resolve_config(args, note=lambda text: print(f"# {text}"))
    except config_mod.ConfigError as exc:
        return fail("config show", str(exc))
    if args.docs:
        for key, default, doc in config_mod.describe():
            print(f"{key:24} {default!s:28} {doc}")
        return 0
    sys.stdout.write(cfg.to_yaml())
    return 0
