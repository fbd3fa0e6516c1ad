"""`engine report`: a base model against a tuned session on instruction sets (engine/report.py scores)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import safefile
from ..report import fmt, compare, markdown, meteor_available, metrics
from ..tasks.instruct import INSTRUCT_SYSTEM, instruction_prompt, read_instructions
from .common import CannotLoad, fail, session_model
from .tables import table


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="compare a base model with a tuned session on instruction JSONL sets")
    p.add_argument("tuned", help="the tuned session folder")
    p.add_argument("sets", nargs="+", metavar="JSONL", help="instruction/input/output files")
    p.add_argument("--base", help="base model (default: the session's model, untrained)")
    p.add_argument("--limit", type=int, default=0, help="at most N examples per set")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--out", help="folder for report.md and report.json (default: the session folder)")
    p.add_argument("--checkpoint", default="best", metavar="best|last|untrained|PATH",
                   help="which checkpoint of the session: best (default; last where there is none), last, a folder, "
                        "or untrained (the session's model before training)")
    p.set_defaults(func=run, runs_model=True)


def _outputs(model, tok, rows: list[dict], system: str, max_new: int):
    from ..data.prompts import prompt_text
    from ..rollout import generate

    prompts = [prompt_text(tok, instruction_prompt(r), system) for r in rows]
    comps, _ = generate(model, tok, prompts, max_new, 0.0)
    return [c.text for c in comps], [c.cut for c in comps]


def run(args) -> int:
    from .. import checkpoints
    from .. import config as config_mod

    folder = Path(args.tuned)
    if not (folder / "config.yaml").is_file():
        return fail("report", f"{folder}: {'not a session folder (it has no config.yaml)' if folder.is_dir() else 'no such session folder'}")
    try:
        cfg = config_mod.load(folder / "config.yaml", training=False)
        sets = {Path(s).stem: read_instructions(s, args.limit or None) for s in args.sets}
        checkpoints.choose(folder, args.checkpoint)  # a missing checkpoint is said before any model loads
    except (config_mod.ConfigError, checkpoints.CheckpointError, ValueError, OSError) as exc:
        return fail("report", str(exc))
    results, ckpt = {}, None
    # the base: the session's config untrained (or with --base's model); then the tuned checkpoint
    for role, which, sets_ in (("base", "untrained", [f"model.name={args.base}"] if args.base else []),
                               ("tuned", args.checkpoint, [])):
        try:
            _, tok, model, at = session_model(str(folder), which, sets_)
        except CannotLoad as exc:
            return fail("report", str(exc), exc.code)
        if role == "tuned":
            ckpt = at
            print(f"engine report: scoring {ckpt or 'the untrained model (no checkpoint)'}", file=sys.stderr)
        results[role] = {}
        for name, rows in sets.items():
            preds, cut = _outputs(model, tok, rows, INSTRUCT_SYSTEM, args.max_new_tokens)
            results[role][name] = metrics(preds, [r["output"] for r in rows], cut)
        del model
    note = meteor_available()
    result = {"base": args.base or cfg.model.name, "tuned": str(ckpt or folder), "checkpoint": str(ckpt) if ckpt else None, "sets": compare(results["base"], results["tuned"]),
              "note": note}
    out = Path(args.out) if args.out else folder
    out.mkdir(parents=True, exist_ok=True)
    safefile.write(out, "report.json", json.dumps(result, indent=2))  # whole or not at all, never through a link or into a FIFO
    safefile.write(out, "report.md", markdown(result, note))
    _print(result, note)
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0


def _print(result: dict, note: str | None) -> None:
    from rich.text import Text

    from .console import console as make_console

    out = []
    for name, rows in result["sets"].items():
        for m, v in rows.items():
            d = v["delta"]
            style = "" if d is None else ("green" if (d > 0) != (m in ("truncation_rate",)) else "red")
            out.append((name, m, fmt(v["base"]), fmt(v["tuned"]), Text(fmt(d), style=style)))
    console = make_console()
    console.print(table(f"base {result['base']} vs tuned {result['tuned']}", ("set", "metric", "base", "tuned", "delta"), out,
                        right=("base", "tuned", "delta")))
    if note:
        console.print(note)
