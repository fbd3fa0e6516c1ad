"""`engine eval`: a session's checkpoint (best by default) or an untrained model on any eval set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import CannotLoad, fail, session_model


def add_parser(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a session's checkpoint (best by default), or an untrained model")
    e.add_argument("target", help="a session folder, or a model name for the untrained model")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    e.add_argument("--problems", action="append", default=[], metavar="FILE.jsonl",
                   help="evaluate on this problem set instead of the built-in ones (question, answer, optional expert); repeat for several")
    e.add_argument("--limit", type=int, metavar="N", help="the first N problems of each set")
    e.add_argument("--samples", type=int, metavar="K", help="K outputs per problem: adds pass@K and majority-vote@K")
    e.add_argument("--temperature", type=float, metavar="T", help="sampling temperature of the extra samples (default 0.8)")
    e.add_argument("--checkpoint", default="best", metavar="best|last|untrained|PATH",
                   help="which checkpoint of the session: best (default; last where there is none), last, a folder, "
                        "or untrained (the session's model before training)")
    e.add_argument("--heldout", action="store_true", help="GSM8K test problems 301-1319 only: the 1,019 that no "
                   "default was chosen on (the first 300 are the development set); the figure to report")
    e.add_argument("--variants", type=int, metavar="K", help="robustness: GSM8K test problems (the first eval.gsm8k, or "
                   "--limit) that give number variants, and K variants of each: accuracy on both, and the share of "
                   "problems answered right in every variant")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_eval, runs_model=True)


def _eval(args) -> int:
    from ..tasks import eval_sets
    from ..train import evaluate as ev

    sets = list(args.set)
    if args.variants is not None and args.variants < 1:
        return fail("eval", "--variants must be 1 or more")
    if args.problems:  # only the files asked for: the built-in sets are switched off
        missing = [p for p in args.problems if not Path(p).is_file()]
        if missing:
            return fail("eval", f"{missing[0]}: no such problem file")
        sets += ["eval.synthetic=0", "eval.gsm8k=0", "eval.problems=[" + ",".join(json.dumps(p) for p in args.problems) + "]"]
    if args.heldout:
        if args.problems:
            return fail("eval", "--heldout is a GSM8K set; --problems names other files")
        sets += ["eval.synthetic=0", "eval.gsm8k_from=301", "eval.gsm8k=1019"]
    if args.limit is not None:
        if args.limit < 1:
            return fail("eval", "--limit must be 1 or more")
        sets += [f"eval.problems_limit={args.limit}"] if args.problems else \
            [f"eval.synthetic={0 if args.heldout else args.limit}", f"eval.gsm8k={min(args.limit, 1319)}"]
    if args.samples is not None:
        sets.append(f"eval.samples={args.samples}")
    if args.temperature is not None:
        sets.append(f"eval.temperature={args.temperature}")
    try:
        cfg, tok, model, ckpt = session_model(args.target, args.checkpoint, sets)
    except CannotLoad as exc:
        return fail("eval", str(exc), exc.code)
    if ckpt and not args.json:
        print(f"engine eval: scoring {ckpt}", file=sys.stderr)
    results, robust = {}, None
    try:
        named = eval_sets(cfg) if not args.variants else {}
    except (OSError, ValueError) as exc:
        return fail("eval", str(exc))
    if args.variants:
        robust = _robustness(model, tok, cfg, args.variants, results)
    for name, items in named.items():
        fields, _ = ev.evaluate(model, tok, items, cfg)
        results[name] = fields
    if args.json:
        print(json.dumps({"checkpoint": str(ckpt) if ckpt else None, "sets": results}
                         | ({"robustness": robust} if robust else {}), default=str))
        return 0
    from .console import console
    from .tables import eval_table

    console().print(eval_table([{"at": str(ckpt.name) if ckpt else "base", "set": k, **v} for k, v in results.items()]))
    if robust:
        lo, hi = robust["all_right_ci"]
        console().print(f"robustness: {robust['all_right']} of {robust['problems']} problems answered right in all "
                        f"{robust['k']} variants ({robust['all_right'] / max(robust['problems'], 1):.1%}, 95% CI "
                        f"{lo:.1%}-{hi:.1%}); {robust['original_right']} right as first written", markup=False)
    return 0


def _robustness(model, tok, cfg, k: int, results: dict) -> dict:
    """GSM-Symbolic-style: the test problems that give number variants, as written and with k other
    numbers each; `results` gets both sets' fields."""
    from ..data.gsm8k import load_rows
    from ..data.variants import for_rows
    from ..stats import wilson
    from ..tasks import Item
    from ..tasks.common import gsm8k_source, gsm8k_test_span
    from ..train import evaluate as ev

    span = gsm8k_test_span(cfg)
    rows = load_rows(gsm8k_source(cfg), "test")[span if cfg.eval.gsm8k else slice(span.start, None)]
    done = [v for v in for_rows(rows, k, cfg.data.seed) if v.variants]
    fields, first = ev.evaluate(model, tok, [Item(v.question, v.answer) for v in done], cfg)
    results["originals"] = fields
    fields, varied = ev.evaluate(model, tok, [Item(x["question"], x["answer"]) for v in done for x in v.variants], cfg)
    results["variants"] = fields
    all_right, at = 0, 0
    for v in done:
        outcomes = [s["outcome"] for s in varied[at : at + len(v.variants)]]
        at += len(v.variants)
        all_right += all(o == "correct" for o in outcomes)
    return {"problems": len(done), "k": k, "variants": at, "all_right": all_right,
            "all_right_ci": list(wilson(all_right, len(done))),
            "original_right": sum(s["outcome"] == "correct" for s in first)}
