"""Session folders written the way the engine writes them, for workbench tests."""

import json
import time
from pathlib import Path

TRACE_OK = "```yaml\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: compute, compute_op: mul, args: [a, 3], var: r}\n- {op: query, var: r}\n```"
TRACE_BAD = "```yaml\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: init, var: a, value: 3}\n- {op: query, var: a}\n```"


def events(run: str, n_steps: int = 20, finished: bool = True, t0: float | None = None) -> list[dict]:
    t = t0 or time.time() - 600
    out = [{"kind": "run_started", "t": t, "schema": 1, "run": run, "model": "tiny", "device": "cpu", "params_total": 3_000_000,
            "params_trainable": 3_000_000, "load_8bit": False, "config": {}, "stages": ["sft", "rl", "eval:rl"]}]
    for s in range(1, n_steps + 1):
        out.append({"kind": "metrics", "t": t + s, "phase": "sft", "step": s, "total": n_steps, "loss": 3.0 / s, "lr": 1e-4,
                    "tokens_per_s": 1000.0, "step_time": 0.5})
    for s in range(1, 6):
        out.append({"kind": "metrics", "t": t + 100 + s, "phase": "rl", "step": s, "total": 5, "loss": 0.1, "reward": 0.5 + s / 10,
                    "reward_std": 0.1, "tokens_per_s": 200.0, "step_time": 2.0, "parse_rate": 0.9})
        out.append({"kind": "sample", "t": t + 100 + s, "phase": "rl", "step": s, "question": f"Question {s}?", "expected_answer": 6,
                    "expected_expert": "arithmetic", "text": TRACE_OK if s % 2 else TRACE_BAD, "reward": 1.0 if s % 2 else 0.5,
                    "outcome": "correct" if s % 2 else "invalid_trace", "codes": [] if s % 2 else ["overwrite", "query_init_only"]})
    for at, acc in (("start", 0.0), ("rl", 0.75)):
        out.append({"kind": "eval", "t": t + 200, "phase": "eval", "step": 25, "at": at, "set": "synthetic", "accuracy": acc,
                    "parse_rate": 0.9, "valid_rate": 0.8, "correct": int(acc * 8), "wrong_answer": 1, "invalid_trace": 1,
                    "wrong_expert": 0, "parse_fail": 0, "total": 8,
                    "by_expert": {"arithmetic": {"total": 4, "correct": int(acc * 4)}, "percentage": {"total": 4, "correct": int(acc * 4)}},
                    "diagnostic_counts": {"overwrite": 3 if at == "start" else 1, "missing_query": 2 if at == "start" else 0}})
    out.append({"kind": "alert", "t": t + 201, "level": "warning", "message": "no parseable output in the gsm8k evaluation"})
    out.append({"kind": "future_kind", "t": t + 202, "anything": 1})
    if finished:
        out.append({"kind": "run_finished", "t": t + 300, "status": "completed"})
    return out


def write_session(root: Path, run: str, **kw) -> Path:
    folder = root / run
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    evs = events(run, **kw)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))
    status = "completed" if kw.get("finished", True) else "running"
    (folder / "status.json").write_text(json.dumps({"status": status, "model": "tiny", "phase": "rl", "step": 5, "total": 5,
                                                    "started": evs[0]["t"], "best_accuracy": 0.75}))
    (folder / "config.yaml").write_text("model:\n  name: tiny\n")
    return folder
