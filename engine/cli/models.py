"""`engine models`: the models the project knows; `engine models prepare` converts the default one."""

from __future__ import annotations

from ..models import KNOWN, ModelNotFound, prepare_default, status
from .common import fail
from .tables import table


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the models the project knows, or prepare the default one")
    p.add_argument("action", nargs="?", choices=["list", "prepare"], default="list")
    p.set_defaults(func=run)


def run(args) -> int:
    from .console import console

    if args.action == "prepare":
        try:
            print(prepare_default())
        except ModelNotFound as exc:
            return fail("models", str(exc), 1)
        return 0
    rows = [(m.name, m.params, f"{m.source}: {m.where}", status(m), m.note, m.measured) for m in KNOWN.values()]
    console().print(table("Models (use the name, a local folder, or any hub id with --model)",
                          ("name", "params", "comes from", "status", "note", "measured"), rows, whole=("name",)))
    return 0
