"""Checkpoints: how they are written, read, rotated and chosen. One policy, here.

A checkpoint is a folder holding `state.pt`: the trained parameters, the
optimizer and schedule, and the run's position. It is written to a temporary
file, fsynced, then renamed, so a crash (or `kill -9`) never leaves half of
one. It is read with `weights_only=True`: a `state.pt` from elsewhere (another
user's session folder, a GPU box) can hold tensors and plain numbers, never
code; anything else is refused with the file's name.

Which one is used:
- resume continues from the newest checkpoint that reads; a damaged newest
  one is skipped (and named), the one before it is used;
- `engine eval` and `engine report` take `--checkpoint best|last|PATH`,
  default `best` (the best evaluation of the run; `last` where there is no
  best), and say which they used.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from pathlib import Path

import torch

STATE = "state.pt"
BEST = "best"
KEEP = 2  # step checkpoints kept beside `best`


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and why."""


def save(folder: Path, state: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STATE + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the name points at them
    tmp.replace(folder / STATE)
    return folder


def read(folder: Path) -> dict:
    """The state of a checkpoint folder (or a state.pt file): plain tensors and numbers only."""
    path = Path(folder)
    path = path / STATE if path.is_dir() else path
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused: it holds more than tensors and numbers, and loading it could run "
                              f"code ({str(exc).splitlines()[0][:160]})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({type(exc).__name__}: {str(exc)[:160]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("trainable"), dict):
        raise CheckpointError(f"{path}: not a tracebench checkpoint (no trained parameters in it)")
    return state


def steps(session: Path) -> list[Path]:
    """Step checkpoints of a session, oldest first."""
    return sorted(p for p in (Path(session) / "checkpoints").glob("step-*") if (p / STATE).exists())


def rotate(session: Path, keep_path: Path) -> None:
    for old in steps(session)[:-KEEP]:
        if old != keep_path:
            shutil.rmtree(old, ignore_errors=True)


def for_resume(session: Path) -> tuple[Path | None, dict | None, list[str]]:
    """(folder, state, problems): the newest step checkpoint that reads, and what was skipped."""
    skipped = []
    for folder in reversed(steps(session)):
        try:
            return folder, read(folder), skipped
        except CheckpointError as exc:
            skipped.append(str(exc))
    return None, None, skipped


def choose(session: Path, which: str = "best") -> Path | None:
    """The checkpoint `engine eval` and `engine report` score: best (else last), last, or a path."""
    session = Path(session)
    best = session / "checkpoints" / BEST
    done = steps(session)
    if which == "best":
        return best if (best / STATE).exists() else (done[-1] if done else None)
    if which == "last":
        return done[-1] if done else None
    path = Path(which)
    if not (path / STATE).exists() and not path.is_file():
        raise CheckpointError(f"{which}: not a checkpoint (a folder with {STATE}), nor best or last")
    return path
