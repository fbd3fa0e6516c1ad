"""`engine data generate`, `engine data gsm8k-traces` and `engine data stats`."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

from .common import fail
from .tables import table


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="synthetic training data").add_subparsers(dest="data_cmd", required=True)
    g = data.add_parser("generate", help="write synthetic problems with gold traces as JSONL")
    g.add_argument("--n", type=int, default=1000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="JSONL file to write, or - for standard output")
    g.add_argument("--mix", default="", help="expert weights, e.g. arithmetic=2,percentage=1 (default: even)")
    g.add_argument("--phrasings", choices=["one", "all"], default="one", help="one phrasing per pattern, or all")
    g.set_defaults(func=_generate)
    c = data.add_parser("gsm8k-traces", help="GSM8K solutions converted to gold traces (each checked to score 1.0)")
    c.add_argument("--split", choices=["train", "test"], default="train")
    c.add_argument("--source", default=None, help="GSM8K folder, JSONL file or hub id (default: the copy shipped with the project)")
    c.add_argument("--out", required=True, help="JSONL of the kept traces; the rest go to <out>.rejected.jsonl with their reason")
    c.set_defaults(func=_gsm8k_traces)
    v = data.add_parser("variants", help="GSM8K problems with new numbers, in the question and the gold trace together; "
                                         "each variant's answer is the trace's, run clean")
    v.add_argument("--split", choices=["train", "test"], default="train")
    v.add_argument("--k", type=int, default=4, help="variants per problem (at most)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--limit", type=int, metavar="N", help="the first N problems of the split")
    v.add_argument("--source", default=None, help="GSM8K folder, JSONL file or hub id (default: the copy shipped with the project)")
    v.add_argument("--out", required=True, help="JSONL of the variants (question, answer, trace, gsm8k_index); a problem file for engine eval")
    v.set_defaults(func=_variants)
    e = data.add_parser("self-traces", help="expert iteration: k traces per GSM8K training problem written by a model, "
                                            "kept when they run to the right answer with no error diagnostic, from the question's numbers")
    e.add_argument("target", help="a session folder (its best checkpoint, or --checkpoint) or a model name")
    e.add_argument("--k", type=int, default=4, help="outputs per problem: the first greedy, the rest sampled")
    e.add_argument("--temperature", type=float, default=0.8)
    e.add_argument("--limit", type=int, metavar="N", help="the first N training problems (all 7,473 take hours on a CPU)")
    e.add_argument("--without-gold", action="store_true", help="only the problems that have no gold trace (~1,070 of 7,473)")
    e.add_argument("--checkpoint", default="best", metavar="best|last|untrained|PATH")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. eval.batch_size=64, eval.max_new_tokens=400")
    e.add_argument("--out", required=True, help="JSONL of kept traces (question, answer, trace, gsm8k_index): data.self_traces")
    e.set_defaults(func=_self_traces, runs_model=True)
    s = data.add_parser("stats", help="the mix of a JSONL file by expert and pattern")
    s.add_argument("file")
    s.set_defaults(func=_stats)


def parse_mix(text: str) -> dict[str, float] | None:
    from ..data.synthetic import PATTERNS

    if not text:
        return None
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        name = name.strip()
        if name not in PATTERNS:
            raise ValueError(f"--mix: {name!r} is not one of {', '.join(PATTERNS)}")
        try:
            mix[name] = float(weight or 1)
        except ValueError:
            raise ValueError(f"--mix: the weight of {name} must be a number, not {weight!r}") from None
    return mix


def _generate(args) -> int:
    from ..data.synthetic import generate
    from ..data.tracefile import write

    try:
        mix = parse_mix(args.mix)
    except ValueError as exc:
        return fail("data generate", str(exc))
    examples = generate(args.n, args.seed, mix, args.phrasings)
    if args.out == "-":
        sys.stdout.write("".join(json.dumps(e.to_json()) + "\n" for e in examples))
        return 0
    try:
        write(args.out, (e.to_json() for e in examples))
    except (OSError, ValueError) as exc:
        return fail("data generate", _unwritable(args.out, exc))
    print(f"wrote {len(examples)} examples to {args.out}", file=sys.stderr)
    return 0


def _unwritable(out, exc: Exception) -> str:
    return str(exc) if str(out) in str(exc) else f"{out}: cannot be written ({exc.strerror if isinstance(exc, OSError) and exc.strerror else exc})"


def _gsm8k_traces(args) -> int:
    from ..data.gsm8k import load_rows
    from ..data.gsm8k_traces import convert_all, rejected_path
    from ..data.tracefile import write

    try:
        rows = load_rows(args.source, args.split)
    except (OSError, ValueError) as exc:
        return fail("data gsm8k-traces", str(exc))
    done = convert_all(rows)
    out = Path(args.out)
    try:
        kept = write(out, (c.to_json() for c in done if c.kept))
        write(rejected_path(out), (c.rejected_json() for c in done if not c.kept))
    except (OSError, ValueError) as exc:
        return fail("data gsm8k-traces", _unwritable(out, exc))
    print(f"{args.split}: {kept} of {len(done)} problems kept ({kept / max(len(done), 1):.1%}) in {out}; "
          f"the rest, with reasons, in {rejected_path(out)}", file=sys.stderr)
    return 0


def _variants(args) -> int:
    from ..config import bounds
    from ..data.gsm8k import load_rows
    from ..data.tracefile import write
    from ..data.variants import REASONS, for_rows, records, summary
    from .console import console

    most = bounds("data.gsm8k_variants")[2]  # the config's cap: each variant asked is up to ATTEMPTS checker runs
    if args.k < 1 or (args.limit is not None and args.limit < 1):
        return fail("data variants", "--k and --limit must be 1 or more")
    if args.k > most:
        return fail("data variants", f"--k {args.k}: at most {most} variants per problem (as data.gsm8k_variants)")
    try:
        rows = load_rows(args.source, args.split)
    except (OSError, ValueError) as exc:
        return fail("data variants", str(exc))
    done = for_rows(rows[: args.limit] if args.limit else rows, args.k, args.seed)
    out = Path(args.out)
    try:
        written = write(out, records(done))
    except (OSError, ValueError) as exc:
        return fail("data variants", _unwritable(out, exc))
    total = len(done)
    meaning = {"variants": f"up to {args.k} variants each, every one run clean", **REASONS}
    console().print(table(f"GSM8K {args.split}: {summary(done)[0][1]} of {total} problems give variants "
                          f"({summary(done)[0][1] / max(total, 1):.1%}); {written} variants in {out}",
                          ("outcome", "problems", "share", "meaning"),
                          [(r, str(n), f"{n / max(total, 1):.1%}", meaning[r]) for r, n in summary(done)], right=("problems", "share")))
    return 0


def _self_traces(args) -> int:
    from ..data import expert_iteration
    from ..data.self_traces import collect
    from ..data.tracefile import write
    from .common import CannotLoad, session_model

    if args.k < 1 or (args.limit is not None and args.limit < 1):
        return fail("data self-traces", "--k and --limit must be 1 or more")
    try:
        cfg, tok, model, ckpt = session_model(args.target, args.checkpoint, args.set)
    except CannotLoad as exc:
        return fail("data self-traces", str(exc), exc.code)
    try:
        chosen = expert_iteration.problems(cfg, args.limit, args.without_gold)
    except (OSError, ValueError) as exc:
        return fail("data self-traces", str(exc))
    items, gold = chosen.items, chosen.gold
    if chosen.unreadable:
        print(f"engine data self-traces: {chosen.unreadable} problem(s) left out: their answer is no number", file=sys.stderr)
    if ckpt:
        source = str(ckpt)
    else:  # an untrained model's traces must never pass for a trained one's
        from .evaluate import no_checkpoint_model, untrained_reason

        source = f"{no_checkpoint_model(cfg)} ({untrained_reason(args.target, args.checkpoint)})"
    print(f"engine data self-traces: {len(items)} problems x {args.k} outputs from {source}", file=sys.stderr)
    start = time.perf_counter()

    def progress(what, done, total):  # a round takes tens of minutes on a CPU: a line per batch says where it is
        print(f"  {what} {done}/{total} ({(time.perf_counter() - start) / 60:.1f} min)", file=sys.stderr, flush=True)

    found = collect(items, expert_iteration.outputs(model, tok, cfg, items, args.k, args.temperature, progress))
    out = Path(args.out)
    try:
        write(out, expert_iteration.records(found))
    except (OSError, ValueError) as exc:
        return fail("data self-traces", _unwritable(out, exc))
    solved = [x for x in found if x.traces]
    new = [x for x in solved if x.index not in gold]
    print(f"{len(solved)} of {len(found)} problems got a right, clean trace ({len(solved) / max(len(found), 1):.1%}; "
          f"{sum(len(x.traces) for x in solved)} distinct traces); {len(new)} of the {len(found) - len(gold & {x.index for x in found})} "
          f"without a gold trace gained one; written to {out}")
    lucky = sum(x.lucky for x in found)
    if lucky:
        print(f"{lucky} right, clean output(s) left out: they start from numbers the question does not write, or leave "
              f"one of its numbers unread (right by luck, as a weak model often is)")
    return 0


def _stats(args) -> int:
    from rich.text import Text

    from ..data.gsm8k_traces import rejected_path
    from ..data.tracefile import read
    from .console import console

    try:
        rows = [row for _, row in read(args.file)]  # a regular file, lines bounded; a bad line named
    except FileNotFoundError:
        return fail("data stats", f"{args.file}: no such file")
    except (OSError, ValueError) as exc:
        return fail("data stats", str(exc))
    if not rows:
        return fail("data stats", f"{args.file}: no examples in it")
    by_expert = Counter(str(r.get("expert")) for r in rows)  # whatever the file holds: shown as text
    by_pattern = Counter((str(r.get("expert")), str(r.get("pattern"))) for r in rows)
    out = table(f"{args.file}: {len(rows)} examples", ("expert", "pattern", "count", "share"), right=("count", "share"))
    for expert, n in sorted(by_expert.items(), key=lambda kv: -kv[1]):
        out.add_row(Text(expert, style="bold"), "", str(n), f"{n / len(rows):.1%}")
        for (e, pat), m in sorted(by_pattern.items()):
            if e == expert:
                out.add_row("", Text(str(pat)), str(m), f"{m / len(rows):.1%}")
    console().print(out)
    rejected = rejected_path(Path(args.file))
    if any("gsm8k_index" in r for r in rows) and rejected.exists():
        try:
            _conversion_table(len(rows), [row for _, row in read(rejected)])
        except (OSError, ValueError) as exc:
            return fail("data stats", str(exc) if str(rejected) in str(exc) else f"{rejected}: {exc}")
    return 0


def _conversion_table(kept: int, rejected: list[dict]) -> None:
    from ..data.gsm8k_traces import REASONS
    from .console import console

    total = kept + len(rejected)
    rows = [("kept", str(kept), f"{kept / max(total, 1):.1%}", "scores 1.0 against the reference answer")]
    rows += [(str(reason), str(n), f"{n / max(total, 1):.1%}", REASONS.get(reason, ""))
             for reason, n in Counter(str(r.get("reason")) if isinstance(r, dict) else "?" for r in rejected).most_common()]
    console().print(table(f"GSM8K conversion: {kept} of {total} kept ({kept / max(total, 1):.1%})",
                          ("outcome", "count", "share", "meaning"), rows, right=("count", "share")))
