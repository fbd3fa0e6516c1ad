"""Hostile and broken input: session folders from elsewhere, exploding traces, two
writers, malformed events and status files, terminal escapes, config gaps,
request files, signals and damaged checkpoints (docs/reliability.md)."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import checkpoints, config
from engine.events import EventReader, clean_text, read_all, sanitize
from engine.session import Session, list_sessions
from engine.trace import check

from .sessions_fixture import events as fixture_events
from .waiting import wait_for


def engine(*args, timeout=240, **kw):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout, **kw)


def tiny_session(folder: Path) -> Path:
    folder.mkdir(parents=True)
    cfg = config.load(sets=["model.name=tiny"], base=config.smoke_overrides())
    (folder / "config.yaml").write_text(cfg.to_yaml())
    return folder


# 1 ------------------------------------------------------------------ a session folder cannot run code
class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PWNED']}",))


def test_a_planted_checkpoint_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    folder = tiny_session(tmp_path / "theirs")
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED", str(marker))
    best = folder / "checkpoints" / "best"
    best.mkdir(parents=True)
    with open(best / "state.pt", "wb") as f:
        pickle.dump({"trainable": {}, "evil": Payload()}, f)
    out = engine("eval", str(folder), "--set", "eval.synthetic=1", "--set", "eval.gsm8k=0")
    assert out.returncode == 1 and "refused" in out.stderr and str(best / "state.pt") in out.stderr
    assert "Traceback" not in out.stderr and not marker.exists()
    with pytest.raises(checkpoints.CheckpointError, match="refused"):
        checkpoints.read(best)


# 2 ------------------------------------------------------------------ traces that explode
@pytest.mark.wallclock
def test_huge_and_overprecise_values_become_a_diagnostic_with_a_line(within):
    steps = ["- {op: init, var: a, value: 1e30}"] + [f"- {{op: compute, compute_op: mul, args: [a, a, a, a, a, a, a, a], var: b{i}}}" for i in range(6)]
    text = "expert: arithmetic\ntrace:\n" + "\n".join(steps) + "\n- {op: query, var: b5}\n"
    with within(1.0, "a trace whose values explode checked"):
        r = check(text, 5)
    assert "out_of_range" in r.codes and r.reward == 0.5
    d = next(d for d in r.diagnostics if d.code == "out_of_range")
    assert d.line == 3  # the init of 1e30 is already beyond the bound
    small = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1000000}\n- {op: compute, compute_op: mul, args: [a, a, a], var: b}\n- {op: query, var: b}\n"
    assert next(d for d in check(small, 1).diagnostics if d.code == "out_of_range").line == 4
    precise = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 3}\n" + "".join(
        f"- {{op: compute, compute_op: div, args: [{'a' if i == 0 else f'c{i - 1}'}, 7.1234567], var: c{i}}}\n" for i in range(12)) + "- {op: query, var: c11}\n"
    assert "out_of_range" in check(precise, 1).codes


def test_scoring_never_raises_out_of_the_loops(monkeypatch):
    from engine import tasks

    cfg = config.load()
    item = tasks.Item("q", 3, "arithmetic")
    from engine.tasks import trace

    monkeypatch.setattr(trace, "check", lambda *a, **k: (_ for _ in ()).throw(OverflowError("boom")))
    s = tasks.score(cfg, item, "expert: arithmetic", False)
    assert s.reward == 0.0 and s.error and "OverflowError" in s.error


@pytest.mark.wallclock
def test_long_and_repetitive_input_is_checked_quickly(within):
    for text in ["x: 1\n" * 100_000, "ab\n" * 4_000, "word " * 20_000, "- {op: init, var: a, value: 1}\n" * 1500]:
        with within(3.0, f"{text[:20]!r}... checked"):
            check(text, 1)


@pytest.mark.wallclock
def test_trace_cli_reads_a_bounded_amount_and_refuses_absurd_answers(tmp_path, within):
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        for _ in range(64):
            f.write(b"- {op: init, var: a, value: 1}\n" * 32768)  # 64 MB of text
    with within(30, "a 64 MB trace refused"):
        out = engine("trace", "check", "--json", str(huge), timeout=60)
    assert out.returncode == 1 and '"parse_error"' in out.stdout
    for device in ("/dev/zero", "/dev/stdin"):  # a device or a FIFO is no trace: refused, never read or waited on
        out = engine("trace", "check", device, timeout=30, input="")
        assert out.returncode == 2 and "not a regular file" in out.stderr, out.stderr
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    for cmd in (["-m", "engine", "trace", "check"], ["-m", "workbench.cli", "trace"]):  # both say the same
        out = subprocess.run([sys.executable, *cmd, str(binary)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert out.returncode == 2 and "binary file, not a trace" in out.stderr, out.stderr
    out = engine("trace", "check", "--expect-answer", "1e999999999", "-", input="expert: arithmetic\n", timeout=30)
    assert out.returncode == 2 and "not a number" in out.stderr


# 3 ------------------------------------------------------------------ one run per session
def test_a_second_run_on_a_live_session_is_refused(tmp_path):
    folder = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                              "--set", "sft.epochs=30", "--set", "eval.at=rl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(e["kind"] == "metrics" for e in read_all(folder / "events.jsonl")), "the first run's first step")
        config_before = (folder / "config.yaml").read_text()
        second = engine("train", "--model", "tiny", "--session", str(folder), "--plain", "--set", "sft.epochs=1")
        assert second.returncode == 2 and "in use by a live run" in second.stderr
        assert (folder / "config.yaml").read_text() == config_before
        assert sum(e["kind"] == "run_started" for e in read_all(folder / "events.jsonl")) == 1
        assert Session(folder).is_live()
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    assert not Session(folder).is_live()  # the lock went with the process


# 4 ------------------------------------------------------------------ events that are not what they claim
BAD_EVENTS = [
    {"kind": "eval", "accuracy": "nan", "set": "synthetic"},
    {"kind": "eval", "accuracy": 0.5, "by_expert": {"a": {"total": "x", "correct": 1}}, "parse_rate": "high"},
    {"kind": "metrics", "phase": "sft", "step": 1e308, "loss": "NaN"},
    {"kind": "metrics", "phase": ["x"], "step": -4, "total": "9"},
    {"kind": "_repr__"}, {"kind": "_init__"}, {"kind": "__class__"}, {"kind": 7}, {"kind": None},
    {"kind": "sample", "text": {"a": 1}, "codes": "overwrite", "question": 3},
    {"kind": "run_started", "params_trainable": "many", "params_total": [1], "model": {"x": 1}},
    {"kind": "run_finished", "status": 5, "error": ["x"]},
    {"kind": "heartbeat", "phase": None, "step": "1", "total": None},
    {"kind": "checkpoint", "path": {"p": 1}},
    {"kind": "alert", "level": 3, "message": "\x1b]0;pwned\x07\x1b[2Jgone"},
]
RAW_LINES = [b"NaN\n", b"Infinity\n", b'{"kind": "metrics", "loss": NaN, "step": 1}\n', b'{"kind": "metrics", "step": 1e999}\n',
             b"[" * 50_000 + b"\n", b'{"kind": "metrics", "step": ' + b"9" * 5000 + b"}\n", b"\xff\xfe\n", b"{}\n", b'"kind"\n']


def _fold_everything(lines: list[bytes]):
    from workbench.runstate import RunState

    reader = EventReader(Path("/nonexistent"), checked=True)
    evs = reader.feed(b"".join(lines))
    state = RunState("x")
    state.add(evs)
    state.progress(), state.eta(), state.elapsed(), state.best_accuracy(), state.code_table("synthetic"), state.status
    return reader, state


def test_bad_events_are_skipped_or_cleaned_never_fatal():
    good = [json.dumps(e).encode() + b"\n" for e in fixture_events("r", finished=False)]
    bad = [json.dumps(e).encode() + b"\n" for e in BAD_EVENTS] + RAW_LINES
    reader, state = _fold_everything(good[:10] + bad + good[10:])
    assert reader.bad_lines >= len(RAW_LINES)
    assert state.series.get("sft") and state.evals and state.started.get("kind") == "run_started"  # `_init__` wiped nothing
    assert all(isinstance(e.get("accuracy"), (int, float)) for e in state.evals)
    assert not any("\x1b" in line for line in state.log)
    assert sanitize({"kind": "_init__"}) is None and sanitize({"kind": "eval", "accuracy": "nan"}) is None


def test_a_follower_survives_lines_that_once_killed_it(tmp_path):
    from workbench.follow import Follower

    folder = tmp_path / "s"
    folder.mkdir()
    got = []
    (folder / "events.jsonl").write_bytes(b"".join(RAW_LINES) + json.dumps({"kind": "heartbeat", "t": 1}).encode() + b"\n")
    f = Follower(str(folder), got.extend, interval=0.05).start()
    wait_for(lambda: len(got) == 3, "the follower to read the file past its bad lines")
    with open(folder / "events.jsonl", "ab") as out:
        out.write(json.dumps({"kind": "heartbeat", "t": 2}).encode() + b"\n")
    wait_for(lambda: len(got) == 4, "the follower to read an appended line")
    # truncated and re-written from the start: the follower notices and reads it again
    (folder / "events.jsonl").write_bytes(json.dumps({"kind": "alert", "t": 3, "message": "new"}).encode() + b"\n")
    wait_for(lambda: len(got) == 5, "the follower to read the re-written file from its start")
    f.stop()
    assert [e["kind"] for e in got] == ["metrics", "metrics", "heartbeat", "heartbeat", "alert"]
    assert got[0]["loss"] is None and got[1]["step"] is None  # bare NaN and 1e999 are cleaned, not plotted


# 5 ------------------------------------------------------------------ one damaged session does not break the list
@pytest.mark.parametrize("raw,status", [(b"[1, 2]", "unknown"), (b"\xff\xfe{", "unknown"), (b'{"started": "yesterday", "status": 3}', "unknown"),
                                        (b'{"started": NaN}', "unknown"), (b'"text"', "unknown"), (b"{" * 10_000, "unknown"),
                                        (b'{"pid": 99999999999999999999, "status": "running", "host": "%s"}', "died"),
                                        (b'{"status": "completed", "model": "[/]\\u001b[2J", "phase": "[bold]x"}', "completed")])
def test_a_damaged_status_file_lists_as_unknown(tmp_path, raw, status):
    import socket

    root = tmp_path / "sessions"
    (root / "bad").mkdir(parents=True)
    (root / "bad" / "status.json").write_bytes(raw.replace(b"%s", socket.gethostname().encode()))
    (root / "good").mkdir()
    (root / "good" / "status.json").write_text(json.dumps({"status": "completed", "model": "tiny", "started": time.time()}))
    rows = {r["run"]: r for r in list_sessions(root)}
    assert rows["good"]["status"] == "completed" and rows["bad"]["status"] == status
    assert "\x1b" not in json.dumps(rows["bad"], ensure_ascii=False)
    out = engine("ls", "--root", str(root))
    assert out.returncode == 0 and "Traceback" not in out.stderr and "good" in out.stdout and "bad" in out.stdout


def test_liveness_is_the_session_lock_not_a_pid_that_any_process_may_hold(tmp_path):
    """status.json says running with the pid of a live `sleep`, and of a SIGSTOPped one: neither is a run.
    A process that holds the session's lock is, whatever status.json says."""
    import socket

    root = tmp_path / "sessions"
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        sleepers[1].send_signal(signal.SIGSTOP)
        for i, p in enumerate(sleepers):
            Session(root / f"s{i}").create()
            (root / f"s{i}" / "status.json").write_text(json.dumps({"status": "running", "started": time.time(), "pid": p.pid,
                                                                    "host": socket.gethostname()}))
        holder = Session(root / "held").create()
        (root / "held" / "status.json").write_text(json.dumps({"status": "completed", "started": time.time()}))
        holder.lock()
        rows = {r["run"]: r["status"] for r in list_sessions(root)}
        assert rows == {"s0": "died", "s1": "died", "held": "running"}
        out = engine("ls", "--root", str(root), "--json")
        assert {r["run"]: r["status"] for r in json.loads(out.stdout)} == {"s0": "died", "s1": "died", "held": "running"}
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


# 6 ------------------------------------------------------------------ nothing shown drives the terminal
def test_escape_sequences_are_removed_from_everything_shown():
    nasty = "a\x1b]0;title\x07b\x1b[2Jc\x1b[31md\x9be\rf\x00g\nh\ti"
    assert clean_text(nasty) == "abcdefg\nh\ti"
    from workbench.stepper_model import Stepper

    s = Stepper("expert: arithmetic\x1b[2J\ntrace:\n- {op: init, var: a, value: 1}\n- {op: query, var: a}\n")
    assert "\x1b" not in s.text and s.report.trace is not None


# 7 ------------------------------------------------------------------ config gaps
@pytest.mark.parametrize("setting,words", [("sft.lr=nan", "sft.lr"), ("rl.lr=inf", "rl.lr"), ("data.mix={arithmetic: 0}", "data.mix"),
                                           ("data.mix={arithmetic: .nan}", "data.mix"), ("model.lora_targets=[[a]]", "model.lora_targets")])
def test_bad_values_name_their_key(setting, words):
    with pytest.raises(config.ConfigError, match=words.replace(".", r"\.")):
        config.load(sets=[setting])


@pytest.mark.parametrize("content", [b"\xff\xfe\x00", b"a: &a [*a]\n", b"model: " + b"{a: " * 60 + b"1" + b"}" * 60 + b"\n",
                                     b"x: &x [1,1,1,1,1,1,1,1,1]\ny: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x]\nmodel: {lora_targets: *y}\n"])
def test_a_hostile_config_file_is_refused_with_a_message(tmp_path, content):
    f = tmp_path / "c.yaml"
    f.write_bytes(content)
    with pytest.raises(config.ConfigError, match="config file"):
        config.load(f)
    with pytest.raises(config.ConfigError, match="folder"):
        config.load(tmp_path)


# 8 ------------------------------------------------------------------ request files
def test_stop_without_a_live_run_says_so_and_leaves_nothing(tmp_path):
    folder = tiny_session(tmp_path / "idle")
    out = engine("stop", str(folder))
    assert out.returncode == 1 and "no live run" in out.stderr and not (folder / "stop").exists()


def test_requests_never_follow_links_and_a_folder_is_no_request(tmp_path):
    s = Session(tmp_path / "s").create()
    target = tmp_path / "victim"
    target.write_text("keep")
    (s.path / "stop").symlink_to(target)
    with pytest.raises(OSError):
        s.request_stop()
    assert target.read_text() == "keep"
    assert s.take_request("stop") and target.exists() and not (s.path / "stop").exists()
    (s.path / "stop").mkdir()
    assert not s.take_request("stop")
    s.request_checkpoint()
    s.clear_requests(before=time.time() + 1)  # left from before this run: cleared
    assert not (s.path / "checkpoint-now").exists()
    (s.path / "stop").rmdir()
    s.request_stop()
    s.clear_requests(before=time.time() - 5)  # asked for since the run's process started: kept for it
    assert (s.path / "stop").exists()


# 9 ------------------------------------------------------------------ signals and damaged checkpoints
def test_resume_skips_a_damaged_last_checkpoint_and_eval_names_it(tmp_path):
    folder = tmp_path / "r"
    out = engine("train", "--model", "tiny", "--session", str(folder), "--plain", "--set", "run.checkpoint_every=1",
                 "--set", "run.phases=sft", "--set", "sft.epochs=1")
    assert out.returncode == 0, out.stderr[-2000:]
    steps = checkpoints.steps(folder)
    assert len(steps) == 2
    (steps[-1] / "state.pt").write_bytes(b"PK\x03\x04 not really a zip")
    folder_, state, skipped = checkpoints.for_resume(folder)
    assert folder_ == steps[0] and len(skipped) == 1 and str(steps[-1]) in skipped[0]
    bad = engine("eval", str(folder), "--checkpoint", str(steps[-1]), "--set", "eval.synthetic=1", "--set", "eval.gsm8k=0")
    assert bad.returncode == 1 and "damaged" in bad.stderr and "Traceback" not in bad.stderr


def test_resume_skips_a_checkpoint_whose_position_is_not_the_engines_own(tmp_path):
    """A state.pt from elsewhere may load (tensors and numbers) yet place the run nowhere: a stage
    written as text would stop setup with a TypeError; it is skipped, named, like a damaged one."""
    good = {"trainable": {"w": torch.ones(2)}, "stage": 1, "step": 3, "global_step": 5, "world": 1, "parallel": "ddp",
            "optimizer": None, "scheduler": None, "baseline": 0.5, "rl_success": {"q": (1, 2)}, "best_accuracy": None}
    first = checkpoints.save(tmp_path, "step-000001", good)
    assert checkpoints.for_resume(tmp_path)[::2] == (first, [])
    odd = [({"stage": "1"}, "its 'stage' is str '1'"), ({"step": -2}, "its 'step' is -2"),
           ({"global_step": True}, "its 'global_step' is bool"), ({"world": 0}, "its 'world' is 0"),
           ({"rl_success": {"q": "x"}}, "its 'rl_success' holds 'q': 'x'"), ({"optimizer": [1]}, "its 'optimizer' is list")]
    for n, (change, why) in enumerate(odd, start=2):
        checkpoints.save(tmp_path, f"step-{n:06d}", good | change)
    folder, state, skipped = checkpoints.for_resume(tmp_path)
    assert folder == first and state["stage"] == 1 and len(skipped) == len(odd)
    for (_, why), problem in zip(odd, reversed(skipped)):
        assert why in problem and "not a tracebench checkpoint to resume from" in problem
    missing = {k: v for k, v in good.items() if k != "stage"}
    checkpoints.save(tmp_path, "step-000009", missing)
    assert "no 'stage' in it" in checkpoints.for_resume(tmp_path)[2][0]


def test_checkpoints_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    order = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a, **kw: (order.append("rename"), real_replace(*a, **kw))[1])
    folder = checkpoints.save(tmp_path, "c", {"trainable": {"w": torch.ones(2)}})
    assert order == ["fsync", "rename"] and checkpoints.read(folder)["trainable"]["w"].sum() == 2


def test_ctrl_c_right_after_start_stops_cleanly_and_a_second_signal_ends_at_once(tmp_path):
    for n_signals in (1, 2):
        folder = tmp_path / f"sig{n_signals}"
        proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                                 "--set", "sft.epochs=30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: any(e["kind"] == "run_started" for e in read_all(folder / "events.jsonl")), "the run to start")
        for _ in range(n_signals):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err and "ImportError" not in err
        last = read_all(folder / "events.jsonl")[-1]
        assert last["kind"] == "run_finished" and last["status"] == "stopped"
        assert json.loads((folder / "status.json").read_text())["status"] == "stopped"


# 10 ----------------------------------------------------------------- smaller
def test_ssh_targets_cannot_become_options_and_home_paths_expand():
    from workbench.follow import Follower, remote_path

    f = Follower("-oProxyCommand=touch /tmp/x:dir", lambda e: None)
    argv = f.remote("true")
    assert argv[argv.index("--") + 1] == "-oProxyCommand=touch /tmp/x"
    assert remote_path("~/runs/a b") == "\"$HOME\"'/runs/a b'" and remote_path("/x") == "/x"


def test_a_resumed_runs_plot_does_not_repeat_the_killed_steps():
    from workbench.runstate import RunState

    state = RunState("x")
    state.add([{"kind": "metrics", "phase": "sft", "step": s, "loss": 1.0} for s in range(1, 8)])
    state.add([{"kind": "run_started", "resumed": True}] + [{"kind": "metrics", "phase": "sft", "step": s, "loss": 0.5} for s in range(5, 10)])
    steps = [p[0] for p in state.series["sft"]["loss"]]
    assert steps == sorted(set(steps)) == list(range(1, 10))


# the fuzz test the issue asks for: random and mutated lines never raise out of the reader or the state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
_KINDS = st.sampled_from(["run_started", "metrics", "eval", "sample", "alert", "checkpoint", "heartbeat", "run_finished", "_init__", "x"])
_FIELDS = st.sampled_from(["t", "step", "total", "phase", "loss", "accuracy", "by_expert", "codes", "text", "set", "at", "status",
                           "diagnostic_counts", "parse_rate", "params_total", "model", "resumed", "reward"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=_KINDS, fields=st.dictionaries(_FIELDS, _json, max_size=8), cut=st.integers(0, 200), noise=st.binary(max_size=30))
def test_fuzzed_event_lines_never_raise(kind, fields, cut, noise):
    good = [json.dumps(e).encode() + b"\n" for e in fixture_events("r", n_steps=3)]
    line = json.dumps({"kind": kind, **fields}, allow_nan=True).encode()
    mutated = line[:cut] + noise + line[cut:]
    _fold_everything(good[:4] + [line + b"\n", mutated + b"\n", mutated[: cut // 2]] + [b"\n"] + good[4:])


def test_the_workbench_exits_nonzero_after_a_crash(tmp_path):
    """A crash inside the app (here: a mount handler that raises) is not exit 0."""
    script = ("import sys\nfrom workbench import cli\nfrom textual.app import App\n"
              "def boom(self):\n    raise RuntimeError('boom')\n"
              "App.on_mount = boom\n"
              "sys.exit(cli.main(['trace', sys.argv[1]]))\n")
    trace = tmp_path / "t.yaml"
    trace.write_text("expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1}\n- {op: query, var: a}\n")
    import pty

    main, tty = pty.openpty()  # a terminal: without one the workbench refuses before the app starts
    try:
        out = subprocess.run([sys.executable, "-c", script, str(trace)], stdin=tty, stdout=tty, stderr=subprocess.PIPE,
                             text=True, timeout=60, env={**os.environ, "TERM": "xterm"})
    finally:
        os.close(tty)
        os.close(main)
    assert out.returncode != 0 and "boom" in out.stderr, out.stderr  # the crash, not a refusal
