"""`engine report`: compare a base model with a tuned one on instruction sets.

BLEU (sacrebleu), ROUGE-L (rouge-score), METEOR (NLTK, where its WordNet data
is installed; said plainly where it is not), the length ratio to the
reference, the truncation rate, and the deltas per set. Printed as a table,
written as report.md and report.json (the workbench shows the latter).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .tasks.instruct import INSTRUCT_SYSTEM, instruction_prompt, read_instructions, rouge_l

METRICS = ("bleu", "rouge_l", "meteor", "length_ratio", "truncation_rate")


def meteor_available() -> str | None:
    """None when METEOR can be computed, else why not."""
    try:
        import nltk

        nltk.data.find("corpora/wordnet")
        return None
    except ImportError:
        return "METEOR not computed: nltk is not installed"
    except LookupError:
        return "METEOR not computed: NLTK's WordNet data is not installed (python -m nltk.downloader wordnet)"


def metrics(predictions: list[str], references: list[str], cut: list[bool]) -> dict:
    import sacrebleu

    out = {
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
        "rouge_l": sum(rouge_l(p, r) for p, r in zip(predictions, references)) / max(len(references), 1),
        "length_ratio": sum(len(p.split()) for p in predictions) / max(1, sum(len(r.split()) for r in references)),
        "truncation_rate": sum(cut) / max(len(cut), 1),
        "meteor": None,
    }
    if meteor_available() is None:
        from nltk.translate.meteor_score import meteor_score

        out["meteor"] = sum(meteor_score([r.split()], p.split()) for p, r in zip(predictions, references)) / max(len(references), 1)
    return out


def compare(base: dict[str, dict], tuned: dict[str, dict]) -> dict:
    """{set: {metric: {base, tuned, delta}}}"""
    out = {}
    for name in base:
        out[name] = {}
        for m in METRICS:
            b, t = base[name].get(m), tuned[name].get(m)
            out[name][m] = {"base": b, "tuned": t, "delta": (t - b) if b is not None and t is not None else None}
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(result: dict, note: str | None) -> str:
    lines = ["# Instruction tuning report", "", f"base: `{result['base']}`  tuned: `{result['tuned']}`", ""]
    lines += ["| set | metric | base | tuned | delta |", "| --- | --- | ---: | ---: | ---: |"]
    for name, rows in result["sets"].items():
        for m, v in rows.items():
            lines.append(f"| {name} | {m} | {_fmt(v['base'])} | {_fmt(v['tuned'])} | {_fmt(v['delta'])} |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="compare a base model with a tuned session on instruction JSONL sets")
    p.add_argument("tuned", help="the tuned session folder")
    p.add_argument("sets", nargs="+", metavar="JSONL", help="instruction/input/output files")
    p.add_argument("--base", help="base model (default: the session's model, untrained)")
    p.add_argument("--limit", type=int, default=0, help="at most N examples per set")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--out", help="folder for report.md and report.json (default: the session folder)")
    p.add_argument("--checkpoint", default="best", metavar="best|last|PATH",
                   help="which checkpoint of the session: best (default; last where there is none), last, or a folder")
    p.set_defaults(func=_cli)


def _outputs(model, tok, rows: list[dict], system: str, max_new: int):
    from .data.prompts import prompt_text
    from .rollout import generate

    prompts = [prompt_text(tok, instruction_prompt(r), system) for r in rows]
    comps, _ = generate(model, tok, prompts, max_new, 0.0)
    return [c.text for c in comps], [c.cut for c in comps]


def _cli(args) -> int:
    from . import config as config_mod
    from . import checkpoints
    from .modeling import CheckpointMismatch, load_checkpoint, load_model, load_tokenizer, pick_device
    from .session import Session

    session = Session(Path(args.tuned))
    if not (session.path / "config.yaml").exists():
        print(f"engine report: {session.path} is not a session folder", file=sys.stderr)
        return 2
    try:
        cfg = config_mod.load(session.path / "config.yaml")
        sets = {Path(s).stem: read_instructions(s, args.limit or None) for s in args.sets}
    except (config_mod.ConfigError, ValueError, OSError) as exc:
        print(f"engine report: {exc}", file=sys.stderr)
        return 2
    try:
        ckpt = checkpoints.choose(session.path, args.checkpoint)
    except checkpoints.CheckpointError as exc:
        print(f"engine report: {exc}", file=sys.stderr)
        return 2
    print(f"engine report: scoring {ckpt or 'the untrained model (no checkpoint)'}", file=sys.stderr)
    device = pick_device(cfg.model.device)
    tok = load_tokenizer(cfg.model.name)
    results = {}
    for role in ("base", "tuned"):
        c = config_mod.load(session.path / "config.yaml", [f"model.name={args.base}"] if role == "base" and args.base else [])
        model = load_model(c, tok, device)
        if role == "tuned" and ckpt:
            try:
                load_checkpoint(model, ckpt)
            except CheckpointMismatch as exc:
                print(f"engine report: {ckpt}: {exc}", file=sys.stderr)
                return 1
            except checkpoints.CheckpointError as exc:
                print(f"engine report: {exc}", file=sys.stderr)
                return 1
        results[role] = {}
        for name, rows in sets.items():
            preds, cut = _outputs(model, tok, rows, INSTRUCT_SYSTEM, args.max_new_tokens)
            results[role][name] = metrics(preds, [r["output"] for r in rows], cut)
        del model
    note = meteor_available()
    result = {"base": args.base or cfg.model.name, "tuned": str(ckpt or session.path), "checkpoint": str(ckpt) if ckpt else None, "sets": compare(results["base"], results["tuned"]),
              "note": note}
    out = Path(args.out) if args.out else session.path
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2))
    (out / "report.md").write_text(markdown(result, note))
    _print(result, note)
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0


def _print(result: dict, note: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"base {result['base']} vs tuned {result['tuned']}", title_justify="left")
    for col in ("set", "metric", "base", "tuned", "delta"):
        table.add_column(col, justify="left" if col in ("set", "metric") else "right")
    for name, rows in result["sets"].items():
        for m, v in rows.items():
            d = v["delta"]
            style = "" if d is None else ("green" if (d > 0) != (m in ("truncation_rate",)) else "red")
            table.add_row(name, m, _fmt(v["base"]), _fmt(v["tuned"]), f"[{style}]{_fmt(d)}[/]" if style else _fmt(d))
    console = Console()
    console.print(table)
    if note:
        console.print(note)
