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
    e.add_argument("--heldout", action="store_true", help="GSM8K test problems 301-1319 only: the 1,019 sealed ones, "
                   "the figure to report once a recipe is chosen; every scoring is recorded in the sessions folder's "
                   ".heldout-ledger.jsonl and the command says how often this recipe's family has been scored there")
    e.add_argument("--dev", action="store_true", help="the development split: 500 GSM8K training problems no run trains "
                   "on (fixed whatever the seeds); make every choice here, not on the test problems")
    e.add_argument("--vote", choices=["majority", "grounded"], help="with --samples K: grounded also reports "
                   "grounded-majority@K, where only traces that run clean and read every input from the question vote")
    e.add_argument("--variants", type=int, metavar="K", help="robustness: GSM8K test problems (the first eval.gsm8k, or "
                   "--limit) that give number variants, and K variants of each: accuracy on both, and the share of "
                   "problems answered right in every variant")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_eval, runs_model=True)


class BadArgs(ValueError):
    """Flags that do not go together; the message is the command's one line."""


# --dev and --heldout score their split and none of the session's other sets (a set named with
# --set beside them is scored too: ONLY goes before the user's --set, the split's own keys after)
ONLY = ("eval.synthetic=0", "eval.synthetic_unseen=0", "eval.problems=[]")
DEV = ("eval.gsm8k=0", "eval.dev=500")
HELDOUT = ("eval.gsm8k_from=301", "eval.gsm8k=1019", "eval.dev=0")
DEV_SETS = (*ONLY, *DEV)  # the development split alone (benchmarks/decode.py --dev)


def split_problem(args, cfg) -> str | None:
    """Why --dev or --heldout cannot score this session's model, or None."""
    if (args.dev or args.heldout) and cfg.run.task == "instruct":
        return (f"--{'dev' if args.dev else 'heldout'} is a GSM8K split and an instruct session has none: "
                "score its eval.instruct_sets with engine eval SESSION")
    return None


def _kind(path: Path) -> str:
    return "a folder" if path.is_dir() else "a FIFO" if path.is_fifo() else "a device" if \
        path.is_char_device() or path.is_block_device() else "a socket" if path.is_socket() else "no regular file"


def set_overrides(args) -> list[str]:
    """The config overrides of the set flags (--problems, --heldout, --dev, --limit, --samples,
    --vote, --temperature) and --set: shared by `engine eval` and `engine diff`."""
    sets = list(args.set)
    problems, heldout, dev = args.problems, args.heldout, args.dev
    samples, vote, temperature = (getattr(args, k, None) for k in ("samples", "vote", "temperature"))
    if problems:  # only the files asked for: the built-in sets are switched off
        for p in problems:
            if not Path(p).exists():
                raise BadArgs(f"{p}: no such problem file")
            if not Path(p).is_file():  # a folder, a FIFO, a device: never opened, never waited on
                raise BadArgs(f"{p}: not a problem file (a regular JSONL file; this is {_kind(Path(p))})")
        sets += ["eval.synthetic=0", "eval.gsm8k=0", "eval.problems=[" + ",".join(json.dumps(p) for p in problems) + "]"]
    if heldout and dev:
        raise BadArgs("--dev and --heldout are two different sets: choose on --dev, report --heldout")
    if (heldout or dev) and problems:
        raise BadArgs(f"--{'heldout' if heldout else 'dev'} is a GSM8K set; --problems names other files")
    if heldout:
        sets += HELDOUT
    if dev:
        sets += DEV
    if args.limit is not None:
        if args.limit < 1:
            raise BadArgs("--limit must be 1 or more")
        sets += [f"eval.problems_limit={args.limit}"] if problems else \
            ([] if heldout or dev else [f"eval.synthetic={args.limit}"]) + \
            [f"eval.gsm8k={0 if dev else min(args.limit, 1319)}"] + ([f"eval.dev={min(args.limit, 500)}"] if dev else [])
    if samples is not None:
        sets.append(f"eval.samples={samples}")
    if vote:
        if (samples or 1) < 2:
            raise BadArgs("--vote chooses among samples: give --samples K (2 or more)")
        sets.append(f"eval.vote={vote}")
    if temperature is not None:
        sets.append(f"eval.temperature={temperature}")
    return [*ONLY, *sets] if heldout or dev else sets


def _eval(args) -> int:
    from ..tasks import eval_sets
    from ..train import evaluate as ev

    if args.variants is not None and args.variants < 1:
        return fail("eval", "--variants must be 1 or more")
    try:
        sets = set_overrides(args)
    except BadArgs as exc:
        return fail("eval", str(exc))
    try:
        cfg, tok, model, ckpt = session_model(args.target, args.checkpoint, sets)
    except CannotLoad as exc:
        return fail("eval", str(exc), exc.code)
    why = split_problem(args, cfg)
    if why:
        return fail("eval", why)
    if ckpt and not args.json:
        print(f"engine eval: scoring {ckpt}", file=sys.stderr)
    elif not ckpt:  # said even with --json (on stderr): an untrained score must never pass for a trained one
        print(f"engine eval: {untrained_reason(args.target, args.checkpoint)}: scoring {no_checkpoint_model(cfg)}",
              file=sys.stderr)
    from .. import protocol

    unledgered = protocol.ledger_problem(_ledger_root(args))  # said before scoring; the results are still shown
    if unledgered:
        print(f"engine eval: the held-out ledger cannot be written ({unledgered}): scorings of GSM8K test "
              "problems are not recorded", file=sys.stderr)
    results, robust = {}, None
    asked = any(s.strip().startswith("eval.synthetic_unseen") for s in args.set)  # --set eval.synthetic_unseen=0 is kept
    if not (args.heldout or args.dev or args.problems or args.variants or asked) and not cfg.eval.synthetic_unseen:
        cfg.eval.synthetic_unseen = cfg.eval.synthetic  # beside the set that shares training's templates
    try:
        named = eval_sets(cfg) if not args.variants else {}
    except (OSError, ValueError) as exc:
        return fail("eval", str(exc))
    if args.variants:
        robust = _robustness(model, tok, cfg, args.variants, results)
    for name, items in named.items():
        fields, _ = ev.evaluate(model, tok, items, cfg)
        results[name] = fields
    try:
        sealed = _ledger(args, cfg, ckpt, results) if not unledgered else {}
    except OSError as exc:  # the ledger went bad during scoring: say so, never lose the results
        unledgered = str(exc)
        print(f"engine eval: the held-out ledger cannot be written ({exc}): this scoring is not recorded", file=sys.stderr)
        sealed = {}
    if args.json:
        print(json.dumps({"checkpoint": str(ckpt) if ckpt else None, "untrained": ckpt is None, "sets": results}
                         | ({"robustness": robust} if robust else {}) | sealed, default=str))
        return 1 if unledgered else 0
    if "heldout_scorings" in sealed:
        print(f"engine eval: the held-out problems have now been scored {sealed['heldout_scorings']} time(s) for this "
              f"recipe's family ({sealed['family']}; {sealed['ledger']}): report this figure, choose on --dev",
              file=sys.stderr)
    from .console import console
    from .tables import eval_table

    console().print(eval_table([{"at": str(ckpt.name) if ckpt else "untrained", "set": k, **v} for k, v in results.items()]))
    for name, f in results.items():
        for key, label in (("maj_vs_greedy", "majority vote"), ("grounded_vs_greedy", "grounded vote")):
            if key in f:
                v, (lo, hi) = f[key], f[key]["change_ci"]
                console().print(f"{name}: {label} of {f['samples']} against greedy (paired): {v['change']:+.1%} "
                                f"[{lo:+.1%}, {hi:+.1%}], gained {len(v['gained'])}, lost {len(v['lost'])}, "
                                f"McNemar p {v['mcnemar_p']:.3g}", markup=False, soft_wrap=True)
        if "sample_seconds" in f:  # once a set: both votes count the same samples
            more = f['samples'] - 1
            console().print(f"{name}: {more} more sample{'s' if more > 1 else ''} per problem took "
                            f"{f['sample_seconds'] / 60:.1f} min", markup=False, soft_wrap=True)
    if robust:
        lo, hi = robust["all_right_ci"]
        console().print(f"robustness: {robust['all_right']} of {robust['problems']} problems answered right in all "
                        f"{robust['k']} variants ({robust['all_right'] / max(robust['problems'], 1):.1%}, 95% CI "
                        f"{lo:.1%}-{hi:.1%}); {robust['original_right']} right as first written", markup=False)
    return 1 if unledgered else 0  # the results are shown; the ledger missing a scoring is still a failure


def _ledger(args, cfg, ckpt, results: dict, by: str = "engine eval") -> dict:
    """Each scoring of GSM8K test problems, one line in the sessions folder's ledger; with --heldout,
    how many times this recipe's family has been scored on the sealed problems (this one included)."""
    from .. import protocol
    from ..tasks.common import gsm8k_test_span

    span = gsm8k_test_span(cfg)
    tested = {n: f for n, f in results.items() if n == "gsm8k" or n.startswith("gsm8k-") and n != "gsm8k-dev"
              or n in ("originals", "variants")}
    if not tested:
        return {}
    root = _ledger_root(args)
    which = "untrained" if not ckpt else str(ckpt)
    fam = protocol.family(cfg, which)
    for name, f in tested.items():
        protocol.record(root, {"family": fam, "target": str(args.target), "checkpoint": which, "set": name,
                               "first": span.start + 1, "last": span.start + f["total"] if name.startswith("gsm8k")
                               else (span.stop if cfg.eval.gsm8k else 1319),  # robustness: problems of the span
                               "correct": f["correct"], "total": f["total"], "accuracy": f["accuracy"], "by": by})
    out = {"family": fam, "ledger": str(root / protocol.LEDGER)}
    return out | ({"heldout_scorings": protocol.heldout_scorings(root, fam)} if args.heldout else {})


def _ledger_root(args):
    """The sessions folder whose ledger records this evaluation: the session's parent, else sessions/."""
    from pathlib import Path

    from .common import DEFAULT_ROOT, not_a_session

    session = (Path(args.target) / "config.yaml").is_file() and not not_a_session(args.target)
    return Path(args.target).parent if session else Path(DEFAULT_ROOT)


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


def no_checkpoint_model(cfg) -> str:
    """What is scored where no checkpoint is: the model untrained, or as model.init_from left it."""
    if cfg.model.init_from:
        return f"{cfg.model.name} as model.init_from left it ({cfg.model.init_from})"
    return f"the untrained model {cfg.model.name}"


def untrained_reason(target: str, which: str) -> str:
    """Why no checkpoint is scored: asked for, a model name, or a session that has none yet."""
    if which == "untrained":
        return "--checkpoint untrained"
    if not (Path(target) / "config.yaml").exists():
        return f"{target} is a model name, not a session"
    return f"{target} has no checkpoint yet (the run saved none)"
