"""Follow a run's events.jsonl from a background thread: a local file, or a
file on another machine through the system `ssh` (so ~/.ssh/config, keys and
jump hosts work as for any other tool).

The follower counts the bytes it has consumed; after a dropped connection it
asks for the file again from that byte, so no event is lost or seen twice.
Events go to `on_events` in batches (never one call per line).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from engine.events import EVENTS, EventReader
from engine.session import Session


def split_target(target: str) -> tuple[str | None, str]:
    """`host:dir` -> (host, dir); a local path -> (None, path)."""
    if ":" in target and not Path(target).exists() and not target.startswith(("/", ".", "~")):
        host, _, path = target.partition(":")
        return host, path
    return None, target


def ssh_command(host: str, command: str, ssh: str = "ssh", ssh_options: list[str] | None = None) -> list[str]:
    # `--` ends ssh's options: a target such as `-oProxyCommand=...:dir` is a host name, never an option
    return [ssh, "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", *(ssh_options or []), "--", host, command]


def missing_folder(target: str, ssh: str = "ssh", ssh_options: list[str] | None = None) -> str | None:
    """`<target>: no such session folder` when the folder is known not to exist (locally, or on a
    host that answered); None when it exists or the host could not be asked (the follower retries)."""
    host, folder = split_target(target)
    if host is None:
        return None if Path(folder).is_dir() else f"{folder}: no such session folder"
    try:
        check = subprocess.run(ssh_command(host, f"test -d {remote_path(folder)} && echo ok", ssh, ssh_options),
                               capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if check.returncode in (0, 1) and b"ok" not in check.stdout:
        return f"{host}:{folder}: no such session folder"
    return None


CHUNK = 1 << 20  # bytes read at a time (~5,000 events): a 200,000-event file arrives in batches, not one block


class Follower:
    def __init__(self, target: str, on_events: Callable[[list[dict]], None], on_status: Callable[[str], None] = lambda s: None,
                 interval: float = 0.25, ssh: str = "ssh", ssh_options: list[str] | None = None):
        self.host, self.folder = split_target(target)
        self.on_events, self.on_status = on_events, on_status
        self.interval = interval
        self.ssh, self.ssh_options = ssh, ssh_options or []
        self.reader = EventReader(Path(self.folder) / EVENTS, checked=True)
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"follow {target}")

    def start(self) -> "Follower":
        self.thread.start()
        return self

    def caught_up(self) -> bool:
        """Whether a local follower has read to the end of the file (a remote one: always)."""
        if self.host is not None:
            return True
        try:
            return os.path.getsize(self.reader.path) <= self.reader.offset
        except OSError:
            return True

    def stop(self) -> None:
        self._stop.set()
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()

    def _run(self) -> None:
        if self.host is None:
            self._follow_local()
        else:
            self._follow_ssh()

    def _follow_local(self) -> None:
        why = missing_folder(self.folder)
        if why:
            self.on_status(why)
            return
        while not self._stop.is_set():
            restarts = self.reader.restarts
            events = self.reader.read(CHUNK)
            if self.reader.restarts != restarts:
                self.on_status("events.jsonl was truncated or replaced; reading it from the start")
            if events:
                self.on_events(events)
            if self.caught_up():
                self._stop.wait(self.interval)
            else:  # a long file is read a chunk at a time: the screen folds each batch between keys
                self._stop.wait(0.01)

    def remote(self, command: str) -> list[str]:
        return ssh_command(self.host, command, self.ssh, self.ssh_options)

    def _follow_ssh(self) -> None:
        why = missing_folder(f"{self.host}:{self.folder}", self.ssh, self.ssh_options)
        if why:
            self.on_status(why)
            return
        path = remote_path(str(Path(self.folder) / EVENTS))
        delay = 1.0
        while not self._stop.is_set():
            start = self.reader.offset + 1  # bytes consumed so far; a torn line stays buffered in the reader
            # tail -c +N starts at byte N (1-based); -F keeps following across truncation and re-creation
            cmd = self.remote(f"tail -c +{start} -F {path} 2>/dev/null")
            self.on_status(f"connecting to {self.host}")
            try:
                self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            except OSError as exc:
                self.on_status(f"cannot run ssh: {exc}")
                return
            self.on_status(f"following {self.host}:{self.folder}")
            got_any = False
            batch: list[dict] = []
            last_flush = time.monotonic()
            fd = self._proc.stdout.fileno()
            while not self._stop.is_set():
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                got_any = True
                self.reader.offset += len(chunk)
                batch += self.reader.feed(chunk)
                if batch and time.monotonic() - last_flush >= self.interval:
                    self.on_events(batch)
                    batch, last_flush = [], time.monotonic()
                elif batch and len(chunk) < 65536:
                    self.on_events(batch)
                    batch, last_flush = [], time.monotonic()
            if batch:
                self.on_events(batch)
            if self._stop.is_set():
                return
            err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
            self._proc.wait()
            reason = err[-1] if err else f"ssh exited with {self._proc.returncode}"
            self.on_status(f"connection lost ({reason}); retrying in {delay:.0f}s")
            self._stop.wait(delay)
            delay = 1.0 if got_any else min(delay * 2, 30.0)


def remote_path(path: str) -> str:
    """A path for the remote shell: quoted, but `~/...` still means the remote home."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
    return shlex.quote(path)


def remote_request(target: str, name: str, ssh: str = "ssh", ssh_options: list[str] | None = None) -> None:
    """Drop a request file (stop, checkpoint-now) into a session, locally or over ssh."""
    host, folder = split_target(target)
    if host is None:
        Session(Path(folder)).request(name)  # never through a planted link
        return
    path = remote_path(str(Path(folder) / name))
    cmd = [ssh, "-o", "BatchMode=yes", *(ssh_options or []), "--", host, f"[ ! -L {path} ] && date +%s > {path}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


class LogTail:
    """Follows a growing local text file (the engine's own output, engine.log) from a thread:
    `on_lines` gets each batch of new whole lines. The UI thread never reads the file."""

    def __init__(self, path, on_lines: Callable[[list[str]], None], interval: float = 0.5, chunk: int = 1 << 20):
        self.path, self.on_lines, self.interval, self.chunk = path, on_lines, interval, chunk
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"tail {path}")

    def start(self) -> "LogTail":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        offset, rest = 0, b""
        while True:
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    data = f.read(self.chunk)
            except OSError:
                data = b""
            if data:
                offset += len(data)
                *whole, rest = (rest + data).split(b"\n")
                lines = [line.decode(errors="replace") for line in whole if line.strip()]
                if lines:
                    self.on_lines(lines)
                continue  # more may be waiting: read on before sleeping
            if self._stop.wait(self.interval):
                return
