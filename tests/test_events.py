"""The events contract: flushed lines, torn lines, unknown kinds."""

import json

from engine.events import EventReader
from engine.recorder import Recorder


def test_writer_flushes_each_line_and_reader_waits_for_torn_lines(tmp_path):
    log = Recorder(tmp_path / "s").open("tiny")
    path = log.session.events
    log.emit("run_started", schema=1, run="r")
    reader = EventReader(path)
    assert [e["kind"] for e in reader.read()] == ["run_started"]  # flushed: visible before close
    with open(path, "a") as f:
        f.write('{"kind": "metrics", "step": 1, "loss": 2.5}\n{"kind": "met')
    assert [e["step"] for e in reader.read()] == [1]
    with open(path, "a") as f:
        f.write('rics", "step": 2, "loss": NaN}\nnot json at all\n{"kind": "brand_new", "x": {"y": 1}}\n')
    events = reader.read()
    assert [e["kind"] for e in events] == ["metrics", "brand_new"] and reader.bad_lines == 1
    assert events[1]["x"] == {"y": 1}


def test_nan_travels_as_text_and_every_line_has_kind_and_time(tmp_path):
    rec = Recorder(tmp_path / "s").open("tiny")
    path = rec.session.events
    rec.emit("metrics", loss=float("nan"), step=3, phase="sft")
    line = json.loads(path.read_text())
    assert line["loss"] == "nan" and line["kind"] == "metrics" and isinstance(line["t"], float)
