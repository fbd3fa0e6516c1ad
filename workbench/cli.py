"""`workbench`: the Textual app. Placeholder until the app lands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("workbench: the app is not built yet; see the issues", file=sys.stderr)
    return 1
