"""`engine ls`, `engine stop` and `engine export`: sessions, listed, stopped and converted."""

from __future__ import annotations

import json
from pathlib import Path

from .common import DEFAULT_ROOT, fail


def add_parser(sub) -> None:
    ls = sub.add_parser("ls", help="list sessions with their status")
    ls.add_argument("folder", nargs="?", metavar="DIR", help=f"the folder holding the sessions (default: {DEFAULT_ROOT})")
    ls.add_argument("--root", metavar="DIR", help="the same as DIR, as a flag")
    ls.add_argument("--json", action="store_true", help="one JSON list of the sessions, for scripts")
    ls.set_defaults(func=_ls)

    st = sub.add_parser("stop", help="ask a running session to stop cleanly (checkpoint + final event)")
    st.add_argument("session")
    st.add_argument("--checkpoint", action="store_true", help="ask for a checkpoint now instead of a stop")
    st.set_defaults(func=_stop)

    x = sub.add_parser("export", help="write a session's metrics and evaluations for TensorBoard and/or W&B")
    x.add_argument("session")
    x.add_argument("--tensorboard", metavar="DIR", help="log folder (tensorboard --logdir DIR)")
    x.add_argument("--wandb", metavar="PROJECT", help="a W&B project (offline unless --wandb-mode online; `wandb sync` uploads)")
    x.add_argument("--wandb-mode", choices=["offline", "online"], default="offline")
    x.set_defaults(func=_export)


def _ls(args) -> int:
    from ..session import list_sessions

    if args.folder and args.root and Path(args.folder) != Path(args.root):
        return fail("ls", f"two folders given ({args.folder} and --root {args.root}); give one")
    given = args.folder or args.root
    if given and not Path(given).expanduser().is_dir():
        return fail("ls", f"{given}: no such folder")
    args.root = given or DEFAULT_ROOT
    rows = list_sessions(Path(args.root).expanduser())
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        print(f"no sessions in {args.root}/")
        return 0
    from .console import console
    from .tables import sessions_table

    console().print(sessions_table(rows, args.root), soft_wrap=True)  # long lines run on; nothing is cut
    return 0


def _stop(args) -> int:
    from ..session import Session

    s = Session(Path(args.session))
    if not s.path.is_dir():
        return fail("stop", f"{s.path}: no such session folder")
    if not s.is_live():  # a request with nobody to read it would end the next resume at once
        return fail("stop", f"{s.path}: no live run holds this session; nothing to stop", 1)
    try:
        s.request_checkpoint() if args.checkpoint else s.request_stop()
    except OSError as exc:
        return fail("stop", f"{s.path}: cannot write the request ({exc.strerror or exc})", 1)
    if args.checkpoint:
        print(f"checkpoint requested: {s.path}")
    else:
        print(f"stop requested: {s.path} (the run saves a checkpoint and ends after its current step)")
    return 0


def _export(args) -> int:
    from ..integrations import tensorboard, wandb

    from ..events import EVENTS

    if not (args.tensorboard or args.wandb):
        return fail("export", "say where to: --tensorboard DIR and/or --wandb PROJECT")
    if not (Path(args.session) / EVENTS).is_file():  # before any writer leaves an empty log behind
        return fail("export", f"{args.session}: no such session folder (no {EVENTS} in it)")
    try:
        if args.tensorboard:
            n = tensorboard.export(args.session, args.tensorboard)
            print(f"{n} scalars from {args.session} written to {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
        if args.wandb:
            run = wandb.export(args.session, args.wandb, args.wandb_mode)
            where = f"offline in {Path(run.run.dir).parent} (upload: wandb sync)" if args.wandb_mode == "offline" else "online"
            print(f"{run.logged} values from {args.session} written to W&B project {args.wandb}, {where}")
    except (tensorboard.MissingTensorBoard, wandb.MissingWandb, FileNotFoundError) as exc:
        return fail("export", str(exc))
    return 0
