"""Where a stopped run resumes: the recipe alone decides, between steps, to checkpoint, evaluate or stop
(engine/recipe.py), and a stop keeps the stage's progress whatever it falls on. Runs in this process with
the tiny model; a sink asks for the stop at a chosen event, as `engine stop` does (the session's stop file)."""

import pytest

from engine import config, run as run_mod
from engine.events import read_all
from engine.session import Session

SETS = ["model.name=tiny", "run.phases=sft,eval", "data.train_size=24", "data.gsm8k_traces=0", "sft.batch_size=4",
        "sft.epochs=2", "eval.at=sft", "eval.every=4", "eval.synthetic=2", "eval.gsm8k=2", "eval.max_new_tokens=8",
        "run.cpu_threads=1"]


class StopAt:
    """Asks the run to stop (the stop file `engine stop` writes) at the first event `hit` accepts."""

    def __init__(self, folder, hit):
        self.folder, self.hit, self.done = folder, hit, False

    def on_event(self, e):
        if not self.done and self.hit(e):
            self.done = True
            Session(self.folder).request_stop()

    def close(self):
        pass


def first_step_after_resume(folder) -> int:
    events = read_all(folder / "events.jsonl")
    started = [i for i, e in enumerate(events) if e["kind"] == "run_started"]
    return next(e["step"] for e in events[started[-1]:] if e["kind"] == "metrics")


@pytest.mark.parametrize("where, hit", [
    ("the step an evaluation is due", lambda e: e["kind"] == "metrics" and e.get("step") == 4),
    ("during that evaluation, between its two sets", lambda e: e["kind"] == "eval" and e.get("set") == "synthetic"),
])
def test_a_stop_keeps_the_stages_steps_and_the_resume_goes_on_after_them(tmp_path, where, hit):
    """`engine stop` at SFT step 4, where eval.every=4 is due, or while that evaluation runs: the run
    stops with a checkpoint at step 4 and the resume continues at step 5 (a stop that saved step 0
    restarted SFT on weights already trained, with a fresh optimizer)."""
    folder = tmp_path / "run"
    cfg = config.load(sets=SETS)
    assert run_mod.run(cfg, folder, sinks=(StopAt(folder, hit),)) == "stopped"
    events = read_all(folder / "events.jsonl")
    saved = [e for e in events if e["kind"] == "checkpoint" and not e.get("best")]
    assert saved[-1]["step"] == 4, (where, saved)
    sets = [e["set"] for e in events if e["kind"] == "eval"]
    assert sets == ([] if "due" in where else ["synthetic"])  # stopped before it, or between its sets
    assert run_mod.run(config.load(folder / "config.yaml"), folder, resume=True) == "completed"
    assert first_step_after_resume(folder) == 5


def test_a_checkpoint_asked_for_as_a_stage_ends_is_answered_in_words(tmp_path):
    """`engine stop --checkpoint` that lands while SFT's end-of-stage checkpoint is written: that
    checkpoint answers it, and an event says so (it was answered silently before)."""

    class CheckpointAt(StopAt):
        def on_event(self, e):
            if not self.done and e["kind"] == "checkpoint":
                self.done = True
                Session(self.folder).request_checkpoint()

    folder = tmp_path / "run"
    cfg = config.load(sets=[*SETS, "eval.every=0"])
    assert run_mod.run(cfg, folder, sinks=(CheckpointAt(folder, None),)) == "completed"
    events = read_all(folder / "events.jsonl")
    said = [e for e in events if e["kind"] == "alert" and "asked for as sft ended" in e["message"]]
    assert len(said) == 1 and said[0]["phase"] == "sft"
    assert not (folder / "checkpoint-now").exists()  # taken, not left for a later stage to find


def test_the_eval_phase_with_no_point_named_evaluates_once_at_the_end_named_for_what_it_follows():
    """`eval.at=[]` with eval among the phases: one evaluation after the last trained stage. It was
    labelled "start" while it scored the trained weights, so it read as the untrained model's score."""
    from engine.recipe import stages

    assert stages(config.load(sets=["eval.at=[]"])) == [("sft", ""), ("rl", ""), ("eval", "rl")]
    assert stages(config.load(sets=["eval.at=[]", "run.phases=sft,eval"])) == [("sft", ""), ("eval", "sft")]
    assert stages(config.load(sets=["eval.at=[]", "run.phases=eval"])) == [("eval", "start")]
    assert stages(config.load(sets=["eval.at=[start,rl]"])) == [("eval", "start"), ("sft", ""), ("rl", ""), ("eval", "rl")]
    assert stages(config.load(sets=["eval.at=[]", "run.phases=sft,rl"])) == [("sft", ""), ("rl", "")]
