"""One recorder writes a session: events, and status.json derived from them; every sink sees every event."""

import json
import re
from pathlib import Path

import pytest

from engine.events import EventReader
from engine.recorder import Recorder
from engine.session import Session, SessionBusy, list_sessions

ROOT = Path(__file__).resolve().parents[1]


def _status(folder: Path) -> dict:
    return json.loads((folder / "status.json").read_text())


class Seen:
    def __init__(self):
        self.events, self.closed = [], False

    def on_event(self, e):
        self.events.append(e)

    def close(self):
        self.closed = True


def test_status_follows_the_events_and_a_resume_keeps_its_start_and_best(tmp_path):
    folder = tmp_path / "s"
    rec = Recorder(folder).open("tiny", config="model:\n  name: tiny\n")
    seen = Seen()
    rec.add(seen)
    assert (folder / "config.yaml").read_text().startswith("model:")
    first = _status(folder)
    assert first["status"] == "running" and first["phase"] == "setup" and first["model"] == "tiny"
    with pytest.raises(SessionBusy):  # the recorder holds the session: a second run is refused
        Recorder(folder).open("tiny")
    rec.emit("run_started", model="tiny", run="s")
    rec.emit("metrics", phase="sft", step=3, total=10, loss=1.5)
    assert {k: _status(folder)[k] for k in ("phase", "step", "total")} == {"phase": "sft", "step": 3, "total": 10}
    rec.emit("heartbeat", phase="eval", set="gsm8k", step=64, total=300)  # where an evaluation is, from its heartbeats
    assert (_status(folder)["phase"], _status(folder)["step"]) == ("eval", 64)
    rec.emit("eval", phase="eval", step=10, at="sft", set="gsm8k", accuracy=0.1, total=300)  # the set is done
    assert (_status(folder)["step"], _status(folder)["total"]) == (300, 300)
    rec.emit("checkpoint", path="x", best=True, accuracy=0.25)
    assert _status(folder)["best_accuracy"] == 0.25 and list_sessions(tmp_path)[0]["best_accuracy"] == 0.25
    rec.emit("run_finished", status="stopped")
    rec.close()
    final = _status(folder)
    assert final["status"] == "stopped" and final["finished"] and seen.closed
    assert [e["kind"] for e in seen.events] == ["run_started", "metrics", "heartbeat", "eval", "checkpoint", "run_finished"]
    assert [e["kind"] for e in EventReader(folder / "events.jsonl").read()] == [e["kind"] for e in seen.events]
    assert [e["t"] for e in seen.events] == [e["t"] for e in EventReader(folder / "events.jsonl").read()]

    again = Recorder(folder).open("tiny", resume=True)  # the lock was let go at close
    resumed = _status(folder)
    assert resumed["started"] == first["started"] and resumed["best_accuracy"] == 0.25 and resumed["status"] == "running"
    again.close()


def test_a_recorder_without_a_session_writes_nothing_and_asks_nothing(tmp_path):
    rec = Recorder().open("tiny")
    assert rec.emit("metrics", step=1)["kind"] == "metrics"
    assert not rec.stop_asked() and rec.session is None
    rec.close()
    s = Session(tmp_path / "s").create()
    rec = Recorder(s.path).open("tiny")
    s.request_stop()  # asked after the run began: honoured once
    assert rec.stop_asked() and not rec.stop_asked()
    rec.close()


def test_only_the_recorder_writes_status_and_events():
    """No second hand-written path to status.json or events.jsonl anywhere in the engine."""
    writers = []
    for path in (ROOT / "engine").rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("engine/recorder.py", "engine/events.py"):
            continue
        if re.search(r"EventLog\(|write_status|safefile\.write\([^)]*STATUS|status\.json\"\)\.write", text):
            writers.append(rel)
    assert writers == []
