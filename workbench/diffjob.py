"""The paired comparison of two sessions for the compare view: `engine diff A B --json` run as a
child process (the workbench never loads a model), its result checked and kept in session A's
folder (`diffs/<B's name>.json`), so that opening the view again does not score again.

Nothing here touches a widget: the screen's worker thread calls `DiffJob.run` and posts what it
returns; Escape calls `cancel` from the UI thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from engine.selfexec import child_env, engine_argv

CACHE_DIR = "diffs"
STATE = "state.pt"  # a checkpoint is a folder holding it (engine/checkpoints.py; that module imports torch)


class DiffError(Exception):
    """A one-line reason the comparison has no result (shown on screen as it is)."""


def checkpoint_stamp(session: Path) -> list:
    """What says which weights `engine diff SESSION` scores: its best checkpoint (else its newest
    step's) and that file's modification time. None when the session has no checkpoint."""
    folder = session / "checkpoints"
    best = folder / "best" / STATE
    if best.is_file():
        return ["best", best.stat().st_mtime_ns]
    steps = sorted((p for p in folder.glob("step-*") if (p / STATE).is_file()),
                   key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    return [steps[-1].name, (steps[-1] / STATE).stat().st_mtime_ns] if steps else None  # by name: the same however A is spelled


def refusal(session: str) -> str | None:
    """Why `session` cannot be compared here, in one line; None when it can."""
    from .examples import is_example
    from .follow import split_target

    if split_target(session)[0] is not None:
        return f"{session}: a session on another machine; run `engine diff` there (the paired comparison scores both models)"
    if is_example(session):
        return f"{Path(session).name}: the recorded example has no checkpoint to score"
    path = Path(session)
    if not (path / "config.yaml").is_file():
        return f"{session}: not a session folder (no config.yaml)"
    if checkpoint_stamp(path) is None:
        return f"{path.name}: no checkpoint yet, nothing to score (a run saves one at its evaluations and at its end)"
    return None


def cache_file(a: str, b: str) -> Path:
    return Path(a) / CACHE_DIR / f"{Path(b).name}.json"


KEPT_LIMIT = 64 << 20  # bytes: a kept report of 1,319 problems with both outputs of every flip is a few MB


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


def check(report) -> dict:
    """The report of `engine diff --json`, or DiffError naming what is wrong with it: every field the
    view reads, of the type it reads it as (a kept file may have been edited or damaged)."""
    if not isinstance(report, dict) or not isinstance(report.get("sets"), dict) or not report["sets"]:
        raise DiffError("engine diff gave no per-set result")
    need = ("problems", "a_correct", "b_correct", "gained", "lost", "mcnemar_p", "change", "change_ci")
    for name, c in report["sets"].items():
        missing = [k for k in need if not isinstance(c, dict) or k not in c]
        if missing:
            raise DiffError(f"engine diff's set {name!r} lacks {', '.join(missing)}")
        counts = all(isinstance(c[k], int) and not isinstance(c[k], bool) and c[k] >= 0 for k in ("problems", "a_correct", "b_correct"))
        lists = isinstance(c["gained"], list) and isinstance(c["lost"], list)
        ci = isinstance(c["change_ci"], list) and len(c["change_ci"]) == 2 and all(map(_number, c["change_ci"]))
        extra = all(isinstance(c.get(k, {}), dict) and all(isinstance(v, dict) for v in c.get(k, {}).values())
                    for k in ("flips",)) and isinstance(c.get("questions", {}), dict)
        if not (counts and lists and ci and _number(c["mcnemar_p"]) and _number(c["change"]) and extra):
            raise DiffError(f"engine diff's set {name!r} has a field of the wrong type")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in c["gained"] + c["lost"]):
            raise DiffError(f"engine diff's set {name!r} names a flipped problem that is not a number")
    return report


def load_cached(a: str, b: str) -> dict | None:
    """The kept result when it was scored on the weights both sessions hold now; else None. Read
    only from a regular file of bounded size (a FIFO or a device would block the screen)."""
    from engine import safefile

    try:
        kept = json.loads(safefile.read_bytes(cache_file(a, b), KEPT_LIMIT).decode("utf-8", "replace"))
        if kept.get("stamp") != [checkpoint_stamp(Path(a)), checkpoint_stamp(Path(b))] or kept.get("b_path") != str(Path(b).resolve()):
            return None
        return check(kept["report"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, DiffError):
        return None  # no result kept, or one this view cannot read: score again


def keep(a: str, b: str, report: dict, stamp: list) -> str | None:
    """Write the result beside session A, whole or not at all, through no link; the reason it was
    not kept, or None."""
    from engine import safefile

    target = cache_file(a, b)
    try:
        safefile.write(Path(a), Path(CACHE_DIR) / target.name,
                       json.dumps({"stamp": stamp, "b_path": str(Path(b).resolve()), "report": report}))
    except OSError as exc:
        return f"the result is not kept ({target}: {exc.strerror or exc})"
    return None


class DiffJob:
    """One `engine diff A B --json` child: `run` (a worker thread) waits for it, `cancel` (any
    thread) kills it and everything it started."""

    def __init__(self, a: str, b: str):
        self.a, self.b = a, b
        self.proc: subprocess.Popen | None = None
        self.cancelled = False

    def command(self) -> list[str]:
        return engine_argv(["diff", self.a, self.b, "--json"])

    def run(self) -> dict:
        """The checked report (also kept in A's folder); DiffError with one line otherwise."""
        stamp = [checkpoint_stamp(Path(self.a)), checkpoint_stamp(Path(self.b))]  # before: a checkpoint saved meanwhile is not claimed
        try:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                         env=child_env(), start_new_session=True)  # its own group: cancel ends all of it
        except OSError as exc:
            raise DiffError(f"cannot start engine diff: {exc.strerror or exc}") from None
        if self.cancelled:  # Escape came while it was starting
            self.cancel()
        out, err = self.proc.communicate()
        if self.cancelled:
            raise DiffError("cancelled")
        if self.proc.returncode != 0:
            lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
            said = next((ln for ln in reversed(lines) if ln.startswith("engine diff")), lines[-1] if lines else "")
            raise DiffError(said.strip().removeprefix("engine diff: ") or f"engine diff exited with code {self.proc.returncode}")
        try:
            report = check(json.loads(out))
        except (ValueError, RecursionError) as exc:
            raise DiffError(f"engine diff's output is not JSON ({exc})") from None
        why = keep(self.a, self.b, report, stamp)
        if why:
            report = {**report, "not_kept": why}
        return report

    def cancel(self) -> None:
        self.cancelled = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its group: the scoring dies with it, nothing runs on in the background
            except (ProcessLookupError, PermissionError):
                pass
