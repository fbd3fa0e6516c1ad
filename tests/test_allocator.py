"""The engine's commands run with tcmalloc where it is installed (engine/allocator.py): the same
numbers as with glibc's malloc, said in run_started, and never a restart loop."""

import os
import subprocess
import sys

from engine import allocator
from engine.events import read_all


def train_tiny(session, choice):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"} | {allocator.ENV: choice}
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(session), "--plain",
                          "--set", "run.phases=sft"], capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return read_all(session / "events.jsonl")


def test_a_run_says_its_allocator_and_tcmalloc_changes_no_number(tmp_path):
    auto, system = train_tiny(tmp_path / "auto", "auto"), train_tiny(tmp_path / "system", "system")
    assert system[0]["allocator"] == "system"
    assert not any("memory allocator" in e.get("message", "") for e in system)  # asked for: no advice
    installed = allocator.tcmalloc() and not os.path.exists("/dev/nvidiactl")
    if installed:
        assert "tcmalloc" in auto[0]["allocator"]  # the file the process mapped, not merely the variable
    else:
        assert auto[0]["allocator"] == "system"
        assert any("libtcmalloc-minimal4" in e.get("message", "") for e in auto if e["kind"] == "alert")
    losses = [[e["loss"] for e in run if e["kind"] == "metrics"] for run in (auto, system)]
    assert losses[0] and losses[0] == losses[1]


def test_a_preload_that_did_not_load_is_not_tried_again(monkeypatch):
    monkeypatch.setattr(allocator, "tcmalloc", lambda: "libtcmalloc_minimal.so.4")
    monkeypatch.delenv(allocator.ENV, raising=False)
    monkeypatch.setenv("LD_PRELOAD", "/gone/libtcmalloc_minimal.so.4")
    assert allocator.wanted() is None  # else a missing library would restart the command forever
    monkeypatch.setenv(allocator.ENV, "system")
    monkeypatch.delenv("LD_PRELOAD")
    assert allocator.wanted() is None
    monkeypatch.delenv(allocator.ENV)
    monkeypatch.setattr(allocator, "tcmalloc", lambda: None)
    assert allocator.wanted() is None  # nothing installed: glibc's, and the run's alert says what to install
