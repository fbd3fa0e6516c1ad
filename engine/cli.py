"""`engine`: the headless command line. Every subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from .trace import cli as trace_cli
    from . import models

    parser = argparse.ArgumentParser(prog="engine", description="Train small models to write verifiable YAML traces.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    trace_cli.add_parser(sub)
    models.add_parser(sub)
    for name in ("data", "runs"):
        module = __import__(f"engine.{name}_cli", fromlist=["add_parser"]) if _exists(name) else None
        if module:
            module.add_parser(sub)
    return parser


def _exists(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"engine.{name}_cli") is not None


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
