"""Small text helpers shared by the panes."""

from __future__ import annotations


def bar(fraction: float, width: int = 12) -> str:
    full = int(round(fraction * width))
    return "█" * full + "░" * (width - full)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def clock(t: float) -> str:
    """A wall-clock time: `21:05` today, `Mon 09:40` on another day."""
    import time

    here = time.localtime(t)
    return time.strftime("%H:%M" if here[:3] == time.localtime()[:3] else "%a %H:%M", here)


def interval(e: dict) -> str:
    """An evaluation's accuracy with its 95% interval, when the event carries one."""
    acc, ci = e.get("accuracy", 0), e.get("accuracy_ci")
    ok = isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)
    return f"{acc:.1%} [{ci[0]:.0%}-{ci[1]:.0%}]" if ok else f"{acc:.1%}"
