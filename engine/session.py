"""A run's folder: sessions/<run-id>/ with config.yaml, events.jsonl,
checkpoints/, status.json, and the request files another shell (or the
workbench) drops in to ask for a stop or a checkpoint."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .events import EVENTS, count, finite_number

# Every file name of a session folder, in one place.
STATUS, CONFIG, STOP, CHECKPOINT_NOW, LOCK = "status.json", "config.yaml", "stop", "checkpoint-now", "run.lock"
REQUESTS = (STOP, CHECKPOINT_NOW)
MAX_STATUS_BYTES = 1 << 16


class SessionBusy(RuntimeError):
    """Another live run holds this session."""


def new_run_id(model: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    short = Path(model).name.lower().replace("/", "-")[:24]
    return f"{stamp}-{short}"


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
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        return self

    def lock(self) -> None:
        """Hold the session for this process's life (the OS lets go when it dies); a second
        run on the same folder is refused instead of interleaving its events and checkpoints."""
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
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

    def is_live(self) -> bool:
        """True when a run holds the session's lock (on this machine or a shared file system)."""
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we just took
        return False

    def write_status(self, **fields) -> None:
        current = self.status()
        current.update(fields, updated=time.time(), pid=os.getpid(), host=socket.gethostname())
        tmp = self.path / (STATUS + ".tmp")
        tmp.write_text(json.dumps(current, default=str))
        tmp.replace(self.path / STATUS)  # readers never see half a file

    def status(self) -> dict:
        """status.json as a dict; anything else (a list, bad UTF-8, huge) reads as empty."""
        try:
            with open(self.path / STATUS, "rb") as f:
                data = json.loads(f.read(MAX_STATUS_BYTES).decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def request_stop(self) -> None:
        self.request(STOP)

    def request_checkpoint(self) -> None:
        self.request(CHECKPOINT_NOW)

    def request(self, name: str) -> None:
        # never through a link someone planted: O_NOFOLLOW refuses it
        fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(str(time.time()))

    def take_request(self, name: str) -> bool:
        """True once per request file. Something else under that name (a folder) is no request."""
        path = self.path / name
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return False
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            return False
        try:
            path.unlink()  # unlinks a link itself, never its target
        except OSError:
            return False
        return True

    def clear_requests(self) -> None:
        """A new or resumed run starts without the requests left from before it."""
        for name in REQUESTS:
            self.take_request(name)


def summarize(path: Path) -> dict:
    """What the session list shows, from status.json and events (no torch)."""
    s = Session(path)
    st = s.status()
    info = {
        "run": path.name, "path": str(path), "status": _text(st.get("status"), "unknown"), "model": _text(st.get("model"), "?"),
        "phase": _text(st.get("phase"), ""), "step": count(st.get("step")), "total": count(st.get("total")),
        "started": _time(st.get("started")), "best_accuracy": _share(st.get("best_accuracy")),
        "error": _text(st.get("error"), "") or None,
    }
    if info["status"] == "running" and st.get("host") == socket.gethostname() and not _alive(st.get("pid")):
        info["status"] = "died"  # the process is gone without a final event
    if info["started"] is None and s.events.exists():
        with open(s.events, "rb") as f:
            first = f.readline(1 << 20)
        try:
            info["started"] = _time(json.loads(first).get("t"))
        except (ValueError, AttributeError, RecursionError):
            pass
    return info


def _text(value, default: str) -> str:
    return value[:200] if isinstance(value, str) else default


def _time(value) -> float | None:
    value = finite_number(value)
    return float(value) if value is not None and 0 < value < 1e11 else None


def _share(value) -> float | None:
    value = finite_number(value)
    return float(value) if value is not None and 0 <= value <= 1 else None


def _alive(pid) -> bool:
    """pid 0 and -1 name process groups, not a run: never alive."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 1 << 22:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True


def list_sessions(root: Path) -> list[dict]:
    if not root.exists():
        return []
    rows = []
    for p in root.iterdir():
        if p.is_dir() and ((p / STATUS).exists() or (p / EVENTS).exists()):
            try:
                rows.append(summarize(p))
            except OSError:  # unreadable folder: listed, not fatal
                rows.append({"run": p.name, "path": str(p), "status": "unreadable", "model": "?", "phase": "",
                             "step": None, "total": None, "started": None, "best_accuracy": None, "error": None})
    return sorted(rows, key=lambda r: r.get("started") or 0, reverse=True)
