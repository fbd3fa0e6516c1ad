"""Pilot tests of the sessions screen, the run screen and themes, on session folders the tests write."""

import json
import re
import time

import pytest

from engine.events import read_all
from workbench.app import attach_app, sessions_app
from workbench.follow import Follower
from workbench.runstate import RunState
from workbench.themes import remembered_theme

from .sessions_fixture import events, write_session


@pytest.fixture(autouse=True)
def settings_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path / "cfg"))


async def test_sessions_screen_lists_runs_and_opens_one(tmp_path):
    write_session(tmp_path, "run-a")
    write_session(tmp_path, "run-b", finished=False)
    app = sessions_app(tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one("#sessions")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[0] for r in rows[:2]] in (["run-a", "run-b"], ["run-b", "run-a"])
        assert [r[:2] for r in rows[2:]] == [["example: default-run", "example"], ["example: stepper-tour", "example"]]  # examples last
        a = next(r for r in rows if r[0] == "run-a")
        assert a[1] == "completed" and a[2] == "tiny" and a[3] == "done" and a[5] == "75.0%"
        await pilot.press("enter")
        await pilot.pause(0.6)
        assert type(app.screen).__name__ == "RunScreen"


async def test_filter_and_help(tmp_path):
    write_session(tmp_path, "alpha")
    write_session(tmp_path, "beta")
    app = sessions_app(tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("slash")
        await pilot.press(*"bet")
        await pilot.pause(0.3)  # typed keys are refiltered once, after a short pause
        table = app.screen.query_one("#sessions")
        assert table.row_count == 1 and str(table.get_row_at(0)[0]) == "beta"
        app.screen.query_one("#sessions").focus()
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        keys = dict(app.screen.bindings)
        assert keys["n"].startswith("New run") and keys["/"] == "Filter" and keys["?"] == "Help"


async def test_new_run_form_marks_invalid_fields(tmp_path):
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(160, 50)) as pilot:
        field = app.screen.query_one("#f-layers")
        field.value = "many"
        await pilot.pause()
        assert "-invalid" in field.classes
        gsm = app.screen.query_one("#f-eval-gsm")
        gsm.value = "1320"  # the config's own bound (GSM8K has 1,319 test problems), not a copy of it
        await pilot.pause()
        assert "-invalid" in gsm.classes
        app.screen.query_one("#form").start()
        await pilot.pause()
        assert type(app.screen).__name__ == "SessionsScreen"  # nothing started
        assert not root.exists()


async def test_run_screen_shows_everything_from_the_files(tmp_path):
    folder = write_session(tmp_path, "done")
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.8)
        s = app.screen
        header = str(s.query_one("#run-header").render())
        assert "completed" in header and "tiny on cpu" in header and "rl 5/5" in header
        assert s.state.series["sft"]["loss"][0] == (1, 3.0)
        s.query_one("#run-tabs").active = "tab-evals"  # a tab is drawn when it is shown
        await pilot.pause(0.3)
        evals = s.query_one("#evals")
        cols = [str(c.label) for c in evals.columns.values()]
        assert cols[-2:] == ["arithmetic", "percentage"]
        last = [str(c) for c in evals.get_row_at(evals.row_count - 1)]
        assert last[3] == "75.0%" and last[-1].endswith("3/4")
        codes = s.query_one("#codes")
        overwrite = next([str(c) for c in codes.get_row_at(i)] for i in range(codes.row_count) if str(codes.get_row_at(i)[0]) == "overwrite")
        assert overwrite[1:] == ["3", "1"]  # the failure mode training removed
        s.query_one("#run-tabs").active = "tab-samples"
        await pilot.pause(0.3)
        samples = s.query_one("#samples")
        assert samples.row_count == 5
        samples.focus()
        samples.move_cursor(row=1)
        await pilot.press("enter")
        assert type(app.screen).__name__ == "StepperScreen"
        assert "overwrite" in {d.code for d in app.screen.model.report.diagnostics}


async def test_live_follow_stop_and_engine_death(tmp_path):
    folder = tmp_path / "live"
    folder.mkdir()
    evs = events("live", finished=False)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs[:5]))
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.6)
        assert app.screen.state.progress()[1] == 4
        with open(folder / "events.jsonl", "a") as f:
            f.write("".join(json.dumps(e) + "\n" for e in evs[5:]))
        await pilot.pause(0.8)
        assert app.screen.state.progress() == ("rl", 5, 5)
        await pilot.press("s")  # asked first, the focus on "Keep running": Enter keeps it going
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm" and app.focused.id == "no"
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert type(app.screen).__name__ == "RunScreen" and not (folder / "stop").exists()
        await pilot.press("s", "y")  # a `y` after a stray `s` ("sy" of "synthetic") is no answer
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm" and not (folder / "stop").exists()
        await pilot.press("tab", "enter")  # the Stop button, chosen
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert (folder / "stop").exists()
        await pilot.press("k")
        await app.workers.wait_for_complete()
        assert (folder / "checkpoint-now").exists()
        from workbench.messages import EngineExited

        (folder / "engine.log").write_text("Traceback...\nRuntimeError: CUDA out of memory\n")
        app.screen.post_message(EngineExited(1))
        await pilot.pause(0.6)
        assert "out of memory" in app.screen.engine_error or "exited with code 1" in app.screen.engine_error
        assert "died" in str(app.screen.query_one("#run-header").render())
        assert app.screen.state.series["sft"]["loss"]  # everything it had is kept


async def test_compare_two_sessions_on_the_same_plots(tmp_path):
    a, b = write_session(tmp_path, "a"), write_session(tmp_path, "b")
    from workbench.app import Workbench
    from workbench.screens.run import RunScreen

    app = Workbench(lambda: RunScreen(str(a), compare=str(b)))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.8)
        assert app.screen.query_one("#run-tabs").active == "tab-charts"  # a comparison opens on the overlaid plots
        legend = str(app.screen.query_one("#loss-plot-legend").render())
        assert "sft loss [a]" in legend and "sft loss [b]" in legend  # under the plot, not over its data
        assert "compared with  b " in str(app.screen.query_one("#run-header").render())  # the header names the second run
        sft_end = app.screen.state.series["sft"]["loss"][-1][0]
        assert f"rl loss (from step {sft_end + 1}) [a]" in legend  # RL continues the step axis after SFT
        app.screen.query_one("#run-tabs").active = "tab-evals"
        await pilot.pause(0.3)
        evals = app.screen.query_one("#evals")
        assert {str(evals.get_row_at(i)[0]) for i in range(evals.row_count)} == {"a", "b"}


async def test_a_comparisons_legend_names_every_series_of_both_runs_at_100_columns(tmp_path):
    """Long run names sharing their start: the legend tags each series by what tells the runs
    apart, and wraps under the plot instead of cutting the second run's series off."""
    from rich.console import Console
    from rich.text import Text

    from workbench.app import Workbench
    from workbench.screens.run import RunScreen
    from workbench.widgets.charts import short_names

    assert short_names("smollm2-135m-gold-variants-run-a", "smollm2-135m-baseline-run-b") == ("gold-variants…", "baseline-run-b")
    assert short_names("a", "b") == ("a", "b") and short_names("run-1", "run-1") == ("run-1", "run-1")
    assert short_names("model.v1.checkpoint.epoch10", "model.v1.checkpoint.epoch20") == ("…point.epoch10", "…point.epoch20")
    a = write_session(tmp_path, "smollm2-135m-gold-variants-run-a")
    b = write_session(tmp_path, "smollm2-135m-baseline-run-b", n_steps=30)
    app = Workbench(lambda: RunScreen(str(a), compare=str(b)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.8)
        for plot, series in (("loss-plot", ("sft loss", "rl loss")), ("reward-plot", ("rl reward", "rl parse_rate"))):
            widget = app.screen.query_one(f"#{plot}-legend")
            text = str(widget.render())
            for name in series:
                assert f"{name} [gold-variants…]" in text.replace(" (from step 21)", "") and \
                    f"{name} [baseline-run-b]" in text.replace(" (from step 31)", ""), text
            lines = Text(text).wrap(Console(width=200), widget.content_size.width)
            assert len(lines) <= widget.content_size.height, (len(lines), widget.content_size)  # nothing cut off


async def test_theme_flag_is_applied_and_remembered(tmp_path):
    app = sessions_app(tmp_path, theme="paper")
    async with app.run_test() as pilot:
        assert app.theme == "paper"
    assert remembered_theme() == "paper"
    app = sessions_app(tmp_path)
    async with app.run_test() as pilot:
        assert app.theme == "paper"
        app.theme = "harbor"
        await pilot.pause()
    assert remembered_theme() == "harbor"


def test_follower_with_a_writer_appending_torn_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("")
    got: list[dict] = []
    f = Follower(str(tmp_path), got.extend, interval=0.05).start()
    evs = events("x", n_steps=200)
    with open(path, "a") as out:
        for e in evs:
            line = json.dumps(e) + "\n"
            cut = len(line) // 2
            out.write(line[:cut])
            out.flush()
            time.sleep(0.0005)
            out.write(line[cut:])
            out.flush()
    deadline = time.time() + 5
    while len(got) < len(evs) and time.time() < deadline:
        time.sleep(0.05)
    f.stop()
    assert got == evs  # every event once, in order
    state = RunState()
    state.add(got)
    assert len(state.series["sft"]["loss"]) == 200 and state.status == "completed"


async def test_open_a_trace_file_and_paste_one_from_the_sessions_screen(tmp_path):
    trace = tmp_path / "t.yaml"
    trace.write_text("expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: add, args: [a, 1], var: b}\n")
    app = sessions_app(tmp_path / "sessions")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("o")
        await pilot.press(*str(trace), "enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "StepperScreen"
        assert {"unknown_op", "missing_query"} <= {d.code for d in app.screen.model.report.diagnostics}
        await pilot.press("escape")
        await pilot.press("t")
        await pilot.pause()
        assert app.screen.query_one("#editor").display  # pasted text goes straight into the editor


async def test_start_a_run_from_the_form_and_watch_it_finish(tmp_path):
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(160, 50)) as pilot:
        q = app.screen.query_one
        q("#f-model-name").value = "tiny"
        await pilot.pause()
        assert q("#f-train-size").value == "64" and q("#f-eval-syn").value == "8"  # tiny's sizes, not the 135M model's
        assert q("#f-task").value == "trace"
        for field, value in {"#f-train-size": "16", "#f-gsm8k-traces": "4", "#f-epochs": "1", "#f-rl-iters": "1",
                             "#f-eval-syn": "2", "#f-eval-gsm": "0"}.items():
            q(field).value = value
        q("#f-epochs").focus()
        await pilot.press("enter")  # Enter moves to the next field; it starts nothing
        assert app.focused.id == "f-lr" and type(app.screen).__name__ == "SessionsScreen"
        q("#form").start()  # the Start button
        for _ in range(20):
            await pilot.pause(0.2)
            if type(app.screen).__name__ == "Confirm":
                break
        assert "under a minute" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("y")
        for _ in range(20):
            await pilot.pause(0.2)
            if type(app.screen).__name__ == "RunScreen":
                break
        assert type(app.screen).__name__ == "RunScreen"
        for _ in range(600):
            await pilot.pause(0.2)
            if app.screen.state.finished:
                break
        await pilot.pause(0.6)  # the next redraw
        state = app.screen.state
        assert state.finished["status"] == "completed", "\n".join(state.log)
        assert state.started["model"] == "tiny" and state.series["sft"]["loss"] and state.evals
        # the tiny preset's short lengths are its own: no alert about them
        assert not any("longer than" in str(a.get("message")) for a in state.alerts), state.alerts
        assert "completed" in str(app.screen.query_one("#run-header").render())
        app.screen.query_one("#run-tabs").active = "tab-log"
        await pilot.pause(0.3)
        log_lines = [str(line.text) for line in app.screen.query_one("#log").lines]
        assert any(line.startswith("engine │ run ") for line in log_lines), log_lines  # the engine's own output
    session = next(root.iterdir())
    saved = (session / "config.yaml").read_text()
    assert (session / "engine.log").exists() and saved.count("train_size: 16") == 1 and "max_len: 256" in saved


async def test_a_model_that_cannot_be_had_is_refused_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(160, 50)) as pilot:
        q = app.screen.query_one
        q("#f-model-name").value = "nobody/no-such-model-xyz"
        q("#form").start()
        for _ in range(20):
            await pilot.pause(0.2)
            if "-invalid" in q("#f-model-name").classes:
                break
        assert "-invalid" in q("#f-model-name").classes and type(app.screen).__name__ == "SessionsScreen"
    assert not root.exists()


async def test_the_form_starts_from_a_checkpoint_only_when_it_is_one(tmp_path):
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(160, 50)) as pilot:
        q = app.screen.query_one
        form = q("#form")
        sets, errors = form.settings()
        assert not errors and not any(s.startswith("model.init_from") for s in sets)  # empty: the model as it is
        q("#f-variants").value = "1"
        q("#f-init-from").value = str(tmp_path)  # a folder, but no state.pt in it
        form.start()
        for _ in range(20):
            await pilot.pause(0.2)
            if "-invalid" in q("#f-init-from").classes:
                break
        assert "-invalid" in q("#f-init-from").classes and type(app.screen).__name__ == "SessionsScreen"
        (tmp_path / "state.pt").write_bytes(b"")
        sets, errors = form.settings()
        assert not errors and f"model.init_from={tmp_path}" in sets and "data.gsm8k_variants=1" in sets
    assert not root.exists()


async def test_n_then_enter_starts_nothing_and_start_asks_first_with_the_estimated_time(tmp_path):
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("n")
        assert app.focused.id == "f-model-name"
        await pilot.press("enter")
        deadline = time.monotonic() + 60  # focus moves after the key is handled: later on a busy machine
        while app.focused.id != "f-layers" and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert app.focused.id == "f-layers" and type(app.screen).__name__ == "SessionsScreen"
        app.screen.query_one("#form").start()
        for _ in range(20):
            await pilot.pause(0.2)
            if type(app.screen).__name__ == "Confirm":
                break
        question = str(app.screen.query_one("#confirm-question").render())
        assert "about 39 minutes on a 2-core CPU" in question and re.search(r"checkpoint ~9\d\d\.\d MiB", question), question
        await pilot.press("n")
        deadline = time.monotonic() + 60  # the dialog's dismissal is handled later on a busy machine
        while (type(app.screen).__name__ != "SessionsScreen" or app.focused is None) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "SessionsScreen"
        assert app.focused.id == "f-layers"  # back where it was in the form, not on the list


async def test_after_cancel_a_second_enter_asks_again_instead_of_opening_the_example(tmp_path):
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await pilot.pause(0.3)
        app.screen.query_one("#start").focus()
        for _ in range(2):
            await pilot.press("enter")  # the Start button
            for _ in range(20):
                await pilot.pause(0.2)
                if type(app.screen).__name__ == "Confirm":
                    break
            assert type(app.screen).__name__ == "Confirm"
            await pilot.press("n")
            await pilot.pause(0.3)
            assert type(app.screen).__name__ == "SessionsScreen" and app.focused.id == "start"
    assert not root.exists()  # cancelled: no run, no session folder


async def test_ctrl_s_starts_from_any_field_of_the_form_and_asks_first(tmp_path):
    """The Start button is the form's last widget: ctrl+s reaches it from the field being typed in."""
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        deadline = time.monotonic() + 60
        while (app.focused is None or app.focused.id != "f-model-name") and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.press("ctrl+s")
        deadline = time.monotonic() + 60  # the model check runs in a worker first
        while type(app.screen).__name__ != "Confirm" and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert type(app.screen).__name__ == "Confirm"
        await pilot.press("n")
    assert not root.exists()  # asked, and cancelled: nothing started


async def test_a_newcomer_sees_the_recorded_example_and_cannot_send_it_requests(tmp_path):
    from workbench.examples import ROOT

    before = sorted(p.name for p in (ROOT / "default-run").iterdir())
    app = sessions_app(tmp_path / "none-yet")
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one("#sessions")
        assert table.row_count == 2 and [str(table.get_row_at(i)[1]) for i in range(2)] == ["example", "example"]
        await pilot.press("enter")
        await pilot.pause(1.0)
        screen = app.screen
        assert type(screen).__name__ == "RunScreen"
        assert screen.state.status == "completed" and screen.state.samples and screen.state.evals
        assert {e["set"] for e in screen.state.evals} == {"synthetic", "gsm8k"}
        await pilot.press("s")
        await pilot.pause(0.3)
    assert sorted(p.name for p in (ROOT / "default-run").iterdir()) == before  # no request file left behind


def test_engine_ls_never_lists_the_example(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "engine", "ls", "--root", str(tmp_path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0 and "example" not in out.stdout


async def test_samples_keep_arriving_past_the_cap_and_enter_opens_the_highlighted_one(tmp_path):
    from workbench.runstate import MAX_SAMPLES

    from .sessions_fixture import TRACE_BAD, TRACE_OK

    folder = write_session(tmp_path, "many", finished=False)
    n = MAX_SAMPLES + 120

    def append(first: int, last: int) -> None:
        with open(folder / "events.jsonl", "a") as f:
            for i in range(first, last):
                f.write(json.dumps({"kind": "sample", "t": time.time(), "phase": "eval", "step": i, "question": f"Q{i}",
                                    "text": TRACE_BAD if i % 7 == 0 else TRACE_OK, "reward": 1.0, "outcome": "correct",
                                    "codes": []}) + "\n")

    append(0, MAX_SAMPLES)
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(1.0)
        app.screen.query_one("#run-tabs").active = "tab-samples"
        append(MAX_SAMPLES, n)  # more arrive while the screen is open, past the cap
        await pilot.pause(1.5)
        s = app.screen
        table = s.query_one("#samples")
        assert table.row_count == MAX_SAMPLES
        assert str(table.get_row_at(0)[-1]) == f"Q{n - 1}"  # the newest arrived, on top
        table.focus()
        bad = (n - 1) // 7 * 7  # a TRACE_BAD one, among the newest
        row = next(r for r in range(table.row_count) if str(table.get_row_at(r)[-1]) == f"Q{bad}")
        table.move_cursor(row=row)
        await pilot.press("enter")
        assert type(app.screen).__name__ == "StepperScreen"
        assert app.screen.model.text == TRACE_BAD
        assert f"Q: Q{bad}" in str(app.screen.query_one("#stepper-header").render())  # the question beside its trace


async def test_number_keys_and_brackets_switch_tabs(tmp_path):
    folder = write_session(tmp_path, "tabs")
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        tabs = app.screen.query_one("#run-tabs")
        seen = []
        for key in ("2", "3", "right_square_bracket", "left_square_bracket", "1"):
            await pilot.press(key)
            await pilot.pause()
            seen.append(tabs.active)
        assert seen == ["tab-charts", "tab-evals", "tab-samples", "tab-evals", "tab-overview"]


def test_progress_follows_the_newest_of_metrics_and_heartbeats():
    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 1.0, "model": "m"},
           {"kind": "metrics", "t": 2.0, "phase": "sft", "step": 225, "total": 225, "loss": 0.1, "step_time": 3.0}])
    assert s.progress() == ("sft", 225, 225)
    s.add([{"kind": "heartbeat", "t": 3.0, "phase": "eval", "set": "gsm8k", "step": 64, "total": 300}])
    assert s.progress() == ("eval gsm8k", 64, 300)  # an evaluation reports itself only through heartbeats
    s.add([{"kind": "heartbeat", "t": 4.0, "phase": "rl", "stage": "rollouts", "step": 0, "total": 6}])
    assert s.progress() == ("rl rollouts", 0, 6)
    s.add([{"kind": "metrics", "t": 5.0, "phase": "rl", "step": 1, "total": 6, "reward": 0.5}])
    assert s.progress() == ("rl", 1, 6)


def test_the_rl_line_reads_ties_and_flat_rewards_in_plain_words():
    from workbench.runstate import rl_reading

    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 1.0, "config": {"rl": {"questions": 16}}}])
    assert rl_reading(s) == ""
    s.add([{"kind": "metrics", "t": 2.0, "phase": "rl", "step": 1, "total": 6, "reward": 0.5, "tied_groups": 0.75,
            "completion_length": 170.0, "completion_length_max": 300.0, "entropy": 0.1}])
    line = rl_reading(s)
    assert "tied groups 75%" in line and "length 170/300" in line and "12 of 16 groups tied: no learning signal" in line
    s.add([{"kind": "metrics", "t": 2.0 + i, "phase": "rl", "step": i, "total": 6, "reward": 0.6, "tied_groups": 0.25}
           for i in range(2, 7)])
    assert "reward flat for 5 iterations" in rl_reading(s)
    s.add([{"kind": "metrics", "t": 9.0, "phase": "rl", "step": 7, "total": 8, "reward": 0.7, "rollout_time": 30.0,
            "update_time": 10.0}])
    assert "time 75% rollouts, 25% update" in rl_reading(s)  # where the iteration's time went


async def test_the_cursor_stays_on_its_run_when_a_new_session_appears(tmp_path):
    write_session(tmp_path, "older", t0=time.time() - 7200)
    write_session(tmp_path, "middle", t0=time.time() - 3600)
    app = sessions_app(tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one("#sessions")
        table.move_cursor(row=1)
        assert app.screen._selected().endswith("older")
        write_session(tmp_path, "newest", t0=time.time() - 60)  # listed first: every row below moves down
        app.screen.action_refresh()
        for _ in range(20):
            await pilot.pause(0.1)
            if table.row_count == 5:
                break
        assert table.row_count == 5 and app.screen._selected().endswith("older")


async def test_log_lines_keep_arriving_past_the_lines_the_state_keeps(tmp_path):
    from workbench.runstate import MAX_LOG

    folder = write_session(tmp_path, "chatty", finished=False)

    def alerts(first: int, last: int) -> None:
        with open(folder / "events.jsonl", "a") as f:
            for i in range(first, last):
                f.write(json.dumps({"kind": "alert", "t": time.time(), "level": "info", "message": f"note {i}"}) + "\n")

    alerts(0, MAX_LOG + 50)
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(1.0)
        app.screen.query_one("#run-tabs").active = "tab-log"
        alerts(MAX_LOG + 50, MAX_LOG + 55)
        await pilot.pause(1.5)
        lines = [str(line.text) for line in app.screen.query_one("#log").lines]
        assert lines[-1].endswith(f"note {MAX_LOG + 54}")


async def test_a_killed_run_reads_died_and_a_failed_one_says_why_in_the_header(tmp_path):
    killed = write_session(tmp_path, "killed", finished=False)
    status = json.loads((killed / "status.json").read_text())
    import socket

    (killed / "status.json").write_text(json.dumps({**status, "status": "running", "pid": 4_000_000 - 7,
                                                    "host": socket.gethostname()}))
    failed = write_session(tmp_path, "failed", finished=False)
    with open(failed / "events.jsonl", "a") as f:
        f.write(json.dumps({"kind": "run_finished", "t": time.time(), "status": "failed", "error": "OutOfMemoryError: 9 GiB"}) + "\n")
    for folder, want in ((killed, "died"), (failed, "OutOfMemoryError: 9 GiB")):
        app = attach_app(str(folder))
        async with app.run_test(size=(160, 45)) as pilot:
            for _ in range(30):
                await pilot.pause(0.1)
                if want in str(app.screen.query_one("#run-header").render()):
                    break
            header = str(app.screen.query_one("#run-header").render())
            assert want in header
            if want == "died":  # its clock stopped with its last event (202 s after its first), and it has no ETA
                from workbench.widgets.text import duration

                assert f"elapsed {duration(202)}" in header and "eta" not in header, header
                # resumed (by `engine train --resume`, here or elsewhere) while open: it lives again
                from engine.session import Session

                session = Session(folder)
                session.lock()  # this process stands in for the resumed engine
                try:
                    with open(folder / "events.jsonl", "a") as f:  # an earlier resume, delivered late: still dead
                        f.write(json.dumps({"kind": "run_started", "t": app.screen.state.died_t - 50, "run": "killed",
                                            "resumed": True, "stages": ["sft", "eval:sft"]}) + "\n")
                    await pilot.pause(1.0)
                    assert "died" in str(app.screen.query_one("#run-header").render())
                    with open(folder / "events.jsonl", "a") as f:
                        f.write(json.dumps({"kind": "run_started", "t": time.time(), "run": "killed", "resumed": True,
                                            "stages": ["sft", "eval:sft"]}) + "\n")
                    for _ in range(30):
                        await pilot.pause(0.1)
                        if "died" not in str(app.screen.query_one("#run-header").render()):
                            break
                    await pilot.pause(2.5)  # past the next liveness check: the lock is held, it stays alive
                    header = str(app.screen.query_one("#run-header").render())
                    assert "died" not in header and "engine stopped" not in header, header
                finally:
                    session.unlock()


def test_overview_reads_stages_drops_and_the_machine():
    from workbench.widgets.overview import eval_panel, nice_ticks, stages_line, system_line

    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 1.0, "model": "m", "stages": ["eval:start", "sft", "eval:sft", "rl", "eval:rl"]},
           {"kind": "eval", "t": 2.0, "set": "synthetic", "at": "sft", "accuracy": 0.5, "parse_rate": 1, "valid_rate": 1,
            "by_expert": {"composition": {"correct": 3, "total": 3}, "arithmetic": {"correct": 1, "total": 3}}},
           {"kind": "metrics", "t": 3.0, "phase": "rl", "step": 1, "total": 4, "reward": 0.5},
           {"kind": "heartbeat", "t": 4.0, "phase": "eval", "at": "rl", "set": "synthetic", "step": 12, "total": 34,
            "system": {"cpu": 180.0, "mem": 9.1, "mem_total": 24.0, "gpu": 87.0, "gpu_mem": 30.2, "gpu_mem_total": 80.0}}])
    line = stages_line(s)
    lit = [str(line)[span.start:span.end] for span in line.spans if "reverse" in str(span.style)]
    assert lit == [" eval:rl "]  # the current stage, from the heartbeat that says where the run is
    s.add([{"kind": "eval", "t": 5.0, "set": "synthetic", "at": "rl", "accuracy": 0.5, "parse_rate": 1, "valid_rate": 1,
            "by_expert": {"composition": {"correct": 0, "total": 3}, "arithmetic": {"correct": 3, "total": 3}}}])
    from rich.console import Console

    console = Console(width=80, record=True, color_system="truecolor")
    console.print(eval_panel(s))
    text = console.export_text()
    assert "composition" in text and "0/3" in text and "▼ 3/3" in text and "▲ 1/3" in text  # 3/3 -> 0/3 says so
    before = {str(c): str(c.style) for c in eval_panel(s).columns[2]._cells if str(c)}
    assert "red" in before["▼ 3/3"] and "green" in before["▲ 1/3"]  # a drop in red, a rise in green
    assert "CPU 180%" in str(system_line(s)) and "GPU 87%" in str(system_line(s)) and "30.2/80 GiB" in str(system_line(s))
    assert nice_ticks(0.013, 1.87) == [0.0, 0.5, 1.0, 1.5, 2.0] and nice_ticks(150, 320) == [150, 200, 250, 300, 350]


async def test_the_overview_is_the_first_tab_and_plots_rl_on_its_own_axes(tmp_path):
    folder = write_session(tmp_path, "ov")
    app = attach_app(str(folder))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.8)
        assert app.screen.query_one("#run-tabs").active == "tab-overview"
        sft = app.screen.query_one("#ov-sft").plt
        reward = app.screen.query_one("#ov-reward").plt
        # SFT loss by SFT step; RL reward by RL iteration: two figures, neither shares the other's x axis
        assert "loss" in str(app.screen.query_one("#ov-sft-legend").render())
        assert "reward" in str(app.screen.query_one("#ov-reward-legend").render())
        assert sft is not reward


def test_the_samples_filter_reads_keys_and_text():
    from workbench.runstate import sample_matches

    e = {"phase": "eval", "set": "gsm8k", "expected_expert": "composition", "outcome": "wrong_answer",
         "codes": ["overwrite", "unused_value"], "question": "Tom has 3 apples", "text": "expert: arithmetic"}
    assert sample_matches(e, "") and sample_matches(e, "code:over set:gsm") and sample_matches(e, "outcome:wrong apples")
    assert not sample_matches(e, "code:undefined") and not sample_matches(e, "expert:arith") and not sample_matches(e, "pears")


async def test_samples_newest_first_filtered_and_followed(tmp_path):
    folder = write_session(tmp_path, "feed", finished=False)
    with open(folder / "events.jsonl", "a") as f:
        for i in range(30):
            f.write(json.dumps({"kind": "sample", "t": time.time(), "phase": "eval", "step": i, "set": "gsm8k" if i % 2 else "synthetic",
                                "question": f"Q{i}", "text": "x", "reward": 0.7, "outcome": "wrong_answer" if i % 3 else "correct",
                                "codes": ["overwrite"] if i % 5 == 0 else [], "answer": i, "expected_answer": "7"}) + "\n")
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.8)
        s = app.screen
        s.query_one("#run-tabs").active = "tab-samples"
        await pilot.pause()
        table = s.query_one("#samples")
        table.focus()
        newest = str(table.get_row_at(0)[-1])
        await pilot.press("slash", *"code:overwrite", "enter")
        await pilot.pause(0.3)
        rows = [table.get_row_at(r) for r in range(table.row_count)]
        assert [str(r[-1]) for r in rows[:6]] == [f"Q{i}" for i in (25, 20, 15, 10, 5, 0)]  # newest first
        assert all("overwrite" in str(r[-2]) for r in rows)  # only those with the code (the fixture's own too)
        assert s.query_one("#samples-filter").has_focus  # Enter keeps the focus in the filter
        await pilot.press("down")  # ↓ goes to the filtered list
        assert table.has_focus
        await pilot.press("slash", *" set:zzz")
        await pilot.pause(0.3)
        assert table.row_count == 0 and "no sample matches" in str(s.query_one("#samples-status").render())
        await pilot.press("escape")  # clears the filter, back to the table
        await pilot.pause(0.3)
        assert table.row_count > 6 and table.has_focus and str(table.get_row_at(0)[-1]) == newest
        header = [str(c.label) for c in table.columns.values()]
        assert {"answer", "expected", "set"} <= set(header)


async def test_the_filter_keeps_the_focus_on_enter_leaves_on_escape_and_says_when_nothing_matches(tmp_path):
    write_session(tmp_path, "alpha")
    app = sessions_app(tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one("#sessions")
        await pilot.press("slash", *"zzz")
        await pilot.pause(0.3)
        assert "no session matches 'zzz'" in str(app.screen.query_one("#sessions-note").render())
        await pilot.press("enter")
        assert app.screen.query_one("#filter").has_focus  # Enter keeps the focus: typing goes on filtering
        await pilot.press("down")
        assert table.has_focus  # ↓ goes to the filtered list
        await pilot.press("slash", "escape")
        await pilot.pause(0.3)
        assert table.has_focus and not app.screen.query_one("#filter").display and table.row_count == 3  # alpha + the two examples
    app = sessions_app(tmp_path / "empty")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        note = str(app.screen.query_one("#sessions-note").render())
        assert "press n" in note and "engine train" in note  # the empty list says how to start


async def test_every_action_is_in_the_command_palette_and_the_footer_shows_each_key_once(tmp_path):
    folder = write_session(tmp_path, "pal", finished=False)
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Stop", "Checkpoint", "Smooth", "Help", "Back", "Samples tab"} <= set(titles)
        helps = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert "checkpoint first" in helps["Stop"] and helps["Stop"].startswith("key: s")  # the short word, said whole
        assert titles.count("Quit") == 1 and "Keys" not in titles  # Textual's generic keys panel: `?` is ours
        from textual.widgets._footer import FooterKey

        deadline = time.monotonic() + 60  # the footer draws after the screen mounts: later on a busy machine
        while not list(app.screen.query(FooterKey)) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        keys = [k.key for k in app.screen.query(FooterKey)]
        assert keys.count("ctrl+p") == 1 and len(keys) == len(set(keys)), keys  # each key once
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"


def test_rollout_progress_shows_while_rl_samples_and_not_after():
    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 1.0, "model": "m"},
           {"kind": "heartbeat", "t": 2.0, "phase": "rl", "step": 2, "total": 6, "stage": "rollouts", "done": 8, "of": 16}])
    assert s.rows_progress() == "rollouts 8/16"
    s.add([{"kind": "metrics", "t": 3.0, "phase": "rl", "step": 3, "total": 6, "reward": 0.5}])
    assert s.rows_progress() == ""  # the iteration ended: its rollouts are done


def test_the_whole_run_eta_adds_the_stages_still_to_come():
    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 0.0, "model": "m", "stages": ["sft", "eval:sft", "rl", "eval:rl"],
            "config": {"eval": {"synthetic": 200, "gsm8k": 300}}},
           {"kind": "metrics", "t": 10.0, "phase": "sft", "step": 1, "total": 2, "step_time": 10.0, "loss": 1.0}])
    assert s.run_eta(now=10.0) is None  # no evaluation done yet: the run's end cannot be told
    s.add([{"kind": "metrics", "t": 20.0, "phase": "sft", "step": 2, "total": 2, "step_time": 10.0, "loss": 0.5},
           {"kind": "heartbeat", "t": 30.0, "phase": "eval", "at": "sft", "set": "synthetic", "step": 0, "total": 200},
           {"kind": "eval", "t": 130.0, "set": "synthetic", "at": "sft", "accuracy": 0.5, "parse_rate": 1, "valid_rate": 1},
           {"kind": "heartbeat", "t": 130.0, "phase": "eval", "at": "sft", "set": "gsm8k", "step": 150, "total": 300}])
    assert s.run_eta(now=130.0) is None  # RL not started: no pace to go by
    assert abs(s._eval_left("eval:sft", 130.0) - 100.0 * 0.25 / 0.75) < 1e-6  # 1.5 of 2 sets in 100 s
    s.add([{"kind": "eval", "t": 230.0, "set": "gsm8k", "at": "sft", "accuracy": 0.1, "parse_rate": 1, "valid_rate": 1},
           {"kind": "metrics", "t": 260.0, "phase": "rl", "step": 1, "total": 4, "step_time": 30.0, "reward": 0.5}])
    # RL: 3 iterations of 30 s left, then an evaluation as long as the first (30 -> 230 s)
    assert s.run_eta(now=260.0) == 3 * 30.0 + 200.0


async def test_a_heartbeat_leaves_the_evaluations_cursor_where_it_is_and_the_clock_ticks(tmp_path):
    from engine.session import Session

    folder = write_session(tmp_path, "hb", finished=False)
    session = Session(folder)
    session.lock()  # a live run holds its session: this process stands in for its engine
    app = attach_app(str(folder))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.8)
        s = app.screen
        s.query_one("#run-tabs").active = "tab-evals"
        await pilot.pause(0.3)
        table = s.query_one("#evals")
        table.focus()
        table.cursor_type = "cell"
        table.move_cursor(row=1, column=4)
        with open(folder / "events.jsonl", "a") as f:
            f.write(json.dumps({"kind": "heartbeat", "t": time.time(), "phase": "rl", "step": 3, "total": 5}) + "\n")
        await pilot.pause(1.0)
        assert table.cursor_coordinate == (1, 4)  # not reset to column 0 by a heartbeat
        before = str(s.query_one("#run-header").render())
        await pilot.pause(2.2)
        assert str(s.query_one("#run-header").render()) != before  # elapsed moved with no event
        assert "died" not in before  # a live run's clock (a dead one's stops at its last event)
    session.unlock()


async def test_help_names_keys_as_typed_and_lists_widget_keys_and_the_palette_once(tmp_path):
    write_session(tmp_path, "r")
    app = attach_app(str(tmp_path / "r"))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("question_mark")
        keys = dict(app.screen.bindings)
        assert "[" in keys and "]" in keys and not any("square_bracket" in k or "question_mark" in k for k in keys)
        assert "f" in keys and "/" in keys and "ctrl+p" in keys  # the samples' follow and filter; the palette
        assert "esc" in keys and "tab" in keys and all(k.isprintable() for k in keys)  # named, never a raw ESC
        assert "s" not in keys  # a finished run has nothing to stop
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("Help") == 1


async def test_a_finished_run_offers_no_stop_or_checkpoint_and_follows_nothing(tmp_path):
    write_session(tmp_path, "done")
    write_session(tmp_path, "live", finished=False)
    for run, finished in (("done", True), ("live", False)):
        app = attach_app(str(tmp_path / run))
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause(0.5)
            footer_keys = {b.binding.key for b in app.screen.active_bindings.values() if b.enabled and b.binding.show}
            assert ("s" in footer_keys and "k" in footer_keys) != finished
            await pilot.press("4")
            await pilot.pause(0.3)
            status = str(app.screen.query_one("#samples-status").render())
            assert ("following the newest" in status) != finished


async def test_a_tab_key_puts_the_focus_in_its_pane_and_leaving_a_run_gives_the_list_its_keys_back(tmp_path):
    app = sessions_app(tmp_path / "none-yet")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("n")  # into the form, as a run would be started from it
        assert app.focused.id == "f-model-name"
        await pilot.press("escape")  # Esc leaves the form
        assert app.focused.id == "sessions"
        await pilot.press("n")
        app.screen.query_one("#sessions").focus()
        await pilot.press("enter")  # the recorded example
        await pilot.pause(1.0)
        assert type(app.screen).__name__ == "RunScreen"
        await pilot.press("4", "slash")  # Samples, then its filter at once (no Tab first)
        await pilot.pause()
        assert app.focused.id == "samples-filter"
        await pilot.press("escape")
        await pilot.press("escape")  # back to the list
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "SessionsScreen" and app.focused.id == "sessions"
        await pilot.press("c")
        assert app.screen.query_one("#f-model-name").value == "smollm2-135m-instruct"  # no "c" typed into the form


async def test_at_100x30_the_list_shows_what_a_user_scans_for_and_the_run_header_is_one_line(tmp_path):
    write_session(tmp_path, "run-a")
    app = sessions_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        table = app.screen.query_one("#sessions")
        assert [str(c.label) for c in table.columns.values()] == ["run", "status", "progress", "ends", "best"]
        row = [str(c) for c in table.get_row_at(0)]
        assert row == ["run-a", "completed", "done", "", "75.0%"]
        await pilot.press("enter")
        await pilot.pause(0.8)
        header = app.screen.query_one("#run-header")
        lines = str(header.render()).splitlines()
        assert len(lines) == 1 and len(lines[0]) <= 100 and "run-a" in lines[0] and "completed" in lines[0]
        await pilot.resize_terminal(160, 48)
        await pilot.pause(0.3)
        assert "trained" in str(app.screen.query_one("#run-header").render())  # room again: every part


async def test_the_samples_tab_previews_the_selected_sample_whole(tmp_path):
    folder = write_session(tmp_path, "preview")
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("4")
        await pilot.pause(0.3)
        table = app.screen.query_one("#samples")
        preview = lambda: str(app.screen.query_one("#sample-preview").render())
        first = app.screen.state.samples[-1]  # newest first
        assert f"Q: {first['question']}" in preview() and first["outcome"] in preview()
        await pilot.press("down")
        await pilot.pause(0.2)
        second = next(e for e in app.screen.state.samples if e["seq"] == table.highlighted())
        assert second is not first and "overwrite query_init_only" in preview()  # its diagnostic codes
        assert "expert: arithmetic" in preview()  # what it wrote, whole


async def test_the_stepper_tour_example_teaches_the_failures_on_first_start(tmp_path):
    app = sessions_app(tmp_path / "none-yet")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("down", "enter")  # the second example: the tour
        await pilot.pause(1.0)
        state = app.screen.state
        codes = {c for e in state.samples for c in e["codes"]}
        assert {"overwrite", "missing_query", "template_loop", "truncated", "unknown_op"} <= codes
        await pilot.press("4")
        await pilot.pause(0.3)
        table = app.screen.query_one("#samples")
        overwrite = next(e["seq"] for e in state.samples if "overwrite" in e["codes"])
        while table.highlighted() != overwrite:
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause(0.5)
        assert type(app.screen).__name__ == "StepperScreen"
        assert "overwrite" in {d.code for d in app.screen.model.report.diagnostics}


def test_the_engines_own_output_is_read_by_a_thread_never_by_the_screen(tmp_path):
    import threading

    from workbench.follow import LogTail

    log = tmp_path / "engine.log"
    log.write_text("first line\npartial")
    got, threads = [], []
    tail = LogTail(log, lambda lines: got.append(lines) or threads.append(threading.current_thread().name), interval=0.05).start()
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        time.sleep(0.05)
    with open(log, "a") as f:
        f.write(" ends here\nthird\n")
    while len(got) < 2 and time.time() < deadline:
        time.sleep(0.05)
    tail.stop()
    assert got == [["first line"], ["partial ends here", "third"]]  # whole lines only, a half line waits
    assert all(name.startswith("tail ") for name in threads) and threading.main_thread().name not in threads


@pytest.mark.parametrize("args", [[], ["trace", "TRACE"], ["trace", "-"], ["attach", "SESSION"]])
def test_without_a_terminal_the_workbench_refuses_at_once(tmp_path, args):
    """Standard input at its end and output a pipe (a script, cron): one line on stderr and a non-zero
    exit, never escape codes in the pipe or a core kept busy until someone kills it."""
    import subprocess
    import sys

    trace = tmp_path / "t.yaml"
    trace.write_text("expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1}\n- {op: query, var: a}\n")
    session = write_session(tmp_path, "run-a")
    argv = [{"TRACE": str(trace), "SESSION": str(session)}.get(a, a) for a in args]
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--root", str(tmp_path), *argv], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL, start_new_session=True)  # no /dev/tty either
    assert out.returncode == 2 and out.stdout == "", out.stdout[:200]
    assert len(out.stderr.splitlines()) == 1 and "not a terminal" in out.stderr, out.stderr


def test_an_unknown_theme_is_refused_and_the_remembered_one_kept(tmp_path):
    import os
    import subprocess
    import sys

    from workbench.themes import remember_theme

    remember_theme("paper")
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--theme", "neon"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL, env=os.environ.copy())
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    listed = out.stderr.split("themes: ")[1].strip().split(", ")
    assert {"harbor", "paper", "nord", "dracula"} <= set(listed)  # the palette's themes, one list
    assert remembered_theme() == "paper"


async def test_typing_the_filter_syntax_after_enter_never_stops_or_checkpoints_a_run(tmp_path):
    """`/`, a filter, Enter, then more filter (`set:synthetic` holds an `s` and a `k`... and `s`
    is stop): every key stays in the filter, and nothing is requested of the run."""
    folder = write_session(tmp_path, "live", finished=False)
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.6)
        await pilot.press("4", "slash", *"outcome:wrong", "enter", *" set:synthetic ok", "enter")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        assert type(app.screen).__name__ == "RunScreen"  # no stop dialog either
        assert app.screen.query_one("#samples-filter").value == "outcome:wrong set:synthetic ok"
        assert not (folder / "stop").exists() and not (folder / "checkpoint-now").exists()


async def test_dialogs_open_on_the_safe_answer(tmp_path):
    """Enter on a dialog that could lose work or take the machine keeps things as they are:
    the stop dialog keeps the run (above), the new-run dialog starts nothing."""
    root = tmp_path / "sessions"
    app = sessions_app(root)
    async with app.run_test(size=(160, 50)) as pilot:
        app.screen.query_one("#f-model-name").value = "tiny"
        await pilot.pause()
        app.screen.query_one("#form").start()
        for _ in range(20):
            await pilot.pause(0.2)
            if type(app.screen).__name__ == "Confirm":
                break
        assert app.focused.id == "no"
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "SessionsScreen" and not root.exists()


async def test_help_lists_the_apps_own_keys_by_their_names(tmp_path):
    """`?` on the run screen: the tabs by name, the workbench's own keys, none of the generic ones
    a table or a log inherits from Textual."""
    folder = write_session(tmp_path, "keys")
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        keys = dict(app.screen.bindings)
        assert keys["1"] == "Overview tab" and keys["4"] == "Samples tab" and keys["/"] == "Filter samples"
        descriptions = set(keys.values())
        assert not {"Scroll Left", "Page Left", "Page Right", "Cursor up", "Top"} & descriptions, descriptions
        assert not any(d.startswith("Tab ") for d in descriptions)
        assert "ctrl+pagedown" not in keys


def test_the_time_estimate_counts_a_cpu_that_is_already_busy():
    import os

    from workbench.widgets.new_run import estimate

    sets = ["model.name=tiny"]
    idle = estimate(sets, "tiny", load=0.0)
    assert "busy" not in idle and "while that lasts" not in idle
    cores = os.cpu_count() or 2
    busy = estimate([], "smollm2-135m-instruct", load=float(cores))
    assert f"busy (load {cores:.1f} on {cores} cores)" in busy
    import re

    alone, shared = [int(m) for m in re.findall(r"about (\d+) minutes", busy)]
    assert shared >= 1.8 * alone  # all cores already taken: about twice as long
    other = estimate([], "smollm2-135m-instruct", running=["run-a"])
    assert "1 run still training here (run-a)" in other


def test_the_start_dialog_gives_a_small_checkpoint_in_mib_not_zero_gib():
    from workbench.widgets.new_run import estimate

    said = estimate(["model.name=tiny"], "tiny")
    assert "0.0 GiB" not in said and re.search(r"Each checkpoint ~\d+\.\d MiB", said), said


async def test_the_start_dialog_says_when_the_cpu_is_busy(tmp_path, monkeypatch):
    import workbench.widgets.new_run as new_run

    monkeypatch.setattr(new_run, "cpu_load", lambda: 4.0)
    app = sessions_app(tmp_path / "sessions")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        app.screen.query_one("#form").start()
        for _ in range(20):
            await pilot.pause(0.2)
            if type(app.screen).__name__ == "Confirm":
                break
        question = str(app.screen.query_one("#confirm-question").render())
        assert "already busy (load 4.0" in question and "while that lasts" in question, question


def _sft_only(folder, steps=180):
    """A run still in SFT, its metrics as the engine writes them (docs/events.md): loss, lr,
    tokens_per_s, grad_norm. The loss falls from 2.75 to ~0.25 over the first steps."""
    import math

    folder.mkdir(parents=True)
    t = time.time() - 900
    evs = [{"kind": "run_started", "t": t, "schema": 1, "run": folder.name, "model": "tiny", "device": "cpu",
            "config": {}, "stages": ["sft", "rl"]}]
    evs += [{"kind": "metrics", "t": t + s, "phase": "sft", "step": s, "total": 400, "loss": 0.25 + 2.5 * math.exp(-s / 6),
             "lr": 1e-4, "tokens_per_s": 900.0 + s, "step_time": 1.0, "grad_norm": 1.5} for s in range(1, steps + 1)]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))
    return folder


def _plot_text(screen, plot_id: str) -> str:
    return str(screen.query_one(f"#{plot_id}").render())


async def test_during_sft_the_overview_shows_what_sft_has_and_the_loss_axis_follows_recent_steps(tmp_path):
    folder = _sft_only(tmp_path / "sft")
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.8)
        s = app.screen
        titles = [_plot_text(s, p).splitlines()[0].strip() for p in ("ov-reward", "ov-signals", "ov-length")]
        assert titles == ["SFT tokens/s", "SFT gradient norm", "SFT learning rate"], titles
        assert "nothing yet" not in " ".join(titles)
        loss = _plot_text(s, "ov-sft")
        y_labels = {line.split("┤")[0].strip() for line in loss.splitlines() if "┤" in line}
        assert "2" not in y_labels and "3" not in y_labels, y_labels  # not the first steps' 0-3: the recent ~0.25
        assert "recent" in str(s.query_one("#ov-sft-legend").render())


async def test_chart_axes_show_whole_steps_and_no_negative_zero(tmp_path):
    folder = tmp_path / "axes"
    folder.mkdir()
    t = time.time() - 900
    evs = [{"kind": "run_started", "t": t, "model": "tiny", "device": "cpu", "config": {}, "stages": ["sft", "rl"]}]
    evs += [{"kind": "metrics", "t": t + s, "phase": "sft", "step": s, "total": 141, "loss": 0.001 * (s % 3 - 1)}
            for s in range(1, 142)]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.6)
        await pilot.press("2")
        await pilot.pause(0.6)
        text = _plot_text(app.screen, "loss-plot")
        lines = text.splitlines()
        x_axis = next(lines[i + 1] for i, line in enumerate(lines) if line.lstrip().startswith("└"))
        labels = x_axis.split()
        assert labels and all(lab.isdigit() for lab in labels), labels  # 0 50 100 150, never 70.5
        y_labels = [line.split("┤")[0].strip() for line in lines if "┤" in line]
        assert "-0" not in y_labels and "-0.0" not in y_labels and "0" in y_labels, y_labels


async def test_the_log_tab_shows_each_alert_once_for_a_run_started_here(tmp_path):
    from workbench.messages import EngineOutput

    folder = write_session(tmp_path, "echo", finished=False)
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.6)
        # what `engine train --plain` prints for the fixture's alert, as engine.log holds it
        app.screen.post_message(EngineOutput(["alert (warning): no parseable output in the gsm8k evaluation",
                                              "sft 1/4  loss 10.81  tokens_per_s 957.9"]))
        await pilot.press("5")
        await pilot.pause(0.6)
        log = "\n".join(line.text for line in app.screen.query_one("#log").lines)
        assert log.count("no parseable output in the gsm8k evaluation") == 1, log
        assert "engine │ sft 1/4" in log  # the engine's own lines still come through


async def test_the_clock_of_a_run_started_here_runs_from_the_launch(tmp_path):
    """Before the engine's first event (loading torch takes seconds) the header's clock already runs."""
    import subprocess
    import sys

    from workbench.screens.run import RunScreen
    from workbench.app import Workbench

    folder = tmp_path / "new"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        app = Workbench(lambda: RunScreen(str(folder), process=proc))
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause(0.3)
            s = app.screen
            assert not s.state.started and s.state.first_t is not None
            s.state.first_t = time.time() - 65  # as if launched 65 s ago (the app's start may take seconds on a busy machine)
            s._tick()
            assert re.search(r"elapsed 0:01:0\d", str(s.query_one("#run-header").render()))  # 65 s and the moment since
            # the engine dies before writing any event: the clock stops where its death was seen
            proc.kill()
            for _ in range(100):  # the exit is posted once the follower has caught up (3 s at most)
                await pilot.pause(0.1)
                if s.engine_error:
                    break
            assert s.engine_error and s.state.died_t is not None
            stopped = s.state.elapsed(died=True)
            assert stopped == s.state.elapsed(now=time.time() + 3600, died=True)  # an hour later: the same
            s._show_header()
            header = str(s.query_one("#run-header").render())
            assert "died" in header and "starting engine" not in header, header
    finally:
        proc.kill()
        proc.wait()


async def test_samples_at_100_columns_show_whole_numbers_or_a_visible_cut_and_the_failure_code():
    from workbench.examples import ROOT

    for example in ("default-run", "stepper-tour"):
        events = [json.loads(line) for line in (ROOT / example / "events.jsonl").read_text().splitlines()]
        samples = [e for e in events if e["kind"] == "sample"][::-1]  # the table lists the newest first
        app = attach_app(str(ROOT / example))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.8)
            app.screen.query_one("#run-tabs").active = "tab-samples"
            await pilot.pause(0.5)
            table = app.screen.query_one("#samples")
            header = [str(c.label) for c in table.columns.values()]
            assert {"outcome", "answer", "expected", "codes"} <= set(header), header
            width = sum(c.get_render_width(table) for c in table.columns.values())
            assert width <= table.size.width  # no column runs past the pane's edge, where it would be cut
            for i, e in enumerate(samples):
                row = dict(zip(header, (str(c) for c in table.get_row_at(i))))
                for key, field in (("answer", "answer"), ("expected", "expected_answer")):
                    shown, real = row[key], "" if e.get(field) is None else str(e[field])
                    assert shown == real or (shown.endswith("…") and len(real) > len(shown)), (shown, real)
                if e["outcome"] == "invalid_trace":  # which failure: its code beside the outcome
                    assert row["codes"] and row["codes"].split()[0] in e["codes"], row
            shown = [str(table.get_row_at(i)[header.index("answer")]) for i in range(table.row_count)]
            if example == "default-run":
                assert "82.8" in shown and "0.333333…" in shown


def _mid_sft(folder, step=120, total=400):
    """A 135M run in SFT: its steps so far, 4 s each; evaluations and RL still to come."""
    folder.mkdir(parents=True)
    t = time.time() - 4 * step
    evs = [{"kind": "run_started", "t": t, "schema": 1, "run": folder.name, "model": "smollm2-135m-instruct", "device": "cpu",
            "config": {}, "stages": ["sft", "eval:sft", "rl", "eval:rl"]}]
    evs += [{"kind": "metrics", "t": t + 4 * s, "phase": "sft", "step": s, "total": total, "loss": 1.0, "step_time": 4.0}
            for s in range(1, step + 1)]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))
    (folder / "status.json").write_text(json.dumps({"status": "running", "model": "smollm2-135m-instruct", "phase": "sft",
                                                    "step": step, "total": total, "started": t}))
    return folder


def test_the_whole_run_eta_is_known_during_sft_and_counts_the_stages_to_come(tmp_path):
    """Mid-SFT, before any evaluation: the run's end from SFT's pace, the evaluations and RL to come
    from the plan's rates scaled by that pace (not only "stage eta")."""
    s = RunState(name="r")
    s.add(read_all(_mid_sft(tmp_path / "r") / "events.jsonl"))
    sft_left = (400 - 120) * 4.0
    whole = s.run_eta(now=time.time())
    assert whole is not None and whole > sft_left * 1.1  # the evaluations and RL after SFT are in it
    s.add([{"kind": "metrics", "t": time.time(), "phase": "sft", "step": 121, "total": 400, "loss": 1.0, "step_time": 40.0}])
    assert s.run_eta(now=time.time()) < whole * 1.15  # one slow step moves the whole run's ETA a little, not 10x


async def test_the_session_list_names_the_progress_unit_and_the_whole_runs_end(tmp_path):
    from engine.session import Session

    folder = _mid_sft(tmp_path / "busy")
    session = Session(folder)
    session.lock()  # a live run holds its session
    try:
        app = sessions_app(tmp_path)
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause(0.6)
            table = app.screen.query_one("#sessions")
            header = [str(c.label) for c in table.columns.values()]
            row = dict(zip(header, (str(c) for c in table.get_row_at(0))))
            assert row["run"] == "busy" and row["status"] == "running"
            assert row["progress"] == "sft 120/400 steps"
            assert re.fullmatch(r"\d+:\d\d \((\w{3} )?\d\d:\d\d\)", row["eta (ends)"]), row
            await pilot.press("enter")
            await pilot.pause(0.8)
            assert "run eta" in str(app.screen.query_one("#run-header").render())
    finally:
        session.unlock()


async def test_the_form_names_the_run_and_says_8bit_in_words(tmp_path):
    root = tmp_path / "sessions"
    (root / "taken").mkdir(parents=True)
    app = sessions_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        q = app.screen.query_one
        q("#f-model-name").value = "tiny"
        eight = q("#f-8bit")
        assert "off" in str(eight.query_one("SelectCurrent Static").render())  # its state in words, not a colour
        name = q("#f-run-name")
        name.value = "my run/../x"
        await pilot.pause()
        assert "-invalid" in name.classes
        sets, errors = q("#form").settings()
        assert any(f == "f-run-name" for f, _ in errors)
        name.value = "taken"  # a folder that exists: refused before anything is asked or started
        await pilot.pause()
        q("#form").start()
        for _ in range(15):
            await pilot.pause(0.2)
        assert type(app.screen).__name__ == "SessionsScreen" and "-invalid" in name.classes
        assert sorted(p.name for p in root.iterdir()) == ["taken"]
        name.value = "exp-1"
        name.remove_class("-invalid")
        q("#form").start()
        for _ in range(20):
            await pilot.pause(0.2)
            if type(app.screen).__name__ == "Confirm":
                break
        assert str(root / "exp-1") in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
        await pilot.pause()
        assert "model.load_8bit=false" in q("#form").settings()[0]
        eight.value = "on"
        assert "model.load_8bit=true" in q("#form").settings()[0]


def test_a_run_name_is_one_plain_folder_name():
    from workbench.widgets.new_run import run_name_problem_free

    assert run_name_problem_free("exp-1.b_2") and not run_name_problem_free("-x") and not run_name_problem_free(".hidden")
    assert not run_name_problem_free("a b") and not run_name_problem_free("a/b") and not run_name_problem_free("x" * 65)


async def test_the_stepper_tour_opens_on_its_samples_and_the_first_screen_points_up_at_the_examples(tmp_path):
    from workbench.examples import ROOT

    app = sessions_app(tmp_path / "empty")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.5)
        assert "examples above" in str(app.screen.query_one("#sessions-note").render())  # they are listed above the note
    app = attach_app(str(ROOT / "stepper-tour"))
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(30):
            await pilot.pause(0.1)
            if app.screen.state.samples:
                break
        await pilot.pause(0.5)
        assert app.screen.query_one("#run-tabs").active == "tab-samples"  # not four empty charts
        header = str(app.screen.query_one("#run-header").render())
        assert "stepper-tour" in header and " on -" not in header and not header.rstrip().endswith("-")
        log = "\n".join(app.screen.state.log)
        assert "run started: hand-written outputs (not a run)" in log and " on -" not in log  # the log ran on nothing too


async def test_the_report_tab_says_what_applies_to_the_runs_task(tmp_path):
    trace_run = write_session(tmp_path, "traces")
    instruct_run = write_session(tmp_path, "chat")
    lines = (instruct_run / "events.jsonl").read_text().splitlines()
    started = json.loads(lines[0])
    started["config"] = {"run": {"task": "instruct"}}
    (instruct_run / "events.jsonl").write_text("\n".join([json.dumps(started), *lines[1:]]) + "\n")
    for folder, wanted, unwanted in ((trace_run, "engine eval SESSION", "engine report SESSION"),
                                     (instruct_run, "engine report SESSION", "engine eval SESSION")):
        app = attach_app(str(folder))
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause(0.6)
            await pilot.press("6")
            await pilot.pause(0.3)
            note = str(app.screen.query_one("#report-note").render())
            assert wanted in note and unwanted not in note, note


async def test_every_key_bar_fits_100_columns_with_help_and_quit_beside_the_palette(tmp_path):
    """At 100 columns the list's key bar ran under `^p palette` (`... t Stepper: pas▏^p paletteo`):
    `o`, `?` and `q` were lost. Each screen's keys now end before the palette, `?` and `q` among them."""
    from textual.widgets._footer import FooterKey

    from workbench.app import stepper_app
    from workbench.examples import ROOT

    async def bar(app, pilot) -> tuple[list[str], int, int]:
        await pilot.pause(0.5)
        deadline = time.monotonic() + 60  # the footer recomposes after a focus change: later on a busy machine
        while not [k for k in app.screen.query(FooterKey) if k.display and "-command-palette" not in k.classes] \
                and time.monotonic() < deadline:
            await pilot.pause(0.1)
        keys = [k for k in app.screen.query(FooterKey) if k.display]
        palette = [k for k in keys if "-command-palette" in k.classes]
        own = [k for k in keys if k not in palette]
        return [k.key_display for k in own], max(k.region.right for k in own), palette[0].region.x

    def start_focused(app):
        app.screen.query_one("#start").focus()

    cases = [("list", sessions_app(tmp_path / "s1"), (), None),
             ("form", sessions_app(tmp_path / "s2"), ("n",), start_focused),
             ("run", attach_app(str(ROOT / "default-run")), (), None),
             ("stepper", stepper_app("x: 1\n"), (), None)]
    for name, app, presses, then in cases:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            for key in presses:
                await pilot.press(key)
            if then:
                then(app)
            shown, right, palette = await bar(app, pilot)
            assert right <= palette, (name, shown, right, palette)
            assert "?" in shown and "q" in shown, (name, shown)


def test_the_whole_run_eta_shows_during_setup_and_before_a_stages_first_step():
    """The list's ETA was blank during `setup` and at `rl 0/3 iters`, and said `0:00` at `sft 20/32`
    with RL to come: the stages not started count, at the plan's rates (engine.plan.stage_seconds)."""
    from engine import config as config_mod
    from engine.plan import known_shape, stage_seconds
    from workbench.screens.sessions import eta_cell

    plan = stage_seconds(config_mod.load(None, ["model.name=tiny"]), known_shape("tiny"))
    s = RunState(name="r")
    s.add([{"kind": "run_started", "t": 0.0, "model": "tiny", "stages": ["sft", "eval:sft", "rl", "eval:rl"], "config": {}},
           {"kind": "heartbeat", "t": 1.0, "phase": "setup"}])
    assert s.run_eta(now=2.0) == pytest.approx(plan["sft"] + plan["rl"] + 2 * plan["eval"])  # every stage to come
    s.add([{"kind": "metrics", "t": 3.0, "phase": "sft", "step": 20, "total": 32, "step_time": 0.5, "loss": 1.0}])
    mid_sft = s.run_eta(now=3.0)
    assert mid_sft > 12 * 0.5 + plan["rl"] * 0.1  # SFT's 12 steps left, then the evaluations and RL
    s.add([{"kind": "heartbeat", "t": 5.0, "phase": "rl", "step": 0, "total": 3, "stage": "rollouts", "done": 0, "of": 8}])
    assert s.run_eta(now=5.0) is not None and s.run_eta(now=5.0) > 0  # `rl 0/3 iters`: no RL step timed yet
    assert re.fullmatch(r"14s \(.+\)", eta_cell(14.2)) and eta_cell(600).startswith("0:10 (")  # never `0:00` with time left
