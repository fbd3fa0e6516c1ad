"""`engine train`, `engine eval`, `engine ls`, `engine stop`, `engine config show`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import config as config_mod
from .models import TINY, ModelNotFound

DEFAULT_ROOT = "sessions"


def add_parser(sub) -> None:
    from .tasks import TASKS

    t = sub.add_parser("train", help="train a model: SFT, RL and evaluation, written to a session folder")
    t.add_argument("--config", help="YAML config file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. sft.lr=1e-4")
    t.add_argument("--model", help="model name, folder or hub id (tiny: a 3M-parameter smoke run)")
    t.add_argument("--task", choices=list(TASKS), help="what the run teaches (run.task; default trace). "
                   + "; ".join(f"{name}: {task.summary}" for name, task in TASKS.items()))
    t.add_argument("--session", help="session folder (default: sessions/<run-id>)")
    t.add_argument("--resume", metavar="DIR", help="continue the session in DIR from its last checkpoint")
    t.add_argument("--plain", action="store_true", help="plain lines, no progress bars")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a session's checkpoint (best by default), or an untrained model")
    e.add_argument("target", help="a session folder, or a model name for the untrained model")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    e.add_argument("--problems", action="append", default=[], metavar="FILE.jsonl",
                   help="evaluate on this problem set instead of the built-in ones (question, answer, optional expert); repeat for several")
    e.add_argument("--limit", type=int, metavar="N", help="the first N problems of each set")
    e.add_argument("--samples", type=int, metavar="K", help="K outputs per problem: adds pass@K and majority-vote@K")
    e.add_argument("--temperature", type=float, metavar="T", help="sampling temperature of the extra samples (default 0.8)")
    e.add_argument("--checkpoint", default="best", metavar="best|last|PATH",
                   help="which checkpoint of the session: best (default; last where there is none), last, or a folder")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_eval)

    x = sub.add_parser("export", help="write a session's metrics and evaluations for TensorBoard and/or W&B")
    x.add_argument("session")
    x.add_argument("--tensorboard", metavar="DIR", help="log folder (tensorboard --logdir DIR)")
    x.add_argument("--wandb", metavar="PROJECT", help="a W&B project (offline unless --wandb-mode online; `wandb sync` uploads)")
    x.add_argument("--wandb-mode", choices=["offline", "online"], default="offline")
    x.set_defaults(func=_export)

    ls = sub.add_parser("ls", help="list sessions with their status")
    ls.add_argument("--root", default=DEFAULT_ROOT)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_ls)

    st = sub.add_parser("stop", help="ask a running session to stop cleanly (checkpoint + final event)")
    st.add_argument("session")
    st.add_argument("--checkpoint", action="store_true", help="ask for a checkpoint now instead of a stop")
    st.set_defaults(func=_stop)

    c = sub.add_parser("config", help="show the resolved configuration").add_subparsers(dest="config_cmd", required=True)
    show = c.add_parser("show", help="print the resolved defaults (with --config/--set applied)")
    show.add_argument("--config")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    show.add_argument("--model")
    show.add_argument("--docs", action="store_true", help="list every key with its meaning")
    show.set_defaults(func=_show)


def _export(args) -> int:
    from .integrations import tensorboard, wandb

    if not (args.tensorboard or args.wandb):
        return _fail("export", "say where to: --tensorboard DIR and/or --wandb PROJECT")
    try:
        if args.tensorboard:
            n = tensorboard.export(args.session, args.tensorboard)
            print(f"{n} scalars from {args.session} written to {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
        if args.wandb:
            run = wandb.export(args.session, args.wandb, args.wandb_mode)
            where = f"offline in {Path(run.run.dir).parent} (upload: wandb sync)" if args.wandb_mode == "offline" else "online"
            print(f"{run.logged} values from {args.session} written to W&B project {args.wandb}, {where}")
    except (tensorboard.MissingTensorBoard, wandb.MissingWandb, FileNotFoundError) as exc:
        return _fail("export", str(exc))
    return 0


def _fail(cmd: str, message: str, code: int = 2) -> int:
    print(f"engine {cmd}: {message}", file=sys.stderr)
    return code


def resolve_config(args, note=lambda text: None) -> config_mod.Config:
    """Defaults, the device's preset, --config, then --set (later wins)."""
    base = {}
    sets = list(args.set)
    if getattr(args, "model", None):
        if args.model == TINY:
            base = config_mod.smoke_overrides()
        sets = [f"model.name={args.model}"] + sets
    if getattr(args, "task", None):
        sets = [f"run.task={args.task}"] + sets
    cfg = config_mod.load(getattr(args, "config", None), sets, base=base)
    import torch

    preset, why = config_mod.preset_for(cfg, torch.cuda.is_available())
    if preset == "gpu":
        gpu = config_mod.parse_sets([f"{k}={v}" for k, v in config_mod.GPU.items()])
        cfg = config_mod.load(getattr(args, "config", None), sets, base={**gpu, **base})
        note(f"preset gpu ({why}): " + ", ".join(f"{k}={v}" for k, v in config_mod.GPU.items()) + "; --set overrides any")
    else:
        note(f"preset cpu ({why})")
    return cfg


def _train(args) -> int:
    from .run import run
    from .session import new_run_id

    try:
        if args.resume:
            folder = Path(args.resume)
            if not (folder / "config.yaml").exists():
                return _fail("train", f"{folder} is not a session folder (it has no config.yaml)")
            cfg = config_mod.load(folder / "config.yaml", args.set)
        else:
            cfg = resolve_config(args)
            folder = Path(args.session) if args.session else Path(DEFAULT_ROOT) / new_run_id(cfg.model.name)
    except config_mod.ConfigError as exc:
        return _fail("train", str(exc))
    from .session import SessionBusy

    try:
        status = run(cfg, folder, resume=bool(args.resume), interactive=False if args.plain else None)
    except ModelNotFound as exc:
        return _fail("train", str(exc), 1)
    except SessionBusy as exc:
        return _fail("train", str(exc))
    print(f"session: {folder}")
    return 0 if status in ("completed", "stopped") else 1


def _eval(args) -> int:
    from . import checkpoints
    from .modeling import CheckpointMismatch, load_checkpoint, load_model, load_tokenizer, pick_device
    from .tasks import eval_sets
    from .train import evaluate as ev

    target = Path(args.target)
    sets = list(args.set)
    if args.problems:  # only the files asked for: the built-in sets are switched off
        missing = [p for p in args.problems if not Path(p).is_file()]
        if missing:
            return _fail("eval", f"{missing[0]}: no such problem file")
        sets += ["eval.synthetic=0", "eval.gsm8k=0", "eval.problems=[" + ",".join(json.dumps(p) for p in args.problems) + "]"]
    if args.limit is not None:
        if args.limit < 1:
            return _fail("eval", "--limit must be 1 or more")
        sets += [f"eval.synthetic={args.limit}", f"eval.gsm8k={min(args.limit, 1319)}"] if not args.problems else []
    if args.samples is not None:
        sets.append(f"eval.samples={args.samples}")
    if args.temperature is not None:
        sets.append(f"eval.temperature={args.temperature}")
    try:
        if (target / "config.yaml").exists():
            cfg = config_mod.load(target / "config.yaml", sets)
            ckpt = checkpoints.choose(target, args.checkpoint)
        else:
            cfg = config_mod.load(None, [f"model.name={args.target}", *sets],
                                  base=config_mod.smoke_overrides() if args.target == TINY else None)
            ckpt = None
        tok = load_tokenizer(cfg.model.name)
        model = load_model(cfg, tok, pick_device(cfg.model.device))
    except (config_mod.ConfigError, checkpoints.CheckpointError) as exc:
        return _fail("eval", str(exc))
    except ModelNotFound as exc:
        return _fail("eval", str(exc), 1)
    if ckpt:
        try:
            load_checkpoint(model, ckpt)
        except CheckpointMismatch as exc:
            return _fail("eval", f"{ckpt}: {exc}", 1)
        except checkpoints.CheckpointError as exc:
            return _fail("eval", str(exc), 1)
        if not args.json:
            print(f"engine eval: scoring {ckpt}", file=sys.stderr)
    results = {}
    try:
        named = eval_sets(cfg)
    except (OSError, ValueError) as exc:
        return _fail("eval", str(exc))
    for name, items in named.items():
        items = items[: args.limit] if args.limit else items
        fields, _ = ev.evaluate(model, tok, items, cfg)
        results[name] = fields
    if args.json:
        print(json.dumps({"checkpoint": str(ckpt) if ckpt else None, "sets": results}, default=str))
        return 0
    from .progress import Reporter

    rep = Reporter(interactive=False)
    rep.evals = [{"at": str(ckpt.name) if ckpt else "base", "set": k, **v} for k, v in results.items()]
    rep.close()
    return 0


def _ls(args) -> int:
    from .session import list_sessions

    rows = list_sessions(Path(args.root))
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        print(f"no sessions in {args.root}/")
        return 0
    import time

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Sessions in {args.root}/", title_justify="left")
    for col in ("run", "status", "model", "phase", "progress", "best acc", "started"):
        table.add_column(col)
    for r in rows:
        prog = f"{r['step']}/{r['total']}" if r.get("total") else ""
        best = f"{r['best_accuracy']:.1%}" if isinstance(r.get("best_accuracy"), (int, float)) else ""
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"])) if r.get("started") else ""
        table.add_row(r["run"], r["status"], str(r["model"]), r.get("phase") or "", prog, best, started)
    Console().print(table)
    return 0


def _stop(args) -> int:
    from .session import Session

    s = Session(Path(args.session))
    if not s.path.is_dir():
        return _fail("stop", f"{s.path}: no such session folder")
    if not s.is_live():  # a request with nobody to read it would end the next resume at once
        return _fail("stop", f"{s.path}: no live run holds this session; nothing to stop", 1)
    try:
        s.request_checkpoint() if args.checkpoint else s.request_stop()
    except OSError as exc:
        return _fail("stop", f"{s.path}: cannot write the request ({exc.strerror or exc})", 1)
    if args.checkpoint:
        print(f"checkpoint requested: {s.path}")
    else:
        print(f"stop requested: {s.path} (the run saves a checkpoint and ends after its current step)")
    return 0


def _show(args) -> int:
    try:
        cfg = resolve_config(args, note=lambda text: print(f"# {text}"))
    except config_mod.ConfigError as exc:
        return _fail("config show", str(exc))
    if args.docs:
        for key, default, doc in config_mod.describe():
            print(f"{key:24} {default!s:28} {doc}")
        return 0
    sys.stdout.write(cfg.to_yaml())
    return 0
