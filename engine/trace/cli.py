"""`engine trace check` and `engine trace run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from .checker import check
from .language import COMPOSITION, EXPERTS
from .parser import MAX_CHARS


def add_parser(sub) -> None:
    trace = sub.add_parser("trace", help="check and run YAML traces").add_subparsers(dest="trace_cmd", required=True)
    c = trace.add_parser("check", help="check traces; exit 0 when all are valid, 1 when any is not")
    c.add_argument("files", nargs="+", metavar="FILE", help="trace files, or - for standard input")
    c.add_argument("--json", action="store_true", help="one JSON object per input, per line")
    c.add_argument("--expect-answer", type=_number, help="score against this answer")
    c.add_argument("--expect-expert", choices=[*EXPERTS, COMPOSITION])
    c.set_defaults(func=run_check)
    r = trace.add_parser("run", help="execute a trace step by step")
    r.add_argument("file", metavar="FILE", help="a trace file, or - for standard input")
    r.add_argument("--expect-answer", type=_number)
    r.add_argument("--expect-expert", choices=[*EXPERTS, COMPOSITION])
    r.set_defaults(func=run_steps)


def _number(text: str) -> str:
    from .reward import expected_number

    if expected_number(text) is None:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or its exponent is beyond 1e30)")
    return text


class UsageError(Exception):
    """A missing or unreadable input: exit status 2."""


def read_input(name: str) -> str:
    """At most MAX_CHARS + 1 characters: enough for the parser to say "too long", never
    gigabytes (`/dev/zero`, a log file passed by mistake)."""
    if name == "-":
        return sys.stdin.read(MAX_CHARS + 1)
    path = Path(name)
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return f.read(MAX_CHARS + 1)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file")
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise UsageError(f"{name}: cannot read it ({exc.strerror or exc})")


def run_check(args) -> int:
    from .render import source_view

    try:
        texts = [(name, read_input(name)) for name in args.files]
    except UsageError as exc:
        print(f"engine trace check: {exc}", file=sys.stderr)
        return 2
    console = Console(highlight=False)
    all_valid = True
    for name, text in texts:
        report = check(text, args.expect_answer, args.expect_expert, source="<stdin>" if name == "-" else name)
        all_valid &= report.valid
        if args.json:
            sys.stdout.write(json.dumps(report.to_json()) + "\n")
        else:
            console.print(source_view(report))
            console.print()
    return 0 if all_valid else 1


def run_steps(args) -> int:
    from .render import source_view, steps_table

    try:
        text = read_input(args.file)
    except UsageError as exc:
        print(f"engine trace run: {exc}", file=sys.stderr)
        return 2
    report = check(text, args.expect_answer, args.expect_expert, source="<stdin>" if args.file == "-" else args.file)
    console = Console(highlight=False)
    if report.trace is None:
        console.print(source_view(report))
        return 1
    console.print(steps_table(report))
    for d in report.diagnostics:
        if d.step is None:  # part- and text-level problems have no row in the table
            console.print(d.render())
    return 0 if report.valid else 1
