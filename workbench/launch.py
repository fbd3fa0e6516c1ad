"""Start the engine as a child process; the workbench never trains in its own process."""

from __future__ import annotations

import subprocess
from pathlib import Path

from engine.selfexec import child_env, engine_argv


def engine_command(session: Path, sets: list[str]) -> list[str]:
    # not `-m engine`: nothing in the folder the workbench was started from may be imported
    cmd = engine_argv(["train", "--session", str(session), "--plain"])
    for s in sets:
        cmd += ["--set", s]
    return cmd


def start_engine(session: Path, sets: list[str]) -> subprocess.Popen:
    session.mkdir(parents=True, exist_ok=True)
    log = open(session / "engine.log", "ab")
    return subprocess.Popen(engine_command(session, sets), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**child_env(), "COLUMNS": "10000"},  # one line per event: the log pane drops its echo
                            start_new_session=True)  # ctrl+c in the UI does not reach the run


def log_tail(session: Path, lines: int = 12) -> str:
    try:
        return "\n".join((session / "engine.log").read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
