"""What the current folder, a session folder and TRL's logs can do (issue 38): nothing in the current
folder runs, a new run never replaces an earlier one, a resumed session's config never decides where
the engine writes outside it or what it sends, a session stays evaluable when the checkpoint it
started from is gone, a bad start checkpoint or a link in checkpoints/ is said before the run
starts, and our TRL callback never raises into the user's training. docs/reliability.md."""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import checkpoints, config
from engine.events import read_all
from engine.selfexec import child_env, engine_argv
from engine.session import Session, SessionExists

from .test_trust import no_traceback, tiny_session

ENGINE = str(Path(sys.executable).parent / "engine")
WORKBENCH = str(Path(sys.executable).parent / "workbench")
FAST = ["--set", "data.train_size=16", "--set", "data.gsm8k_traces=0", "--set", "run.phases=sft", "--set", "sft.epochs=1"]


def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A folder holding modules and a preload library that leave a mark when they run: (folder, marks)."""
    folder, marks = tmp_path / "sent", tmp_path / "marks"
    folder.mkdir()
    marks.mkdir()
    for name in ("engine", "json", "typing_extensions"):
        (folder / f"{name}.py").write_text(f"open({str(marks / name)!r}, 'w').write('ran')\n")
    lib = folder / "libtcmalloc_minimal.so.4"
    source = tmp_path / "mark.c"  # a library that marks when the dynamic linker maps it
    source.write_text('#include <stdio.h>\n__attribute__((constructor)) static void mark(void) '
                      f'{{ FILE *f = fopen("{marks / "preload"}", "w"); if (f) fclose(f); }}\n')
    if not shutil.which("gcc") or subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(source)]).returncode:
        lib.write_bytes(b"\x7fELF planted")  # no compiler: any file; run_started's allocator shows it was not used
    return folder, marks


def hostile_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONPATH", "TRACEBENCH_MALLOC")}
    return env | {"LD_LIBRARY_PATH": ":/nonexistent"}  # an empty entry: the dynamic linker's "current folder"


def run_in(folder: Path, cmd: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=hostile_env())


def test_the_engine_starts_itself_without_the_current_folder(tmp_path):
    """What the tcmalloc restart and the workbench's launcher run: nothing of the current folder is
    imported, and the child's search paths lose their empty and relative entries."""
    folder, marks = planted(tmp_path)
    out = run_in(folder, engine_argv(["train", "--help"]), timeout=60)
    assert out.returncode == 0 and "--resume" in out.stdout, out.stderr[-2000:]
    assert not list(marks.iterdir())
    env = child_env({"PYTHONPATH": f":{tmp_path}:lib", "LD_LIBRARY_PATH": "::.", "HOME": "/h"})
    assert env["PYTHONPATH"] == str(tmp_path) and "LD_LIBRARY_PATH" not in env and env["HOME"] == "/h"


def test_the_torchrun_line_the_readme_gives_runs_nothing_from_the_current_folder(tmp_path):
    """torchrun's default starts each rank as `python -m engine`, which imports the current folder's
    engine.py; the README's line (`--no-python engine ...`) starts the installed command instead."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    lines = [line.split("#")[0] for line in readme.splitlines() if line.startswith("torchrun ")]
    assert lines and all("--no-python engine " in line and "-m engine" not in line for line in lines)
    folder, marks = planted(tmp_path)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    out = run_in(folder, [torchrun, "--standalone", "--nproc_per_node", "1", "--no-python", ENGINE, "ls", "--root", str(tmp_path)],
                 timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not list(marks.iterdir())


def test_tcmalloc_is_preloaded_by_absolute_path_from_the_system(tmp_path, monkeypatch):
    from engine import allocator

    folder, _ = planted(tmp_path)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("LD_LIBRARY_PATH", f":{folder}")
    found = allocator.tcmalloc()
    if found is None:
        pytest.skip("no tcmalloc installed here")
    assert os.path.isabs(found) and not found.startswith(str(tmp_path)) and Path(found).is_file()


@pytest.mark.slow
def test_no_command_runs_code_or_a_library_from_the_current_folder(tmp_path):
    """Every command that loads a model, and the workbench, run from a folder holding a planted
    engine.py, json.py, typing_extensions.py and libtcmalloc_minimal.so.4, with an empty entry in
    LD_LIBRARY_PATH: none of them runs."""
    folder, marks = planted(tmp_path)
    session = tmp_path / "s"
    out = run_in(folder, [ENGINE, "train", "--model", "tiny", "--session", str(session), "--plain", *FAST])
    assert out.returncode == 0, out.stderr[-2000:]
    allocator_used = read_all(session / "events.jsonl")[0]["allocator"]
    assert not allocator_used.startswith(str(folder))
    for cmd in (["eval", str(session), "--limit", "1", "--set", "eval.synthetic=1", "--set", "eval.gsm8k=0"],
                ["report", str(session)],
                ["data", "self-traces", str(session), "--limit", "1", "--k", "1", "--out", str(tmp_path / "t.jsonl")]):
        out = run_in(folder, [ENGINE, *cmd])
        no_traceback(out)
    launcher = __import__("workbench.launch", fromlist=["engine_command"]).engine_command(session, [])
    run_in(folder, [*launcher, "--help"], timeout=60)  # what the new-run form starts
    name = f"trust38-{os.getpid()}"
    env = " ".join(f"{k}={v!r}" for k, v in {"LD_LIBRARY_PATH": ":/nonexistent", "TERM": "xterm-256color"}.items())
    subprocess.run(["tmux", "new", "-d", "-s", name, "-x", "100", "-y", "30", "-c", str(folder),
                    f"env -u PYTHONPATH {env} {WORKBENCH} --root {tmp_path}"], check=True)
    try:
        time.sleep(4)  # the workbench imports and draws its first screen
        subprocess.run(["tmux", "send-keys", "-t", name, "q"])
        time.sleep(1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    assert sorted(p.name for p in marks.iterdir()) == []


def a_finished_session(folder: Path) -> Path:
    tiny_session(folder)
    (folder / "events.jsonl").write_text('{"kind": "run_started", "t": 1}\n{"kind": "run_finished", "t": 2, "status": "completed"}\n')
    (folder / "status.json").write_text('{"status": "completed", "best_accuracy": 0.5}')
    checkpoints.save(folder, "best", {"trainable": {"w": torch.zeros(2)}})
    return folder


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_new_run_in_a_folder_holding_one_is_refused_and_touches_nothing(tmp_path):
    folder = a_finished_session(tmp_path / "run")
    before = digest(folder)
    out = subprocess.run([ENGINE, "train", "--model", "tiny", "--session", str(folder), "--plain"], capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"--resume {folder}" in out.stderr and f"{folder}-2" in out.stderr
    assert digest(folder) == before
    # a folder the workbench made for its log only holds no run; the workbench names new runs afresh
    empty = tmp_path / "new"
    empty.mkdir()
    (empty / "engine.log").write_text("")
    assert Session(empty).earlier_run() == []

def test_the_workbench_names_a_new_run_afresh(tmp_path, monkeypatch):
    from engine import session

    monkeypatch.setattr(session, "new_run_id", lambda model: "20260101-120000-tiny")  # two starts in one second
    first = session.new_folder(tmp_path, "tiny")
    first.mkdir()
    assert session.new_folder(tmp_path, "tiny") == tmp_path / "20260101-120000-tiny-2"


def test_a_trace_session_on_a_folder_holding_a_run_keeps_it(tmp_path):
    from engine.integrations.trl import TraceSession

    folder = a_finished_session(tmp_path / "grpo")
    before = digest(folder)
    with pytest.raises(SessionExists, match="resume=True"):
        TraceSession(folder)
    assert digest(folder) == before and Session(folder).status()["best_accuracy"] == 0.5
    with TraceSession(folder, resume=True):  # asked for: appended, its best accuracy kept
        pass
    assert Session(folder).status()["best_accuracy"] == 0.5
    kinds = [e["kind"] for e in read_all(folder / "events.jsonl")]
    assert kinds[:2] == ["run_started", "run_finished"] and len(kinds) == 3


def test_a_resumed_session_never_decides_where_the_engine_writes_outside_it(tmp_path, capsys):
    from engine.cli.train import resume_config

    folder = tiny_session(tmp_path / "sent", f"run.tensorboard={tmp_path / 'anywhere'}", "run.wandb=their-project",
                          "run.wandb_mode=online")
    cfg = resume_config(folder, [])
    assert (cfg.run.tensorboard, cfg.run.wandb, cfg.run.wandb_mode) == ("", "", "offline")
    said = capsys.readouterr().err
    assert "run.tensorboard" in said and "run.wandb_mode=online" in said and "--set" in said
    cfg = resume_config(folder, [f"run.tensorboard={tmp_path / 'mine'}"])  # given again by the user: kept
    assert cfg.run.tensorboard == str(tmp_path / "mine") and cfg.run.wandb == ""


def test_a_checkpoint_with_a_number_for_a_name_is_refused_by_name(tmp_path):
    torch.save({"trainable": {1: torch.zeros(2), "w": torch.zeros(2)}}, tmp_path / "state.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a tracebench checkpoint"):
        checkpoints.read(tmp_path)


def foreign_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    torch.save({"trainable": {"model.layers.40.mlp.up_proj.weight": torch.zeros(2)}}, folder / "state.pt")
    return folder


def test_a_bad_start_checkpoint_is_said_before_a_session_folder_is_made(tmp_path):
    bad = foreign_checkpoint(tmp_path / "other")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "state.pt").write_bytes(b"not a checkpoint")
    for start, words in ((bad, "model.layers.40"), (damaged, "damaged")):
        folder = tmp_path / f"new-{start.name}"
        out = subprocess.run([ENGINE, "train", "--model", "tiny", "--session", str(folder), "--plain",
                              "--set", f"model.init_from={start}"], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
        no_traceback(out)
        assert out.returncode == 1 and "model.init_from" in out.stderr and words in out.stderr, out.stderr
        assert not folder.exists()


def test_a_session_whose_start_does_not_fit_gets_one_line_from_eval(tmp_path):
    bad = foreign_checkpoint(tmp_path / "other")
    folder = tiny_session(tmp_path / "s", f"model.init_from={bad}")
    out = subprocess.run([ENGINE, "eval", str(folder), "--limit", "1"], capture_output=True, text=True, timeout=180,
                         stdin=subprocess.DEVNULL)
    no_traceback(out)
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0 and "model.layers.40" in out.stderr, out.stderr


def test_a_link_deep_in_checkpoints_is_refused_before_the_run_starts(tmp_path):
    folder = a_finished_session(tmp_path / "s")
    outside = tmp_path / "outside"
    outside.mkdir()
    step = folder / "checkpoints" / "step-000001"
    step.mkdir()
    (step / "state.pt").symlink_to(outside / "state.pt")
    out = subprocess.run([ENGINE, "train", "--resume", str(folder), "--plain"], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    no_traceback(out)
    assert out.returncode != 0 and "checkpoints/step-000001/state.pt" in out.stderr, out.stderr
    assert [e["kind"] for e in read_all(folder / "events.jsonl")] == ["run_started", "run_finished"]
    assert not list(outside.iterdir())


@pytest.mark.slow
def test_a_session_started_from_another_stays_evaluable_when_that_one_is_gone(tmp_path):
    """model.init_from is copied into the session (checkpoints/start, with its sha256): evaluation and
    resume read the copy. A resume drops the outside keys of the session's config."""
    first, second = tmp_path / "first", tmp_path / "second"
    out = subprocess.run([ENGINE, "train", "--model", "tiny", "--session", str(first), "--plain", *FAST],
                         capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([ENGINE, "train", "--model", "tiny", "--session", str(second), "--plain", *FAST,
                          "--set", f"model.init_from={checkpoints.steps(first)[-1]}"],
                         capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    source = (checkpoints.steps(first)[-1] / "state.pt").read_bytes()
    assert read_all(second / "events.jsonl")[0]["init_from_sha256"] == hashlib.sha256(source).hexdigest()
    shutil.rmtree(first)
    out = subprocess.run([ENGINE, "eval", str(second), "--limit", "1", "--set", "eval.gsm8k=0", "--set", "eval.synthetic=1"],
                         capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = (second / "config.yaml").read_text()
    (second / "config.yaml").write_text(cfg.replace("tensorboard: ''", f"tensorboard: {tmp_path / 'anywhere'}"))
    out = subprocess.run([ENGINE, "train", "--resume", str(second), "--plain"], capture_output=True, text=True,
                         timeout=240, stdin=subprocess.DEVNULL)
    assert out.returncode == 0 and "run.tensorboard" in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "anywhere").exists()


def test_our_trl_callback_never_raises_into_the_users_training(tmp_path, capsys):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from engine.integrations.trl import TraceSession

    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    state.global_step, state.max_steps = 3, 10
    with TraceSession(tmp_path / "s") as run:
        hook = run.callback()
        hook.on_log(args, state, control, logs={"step": 7, "total": 8, "phase": 9, "kind": 1, "t": 2, "loss": 0.5, "x/y": 1})
        hook.on_save(None, state, control)  # a hook failing inside: said once, never raised
        hook.on_save(None, state, control)
    events = read_all(tmp_path / "s" / "events.jsonl")
    metrics = next(e for e in events if e["kind"] == "metrics")
    assert (metrics["step"], metrics["total"], metrics["phase"]) == (3, 10, "rl")
    assert (metrics["trl_step"], metrics["trl_total"], metrics["trl_phase"], metrics["trl_kind"], metrics["trl_t"]) == (7, 8, 9, 1, 2)
    assert metrics["loss"] == 0.5 and metrics["x_y"] == 1
    assert capsys.readouterr().err.count("TRL callback failed in on_save") == 1
    assert sum("TRL callback failed" in e.get("message", "") for e in events) == 1
