"""Write workbench/example/stepper-tour/: hand-written outputs that show the failures small models
make (an overwrite, a missing query, a loop, a cut-off output, an invented operation, a wrong
expert) and one right trace, each scored by the real checker, as a session the workbench lists
beside the recorded run. Not a training run: its header says so.

    python scripts/make_stepper_tour.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.events import SCHEMA_VERSION
from engine.trace import as_number, check

OUTPUTS = {
    "overwrite": "expert: arithmetic\ntrace:\n- {{op: init, var: a, value: {x}}}\n- {{op: init, var: a, value: {y}}}\n"
                 "- {{op: compute, compute_op: add, args: [a, a], var: total}}\n- {{op: query, var: total}}\n",
    "missing_query": "expert: arithmetic\ntrace:\n- {{op: init, var: a, value: {x}}}\n- {{op: init, var: b, value: {y}}}\n"
                     "- {{op: compute, compute_op: add, args: [a, b], var: total}}\n",
    "template_loop": "".join("- expert: arithmetic\n  trace:\n  - {{op: init, var: a, value: {x}}}\n  - {{op: init, var: b, value: {y}}}\n"
                             "  - {{op: compute, compute_op: add, args: [a, b], var: result}}\n  - {{op: query, var: result}}\n"
                             for _ in range(4)),
    "truncated": "expert: arithmetic\ntrace:\n- {{op: init, var: a, value: {x}}}\n- {{op: init, var: b, value: {y}}}\n- {{op: comp",
    "unknown_op": "expert: arithmetic\ntrace:\n- {{op: init, var: a, value: {x}}}\n- {{op: init, var: b, value: {y}}}\n"
                  "- {{op: multiply, args: [a, b], var: total}}\n- {{op: query, var: total}}\n",
    "right": "expert: arithmetic\ntrace:\n- {{op: init, var: a, value: {x}}}\n- {{op: init, var: b, value: {y}}}\n"
             "- {{op: compute, compute_op: add, args: [a, b], var: total}}\n- {{op: query, var: total}}\n",
}


def main() -> None:
    folder = Path(__file__).resolve().parent.parent / "workbench" / "example" / "stepper-tour"
    folder.mkdir(parents=True, exist_ok=True)
    t = time.time()
    events = [{"kind": "run_started", "t": t, "schema": SCHEMA_VERSION, "run": "stepper-tour",
               "model": "hand-written outputs (not a run)", "device": "-", "config": {}, "stages": [], "world_size": 1}]
    x, y = 12, 30
    question = f"Mia has {x} stickers and gets {y} more. How many stickers does she have now?"
    for step, (name, template) in enumerate(OUTPUTS.items(), 1):
        body = template.format(x=x, y=y)
        cut = name == "truncated"
        text = "```yaml\n" + body + ("" if cut else "```")
        r = check(text, x + y, "arithmetic", cut_off=cut)
        events.append({"kind": "sample", "t": t + step, "phase": "eval", "step": 0, "set": "tour", "at": "tour",
                       "question": question, "expected_answer": x + y, "expected_expert": "arithmetic", "text": text,
                       "answer": as_number(r.answer), "reward": r.reward, "outcome": r.outcome, "valid": r.valid,
                       "codes": r.codes, "cut": cut})
        assert name == "right" or name in r.codes, (name, r.codes)
    events.append({"kind": "run_finished", "t": t + 10, "status": "completed"})
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (folder / "status.json").write_text(json.dumps({"status": "completed", "model": "hand-written outputs (not a run)",
                                                    "phase": "eval", "started": t, "updated": t + 10, "example": True}))
    print(f"wrote {folder}: {len(events) - 2} samples")


if __name__ == "__main__":
    main()
