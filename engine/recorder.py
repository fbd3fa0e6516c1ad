"""The one writer of a session.

A `Recorder` owns the session folder (create, lock, config, the stop and
checkpoint requests) and takes every event of a run, handing each to its sinks
with one interface (`on_event`, `close`): the events file, `status.json`
(folded from the events by engine/status.py, the fold workbench/runstate.py reads too), the
terminal reporter of engine/cli, TensorBoard and W&B. The engine's runs
(engine/run.py) and the TRL integration both record through it. On ranks other
than 0 it holds no session, and writes and asks nothing.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

from . import safefile, status
from .events import EventLog
from .session import CONFIG, STATUS, STOP, Session


class Sink(Protocol):
    def on_event(self, event: dict) -> None: ...

    def close(self) -> None: ...


class StatusFile:
    """status.json: what the session list reads without reading the events, folded from them.
    A write that fails (a full disk) is kept in `error` and never ends the run: the run fails
    where it must, at its checkpoint, and says why."""

    def __init__(self, session: Session, fields: dict):
        self.session, self.fields, self.error = session, dict(fields), None
        self._write()

    def on_event(self, e: dict) -> None:
        if status.fold(self.fields, e):  # the fold the workbench's run screen reads too (engine/status.py)
            self._write()

    def _write(self) -> None:
        # a text field is cut short: a 1 MB error message (a traceback, a model output) would make the
        # file larger than its readers take (session.MAX_STATUS_BYTES), and the session would list as
        # unknown; events.jsonl keeps more of it
        fields = {k: _short(v) for k, v in self.fields.items()}
        fields |= {"updated": time.time(), "pid": os.getpid(), "host": socket.gethostname()}
        try:
            safefile.write(self.session.path, STATUS, json.dumps(fields, default=str))  # whole or not at all, never through a link
        except OSError as exc:
            self.error = self.error or exc

    def close(self) -> None:
        if self.error:
            print(f"engine: could not write {self.session.path / STATUS}: {self.error.strerror or self.error}", file=sys.stderr)


MAX_STATUS_TEXT = 2_000  # characters of a text field of status.json; as JSON escapes (6 bytes each) 12 KB


def _short(value):
    if isinstance(value, str) and len(value) > MAX_STATUS_TEXT:
        return value[:MAX_STATUS_TEXT] + f"... ({len(value):,} characters; more of it in events.jsonl)"
    return value


class Recorder:
    """`Recorder(folder)` on rank 0 of a run, `Recorder()` where nothing is written (other
    ranks, tests): `emit` works the same, requests are never there."""

    def __init__(self, folder: Path | None = None):
        self.session = Session(Path(folder)).create() if folder is not None else None  # refuses links before writing
        self.events = EventLog(None)
        self.status: StatusFile | None = None
        self.sinks: list = []
        self._lock = threading.Lock()  # the heartbeat thread emits beside the main one

    def open(self, model: str, resume: bool = False, config: str | None = None,
             resume_hint: str = "engine train --resume {path}") -> "Recorder":
        """Lock the session (SessionBusy when a live run holds it; SessionExists, when not resuming, if
        the folder holds an earlier run), drop the requests left from before this process, write the
        config, and start the event and status sinks."""
        if self.session is None:
            return self
        if not resume:
            self.session.refuse_new_run(resume_hint)
        self.session.lock()
        self.session.clear_requests()  # a stop from before this process must not end it; one asked since is kept
        if config is not None:
            safefile.write(self.session.path, CONFIG, config)
        before = self.session.status() if resume else {}  # a resumed run keeps when it began and its best so far
        self.events = EventLog(self.session.events)
        self.status = StatusFile(self.session, {"status": "running", "model": model, "phase": "setup",
                                                "started": before.get("started") or time.time()}
                                 | ({"best_accuracy": before["best_accuracy"]} if "best_accuracy" in before else {}))
        self.sinks[:0] = [self.events, self.status]
        return self

    def add(self, *sinks) -> None:
        """More sinks (the terminal reporter, TensorBoard, W&B): they see every event from now on."""
        self.sinks += [s for s in sinks if s is not None]

    def emit(self, kind: str, **fields) -> dict:
        event = {"kind": kind, "t": round(time.time(), 3), **fields}
        with self._lock:
            for sink in self.sinks:
                sink.on_event(event)
        return event

    def last_word(self, **fields) -> None:
        """`run_finished` from another thread when the main one is stuck (a collective whose peer
        died): written if the recorder is free within 5 s, so the way out never waits on it."""
        if self._lock.acquire(timeout=5):
            self._lock.release()
            self.emit("run_finished", **fields)
            self.close()

    def take_request(self, name: str) -> bool:
        """True once per request (`stop`, `checkpoint-now`) dropped in the session."""
        return bool(self.session) and self.session.take_request(name)

    def stop_asked(self) -> bool:
        return self.take_request(STOP)

    def close(self) -> None:
        """Every sink closed, the events file last (a sink that fails to close loses nothing of
        it), then the session let go."""
        with self._lock:
            try:
                for sink in [s for s in self.sinks if s is not self.events]:
                    sink.close()
            finally:
                self.events.close()
                self.sinks = []
                if self.session:
                    self.session.unlock()
