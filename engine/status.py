"""A run's status and where it is, folded from its events: the one fold that status.json
(recorder.StatusFile writes it) and the workbench's run screen (workbench/runstate.py) both
read, so `engine ls`, the session list and a run's header never tell a run's place two ways.
Pure Python: the workbench imports it without torch."""

from __future__ import annotations

# where the run is: the phase, an evaluation's set and `at`, RL's stage, the step of the total,
# and while RL samples the outputs done of the iteration's (`rollouts 8/16`)
POSITION = ("phase", "set", "at", "stage", "step", "total", "done", "of")


def change(fields: dict, e: dict) -> dict:
    """What one event changes in `fields`; a None value removes the field (a metrics event after
    an evaluation's heartbeat leaves no `set` behind)."""
    kind = e.get("kind")
    if kind == "run_started":
        return {"status": "running", "model": e.get("model")}
    if kind in ("metrics", "heartbeat"):  # the latest says where the run is, with all it says
        return {k: e.get(k) for k in POSITION}
    if kind == "eval" and fields.get("phase") == "eval":
        # the set the heartbeats said is under way is finished: all its problems done (the event's
        # `step` is the training step it follows); an evaluation no heartbeat announced (one shorter
        # than a heartbeat's 10 s, a hand-written session) leaves the run where it was said to be
        return {**dict.fromkeys(POSITION), "phase": "eval", "set": e.get("set"), "at": e.get("at"),
                "step": e.get("total"), "total": e.get("total")}
    if kind == "checkpoint" and e.get("best"):
        return {"best_accuracy": e.get("accuracy")}
    if kind == "run_finished":
        return {"status": e.get("status"), "error": e.get("error"), "finished": e.get("t")}
    return {}


def fold(fields: dict, e: dict) -> bool:
    """Fold one event into `fields`; True when they changed (status.json is rewritten only then)."""
    changed = False
    for key, value in change(fields, e).items():
        if value is None:
            changed = fields.pop(key, None) is not None or changed
        elif fields.get(key) != value:
            fields[key] = value
            changed = True
    return changed
