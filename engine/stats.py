"""Small statistics for evaluations: intervals, k-sample scores and the paired comparison of two models."""

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


def mcnemar_exact(gained: int, lost: int) -> float:
    """McNemar's exact two-sided p-value for paired right/wrong outcomes: under "no change" each
    discordant pair (right in one, wrong in the other) falls either way with probability 1/2, so
    the smaller count is binomial(gained + lost, 1/2); the p-value doubles its tail, at most 1.
    Pairs right (or wrong) in both carry no evidence and are not arguments."""
    if gained < 0 or lost < 0:
        raise ValueError("counts must be >= 0")
    n, low = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n  # exact integers: no float drift at large n
    return min(1.0, 2 * tail)


def paired_difference(both: int, only_a: int, only_b: int, neither: int) -> tuple[float, tuple[float, float]]:
    """B's accuracy minus A's on the same problems and its 95% interval (Newcombe's method 10:
    the two Wilson intervals combined with the correlation of the pairs), which accounts for the
    pairing that two separate intervals ignore and stays inside [-1, 1]."""
    n = both + only_a + only_b + neither
    if n == 0:
        return 0.0, (0.0, 0.0)
    pa, pb = (both + only_a) / n, (both + only_b) / n
    la, ua = wilson(both + only_a, n)
    lb, ub = wilson(both + only_b, n)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0)  # Newcombe's correction of the correlation
    phi = cross / math.sqrt(denom) if denom else 0.0
    d = pb - pa
    lower = math.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    upper = math.sqrt(max(0.0, (ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2))
    return d, (max(-1.0, d - lower), min(1.0, d + upper))


def paired(right_a: list[bool], right_b: list[bool]) -> dict:
    """The paired comparison of two lists of outcomes on the same problems (two checkpoints in
    `engine diff`, greedy against a vote in an evaluation): each accuracy, the problems B gained
    and lost (indices), McNemar's exact p-value and B's change with its paired interval."""
    n = len(right_a)
    gained = [i for i in range(n) if right_b[i] and not right_a[i]]
    lost = [i for i in range(n) if right_a[i] and not right_b[i]]
    both = sum(1 for i in range(n) if right_a[i] and right_b[i])
    change, ci = paired_difference(both, len(lost), len(gained), n - both - len(gained) - len(lost))
    a, b = sum(right_a), sum(right_b)
    return {"problems": n, "a_correct": a, "b_correct": b, "a_accuracy": a / max(n, 1), "b_accuracy": b / max(n, 1),
            "a_ci": list(wilson(a, n)), "b_ci": list(wilson(b, n)), "both_right": both,
            "gained": gained, "lost": lost, "mcnemar_p": mcnemar_exact(len(gained), len(lost)),
            "change": change, "change_ci": list(ci)}
