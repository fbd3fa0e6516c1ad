"""A review of issue 38's fixes (items 2-9 of the review): each case as a user meets it, through the
command they run. docs/reliability.md points here."""

from __future__ import annotations

import json
import os

import pytest

from .test_hostile_input import engine, one_line  # one way to run a command and read its one-line error

GOOD = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
        "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 1000}


# ------------------------------------------------------------------ 2: a model folder for eval and train
@pytest.mark.parametrize("text, key", [
    (json.dumps({**GOOD, "num_attention_heads": 0}), "num_attention_heads"),
    (json.dumps({**GOOD, "hidden_size": "64"}), "hidden_size"),
    (json.dumps({**GOOD, "vocab_size": -5}), "vocab_size"),
    (json.dumps({**GOOD, "intermediate_size": int("9" * 400)}), "intermediate_size"),
    (json.dumps(GOOD).replace('"llama"', '"\\udc80"'), "model_type"),
    ("[" * 100_000, "not JSON"),
])
def test_eval_and_train_name_the_bad_key_of_a_model_folders_config_json(tmp_path, text, key):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(text)
    err = one_line(engine("eval", str(model), "--limit", "1"))
    assert str(model / "config.json") in err and key in err
    err = one_line(engine("train", "--model", str(model), "--session", str(tmp_path / "t")))
    assert str(model / "config.json") in err and key in err
    assert not (tmp_path / "t").exists()  # refused before the session folder is made


def test_a_model_folder_the_loader_chokes_on_is_one_line_naming_it(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(GOOD))  # a valid shape, but no tokenizer or weights
    err = one_line(engine("eval", str(model), "--limit", "1"))
    assert str(model) in err


# ------------------------------------------------------------------ 6: torchrun's variables
@pytest.mark.parametrize("name, value", [("WORLD_SIZE", "1e999"), ("LOCAL_RANK", "abc"), ("RANK", "abc"),
                                         ("RANK", "3"), ("WORLD_SIZE", "0")])
def test_a_bad_launch_variable_is_one_line_before_a_session_folder_is_made(tmp_path, name, value):
    out = engine("train", "--model", "tiny", "--session", str(tmp_path / "s"), env={name: value})
    assert out.returncode != 0 and name in one_line(out)
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ 9: a run name that is a dangling link
async def test_a_run_name_that_is_a_dangling_link_is_refused_in_the_form(tmp_path):
    from workbench.app import sessions_app

    root = tmp_path / "sessions"
    root.mkdir()
    (root / "gone").symlink_to(tmp_path / "nowhere")  # .exists() is False for it; mkdir would raise
    app = sessions_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        q = app.screen.query_one
        q("#f-model-name").value = "tiny"
        q("#f-run-name").value = "gone"
        await pilot.pause()
        q("#form").start()
        for _ in range(15):
            await pilot.pause(0.2)
        assert type(app.screen).__name__ == "SessionsScreen" and "-invalid" in q("#f-run-name").classes
    assert not (tmp_path / "nowhere").exists()


async def test_a_run_folder_that_cannot_be_made_is_a_message_not_a_crash(tmp_path):
    from workbench.app import sessions_app

    root = tmp_path / "sessions"
    root.mkdir()
    app = sessions_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        (root / "late").symlink_to(tmp_path / "nowhere")  # made after the form's check, before the launch
        app.screen._launch(["model.name=tiny"], "tiny", "late")
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "SessionsScreen"
        assert any("cannot start the run" in str(n.message) for n in app._notifications)
    assert not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------ 7: the workbench's settings file
@pytest.mark.parametrize("make", ["brackets", "list", "fifo", "folder", "latin1"])
def test_a_bad_settings_file_is_ignored_with_a_note(tmp_path, monkeypatch, make):
    from workbench.themes import remember_theme, remembered_theme

    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path))
    path = tmp_path / "workbench.json"
    if make == "brackets":
        path.write_text("[" * 100_000)
    elif make == "list":
        path.write_text('{"theme": [1]}')
    elif make == "fifo":
        os.mkfifo(path)  # never waited on
    elif make == "folder":
        path.mkdir()
    else:
        path.write_bytes(b'{"theme": "caf\xe9"}')
    notes = []
    assert remembered_theme(notes.append) is None
    assert len(notes) == 1 and str(path) in notes[0] and "\n" not in notes[0]
    remember_theme("paper")  # never raises; where the file can be replaced, it is
    if make != "folder":
        assert remembered_theme() == "paper"


def test_remembering_a_theme_replaces_a_link_and_never_writes_through_it(tmp_path, monkeypatch):
    from workbench.themes import remember_theme, remembered_theme

    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("mine")
    (tmp_path / "cfg" / "workbench.json").symlink_to(target)
    remember_theme("paper")
    assert target.read_text() == "mine" and remembered_theme() == "paper"
    assert not (tmp_path / "cfg" / "workbench.json").is_symlink()


# ------------------------------------------------------------------ 3: a session's paths, later
TRACE = ("expert: arithmetic\ntrace:\n- {op: init, var: a, value: 3}\n- {op: init, var: b, value: 4}\n"
         "- {op: compute, compute_op: add, args: [a, b], var: c}\n- {op: query, var: c}\n")
FAST = ["--set", "data.train_size=8", "--set", "data.gsm8k_traces=0", "--set", "run.phases=sft", "--set", "sft.epochs=1",
        "--set", "eval.synthetic=2", "--set", "eval.gsm8k=0", "--set", "eval.at=sft"]


def test_a_session_is_evaluated_from_elsewhere_after_its_training_only_file_is_gone(tmp_path):
    start, other = tmp_path / "start", tmp_path / "other"
    start.mkdir()
    other.mkdir()
    (start / "own.jsonl").write_text(json.dumps({"question": "Ann has 3 pens and gets 4 more. How many pens?",
                                                 "answer": 7, "trace": TRACE}) + "\n")
    (start / "probs.jsonl").write_text(json.dumps({"question": "What is 2 plus 2?", "answer": 4}) + "\n")
    out = engine("train", "--model", "tiny", "--session", "s", "--plain", *FAST, "--set", "data.self_traces=own.jsonl",
                 "--set", "eval.problems=[probs.jsonl]", cwd=start)
    assert out.returncode == 0, out.stderr[-2000:]
    saved = (start / "s" / "config.yaml").read_text()
    assert str(start / "own.jsonl") in saved and str(start / "probs.jsonl") in saved  # as the run read them
    (start / "own.jsonl").unlink()  # training-only: evaluating the session does not need it
    out = engine("eval", str(start / "s"), "--limit", "1", "--json", cwd=other)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "probs" in out.stdout  # the problem file found from another folder


# ------------------------------------------------------------------ 5: eval sets read before the run
def test_a_bad_eval_set_is_said_before_the_session_folder_is_made(tmp_path):
    bad = tmp_path / "probs.jsonl"
    bad.write_text(json.dumps({"question": "What is 2 plus 2?", "answer": 4}) + "\n"
                   + '{"question": "How many?", "answer": ' + "9" * 5000 + "}\n")
    out = engine("train", "--model", "tiny", "--session", str(tmp_path / "s"), "--plain", *FAST,
                 "--set", f"eval.problems=[{bad}]")
    err = one_line(out)
    assert out.returncode != 0 and f"{bad} line 2" in err
    assert not (tmp_path / "s").exists()  # not found after SFT: before anything is made


# ------------------------------------------------------------------ 4: a ledger that cannot be written
@pytest.mark.parametrize("make", ["link", "folder", "fifo"])
def test_evaluation_results_are_shown_when_the_ledger_cannot_be_written(tmp_path, make):
    from tests.test_trust import tiny_session

    session = tiny_session(tmp_path / "sessions" / "s")
    ledger = tmp_path / "sessions" / ".heldout-ledger.jsonl"
    if make == "link":
        ledger.symlink_to(tmp_path / "elsewhere")
    elif make == "folder":
        ledger.mkdir()
    else:
        os.mkfifo(ledger)
    out = engine("eval", str(session), "--limit", "1", "--json")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "ledger cannot be written" in out.stderr.strip().splitlines()[-1]  # said once, in one line
    assert json.loads(out.stdout)["sets"]["gsm8k"]["total"] == 1  # the results, not lost
    assert not (tmp_path / "elsewhere").exists()
