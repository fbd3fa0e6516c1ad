"""The compare view's paired comparison: `d` runs `engine diff A B --json` as a child, shows the
flips per set and keeps the result; Enter opens both outputs of a flipped problem side by side."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli.diff import flip
from engine.stats import paired as compare
from workbench.app import Workbench
from workbench.diffjob import DiffError, DiffJob, cache_file, checkpoint_stamp, check
from workbench.screens.flips import FlipsScreen
from workbench.screens.pair import PairScreen, TracePane
from workbench.screens.run import RunScreen

OVERWRITE = ("```yaml\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 12}\n- {op: init, var: a, value: 30}\n"
             "- {op: compute, compute_op: add, args: [a, a], var: total}\n- {op: query, var: total}\n```")
RIGHT = ("```yaml\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 12}\n- {op: init, var: b, value: 30}\n"
         "- {op: compute, compute_op: add, args: [a, b], var: total}\n- {op: query, var: total}\n```")
QUESTION = "Mia has 12 stickers and gets 30 more. How many stickers does she have now?"


@pytest.fixture(autouse=True)
def settings_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path / "cfg"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny runs, trained once for the module (~30 s each): a and b (another learning rate)."""
    root = tmp_path_factory.mktemp("runs") / "sessions"
    for name, sets in (("a", []), ("b", ["--set", "sft.lr=3e-3"])):
        run = subprocess.run([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(root / name),
                              "--plain", *sets], capture_output=True, text=True, timeout=600, cwd=root.parent)
        assert run.returncode == 0, run.stderr[-2000:]
    return root


def sessions_with(tmp_path, names=("a", "b")) -> list[Path]:
    """Session folders with a config and a best checkpoint file: what the view checks before it scores."""
    out = []
    for name in names:
        folder = tmp_path / "sessions" / name
        (folder / "checkpoints" / "best").mkdir(parents=True)
        (folder / "config.yaml").write_text("{}\n")
        (folder / "checkpoints" / "best" / "state.pt").write_bytes(b"weights")
        out.append(folder)
    return out


def stored_report() -> dict:
    """What `engine diff --json` prints when B got problem 2 right and A did not (built by its own code)."""
    a = [{"question": QUESTION, "expected_answer": 42, "expected_expert": "arithmetic", "text": OVERWRITE, "answer": 60,
          "outcome": "invalid_trace", "codes": ["overwrite"], "cut": False}]
    b = [dict(a[0], text=RIGHT, answer=42, outcome="correct", codes=[])]
    c = compare([True, False, False], [True, True, False])
    c["questions"] = {"1": QUESTION}
    c["flips"] = {"1": flip(a[0], b[0])}
    return {"a": "sessions/a/checkpoints/best", "b": "sessions/b/checkpoints/best", "sets": {"gsm8k": c}}


def keep_stored(a: Path, b: Path, report: dict) -> None:
    target = cache_file(str(a), str(b))
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps({"stamp": [checkpoint_stamp(a), checkpoint_stamp(b)], "b_path": str(b.resolve()), "report": report}))


async def until(pilot, condition, what: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        await pilot.pause(0.2)


def shown(screen, widget: str) -> str:
    return str(screen.query_one(widget).render())


def test_diff_json_carries_both_outputs_of_each_flipped_problem():
    c = stored_report()["sets"]["gsm8k"]
    f = c["flips"]["1"]
    assert f["question"] == QUESTION and f["expected_answer"] == 42
    assert f["a"]["text"] == OVERWRITE and f["a"]["outcome"] == "invalid_trace" and f["b"]["text"] == RIGHT and f["b"]["answer"] == 42
    assert c["gained"] == [1] and c["lost"] == [] and c["questions"] == {"1": QUESTION}  # the old fields stay


async def test_compare_view_scores_both_runs_with_engine_diff_and_keeps_the_result(trained):
    a, b = trained / "a", trained / "b"
    app = Workbench(lambda: RunScreen(str(b), compare=str(a)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, FlipsScreen)
        await until(pilot, lambda: screen.job is not None and screen.job.proc is not None, "engine diff to start")
        assert "scoring both runs" in shown(screen, "#flips-status") and "Escape cancels" in shown(screen, "#flips-status")
        await until(pilot, lambda: screen.job is None, "engine diff to finish")
        assert "scored now" in shown(screen, "#flips-status"), shown(screen, "#flips-status")
        summary = shown(screen, "#flips-summary")
        assert "synthetic  n 8" in summary and "gsm8k  n 4" in summary and "McNemar p" in summary and "change" in summary
        kept = json.loads(cache_file(str(a), str(b)).read_text())["report"]
        assert all("flips" in c for c in kept["sets"].values())  # the outputs are in the JSON, here none flipped
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("d")  # again: the kept result, no second scoring
        screen = app.screen
        await pilot.pause(0.2)
        assert screen.job is None and "kept from an earlier scoring" in shown(screen, "#flips-status")
        assert "synthetic  n 8" in shown(screen, "#flips-summary")


async def test_escape_while_scoring_kills_engine_diff(trained, tmp_path):
    a, b = trained / "a", tmp_path / "b-copy"
    shutil.copytree(trained / "b", b)  # no result kept for this pair: it scores
    app = Workbench(lambda: RunScreen(str(b), compare=str(a)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("d")
        screen = app.screen
        await until(pilot, lambda: screen.job is not None and screen.job.proc is not None, "engine diff to start")
        proc = screen.job.proc
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        assert proc.wait(timeout=30) < 0  # killed, not left scoring in the background
        assert not cache_file(str(a), str(b)).exists()


async def test_a_session_without_checkpoint_is_refused_in_one_line(tmp_path):
    a, b = sessions_with(tmp_path)
    shutil.rmtree(b / "checkpoints")
    app = Workbench(lambda: FlipsScreen(str(a), str(b)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        said = shown(app.screen, "#flips-status")
        assert said == "b: no checkpoint yet, nothing to score (a run saves one at its evaluations and at its end)"
        assert app.screen.job is None


async def test_engine_diff_failing_says_why_in_one_line(tmp_path):
    a, b = sessions_with(tmp_path)  # a checkpoint that is not one: engine diff refuses to load it
    (a / "config.yaml").write_text("model:\n  name: tiny\n")
    app = Workbench(lambda: FlipsScreen(str(a), str(b)))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.job is None and shown(app.screen, "#flips-status"), "engine diff to fail")
        said = shown(app.screen, "#flips-status")
        assert said.startswith("engine diff failed: ") and "state.pt" in said and "\n" not in said and "Traceback" not in said


def test_output_that_is_not_a_report_gives_one_line(tmp_path):
    a, b = sessions_with(tmp_path)

    class Printing(DiffJob):  # a real child that prints something other than a report
        def __init__(self, text):
            super().__init__(str(a), str(b))
            self.text = text

        def command(self):
            return [sys.executable, "-c", f"print({self.text!r})"]

    with pytest.raises(DiffError, match="not JSON"):
        Printing("scoring...").run()
    with pytest.raises(DiffError, match="lacks"):
        Printing(json.dumps({"sets": {"gsm8k": {"problems": 3}}})).run()
    with pytest.raises(DiffError, match="no per-set result"):
        check([1, 2])
    assert not cache_file(str(a), str(b)).exists()


async def test_enter_on_a_flip_opens_both_traces_side_by_side(tmp_path):
    a, b = sessions_with(tmp_path)
    keep_stored(a, b, stored_report())
    app = Workbench(lambda: RunScreen(str(b), compare=str(a)))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("d")
        screen = app.screen
        await pilot.pause(0.2)
        assert screen.job is None and "kept from an earlier scoring" in shown(screen, "#flips-status")
        assert "flipped 1 to B, 0 to A" in shown(screen, "#flips-summary")
        table = screen.query_one("#flips")
        row = [str(c) for c in table.get_row_at(0)]
        assert row[:3] == ["gsm8k", "2", "B gained"] and row[3].startswith("Mia has 12") and row[4] == "60 (invalid_trace)" and row[5] == "42 (correct)"
        await pilot.press("enter")
        pair = app.screen
        assert isinstance(pair, PairScreen)
        pa, pb = pair.query_one("#pane-a", TracePane), pair.query_one("#pane-b", TracePane)
        assert "Mia has 12 stickers" in shown(pair, "#pair-header")
        # the overwrite is marked on A's line 5 (● in the gutter) and listed under A's trace only
        line5 = str(pa.query_one(".pane-source").render()).splitlines()[4]
        assert "●" in line5 and "value: 30" in line5
        assert "overwrite" in str(pa.query_one(".pane-diags").render()) and "overwrite" not in str(pb.query_one(".pane-diags").render())
        await pilot.press("n", "n")  # the focused pane (A) steps; B stays before its first step
        assert pa.model.position == 1 and pb.model.position == -1
        await pilot.press("tab", "n")
        assert pa.model.position == 1 and pb.model.position == 0
        assert "step 1 of" in str(pb.query_one(".pane-head").render())
        await pilot.press("escape")
        assert isinstance(app.screen, FlipsScreen)


@pytest.mark.parametrize("damage", ["p is text", "flips a list", "questions a list", "problems text", "ci of one",
                                    "a flip a list", "deep", "fifo", "link outside"])
def test_a_damaged_kept_result_is_scored_again_never_shown_or_waited_on(tmp_path, damage):
    """A kept file that passes for a report but holds the wrong types (or nests 200,000 deep, or is a
    FIFO that would block the screen's thread) is not read as a result: the view scores again."""
    import copy
    import os

    from workbench.diffjob import load_cached

    a, b = sessions_with(tmp_path)
    report = copy.deepcopy(stored_report())
    c = report["sets"]["gsm8k"]
    target = cache_file(str(a), str(b))
    if damage == "p is text":
        c["mcnemar_p"] = "x"
    elif damage == "flips a list":
        c["flips"] = []
    elif damage == "questions a list":
        c["questions"] = ["q"]
    elif damage == "problems text":
        c["problems"] = "8"
    elif damage == "ci of one":
        c["change_ci"] = [0.1]
    elif damage == "a flip a list":
        c["flips"] = {"1": ["a", "b"]}
    keep_stored(a, b, report)
    assert damage in ("deep", "fifo", "link outside") or load_cached(str(a), str(b)) is None
    if damage == "deep":
        target.write_text("[" * 200_000)
    elif damage == "fifo":
        target.unlink()
        os.mkfifo(target)  # read_text() here blocked until someone wrote into it
    elif damage == "link outside":
        keep_stored(a, b, stored_report())
        outside = tmp_path / "elsewhere.json"
        outside.write_text(target.read_text())
        target.unlink()
        target.symlink_to(outside)
    got = load_cached(str(a), str(b))
    assert got is None or damage == "link outside"
    if damage == "link outside":  # a new result replaces the link, never writes through it
        from workbench.diffjob import keep

        assert keep(str(a), str(b), stored_report(), [checkpoint_stamp(a), checkpoint_stamp(b)]) is None
        assert not target.is_symlink() and json.loads(outside.read_text())["report"] == stored_report()
