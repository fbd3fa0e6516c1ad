"""What `engine report` measures: a base model against a tuned one on instruction sets.

BLEU (sacrebleu), ROUGE-L (rouge-score), METEOR (NLTK, where its WordNet data
is installed; said plainly where it is not), the length ratio to the
reference, the truncation rate, and the deltas per set. Printed as a table,
written as report.md and report.json (the workbench shows the latter).
"""

from __future__ import annotations

from .tasks.instruct import rouge_l

METRICS = ("bleu", "rouge_l", "meteor", "length_ratio", "truncation_rate")


def meteor_available() -> str | None:
    """None when METEOR can be computed, else why not."""
    try:
        import nltk

        nltk.data.find("corpora/wordnet")
        return None
    except ImportError:
        return "METEOR not computed: nltk is not installed"
    except LookupError:
        return "METEOR not computed: NLTK's WordNet data is not installed (python -m nltk.downloader wordnet)"


def metrics(predictions: list[str], references: list[str], cut: list[bool]) -> dict:
    import sacrebleu

    out = {
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
        "rouge_l": sum(rouge_l(p, r) for p, r in zip(predictions, references)) / max(len(references), 1),
        "length_ratio": sum(len(p.split()) for p in predictions) / max(1, sum(len(r.split()) for r in references)),
        "truncation_rate": sum(cut) / max(len(cut), 1),
        "meteor": None,
    }
    if meteor_available() is None:
        from nltk.translate.meteor_score import meteor_score

        out["meteor"] = sum(meteor_score([r.split()], p.split()) for p, r in zip(predictions, references)) / max(len(references), 1)
    return out


def compare(base: dict[str, dict], tuned: dict[str, dict]) -> dict:
    """{set: {metric: {base, tuned, delta}}}"""
    out = {}
    for name in base:
        out[name] = {}
        for m in METRICS:
            b, t = base[name].get(m), tuned[name].get(m)
            out[name][m] = {"base": b, "tuned": t, "delta": (t - b) if b is not None and t is not None else None}
    return out


def fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(result: dict, note: str | None) -> str:
    lines = ["# Instruction tuning report", "", f"base: `{result['base']}`  tuned: `{result['tuned']}`", ""]
    lines += ["| set | metric | base | tuned | delta |", "| --- | --- | ---: | ---: | ---: |"]
    for name, rows in result["sets"].items():
        for m, v in rows.items():
            lines.append(f"| {name} | {m} | {fmt(v['base'])} | {fmt(v['tuned'])} | {fmt(v['delta'])} |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"
