"""`engine trace check` and `engine trace run`."""

from __future__ import annotations

import json
import sys

from ..trace.checker import check
from ..trace.inputs import UsageError, read_input
from ..trace.language import COMPOSITION, EXPERTS

from .common import fail


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
    from ..trace.reward import expected_number

    if expected_number(text) is None:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or its exponent is beyond 1e30)")
    return text


def run_check(args) -> int:
    from ..trace.render import source_view

    try:
        texts = [(name, read_input(name)) for name in args.files]
    except UsageError as exc:
        return fail("trace check", str(exc))
    from .console import console as make_console

    console = make_console()
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
    from ..trace.render import source_view, steps_table

    try:
        text = read_input(args.file)
    except UsageError as exc:
        return fail("trace run", str(exc))
    report = check(text, args.expect_answer, args.expect_expert, source="<stdin>" if args.file == "-" else args.file)
    from .console import console as make_console

    console = make_console()
    if report.trace is None:
        console.print(source_view(report))
        return 1
    console.print(steps_table(report))
    for d in report.diagnostics:
        if d.step is None:  # part- and text-level problems have no row in the table
            console.print(d.render())
    return 0 if report.valid else 1
