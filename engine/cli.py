"""`engine`: the headless command line. Every subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import models, report, runs_cli
    from .data import cli as data_cli
    from .trace import cli as trace_cli

    parser = argparse.ArgumentParser(prog="engine", description="Train small models to write verifiable YAML traces.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    trace_cli.add_parser(sub)
    models.add_parser(sub)
    data_cli.add_parser(sub)
    runs_cli.add_parser(sub)
    report.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `engine ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
