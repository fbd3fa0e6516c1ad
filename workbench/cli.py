"""`workbench`, `workbench attach DIR|HOST:DIR`, `workbench trace FILE`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="workbench", description="Train, watch and debug small models that write YAML traces.")
    parser.add_argument("--theme", help="colour theme by name (harbor, paper, or any the command palette's Theme "
                                        "lists); remembered for next time")
    parser.add_argument("--root", default="sessions", help="the sessions folder")
    sub = parser.add_subparsers(dest="cmd")
    a = sub.add_parser("attach", help="follow a run started elsewhere: DIR, or HOST:DIR through ssh")
    a.add_argument("target")
    a.add_argument("--ssh-option", action="append", default=[], metavar="ARG",
                   help="one extra ssh argument, passed as it is (never split): --ssh-option=-p2222, "
                        "--ssh-option='-oProxyJump=user@jump host'; repeat for more")
    t = sub.add_parser("trace", help="step through a trace file (- for standard input)")
    t.add_argument("file")
    t.add_argument("--expect-answer")
    t.add_argument("--expect-expert")
    for p in (a, t):
        p.add_argument("--theme", default=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    name = f"workbench {args.cmd}" if args.cmd else "workbench"
    if args.theme is not None:
        from .themes import theme_names

        if args.theme not in theme_names():  # refused before the remembered theme is touched
            return _refuse(name, f"no theme {args.theme!r}; themes: {', '.join(theme_names())}")

    from .app import attach_app, sessions_app, stepper_app

    if args.cmd == "attach":
        from .follow import missing_folder, split_target

        options = list(args.ssh_option)  # each one ssh argument: a value with spaces stays whole
        host, folder = split_target(args.target)
        why = "give the session folder on that host: HOST:DIR" if host is not None and not (host and folder) else \
            missing_folder(args.target, ssh_options=options)
        if why:
            print(f"workbench attach: {why}", file=sys.stderr)
            return 2
        app = attach_app(args.target, args.theme, options)
    elif args.cmd == "trace":
        from engine.trace.inputs import UsageError, read_input

        try:
            text = read_input(args.file)  # bounded: a huge file is read only as far as "too long"
        except UsageError as exc:
            print(f"workbench trace: {exc}", file=sys.stderr)
            return 2
        if args.file == "-":
            _reattach_tty()  # the trace came through standard input: the keys come from the terminal
        app = stepper_app(text, args.expect_answer, args.expect_expert, title=args.file, theme=args.theme,
                          path=None if args.file == "-" else args.file)
    else:
        app = sessions_app(Path(args.root), args.theme)
    # the arguments are checked first (a bad one says so with or without a terminal); a screen needs a
    # terminal: without one Textual writes escape codes into the pipe and keeps a core busy
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        which = "output" if not sys.stdout.isatty() else "input"
        hint = "engine trace check FILE" if args.cmd == "trace" else "engine ls"  # what a script can run instead
        return _refuse(name, f"standard {which} is not a terminal: the workbench is a terminal screen (without one: {hint})")
    app.run()
    return app.return_code or 0  # 1 after a crash (Textual sets it), so scripts see the failure


def _refuse(name: str, why: str) -> int:
    print(f"{name}: {why}", file=sys.stderr)
    return 2


def _reattach_tty() -> None:
    """After reading a trace from a pipe, take keys from the terminal."""
    import os

    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
        os.dup2(fd, 0)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
