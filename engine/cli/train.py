"""`engine train` and `engine config show`: a run's configuration resolved, then the run."""

from __future__ import annotations

import os
import shutil
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
    t.add_argument("--session", help="session folder (default: sessions/<run-id>); one that holds a run is refused: --resume continues it")
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
    from ..session import Session, SessionBusy, SessionExists, new_folder

    try:
        if args.resume:
            folder = Path(args.resume)
            if not (folder / "config.yaml").exists():
                return fail("train", f"{folder} is not a session folder (it has no config.yaml)")
            cfg = resume_config(folder, args.set)
            chosen = config_mod.given_keys(None, args.set)
        else:
            cfg = resolve_config(args)
            chosen = config_mod.given_keys(getattr(args, "config", None), args.set)
            folder = Path(args.session) if args.session else new_folder(Path(DEFAULT_ROOT), cfg.model.name)
            Session(folder).refuse_new_run()  # before anything loads; the recorder asks again under the lock
        config_mod.absolute_paths(cfg)  # config.yaml names the files read, wherever eval is run from later
    except config_mod.ConfigError as exc:
        return fail("train", str(exc))
    except SessionExists as exc:
        return fail("train", str(exc))
    from ..models import problem

    cfg, sized, why = size_for_gpu(cfg, chosen, resize=not args.resume)
    why = why or (None if args.resume else problem(cfg.model.name))  # before a session folder is made
    why = why or input_problem(cfg)  # a bad line in an eval set: said before SFT, not after it
    if not why:
        from ..backends import vllm_problem

        why = vllm_problem(cfg)  # before SFT, not when RL starts after it
    if sized:
        print(f"engine train: {sized}", file=sys.stderr)
    if why:
        return fail("train", why, 1)
    if cfg.model.init_from and not args.resume:  # a damaged or foreign checkpoint: said before a session folder is made
        why = start_problem(cfg)
        if why:
            return fail("train", f"model.init_from: {why}", 1)
    try:
        reporter = Reporter(False if args.plain else None) if os.environ.get("RANK", "0") == "0" else None
        status = run(cfg, folder, resume=bool(args.resume), sinks=(reporter,) if reporter else ())
        import signal

        # the run has written its end: a Ctrl-C from here on ends the process at once, not with a
        # KeyboardInterrupt traceback from interpreter exit (a second Ctrl-C just after the first)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except ModelNotFound as exc:
        return fail("train", str(exc), 1)
    except (SessionBusy, SessionExists) as exc:
        return fail("train", str(exc))
    print(f"session: {folder}")
    return 0 if status in ("completed", "stopped") else 1


def input_problem(cfg) -> str | None:
    """Why an eval set (eval.problems) or a training file (data.self_traces, data.instruct_train)
    cannot be read, in one line naming the file and line; found before a session folder is made,
    not when the run reaches the file after SFT. None when all read."""
    from ..data import problems

    try:
        for f in cfg.eval.problems:
            problems.load(f, cfg.eval.problems_limit or None)
        if cfg.data.self_traces:
            problems.load(cfg.data.self_traces)
        if cfg.run.task == "instruct" and cfg.data.instruct_train:
            from ..tasks.instruct import read_instructions

            read_instructions(cfg.data.instruct_train, cfg.data.train_size)
    except (ValueError, OSError) as exc:
        return str(exc)
    return None


def start_problem(cfg) -> str | None:
    """Why model.init_from cannot start this run (unreadable, not a checkpoint, or parameters this
    model does not have), checked on the model's skeleton without its weights; None when it can."""
    from .. import checkpoints
    from ..modeling import CheckpointMismatch, check_start

    folder = Path(cfg.model.init_from).expanduser()
    try:
        check_start(cfg, checkpoints.read(folder)["trainable"])
    except checkpoints.CheckpointError as exc:
        return str(exc)
    except CheckpointMismatch as exc:
        return f"{folder}: {exc}"
    return None


# what a session's own config.yaml never decides on a resume: where the engine writes outside the
# session and what it sends. A session from elsewhere could point them at any folder, or upload
# under the user's own W&B login; on a resume they hold only when the user gives them again (--set).
OUTSIDE = ("run.tensorboard", "run.wandb", "run.wandb_mode")


def resume_config(folder: Path, sets: list[str]) -> config_mod.Config:
    """The session's config with `sets` applied, less the OUTSIDE keys the user did not give again
    (said on stderr when the session had them)."""
    import dataclasses

    from .common import session_config

    cfg = session_config(folder, sets, training=True)
    given = {s.partition("=")[0].strip() for s in sets}
    default = config_mod.Config().run
    dropped = {}
    for key in OUTSIDE:
        name = key.split(".")[1]
        if key not in given and getattr(cfg.run, name) != getattr(default, name):
            dropped[key] = getattr(cfg.run, name)
    if dropped:
        cfg.run = dataclasses.replace(cfg.run, **{k.split(".")[1]: getattr(default, k.split(".")[1]) for k in dropped})
        from ..events import clean_text  # the values come from the folder: no terminal escapes

        print(clean_text("engine train: not used on a resume (a session's config never decides where the engine writes outside "
              "it or what it sends): " + ", ".join(f"{k}={v}" for k, v in dropped.items())
              + "; give them again with --set to keep them"), file=sys.stderr)
    return cfg


def size_for_gpu(cfg, chosen: set[str], resize: bool = True) -> tuple[config_mod.Config, str | None, str | None]:
    """On a GPU: (the config with micro-batches sized to the model and this GPU, a note of what was
    sized, or the run's memory plan when even that will not fit), said before anything loads
    instead of an out-of-memory error minutes into the run. `chosen`: the keys the user set (in
    a config file or with --set), kept as they are."""
    import torch

    if cfg.model.device not in ("auto", "cuda") or not torch.cuda.is_available():
        return cfg, None, None
    from ..plan import sized

    props = torch.cuda.get_device_properties(int(os.environ.get("LOCAL_RANK", 0)))
    if not resize:  # a resumed run keeps its batches (the data order of a stage depends on them) and grows nothing
        chosen = chosen | {"rl.micro_batch", "sft.batch_size", "sft.grad_accum", "eval.batch_size"}
    changes, why = sized(cfg, int(os.environ.get("WORLD_SIZE", 1)), props.total_memory, chosen, room=resize)
    if why:
        return cfg, None, f"this run will not fit the GPU ({props.name}):\n{why}"
    if not changes:
        return cfg, None, None
    cfg = config_mod.load(None, changes, base=cfg.to_dict())  # checked as any --set is
    return cfg, f"sized for {props.name} ({props.total_memory / 2**30:.0f} GiB): " + ", ".join(changes), None


def config_docs(width: int) -> str:
    """Every key as `key = default`, its meaning wrapped below it: no line wider than the terminal
    (80 when piped), however long a default or a description."""
    import textwrap

    width = max(40, width)
    out = []
    for key, default, doc in config_mod.describe():
        shown = '""' if default == "" else default  # an empty default is written, not left blank
        out += textwrap.wrap(f"{key} = {shown}", width, subsequent_indent="      ", break_on_hyphens=False)
        out += textwrap.wrap(doc, width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(out) + "\n"


def _show(args) -> int:
    try:
        cfg = resolve_config(args, note=lambda text: print(f"# {text}"))
    except config_mod.ConfigError as exc:
        return fail("config show", str(exc))
    if args.docs:
        sys.stdout.write(config_docs(shutil.get_terminal_size((80, 24)).columns))
        return 0
    sys.stdout.write(cfg.to_yaml())
    return 0
