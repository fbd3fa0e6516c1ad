"""Waiting in tests by condition, never by a fixed sleep: a sleep long enough on a loaded CI
machine is wasted everywhere else, and one short enough here flakes there."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 120.0, every: float = 0.05) -> T:
    """Poll `condition` until it returns something true, and return that; past `timeout`
    seconds fail the test saying what was awaited (and the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; last seen: {got!r}")
        time.sleep(every)

