"""`engine train`, `engine eval`, `engine ls`, `engine stop`, `engine config show`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import config as config_mod
from .models import TINY, ModelNotFound

DEFAULT_ROOT = "sessions"


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model: SFT, RL and evaluation, written to a session folder")
    t.add_argument("--config", help="YAML config file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. sft.lr=1e-4")
    t.add_argument("--model", help="model name, folder or hub id (tiny: a 3M-parameter smoke run)")
    t.add_argument("--session", help="session folder (default: sessions/<run-id>)")
    t.add_argument("--resume", metavar="DIR", help="continue the session in DIR from its last checkpoint")
    t.add_argument("--plain", action="store_true", help="plain lines, no progress bars")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a session's last checkpoint (or the base model)")
    e.add_argument("target", help="a session folder, or a model name for the untrained model")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_eval)

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


def _fail(cmd: str, message: str, code: int = 2) -> int:
    print(f"engine {cmd}: {message}", file=sys.stderr)
    return code


def resolve_config(args) -> config_mod.Config:
    base = {}
    sets = list(args.set)
    if getattr(args, "model", None):
        if args.model == TINY:
            base = config_mod.smoke_overrides()
        sets = [f"model.name={args.model}"] + sets
    return config_mod.load(getattr(args, "config", None), sets, base=base)


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
    try:
        status = run(cfg, folder, resume=bool(args.resume), interactive=False if args.plain else None)
    except ModelNotFound as exc:
        return _fail("train", str(exc), 1)
    print(f"session: {folder}")
    return 0 if status in ("completed", "stopped") else 1


def _eval(args) -> int:
    from .modeling import CheckpointMismatch, load_checkpoint, load_model, load_tokenizer, pick_device
    from .session import Session
    from .tasks import eval_sets
    from .train import evaluate as ev

    target = Path(args.target)
    try:
        if (target / "config.yaml").exists():
            cfg = config_mod.load(target / "config.yaml", args.set)
            ckpt = Session(target).last_checkpoint()
        else:
            cfg = config_mod.load(None, [f"model.name={args.target}", *args.set],
                                  base=config_mod.smoke_overrides() if args.target == TINY else None)
            ckpt = None
        tok = load_tokenizer(cfg.model.name)
        model = load_model(cfg, tok, pick_device(cfg.model.device))
    except config_mod.ConfigError as exc:
        return _fail("eval", str(exc))
    except ModelNotFound as exc:
        return _fail("eval", str(exc), 1)
    if ckpt:
        try:
            load_checkpoint(model, ckpt)
        except CheckpointMismatch as exc:
            return _fail("eval", f"{ckpt}: {exc}", 1)
    results = {}
    for name, items in eval_sets(cfg).items():
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
    if args.checkpoint:
        s.request_checkpoint()
        print(f"checkpoint requested: {s.path}")
    else:
        s.request_stop()
        print(f"stop requested: {s.path} (the run saves a checkpoint and ends after its current step)")
    return 0


def _show(args) -> int:
    try:
        cfg = resolve_config(args)
    except config_mod.ConfigError as exc:
        return _fail("config show", str(exc))
    if args.docs:
        for key, default, doc in config_mod.describe():
            print(f"{key:24} {default!s:28} {doc}")
        return 0
    sys.stdout.write(cfg.to_yaml())
    return 0
