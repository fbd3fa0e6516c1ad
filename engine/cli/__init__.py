"""`engine`: the headless command line, one module per command group:

trace (check, run), models, data (generate, gsm8k-traces, stats), train (and
config show), plan, evaluate (eval), diff (two checkpoints, paired), sessions (ls, stop, export), report; tables and
common hold what they share. `python -m engine` is the same command.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import data, diff, evaluate, models, plan, report, sessions, trace, train

    parser = argparse.ArgumentParser(prog="engine", description="Train small models to write verifiable YAML traces.",
                                     epilog="`engine COMMAND --help` describes a command.")
    # not required: a bare `engine` prints this help (the commands, one line each), not argparse's terse error
    sub = parser.add_subparsers(dest="cmd", title="commands", metavar="COMMAND")
    for group in (trace, models, data, train, plan, evaluate, diff, sessions, report):
        group.add_parser(sub)
    for command in sub.choices.values():
        _help_when_bare(command)
    return parser


def _help_when_bare(command: argparse.ArgumentParser) -> None:
    """`engine trace` (a group without its subcommand) prints the group's help and exits 2, as a
    bare `engine` does, instead of argparse's "the following arguments are required"."""
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction) and action.required:
            action.required = False
            command.set_defaults(func=lambda args, command=command: command.print_help() or 2)


def _belongs_to(parser: argparse.ArgumentParser, args, extra: list[str]) -> str:
    """`engine config --docs`: the option is one of `engine config show`'s, so say that, not only
    that it is unknown. Only where the group's subcommand was left out."""
    group = next((a.choices.get(args.cmd) for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    for action in group._actions if group else ():
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) is None:
            option = extra[0].split("=", 1)[0]
            owners = [name for name, p in action.choices.items() if option in p._option_string_actions]
            if owners:
                return f" (it belongs to a subcommand: engine {args.cmd} {owners[0]} {option})"
    return ""


def main(argv: list[str] | None = None) -> int:
    import warnings

    # transformers' notice that `past_key_values` is being renamed, printed on every forward pass that
    # passes a cache: nothing a user of `engine` can act on
    warnings.filterwarnings("ignore", message=r".*past_key_values.*", category=FutureWarning)
    # ... and its logger says the same once per process (`past_key_values`/`cache_params` are deprecated);
    # read when transformers is imported, so commands that never load a model pay nothing for it
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for stream in (sys.stdout, sys.stderr):  # text from a file (a lone surrogate, a byte the terminal's
        if hasattr(stream, "reconfigure"):  # encoding lacks) is shown escaped, never a UnicodeEncodeError
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}{_belongs_to(parser, args, extra)}")
    if args.cmd is None:
        parser.print_help()
        return 2
    if getattr(args, "runs_model", False):  # set by the commands that run a model
        from ..ranks import problem
        from .common import fail

        why = problem()
        if why:
            return fail(args.cmd, why)
    if argv is None and getattr(args, "runs_model", False):
        from ..allocator import reexec_with_tcmalloc

        reexec_with_tcmalloc()  # returns where tcmalloc is in use already, unwanted or not installed
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `engine ... | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a read-only folder, a full disk, a link refused in a session: one line, no traceback
        from .common import fail

        where = f"{exc.filename}: " if exc.filename and str(exc.filename) not in str(exc.strerror) else ""
        return fail(args.cmd, f"{where}{exc.strerror or exc}", 1)


if __name__ == "__main__":
    sys.exit(main())
