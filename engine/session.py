"""A run's folder: sessions/<run-id>/ with config.yaml, events.jsonl,
checkpoints/, status.json, and the request files another shell (or the
workbench) drops in to ask for a stop or a checkpoint."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .events import EVENTS, read_all

STATUS, CONFIG, STOP, CHECKPOINT_NOW = "status.json", "config.yaml", "stop", "checkpoint-now"


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

    def write_status(self, **fields) -> None:
        current = self.status()
        current.update(fields, updated=time.time(), pid=os.getpid(), host=socket.gethostname())
        tmp = self.path / (STATUS + ".tmp")
        tmp.write_text(json.dumps(current, default=str))
        tmp.replace(self.path / STATUS)  # readers never see half a file

    def status(self) -> dict:
        try:
            return json.loads((self.path / STATUS).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def request_stop(self) -> None:
        (self.path / STOP).write_text(str(time.time()))

    def request_checkpoint(self) -> None:
        (self.path / CHECKPOINT_NOW).write_text(str(time.time()))

    def take_request(self, name: str) -> bool:
        try:
            (self.path / name).unlink()
            return True
        except FileNotFoundError:
            return False

    def last_checkpoint(self) -> Path | None:
        done = sorted(p for p in self.checkpoints.glob("step-*") if (p / "state.pt").exists())
        return done[-1] if done else None


def summarize(path: Path) -> dict:
    """What the session list shows, from status.json and events (no torch)."""
    s = Session(path)
    st = s.status()
    info = {
        "run": path.name, "path": str(path), "status": st.get("status", "unknown"), "model": st.get("model", "?"),
        "phase": st.get("phase", ""), "step": st.get("step"), "total": st.get("total"),
        "started": st.get("started"), "best_accuracy": st.get("best_accuracy"),
    }
    if info["status"] == "running" and st.get("host") == socket.gethostname() and not _alive(st.get("pid")):
        info["status"] = "died"  # the process is gone without a final event
    if info["started"] is None and s.events.exists():
        events = read_all(s.events)
        if events:
            info["started"] = events[0].get("t")
    return info


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True


def list_sessions(root: Path) -> list[dict]:
    if not root.exists():
        return []
    rows = [summarize(p) for p in root.iterdir() if p.is_dir() and ((p / STATUS).exists() or (p / EVENTS).exists())]
    return sorted(rows, key=lambda r: r.get("started") or 0, reverse=True)
