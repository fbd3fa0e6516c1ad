"""A run's folder: sessions/<run-id>/ with config.yaml, events.jsonl,
checkpoints/, status.json, and the request files another shell (or the
workbench) drops in to ask for a stop or a checkpoint."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from . import safefile
from .events import EVENTS, clean_text, count, finite_number

# Every file name of a session folder, in one place.
STATUS, CONFIG, STOP, CHECKPOINT_NOW, LOCK = "status.json", "config.yaml", "stop", "checkpoint-now", "run.lock"
REQUESTS = (STOP, CHECKPOINT_NOW)
# what the engine writes in a session; none of them may be a link
WRITTEN = (STATUS, STATUS + ".tmp", CONFIG, CONFIG + ".tmp", EVENTS, LOCK, "checkpoints", "report.json", "report.json.tmp",
           "report.md", "report.md.tmp", *REQUESTS)
MAX_STATUS_BYTES = 1 << 16


class SessionBusy(RuntimeError):
    """Another live run holds this session."""


class SessionExists(RuntimeError):
    """A new run was asked for in a folder that holds an earlier one: refused, nothing of it touched."""


def fresh_name(path: Path) -> Path:
    """`path`, or path-2, path-3 ...: the first that does not exist."""
    n = 2
    candidate = Path(path)
    while os.path.lexists(candidate):
        candidate, n = Path(f"{path}-{n}"), n + 1
    return candidate


def process_started() -> float:
    """When this process started (wall clock): requests made since then are for this run."""
    import psutil

    return psutil.Process().create_time()


def new_run_id(model: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    short = Path(model).name.lower().replace("/", "-")[:24]
    return f"{stamp}-{short}"


def new_folder(root: Path, model: str) -> Path:
    """A new run's folder under `root`: its run id, never a folder that exists (two starts in one second)."""
    return fresh_name(Path(root) / new_run_id(model))


@dataclass
class Session:
    path: Path

    @property
    def events(self) -> Path:
        return self.path / EVENTS

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def create(self) -> "Session":
        """The folder and its checkpoints/, refused (UnsafePath, before anything is written)
        when a name the engine writes is a link: a session from elsewhere must not point out of itself."""
        self.path.mkdir(parents=True, exist_ok=True)
        links = [name for name in WRITTEN if safefile.is_link(self.path / name)] + self._links_in_checkpoints()
        if links:
            raise safefile.UnsafePath(errno.ELOOP, f"{self.path}: {', '.join(links)} "
                                      f"{'is a symbolic link' if len(links) == 1 else 'are symbolic links'}; the engine "
                                      f"never writes through links in a session folder: remove them, or copy the "
                                      f"session with `cp -rL`")
        safefile.make_dirs(self.path, "checkpoints")
        return self

    def _links_in_checkpoints(self) -> list[str]:
        """Links inside checkpoints/ (a checkpoint folder, or a file in one): found before the run
        starts, not when its first save reaches them an hour in."""
        found = []
        try:
            if safefile.is_link(self.checkpoints):
                return []  # named by the check of the session's own names
            with os.scandir(self.checkpoints) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        found.append(f"checkpoints/{entry.name}")
                    elif entry.is_dir(follow_symlinks=False):
                        with os.scandir(entry.path) as inner:
                            found += [f"checkpoints/{entry.name}/{e.name}" for e in inner if e.is_symlink()]
        except OSError:
            pass
        return found[:5]

    def earlier_run(self) -> list[str]:
        """What of an earlier run this folder holds (empty: none; a folder the workbench made for its log is none)."""
        found = [name for name in (CONFIG, EVENTS, STATUS) if os.path.lexists(self.path / name)]
        try:
            with os.scandir(self.checkpoints) as entries:
                if any(True for _ in entries):
                    found.append("checkpoints")
        except OSError:
            pass
        return found

    def refuse_new_run(self, resume_hint: str = "engine train --resume {path}") -> None:
        """SessionExists when this folder holds an earlier run: a new one would replace its checkpoints
        and config and mix two runs in one events.jsonl."""
        if self.is_live():
            return  # a live run's folder: taking its lock is refused (SessionBusy), naming the run
        found = self.earlier_run()
        if found:
            raise SessionExists(
                f"{self.path} already holds a run ({', '.join(found)}); continue it with "
                f"`{resume_hint.format(path=self.path)}`, or start a new run in a fresh folder (such as "
                f"{fresh_name(self.path)}): nothing of the earlier run is touched")

    def lock(self) -> None:
        """Hold the session for this process's life (the OS lets go when it dies); a second
        run on the same folder is refused instead of interleaving its events and checkpoints."""
        fd = safefile.open_create(self.path, LOCK, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                st = self.status()
                raise SessionBusy(f"{self.path} is in use by a live run (pid {st.get('pid', '?')} on "
                                  f"{st.get('host', '?')}); stop it first, or choose another --session") from None
            raise
        self._lock_fd = fd  # kept open: closing it would release the lock

    def unlock(self) -> None:
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            self._lock_fd = None
            os.close(fd)

    def is_live(self) -> bool:
        """True when a run holds the session's lock (on this machine or a shared file system):
        the truth about liveness, where a pid in status.json may belong to any process by now."""
        try:
            fd = os.open(self.path / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we just took
        return False

    def status(self) -> dict:
        """status.json as a dict; anything else (a list, bad UTF-8, huge, a FIFO) reads as empty."""
        try:
            data = json.loads(safefile.read_bytes(self.path / STATUS, MAX_STATUS_BYTES).decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def request_stop(self) -> None:
        self.request(STOP)

    def request_checkpoint(self) -> None:
        self.request(CHECKPOINT_NOW)

    def request(self, name: str) -> None:
        # never through a link someone planted: O_NOFOLLOW refuses it
        with os.fdopen(safefile.open_create(self.path, name), "w") as f:
            f.write(str(time.time()))

    def take_request(self, name: str) -> bool:
        """True once per request file. Something else under that name (a folder) is no request."""
        path = self.path / name
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return False
        try:
            path.unlink()  # unlinks a link itself, never its target
        except OSError:
            return False
        return True

    def clear_requests(self, before: float | None = None) -> None:
        """A new or resumed run starts without the requests left from before `before` (its
        process's start): a stop asked for while the engine was still starting is kept."""
        before = process_started() if before is None else before
        for name in REQUESTS:
            try:
                st = os.lstat(self.path / name)
            except OSError:
                continue
            if st.st_mtime < before or stat.S_ISLNK(st.st_mode):
                self.take_request(name)


def summarize(path: Path) -> dict:
    """What the session list shows, from status.json and events (no torch). Text is cleaned of
    terminal escapes here, where it leaves the folder; liveness is the session lock, never the
    pid in status.json (by now it may name any process)."""
    s = Session(path)
    st = s.status()
    info = {
        "run": clean_text(path.name), "path": str(path), "status": _text(st.get("status"), "unknown"),
        "model": _text(st.get("model"), "?"), "phase": _text(st.get("phase"), ""), "step": count(st.get("step")),
        "total": count(st.get("total")), "started": _time(st.get("started")), "best_accuracy": _share(st.get("best_accuracy")),
        "error": _text(st.get("error"), "") or None,
    }
    if s.is_live():  # whatever status.json says: a resumed run holds the lock before it rewrites the file
        info["status"] = "running"
    elif info["status"] == "running":
        info["status"] = "died"  # no process holds the session: it ended without a final event
    if info["started"] is None:
        try:
            with safefile.open_regular(s.events) as f:
                first = f.readline(1 << 20)
            info["started"] = _time(json.loads(first).get("t"))
        except (OSError, ValueError, AttributeError, RecursionError):
            pass
    return info


UNITS = {"sft": "steps", "rl": "iters", "eval": "probs"}  # what each phase's counter counts


def progress_text(r: dict) -> str:
    """`sft 120/400 steps`, `done`: where a listed run is, with what the numbers count. One text
    for `engine ls` and the workbench's list (which imports it: nothing here needs torch)."""
    if r.get("status") == "completed":
        return "done"  # every stage ran (its last counter would be an evaluation's problems)
    phase = str(r.get("phase") or "")
    if not r.get("total"):
        return phase
    return f"{phase} {r.get('step') or 0}/{r['total']} {UNITS.get(phase, '')}".strip()


def _text(value, default: str) -> str:
    return clean_text(value[:200]) if isinstance(value, str) else default


def _time(value) -> float | None:
    value = finite_number(value)
    return float(value) if value is not None and 0 < value < 1e11 else None


def _share(value) -> float | None:
    value = finite_number(value)
    return float(value) if value is not None and 0 <= value <= 1 else None


def list_sessions(root: Path) -> list[dict]:
    return Scanner(Path(root)).scan()


def _stat_key(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Scanner:
    """The sessions of a folder, for a screen that asks again every few seconds: a session whose
    status.json has not changed since the last scan keeps its row (whether a run holds its lock is
    asked again only where status.json says running), so 10,000 sessions cost a stat each."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._rows: dict[str, tuple] = {}

    def scan(self) -> list[dict]:
        try:
            entries = [e for e in os.scandir(self.root) if e.is_dir()]
        except OSError:
            return []
        rows, seen = [], {}
        for entry in entries:
            p = Path(entry.path)
            key = (_stat_key(p / STATUS), _stat_key(p / EVENTS) is not None)
            if key == (None, False):
                continue  # not a session
            cached = self._rows.get(entry.path)
            if cached and cached[0] == key:
                row = cached[1]
                if row["status"] in ("running", "died"):
                    row = {**row, "status": "running" if Session(p).is_live() else "died"}
            else:
                try:
                    row = summarize(p)
                except OSError:  # unreadable folder: listed, not fatal
                    row = {"run": clean_text(p.name), "path": str(p), "status": "unreadable", "model": "?", "phase": "",
                           "step": None, "total": None, "started": None, "best_accuracy": None, "error": None}
            seen[entry.path] = (key, row)
            rows.append(row)
        self._rows = seen
        return sorted(rows, key=lambda r: r.get("started") or 0, reverse=True)
