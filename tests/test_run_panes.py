"""The run screen's panes behind one interface, and the run's state read as the engine folds it:
status.json and the screen tell where a run is the same way; the eval sets come from run_started."""

import json

import pytest
from textual.widgets import Static

from engine.recorder import Recorder
from workbench.app import attach_app
from workbench.examples import ROOT
from workbench.runstate import RunState
from workbench.screens import run as run_screen
from workbench.widgets.pane import Pane


@pytest.fixture(autouse=True)
def settings_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path / "cfg"))


EVENTS = [
    ("run_started", {"model": "tiny", "stages": ["sft", "eval:sft"]}),
    ("metrics", {"phase": "sft", "step": 3, "total": 10, "loss": 1.5}),
    ("heartbeat", {"phase": "rl", "stage": "rollouts", "step": 0, "total": 6, "done": 8, "of": 16}),
    ("heartbeat", {"phase": "eval", "at": "sft", "set": "gsm8k", "step": 64, "total": 300}),
    ("eval", {"phase": "eval", "step": 10, "at": "sft", "set": "gsm8k", "accuracy": 0.1, "parse_rate": 1.0, "valid_rate": 1.0, "total": 300}),
    ("run_finished", {"status": "stopped"}),
]


def test_the_run_screen_tells_where_a_run_is_as_status_json_does(tmp_path):
    """One fold (engine/status.py): after each event the screen's header numbers are status.json's,
    an evaluation's end included (`eval gsm8k 300/300`, where the screen used to stay on the last
    heartbeat's 64/300 until the next one)."""
    rec = Recorder(tmp_path / "s").open("tiny")
    state = RunState(name="s")
    for kind, fields in EVENTS:
        state.add([rec.emit(kind, **fields)])
        if kind == "run_started":
            continue  # status.json says `setup` from the recorder's start, before any event
        st = json.loads((tmp_path / "s" / "status.json").read_text())
        what, step, total = state.progress()
        assert (what.split(" ")[0], step, total) == (st.get("phase", ""), st.get("step", 0), st.get("total", 0)), kind
        assert state.status == st["status"]
        if kind == "heartbeat" and fields["phase"] == "rl":
            assert state.rows_progress() == "rollouts 8/16" and st["done"] == 8
    rec.close()
    assert state.summary["set"] == "gsm8k" and state.progress() == ("eval gsm8k", 300, 300)


def test_the_eval_sets_and_sizes_come_from_run_started():
    """A run names its sets and their sizes; the evaluation's time left counts problems (a set of
    50 and one of 200: 150 of 250 decoded is 60%), and the Charts line names the first set."""
    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 0.0, "model": "m", "stages": ["eval:sft"], "config": {"eval": {"synthetic": 8}},
            "eval_sets": {"gsm8k-dev": 50, "synthetic": 200}},
           {"kind": "heartbeat", "t": 10.0, "phase": "eval", "at": "sft", "set": "gsm8k-dev", "step": 0, "total": 50},
           {"kind": "eval", "t": 20.0, "set": "gsm8k-dev", "at": "sft", "accuracy": 0.5, "parse_rate": 1, "valid_rate": 1, "total": 50},
           {"kind": "heartbeat", "t": 70.0, "phase": "eval", "at": "sft", "set": "synthetic", "step": 100, "total": 200}])
    assert s.eval_sets() == {"gsm8k-dev": 50, "synthetic": 200}
    assert s._eval_left("eval:sft", 70.0) == pytest.approx(60.0 * 0.4 / 0.6)


def test_a_session_from_before_eval_sets_reads_them_off_its_config():
    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 0.0, "config": {"eval": {"synthetic": 200, "gsm8k": 300, "problems": ["/data/dev.jsonl"]}},
            "eval_sets": {"broken": "many"}}])  # not a set size: the config is read instead
    assert s.eval_sets() == {"synthetic": None, "gsm8k": None, "dev": None}


async def test_every_pane_is_a_tab_with_its_key_and_draws_from_the_screens_view():
    app = attach_app(str(ROOT / "default-run"))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.6)
        screen = app.screen
        tabs = screen.query_one("#run-tabs")
        assert [p.id for p in tabs.query("TabPane")] == [p.TAB for p in run_screen.PANES]
        for n, pane in enumerate(run_screen.PANES, 1):
            await pilot.press(str(n))
            await pilot.pause(0.3)
            assert tabs.active == pane.TAB and isinstance(screen.query_one(f"#{pane.ID}"), pane)


async def test_a_new_pane_is_one_class_and_one_list_entry(monkeypatch):
    """compose and the redraw read PANES: an entry added there is a tab, drawn from the screen's
    view (the run's state) when shown, and left alone while another tab is on screen."""
    seen = []

    class Probe(Pane, Static):
        TITLE, TAB, ID = "Probe", "tab-probe", "probe"

        def show(self, view):
            seen.append(view)

    monkeypatch.setattr(run_screen, "PANES", [*run_screen.PANES, Probe])
    app = attach_app(str(ROOT / "default-run"))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.6)
        assert seen == []  # not on screen: not drawn
        app.screen.query_one("#run-tabs").active = "tab-probe"
        await pilot.pause(0.3)
        assert seen and seen[-1].state is app.screen.state and seen[-1].state.finished
