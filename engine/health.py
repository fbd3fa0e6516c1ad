"""Generation health: the signs of a collapsing model, measured on any outputs."""

from __future__ import annotations

from collections import Counter

from .trace.loops import text_loops


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the outputs' words (1.0 = no repetition)."""
    grams, total = set(), 0
    for t in texts:
        words = t.split()
        for i in range(len(words) - n + 1):
            grams.add(tuple(words[i : i + n]))
            total += 1
    return len(grams) / total if total else 0.0


def health(texts: list[str], cut: list[bool], prompts: list[str] | None = None, token_counts: list[int] | None = None) -> dict:
    """loop_rate, distinct_1/2, identical_rate (across different prompts), mean_length, cut_rate."""
    if not texts:
        return {}
    looping = sum(1 for t in texts if text_loops(t))
    # identical outputs for different prompts: a model repeating its template regardless of the question
    by_text: dict[str, set] = {}
    for i, t in enumerate(texts):
        by_text.setdefault(t.strip(), set()).add(prompts[i] if prompts else i)
    identical = sum(len(ps) for ps in by_text.values() if len(ps) > 1)
    lengths = token_counts if token_counts is not None else [len(t.split()) for t in texts]
    return {
        "loop_rate": looping / len(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "identical_rate": identical / len(texts),
        "mean_length": sum(lengths) / len(lengths),
        "cut_rate": sum(cut) / len(texts),
    }


def collapsed(h: dict, loop_limit: float = 0.5, identical_limit: float = 0.5) -> str | None:
    """Why these outputs look collapsed, or None."""
    if not h:
        return None
    if h["loop_rate"] >= loop_limit:
        return f"{h['loop_rate']:.0%} of outputs loop their own text"
    if h["identical_rate"] >= identical_limit:
        return f"{h['identical_rate']:.0%} of outputs are identical across different questions"
    return None


def top_codes(code_lists: list[list[str]]) -> dict[str, int]:
    """How many outputs carry each diagnostic code."""
    c = Counter(code for codes in code_lists for code in set(codes))
    return dict(c.most_common())
