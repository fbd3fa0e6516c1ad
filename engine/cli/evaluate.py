"""`engine eval`: a session's checkpoint (best by default) or an untrained model on any eval set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import config as config_mod
from ..models import TINY, ModelNotFound
from .common import fail, load_weights, not_a_session


def add_parser(sub) -> None:
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


def _eval(args) -> int:
    from .. import checkpoints
    from ..modeling import load_model, load_tokenizer, pick_device
    from ..tasks import eval_sets
    from ..train import evaluate as ev

    target = Path(args.target)
    sets = list(args.set)
    if args.problems:  # only the files asked for: the built-in sets are switched off
        missing = [p for p in args.problems if not Path(p).is_file()]
        if missing:
            return fail("eval", f"{missing[0]}: no such problem file")
        sets += ["eval.synthetic=0", "eval.gsm8k=0", "eval.problems=[" + ",".join(json.dumps(p) for p in args.problems) + "]"]
    if args.limit is not None:
        if args.limit < 1:
            return fail("eval", "--limit must be 1 or more")
        sets += [f"eval.problems_limit={args.limit}"] if args.problems else \
            [f"eval.synthetic={args.limit}", f"eval.gsm8k={min(args.limit, 1319)}"]
    if args.samples is not None:
        sets.append(f"eval.samples={args.samples}")
    if args.temperature is not None:
        sets.append(f"eval.temperature={args.temperature}")
    why = not_a_session(args.target)
    if why:
        return fail("eval", why)
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
        return fail("eval", str(exc))
    except ModelNotFound as exc:
        return fail("eval", str(exc), 1)
    if ckpt:
        why = load_weights(model, ckpt)
        if why:
            return fail("eval", why, 1)
        if not args.json:
            print(f"engine eval: scoring {ckpt}", file=sys.stderr)
    results = {}
    try:
        named = eval_sets(cfg)
    except (OSError, ValueError) as exc:
        return fail("eval", str(exc))
    for name, items in named.items():
        fields, _ = ev.evaluate(model, tok, items, cfg)
        results[name] = fields
    if args.json:
        print(json.dumps({"checkpoint": str(ckpt) if ckpt else None, "sets": results}, default=str))
        return 0
    from .console import console
    from .tables import eval_table

    console().print(eval_table([{"at": str(ckpt.name) if ckpt else "base", "set": k, **v} for k, v in results.items()]))
    return 0
