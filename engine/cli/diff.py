"""`engine diff A B`: two checkpoints scored on the same problems, compared problem by problem.

Two separate intervals ignore that both models answered the same questions; the paired view
counts the problems that flipped each way, tests them with McNemar's exact test and gives the
accuracy change with its paired interval (engine/stats.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..stats import paired
from .common import CannotLoad, fail, session_model

CHECKPOINTS = ("best", "last", "untrained")
SHOWN = 5  # flipped problems listed per direction in the text output (--json has all)


def add_parser(sub) -> None:
    d = sub.add_parser("diff", help="compare two sessions or checkpoints on the same problems: the problems that "
                       "flipped each way, McNemar's exact p-value and the accuracy change with its interval")
    d.add_argument("a", metavar="A", help="SESSION[:CHECKPOINT] (best, last, untrained or a folder), or a model name")
    d.add_argument("b", metavar="B", help="the other one; both are scored with A's evaluation settings")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    d.add_argument("--problems", action="append", default=[], metavar="FILE.jsonl", help="compare on this problem set")
    d.add_argument("--limit", type=int, metavar="N", help="the first N problems of each set")
    d.add_argument("--dev", action="store_true", help="on the development split (500 GSM8K training problems never trained on)")
    d.add_argument("--heldout", action="store_true", help="on the sealed GSM8K test problems 301-1319 (recorded in the ledger)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_diff, runs_model=True)


def split_target(text: str) -> tuple[str, str]:
    """`SESSION:CHECKPOINT` -> (SESSION, CHECKPOINT); anything else names a session at its best
    checkpoint (or a model). The colon counts only after a session folder: a path may hold one."""
    head, sep, tail = text.rpartition(":")
    if sep and head and (Path(head) / "config.yaml").is_file() and tail:
        return head, tail
    return text, "best"


def same_weights(a: tuple[str, str], b: tuple[str, str]) -> str | None:
    """What A and B both are when they name the same weights (one checkpoint twice, `best` and
    the step it was copied from, one model untrained twice); None when they differ or cannot be
    told apart cheaply. A checkpoint is a zip of its tensors' storages and a record of the rest
    (stage and step differ between `best` and its step): the storages' CRCs and sizes, in the zip's
    directory, are compared, no tensor read."""
    from .. import checkpoints

    def weights(target: str, which: str):
        if not (Path(target) / "config.yaml").is_file():
            return None, target  # a model name: untrained
        try:
            ckpt = checkpoints.choose(Path(target), which)
        except checkpoints.CheckpointError:
            return None, None  # the loader says why
        if ckpt is None:
            return None, str(Path(target).resolve())  # the session's model untrained
        state = ckpt / checkpoints.STATE if ckpt.is_dir() else ckpt
        return state, str(ckpt)

    (state_a, label), (state_b, label_b) = weights(*a), weights(*b)
    if label is None or label_b is None or (state_a is None) != (state_b is None):
        return None
    if state_a is None:
        return f"{label} (untrained)" if label == label_b else None
    storages_a, storages_b = _storages(state_a), _storages(state_b)
    return label if storages_a and storages_a == storages_b else None


def _storages(state: Path) -> list[tuple[int, int]]:
    """(CRC-32, size) of each tensor storage a torch.save zip holds, in order; [] when it is no such zip."""
    import stat
    import zipfile

    try:
        if not stat.S_ISREG(state.stat().st_mode):  # a FIFO would block the open
            return []
        with zipfile.ZipFile(state) as z:
            return [(i.CRC, i.file_size) for i in z.infolist() if "/data/" in i.filename]
    except (OSError, zipfile.BadZipFile, ValueError):
        return []


def flip(a: dict, b: dict) -> dict:
    """One flipped problem as `--json` gives it: what was asked and each side's whole output, so
    that both traces can be stepped through side by side (the workbench's compare view)."""
    side = ("text", "answer", "outcome", "codes", "cut")
    return {"question": a["question"], "expected_answer": a["expected_answer"], "expected_expert": a["expected_expert"],
            "a": {k: a.get(k) for k in side}, "b": {k: b.get(k) for k in side}}


def _diff(args) -> int:
    from ..tasks import eval_sets
    from ..train import evaluate as ev
    from .evaluate import BadArgs, _ledger, set_overrides, split_problem

    try:
        sets = set_overrides(args)
    except BadArgs as exc:
        return fail("diff", str(exc))
    (ta, ca), (tb, cb) = split_target(args.a), split_target(args.b)
    same = same_weights((ta, ca), (tb, cb))
    if same:  # allowed (a check that scoring is deterministic), but never by accident
        print(f"engine diff: A and B are the same weights ({same}): nothing can flip", file=sys.stderr)
    named, outcomes, cfg_a, ckpts = None, [], None, []
    for label, (target, which) in zip("AB", ((ta, ca), (tb, cb))):
        try:
            cfg, tok, model, ckpt = session_model(target, which, sets)
        except CannotLoad as exc:
            return fail("diff", f"{target}: {exc}" if str(target) not in str(exc) else str(exc), exc.code)
        why = split_problem(args, cfg)
        if why:
            return fail("diff", why)
        if cfg_a is None:
            cfg_a = cfg
            try:
                named = eval_sets(cfg)  # A's problems, for both: the same questions whatever B's config draws
            except (OSError, ValueError) as exc:
                return fail("diff", str(exc))
            if not named:
                return fail("diff", "no problems to compare on: every evaluation set is switched off")
        elif cfg.run.task != cfg_a.run.task:
            return fail("diff", f"A is a {cfg_a.run.task} model and B a {cfg.run.task} model: their outputs are scored differently")
        else:
            cfg.eval = cfg_a.eval  # A's decoding limit and batch size for both: one evaluation, two models
        if not args.json:
            print(f"engine diff: scoring {label}, {ckpt or f'{target} (untrained)'}, on {sum(map(len, named.values()))} problems",
                  file=sys.stderr)
        side, results = {}, {}
        for name, items in named.items():
            fields, samples = ev.evaluate(model, tok, items, cfg)
            side[name] = samples
            results[name] = fields
        ckpts.append(str(ckpt) if ckpt else f"{target} (untrained)")
        args.target = target
        _ledger(args, cfg, ckpt, results)  # a look at test problems is a look, whoever asks
        outcomes.append(side)
        del model
    report = {"a": ckpts[0], "b": ckpts[1], "same_weights": bool(same), "sets": {}}
    for name, items in named.items():
        a, b = outcomes[0][name], outcomes[1][name]
        c = paired([s["outcome"] == "correct" for s in a], [s["outcome"] == "correct" for s in b])
        c["questions"] = {str(i): items[i].question for i in c["gained"] + c["lost"]}
        c["flips"] = {str(i): flip(a[i], b[i]) for i in c["gained"] + c["lost"]}
        report["sets"][name] = c
    if args.json:
        print(json.dumps(report, default=str))  # an answer the executor gave as a fraction: its text
        return 0
    _print(report)
    return 0


def _print(report: dict) -> None:
    from .console import console
    from .tables import table

    out = console()
    out.print(f"A: {report['a']}\nB: {report['b']}", markup=False)
    rows = []
    for name, c in report["sets"].items():
        lo, hi = c["change_ci"]
        rows.append((name, str(c["problems"]), f"{c['a_accuracy']:.1%}", f"{c['b_accuracy']:.1%}",
                     f"{c['change']:+.1%} [{lo:+.1%}, {hi:+.1%}]", f"{len(c['gained'])}", f"{len(c['lost'])}",
                     f"{c['mcnemar_p']:.3g}"))
    out.print(table("Paired comparison (B against A, the same problems)",
                    ("set", "problems", "A", "B", "change [95% CI]", "B gained", "B lost", "McNemar p"), rows,
                    right=("problems", "A", "B", "B gained", "B lost", "McNemar p"), whole=("set",)))
    for name, c in report["sets"].items():
        for label, which in (("right in B only", c["gained"]), ("right in A only", c["lost"])):
            if which:
                shown = ", ".join(f"#{i + 1}" for i in which[:SHOWN]) + (f" and {len(which) - SHOWN} more" if len(which) > SHOWN else "")
                out.print(f"{name}: {label}: {shown}", markup=False)
                for i in which[:SHOWN]:
                    q = c["questions"][str(i)]
                    out.print(f"  #{i + 1} {q[:100]}{'...' if len(q) > 100 else ''}", markup=False)
