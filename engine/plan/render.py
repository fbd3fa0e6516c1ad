"""A plan as the lines `engine plan` prints (and a GPU run's refusal): per moment its total and
parts, then whether the peak fits, and the notes."""

from __future__ import annotations

from .memory import GIB, Plan


def render(plan: Plan) -> list[str]:
    s = plan.shape
    where = f"{plan.gpus} GPU{'s' if plan.gpus > 1 else ''}" if plan.device == "cuda" else "the CPU"
    mem = f" of {plan.memory / GIB:.0f} GiB" if plan.memory else ""
    lines = [f"{plan.model}: {s.params() / 1e9:.2f}B parameters ({s.layers} layers, hidden {s.hidden}, vocabulary {s.vocab:,}), "
             f"{plan.trained / 1e6:,.1f}M trained; per {'GPU' if plan.device == 'cuda' else 'process'} on {where}{mem}:"]
    for m in plan.moments:
        lines.append(f"  {m.name:10} {m.total / GIB:7.2f} GiB  " + ", ".join(f"{p.name} {p.bytes / GIB:.2f}" for p in m.parts if p.bytes >= 0.005 * GIB))
    peak = plan.peak
    if plan.fits is None:
        lines.append(f"peak: {peak.name}, {peak.total / GIB:.2f} GiB")
    elif plan.fits:
        lines.append(f"fits: the peak ({peak.name}) is {peak.total / GIB:.2f} GiB of {plan.memory / GIB:.0f} GiB")
    else:
        lines.append(f"does not fit: the {peak.name} needs {peak.total / GIB:.2f} GiB, {(peak.total - plan.memory) / GIB:.2f} GiB more "
                     f"than the {plan.memory / GIB:.0f} GiB there are")
    lines += [f"  - {n}" for n in plan.notes]
    return lines
