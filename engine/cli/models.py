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
    out = console()
    title = "Models (use the name, a local folder, or any hub id with --model)"
    rows = [(m.name, m.params, f"{m.source}: {m.where}", status(m), m.note, m.measured) for m in KNOWN.values()]
    if out.width >= WIDE:
        out.print(table(title, ("name", "params", "comes from", "status", "note", "measured"), rows, whole=("name",)))
    else:  # six columns in 80 would be a tall table of cut cells: one block per model instead
        out.print(stacked(title, rows))
    return 0


WIDE = 140  # the table's long text columns need about this much to stay readable


def stacked(title: str, rows):
    """Each model as a name line and its fields below, wrapped under their label."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    blocks = [Text(title, style="italic")]
    for name, params, source, state, note, measured in rows:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for label, value in (("comes from", source), ("status", state), ("note", note), ("measured", measured)):
            if value:
                grid.add_row("  " + label, Text(value))
        blocks += [Text.assemble("\n", (name, "bold"), f"  {params}"), grid]
    return Group(*blocks)
