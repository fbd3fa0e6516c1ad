"""Small statistics for evaluations: intervals and k-sample scores."""

from __future__ import annotations

import math
from collections import Counter


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (sound at 0/n and n/n, unlike the normal one)."""
    if total <= 0:
        return (0.0, 0.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def majority(answers: list) -> object:
    """The most common non-None answer (the earliest among ties), or None."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def fmt_interval(acc: float, ci) -> str:
    return f"{acc:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else f"{acc:.1%}"
