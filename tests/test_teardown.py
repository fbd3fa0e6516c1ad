"""A run's end is owned: the heartbeat thread stops and is joined before the final event, and
under torchrun a session that cannot be opened ends every rank at once, each saying why."""

import os
import subprocess
import sys
import threading

from engine import config, run as run_mod
from engine.recorder import Recorder
from engine.session import Session
from engine.train.context import Control, Events as RunEvents

from .waiting import wait_for


class Events:
    def __init__(self):
        self.seen = []

    def on_event(self, event):
        self.seen.append(event)

    def close(self):
        pass


def test_no_heartbeat_follows_run_finished_even_when_a_snapshot_is_slow(monkeypatch):
    """The heartbeat looked at `done`, then built its snapshot: a slow snapshot (a busy /proc,
    a GPU driver) came back after the run's last event and wrote a heartbeat behind it."""
    entered, gate = threading.Event(), threading.Event()

    def slow_snapshot(gpu=None):
        entered.set()
        gate.wait(60)
        return {"cpu": 1.0}

    monkeypatch.setattr(run_mod.system, "snapshot", slow_snapshot)
    monkeypatch.setattr(run_mod.Heartbeat, "EVERY", 0.01)
    events = Events()
    recorder = Recorder()
    recorder.add(events)
    heartbeat = run_mod.Heartbeat(RunEvents(recorder), Control(recorder)).start()
    wait_for(entered.is_set, "the heartbeat to start a snapshot")
    stopper = threading.Thread(target=heartbeat.stop)
    stopper.start()
    wait_for(lambda: heartbeat.done, "stop() to mark the heartbeat done")
    recorder.emit("run_finished", status="completed")  # what the run writes once stop() has returned
    gate.set()
    stopper.join(60)
    assert not heartbeat.thread.is_alive()  # joined, not left as a daemon to die at interpreter exit
    assert events.seen[-1]["kind"] == "run_finished", [e["kind"] for e in events.seen]


def test_stop_wakes_the_heartbeat_at_once_and_joins_it():
    recorder = Recorder()
    heartbeat = run_mod.Heartbeat(RunEvents(recorder), Control(recorder)).start()  # 10 s between beats
    heartbeat.stop()  # woken by its event, not at the end of its 10 s wait
    assert not heartbeat.thread.is_alive()


def test_a_busy_session_ends_every_torchrun_rank_and_each_says_why(tmp_path):
    """Rank 0 is refused the session (a live run holds it). The other rank used to go on into
    setup alone and wait at its first collective for a peer that had left; now every rank learns
    of the refusal from rank 0 before any loads a model."""
    folder = tmp_path / "busy"
    holder = Session(folder).create()
    holder.lock()  # this test process is the live run
    try:
        out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain"],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        holder.unlock()
    assert out.returncode != 0
    assert "in use by a live run" in out.stderr  # rank 0's own message
    assert "rank 0 could not open the session (SessionBusy:" in out.stderr  # rank 1's
    assert "session:" not in out.stdout  # no rank went on to run (and print its folder at the end)
    assert not (folder / "events.jsonl").exists()


def test_ending_the_group_frees_the_wrapped_model_that_holds_it_first(tmp_path, default_tokenizer):
    """A cycle that holds the DDP model (the recipe and context of old referred to each other)
    kept it alive past the group until interpreter exit, where gloo's threads can abort the
    process. end_process_group collects such cycles before it destroys the group."""
    import gc
    import weakref

    import torch.distributed as dist

    from engine.modeling import tiny_model
    from engine.parallel import end_process_group, wrap

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    gc.disable()  # the collection must be end_process_group's own, not one that happens to run
    try:
        class Recipe:  # a cycle, in small
            pass

        recipe = Recipe()
        recipe.me, recipe.model = recipe, wrap(tiny_model(default_tokenizer), 2)  # DDP, as two ranks build it
        held = weakref.ref(recipe.model)
        del recipe
        assert held() is not None  # only a collection frees a cycle
        end_process_group()
        assert held() is None and not dist.is_initialized()
    finally:
        gc.enable()
        if dist.is_initialized():
            dist.destroy_process_group()
