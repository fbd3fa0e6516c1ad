"""Session folders, files and arguments from elsewhere (issue 28): nothing written outside a
session, nothing that drives the terminal, nothing that crashes or hangs a reader, no answer
misread, one clear line for a bad argument, liveness from the lock, a stop that is not lost,
a full disk that ends cleanly. docs/reliability.md lists each promise with its test."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from engine import checkpoints, config, safefile
from engine.events import read_all
from engine.session import Session, list_sessions

from .waiting import wait_for

ESCAPES = ("\x1b]0;pwned\x07", "\x1b[2J", "\x1b[31m")  # retitle, clear, colour: none may reach a terminal from data


def engine(*args, timeout=240, **kw):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def tiny_session(folder: Path, *sets: str) -> Path:
    folder.mkdir(parents=True)
    cfg = config.load(sets=["model.name=tiny", *sets], base=config.smoke_overrides())
    (folder / "config.yaml").write_text(cfg.to_yaml())
    return folder


def victim(tmp_path: Path, name: str = "bashrc") -> Path:
    v = tmp_path / "home" / name
    v.parent.mkdir(exist_ok=True)
    v.write_text("keep me\n")
    return v


@contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root, as CI has)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def no_traceback(out) -> None:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr[-3000:]


# 1 ------------------------------------------------------------------ writes stay inside the session
def test_resume_through_planted_links_writes_nothing_outside(tmp_path):
    """status.json.tmp, events.jsonl and checkpoints planted as links out of the session: the
    resume is refused before anything is written, naming them; what they point to is untouched."""
    folder = tiny_session(tmp_path / "theirs")
    rc, log, outside = victim(tmp_path), victim(tmp_path, "log"), tmp_path / "home" / "ckpts"
    outside.mkdir()
    (outside / "step-000001").mkdir()
    (outside / "step-000001" / "state.pt").write_bytes(b"theirs")
    (folder / "status.json.tmp").symlink_to(rc)
    (folder / "events.jsonl").symlink_to(log)
    (folder / "checkpoints").symlink_to(outside)
    out = engine("train", "--resume", str(folder), "--plain")
    no_traceback(out)
    assert out.returncode != 0 and "symbolic link" in out.stderr
    assert all(n in out.stderr for n in ("status.json.tmp", "events.jsonl", "checkpoints"))
    assert rc.read_text() == "keep me\n" and log.read_text() == "keep me\n"
    assert sorted(p.name for p in outside.iterdir()) == ["step-000001"] and (outside / "step-000001" / "state.pt").read_bytes() == b"theirs"


def test_checkpoint_writes_and_rotation_never_leave_the_session(tmp_path):
    session = Session(tmp_path / "s").create()
    rc, outside = victim(tmp_path), tmp_path / "home" / "elsewhere"
    outside.mkdir()
    (outside / "state.pt").write_bytes(b"theirs")
    state = {"trainable": {"w": torch.ones(2)}}
    # a step folder that is a link out: never written through
    (session.checkpoints / "step-000005").symlink_to(outside)
    with pytest.raises(safefile.UnsafePath, match="symbolic link"):
        checkpoints.save(session.path, "step-000005", state)
    assert (outside / "state.pt").read_bytes() == b"theirs"
    # a temporary name planted as a link: the link goes, the file it named stays
    (session.checkpoints / "step-000006").mkdir()
    (session.checkpoints / "step-000006" / "state.pt.tmp").symlink_to(rc)
    checkpoints.save(session.path, "step-000006", state)
    assert rc.read_text() == "keep me\n" and not (session.checkpoints / "step-000006" / "state.pt.tmp").exists()
    # rotation: only real step folders the engine wrote; a link, or a folder holding more, stays
    (outside / "keep").write_text("x")
    (session.checkpoints / "step-000001").symlink_to(outside)
    (session.checkpoints / "step-000002").mkdir()
    (session.checkpoints / "step-000002" / "state.pt").write_bytes(b"old")
    (session.checkpoints / "step-000002" / "notes.txt").write_text("mine")
    for n in (3, 4, 7):
        checkpoints.save(session.path, f"step-{n:06d}", state)
    checkpoints.rotate(session.path, session.checkpoints / "step-000007")
    left = sorted(p.name for p in session.checkpoints.iterdir())
    assert left == ["step-000001", "step-000002", "step-000005", "step-000006", "step-000007"]  # 3 and 4 rotated away
    assert (session.checkpoints / "step-000002" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in outside.iterdir()) == ["keep", "state.pt"]
    # the status file's temporary name and the status file itself
    (session.path / "status.json.tmp").symlink_to(rc)
    from engine.recorder import StatusFile

    StatusFile(session, {"status": "running"})
    assert rc.read_text() == "keep me\n" and session.status()["status"] == "running"
    # events.jsonl as a link: refused, nothing appended where it points
    (session.path / "events.jsonl").symlink_to(rc)
    from engine.events import EventLog

    with pytest.raises(OSError, match="symbolic link"):
        EventLog(session.events)
    assert rc.read_text() == "keep me\n"


def test_engine_report_never_writes_through_a_link_nor_waits_on_a_fifo(tmp_path):
    rows = [{"instruction": f"Repeat {w}.", "input": "", "output": w} for w in ("apple", "river")]
    sets = tmp_path / "held.jsonl"
    sets.write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder = tiny_session(tmp_path / "inst", "run.task=instruct", f"data.instruct_train={sets}")
    rc = victim(tmp_path)
    (folder / "report.json").symlink_to(rc)
    os.mkfifo(folder / "report.md")
    out = engine("report", str(folder), str(sets), "--max-new-tokens", "2", timeout=120)
    no_traceback(out)
    assert out.returncode == 0, out.stderr[-2000:]
    assert rc.read_text() == "keep me\n"
    assert not (folder / "report.json").is_symlink() and json.loads((folder / "report.json").read_text())["sets"]
    assert (folder / "report.md").is_file()


# 2 ------------------------------------------------------------------ nothing shown drives the terminal
def test_nothing_from_a_session_or_a_file_drives_the_terminal(tmp_path):
    colour = {**os.environ, "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "200"}
    root = tmp_path / "sessions"
    nasty = "run" + ESCAPES[0] + ESCAPES[1]
    Session(root / nasty).create()
    (root / nasty / "status.json").write_text(json.dumps({"status": "stopped" + ESCAPES[2], "model": "tiny[/]" + ESCAPES[0],
                                                          "phase": "[bold]x" + ESCAPES[1], "started": time.time()}))
    out = engine("ls", "--root", str(root), env=colour)
    no_traceback(out)
    assert out.returncode == 0 and "tiny[/]" in out.stdout and "[bold]x" in out.stdout
    assert not any(e in out.stdout for e in ESCAPES), repr(out.stdout)
    assert not any(e in json.dumps(list_sessions(root), ensure_ascii=False) for e in ESCAPES)
    # a trace's contents and its file name, in the human output of `engine trace check` and `trace run`
    trace = tmp_path / ("t" + ESCAPES[0] + ".yaml")
    trace.write_text("expert: arithmetic" + ESCAPES[1] + "\ntrace:\n- {op: init, var: a" + ESCAPES[0] + ", value: 2}\n- {op: query, var: a}\n")
    for cmd in ("check", "run"):
        out = engine("trace", cmd, str(trace), env=colour)
        no_traceback(out)
        assert not any(e in out.stdout + out.stderr for e in ESCAPES), repr(out.stdout)
    # a data file's fields and name in `engine data stats`
    data = tmp_path / ("d" + ESCAPES[1] + ".jsonl")
    data.write_text(json.dumps({"expert": "[bold]" + ESCAPES[0], "pattern": ESCAPES[1] + "p"}) + "\n")
    out = engine("data", "stats", str(data), env=colour)
    no_traceback(out)
    assert out.returncode == 0 and "[bold]" in out.stdout and not any(e in out.stdout for e in ESCAPES)
    # report.json as the workbench reads it
    from workbench.widgets.report import read_report

    (root / nasty / "report.json").write_text(json.dumps({"base": "b" + ESCAPES[0], "tuned": "t[/]", "note": ESCAPES[1],
                                                          "sets": {"s" + ESCAPES[2]: {"bleu": {"base": 1, "tuned": 2, "delta": 1}}}}))
    report, _ = read_report(root / nasty / "report.json")
    assert not any(e in json.dumps(report, ensure_ascii=False) for e in ESCAPES) and report["rows"][0][2:] == (1, 2, 1)


# 3 ------------------------------------------------------------------ malformed files never crash or hang
def _in_time(fn, seconds=10.0):
    """fn() in a thread; fails (instead of hanging the suite) when it does not return in time."""
    box = {}

    def call():
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            box["error"] = exc

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} hangs"
    if "error" in box:
        raise box["error"]
    return box.get("out")


@pytest.mark.parametrize("content", ["[1, 2]", '{"sets": {"s": {"bleu": {"base": "1.0", "tuned": "x", "delta": null}}}}',
                                     "[" * 100_000 + "]" * 100_000, '{"sets": [1]}', '{"sets": {"s": [1], "t": {"m": 3}}}', "fifo", "huge"],
                         ids=["a-list", "numbers-as-text", "nested-100000", "sets-a-list", "rows-not-mappings", "fifo", "100MB"])
def test_a_malformed_report_json_never_crashes_or_hangs_the_report_tab(tmp_path, content):
    from workbench.widgets.report import read_report

    path = tmp_path / "report.json"
    if content == "fifo":
        os.mkfifo(path)
    elif content == "huge":
        with open(path, "wb") as f:
            f.truncate(100 << 20)
    else:
        path.write_text(content)
    report, why = _in_time(lambda: read_report(path))
    if report is None:
        assert why  # said, not raised
    else:
        assert all(isinstance(x, (int, float)) or x is None for row in report["rows"] for x in row[2:])


async def test_the_report_tab_shows_a_broken_report_as_a_note(tmp_path):
    from workbench.app import attach_app

    from .sessions_fixture import write_session

    folder = write_session(tmp_path, "r")
    (folder / "report.json").write_text('{"sets": {"s": {"bleu": {"base": "1.0", "tuned": [1], "delta": {}}}}, "base": 3}')
    app = attach_app(str(folder))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        await pilot.pause(0.5)
        table = app.screen.query_one("#report")
        assert [str(c) for c in table.get_row_at(0)] == ["s", "bleu", "n/a", "n/a", "n/a"]
    assert app.return_code in (0, None)


def test_fifos_in_a_session_never_hang_a_reader(tmp_path):
    root = tmp_path / "sessions"
    folder = tiny_session(root / "f")
    os.mkfifo(folder / "status.json")
    os.mkfifo(folder / "events.jsonl")
    rows = _in_time(lambda: list_sessions(root))
    assert [r["status"] for r in rows] == ["unknown"]
    out = engine("ls", "--root", str(root), timeout=60)
    assert out.returncode == 0 and "\nf    unknown" in out.stdout
    from engine.events import EventReader

    assert _in_time(lambda: EventReader(folder / "events.jsonl", checked=True).read()) == []
    os.unlink(folder / "config.yaml")
    os.mkfifo(folder / "config.yaml")
    with pytest.raises(config.ConfigError, match="not a regular file"):
        _in_time(lambda: config.load(folder / "config.yaml"))
    with pytest.raises(checkpoints.CheckpointError):
        (folder / "checkpoints" / "best").mkdir(parents=True)
        os.mkfifo(folder / "checkpoints" / "best" / "state.pt")
        _in_time(lambda: checkpoints.read(folder / "checkpoints" / "best"))


# 4 ------------------------------------------------------------------ answers are never misread
@pytest.mark.parametrize("written,value", [("#### 1e5", 100000), ("#### 2.5e3", 2500), ("#### 3/4", Fraction(3, 4)), ("#### $1,234.50", Fraction(246900, 200)),
                                           ("#### -7", -7), (12, 12), ("12.", 12), ("#### 1e400", None), ("#### 1 000", None),
                                           ("#### 12 apples", None), ("#### 1,2345", None), ("#### 50%", None), ("3/0", None)])
def test_an_answer_is_its_value_or_unparseable_with_its_line(tmp_path, written, value):
    from engine.data import problems
    from engine.integrations.trl import answer_value

    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"question": "q?", "answer": 1}) + "\n" + json.dumps({"question": "q?", "answer": written}) + "\n")
    if value is None:
        with pytest.raises(ValueError, match="line 2"):
            problems.load(f)
        with pytest.raises(ValueError):
            answer_value(written)  # the TRL reward reads answers with the same parser
    else:
        assert problems.load(f)[1].answer == value and answer_value(written) == value


def test_problem_files_empty_same_named_and_limited(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good = [json.dumps({"question": f"What is {i} plus 1?", "answer": i + 1}) for i in range(3)]
    (tmp_path / "a" / "set.jsonl").write_text("\n".join(good) + "\n")
    (tmp_path / "b" / "set.jsonl").write_text("\n".join(good[:2]) + "\n" + "not json at all\n")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    empty = engine("eval", "tiny", "--problems", str(tmp_path / "empty.jsonl"), "--json")
    no_traceback(empty)
    assert empty.returncode != 0 and "no problems in it" in empty.stderr and "0/0" not in empty.stdout
    # two files named alike are two sets; --limit 2 reads no further than line 2 (line 3 of b is not JSON)
    both = engine("eval", "tiny", "--problems", str(tmp_path / "a" / "set.jsonl"), "--problems", str(tmp_path / "b" / "set.jsonl"),
                  "--limit", "2", "--json")
    no_traceback(both)
    assert both.returncode == 0, both.stderr[-2000:]
    sets = json.loads(both.stdout)["sets"]
    assert set(sets) == {"a/set", "b/set"} and all(s["total"] == 2 for s in sets.values())


# 5 ------------------------------------------------------------------ bad arguments: one clear line, before any long work
@pytest.mark.parametrize("args,words", [
    (["config", "show", "--set", "sft.lr=1", "--set", "sft.lr.x=2"], "sft.lr is a value"),
    (["config", "show", "--set", "sft=1", "--set", "sft.lr=2"], "sft is a value"),
    (["config", "show", "--set", "run.seed=3000000000000000"], "run.seed"),
    (["train", "--model", "tiny", "--set", "data.gsm8k=/dev/zero"], "data.gsm8k: /dev/zero is not a JSONL file"),
    (["eval", "sessions/typo-that-is-not-there"], "no such session folder"),
    (["eval", "./nowhere"], "no such session folder"),
    (["export", "sessions/nope", "--tensorboard", "TB"], "no such session folder"),
])
def test_a_bad_argument_gets_one_clear_line(tmp_path, args, words):
    (tmp_path / "sessions").mkdir()
    out = engine(*[a.replace("TB", str(tmp_path / "tb")) for a in args], cwd=tmp_path, timeout=120)
    no_traceback(out)
    assert out.returncode != 0 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "tb").exists() and list((tmp_path / "sessions").iterdir()) == []


def test_a_checkpoint_that_is_no_checkpoint_is_refused_by_name(tmp_path):
    folder = tiny_session(tmp_path / "s")
    for bad in ("/etc/passwd", "/dev/zero", str(tmp_path)):
        out = engine("eval", str(folder), "--checkpoint", bad, "--set", "eval.synthetic=1", "--set", "eval.gsm8k=0", timeout=120)
        no_traceback(out)
        assert out.returncode != 0 and bad in out.stderr, out.stderr


def test_read_only_folders_get_one_clear_line(tmp_path):
    done = tiny_session(tmp_path / "done")
    (done / "events.jsonl").write_text(json.dumps({"kind": "metrics", "t": 1.0, "phase": "sft", "step": 1, "loss": 1.0}) + "\n")
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        out = engine("train", "--model", "tiny", "--session", str(ro / "run"), "--plain")
        no_traceback(out)
        assert out.returncode != 0 and "Read-only file system" in out.stderr and len(out.stderr.strip().splitlines()) == 1
        out = engine("export", str(done), "--tensorboard", str(ro / "tb"))
        no_traceback(out)
        assert out.returncode != 0 and "Read-only file system" in out.stderr


# 6 ------------------------------------------------------------------ a killed run, a damaged checkpoint, a stop while starting
def test_a_killed_run_resumes_past_a_torn_line_and_a_checkpoint_missing_a_tensor_is_refused(tmp_path):
    folder = tmp_path / "k"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                             "--set", "run.checkpoint_every=2", "--set", "sft.epochs=20", "--set", "run.phases=sft,eval",
                             "--set", "eval.at=sft"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(checkpoints.steps(folder)) >= 2, "two checkpoints")
    proc.send_signal(signal.SIGKILL)  # no final event, no clean checkpoint: what a crash leaves
    proc.wait()
    assert list_sessions(folder.parent)[0]["status"] == "died"
    with open(folder / "events.jsonl", "a") as f:
        f.write('{"kind": "metrics", "step": 9')  # the torn line a kill mid-write leaves
    last_step = int(checkpoints.steps(folder)[-1].name.split("-")[1])
    out = engine("train", "--resume", str(folder), "--plain", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    events = read_all(folder / "events.jsonl")
    started = [e for e in events if e["kind"] == "run_started"]
    assert len(started) == 2 and started[1]["resumed"] and started[1]["resumed_from"].endswith(f"step-{last_step:06d}")
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "completed"
    # a checkpoint with a tensor taken out is refused, naming the tensor, not scored half-trained
    best = folder / "checkpoints" / "best" / "state.pt"
    state = torch.load(best, weights_only=True)
    gone = sorted(state["trainable"])[0]
    del state["trainable"][gone]
    torch.save(state, best)
    out = engine("eval", str(folder), "--set", "eval.synthetic=1", "--set", "eval.gsm8k=0")
    no_traceback(out)
    assert out.returncode != 0 and gone in out.stderr and "lacks" in out.stderr


def test_a_stop_asked_while_the_engine_is_starting_is_honoured(tmp_path):
    """The workbench's `s` while it says "starting engine...": the request lands before the engine
    has imported torch. It must end the run; a request left from before the process must not."""
    folder = tmp_path / "early"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                             "--set", "sft.epochs=30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    Session(folder).request_stop()  # at once, as the workbench does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err
    events = read_all(folder / "events.jsonl")
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "stopped"
    assert not any(e["kind"] == "metrics" for e in events)  # stopped before the first step
    # a stop file older than the process is what an earlier run left: cleared, the run goes on
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "stop").write_text("left from an earlier run")
    os.utime(stale / "stop", (time.time() - 3600, time.time() - 3600))
    out = engine("train", "--model", "tiny", "--session", str(stale), "--plain", "--set", "run.phases=sft", "--set", "sft.epochs=1")
    assert out.returncode == 0 and read_all(stale / "events.jsonl")[-1]["status"] == "completed"


def test_a_full_disk_ends_the_run_with_a_clear_status_and_it_resumes(tmp_path):
    """A 60 MB file system holds one checkpoint of the tiny model (38 MB), not two."""
    with tmpfs(tmp_path / "small", "60m") as disk:
        folder = disk / "run"
        out = engine("train", "--model", "tiny", "--session", str(folder), "--plain", "--set", "run.checkpoint_every=1",
                     "--set", "run.phases=sft", "--set", "sft.epochs=1", timeout=300)
        assert out.returncode == 1 and out.stderr.count("Traceback") == 0, out.stderr[-3000:]
        status = json.loads((folder / "status.json").read_text())
        assert status["status"] == "failed" and status["error"].startswith("disk full")
        events = read_all(folder / "events.jsonl")
        assert events[-1]["kind"] == "run_finished" and events[-1]["error"].startswith("disk full")
        assert [p.name for p in checkpoints.steps(folder)] == ["step-000001"]
        assert not list(folder.glob("checkpoints/*/state.pt.tmp"))  # the partial file gave its space back
        subprocess.run(["mount", "-o", "remount,size=400m", str(disk)], check=True)
        out = engine("train", "--resume", str(folder), "--plain", timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        events = read_all(folder / "events.jsonl")
        assert [e.get("resumed") for e in events if e["kind"] == "run_started"] == [False, True]
        assert events[-1]["status"] == "completed"


# 7 ------------------------------------------------------------------ scale: 10,000 sessions, 200,000 events (benchmarks/scale.py)
def test_a_long_series_is_plotted_from_a_few_hundred_points_ending_where_the_run_is():
    from workbench.runstate import PLOT_POINTS, downsample

    pts = [(i, float(i % 7)) for i in range(200_001)]
    drawn = downsample(pts)
    assert len(drawn) <= PLOT_POINTS and drawn[0] == pts[0] and drawn[-1] == pts[-1]
    assert downsample(pts[:PLOT_POINTS]) == pts[:PLOT_POINTS]


def test_bursts_of_events_reach_the_screen_as_one_queued_message_and_bounded_folds():
    from workbench.messages import EventsArrived, Inbox

    posted = []
    inbox = Inbox("main", posted.append, per_take=1000)
    for i in range(50):  # a follower reading a long file: 50 batches before the screen gets a turn
        inbox.put([{"kind": "metrics", "step": i * 100 + j} for j in range(100)])
    assert len(posted) == 1 and isinstance(posted[0], EventsArrived)
    taken = []
    while posted:
        posted.pop()
        batch = inbox.take()
        assert len(batch) <= 1000
        taken += batch
    assert [e["step"] for e in taken] == list(range(5000))  # every event once, in order


async def test_the_session_list_shows_the_newest_rows_and_says_how_to_reach_the_rest(tmp_path, monkeypatch):
    from workbench.app import sessions_app
    from workbench.screens import sessions

    from .sessions_fixture import write_session

    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setattr(sessions, "SHOWN", 20)
    for i in range(30):
        write_session(tmp_path / "s", f"run-{i:02d}", n_steps=1)
    app = sessions_app(tmp_path / "s")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#sessions")
        assert table.row_count == 22  # the newest 20 and the two examples
        assert "20 of 30" in str(app.screen.query_one("#sessions-note").render())
        await pilot.press("slash", *"run-0")
        await pilot.pause(0.3)
        assert table.row_count == 10 and "of" not in str(app.screen.query_one("#sessions-note").render())


async def test_names_from_events_and_status_files_are_shown_as_text_never_markup(tmp_path, monkeypatch):
    """`[/]` or `[bold]` in an expert name, a diagnostic code or a status field: shown as written (a
    DataTable reads a str cell as markup, and `[/]` used to end the app)."""
    from workbench.app import attach_app, sessions_app

    from .sessions_fixture import write_session

    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    folder = write_session(tmp_path, "m")
    with open(folder / "events.jsonl", "a") as f:
        f.write(json.dumps({"kind": "eval", "t": time.time(), "phase": "eval", "step": 30, "at": "rl", "set": "synthetic",
                            "accuracy": 0.5, "parse_rate": 1.0, "valid_rate": 1.0, "correct": 1, "total": 2,
                            "by_expert": {"[/]odd": {"total": 2, "correct": 1}}, "diagnostic_counts": {"[bold]code": 1}}) + "\n")
    status = json.loads((folder / "status.json").read_text())
    (folder / "status.json").write_text(json.dumps({**status, "status": "stopped", "phase": "[bold]x", "model": "[/]"}))
    app = sessions_app(tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        row = [str(c) for c in app.screen.query_one("#sessions").get_row_at(0)]
        assert row[2] == "[/]" and row[3].startswith("[bold]x")  # progress: the phase as text
    app = attach_app(str(folder))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("3")
        await pilot.pause(0.5)
        codes = app.screen.query_one("#codes")
        assert "[bold]code" in [str(codes.get_row_at(i)[0]) for i in range(codes.row_count)]
        await pilot.press("1")
        await pilot.pause(0.5)
    assert app.return_code in (0, None)


def test_a_model_that_cannot_be_had_leaves_no_session_and_names_and_warnings_stay_readable(tmp_path):
    """Issue 31's CLI points that touch what a user types next: no failed session folder for a model
    that does not exist, model names never cut at 80 columns, no FutureWarning noise from transformers."""
    out = engine("train", "--model", str(tmp_path / "no-such-model"), "--session", str(tmp_path / "s"), "--plain")
    no_traceback(out)
    assert out.returncode == 1 and "no model folder" in out.stderr and not (tmp_path / "s").exists()
    models = engine("models", env={**os.environ, "COLUMNS": "80"})
    assert "smollm2-135m-instruct" in models.stdout and "tiny " in models.stdout
    ev = engine("eval", "smollm2-135m-instruct", "--limit", "1", "--set", "eval.max_new_tokens=8", "--json")
    assert ev.returncode == 0 and "FutureWarning" not in ev.stderr and "deprecated" not in ev.stderr, ev.stderr[-2000:]
    assert "Loading weights" not in ev.stderr  # no transformers progress bar in a command's output


def test_diagnostics_per_evaluation_have_a_column_per_set_and_evaluation():
    from workbench.runstate import RunState

    state = RunState("x")
    state.add([{"kind": "eval", "set": "synthetic", "at": "rl", "step": 9, "accuracy": 0.5, "diagnostic_counts": {"overwrite": 2}},
               {"kind": "eval", "set": "gsm8k", "at": "rl", "step": 9, "accuracy": 0.1,
                "diagnostic_counts": {"undefined_var": 13, "truncated": 8}}])
    labels, codes, cells = state.code_table()
    assert labels == ["synthetic rl@9", "gsm8k rl@9"]
    assert cells[("gsm8k rl@9", "undefined_var")] == 13 and cells[("synthetic rl@9", "overwrite")] == 2
    assert cells[("synthetic rl@9", "truncated")] == 0
