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

import io
import pickle
import re
import stat
import zipfile
from pathlib import Path

import torch

from . import safefile

STATE = "state.pt"
BEST = "best"
START = "start"  # model.init_from as the run found it, kept in the session (keep_start)
KEEP = 2  # step checkpoints kept beside `best`
STEP = re.compile(r"^step-\d{6,}$")  # the names the engine gives step checkpoints


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and why."""


def save(session: Path, name: str, state: dict) -> Path:
    """session/checkpoints/NAME/state.pt, written through no link (engine/safefile.py), fsynced,
    then renamed: whole or not at all. On an error (a full disk) the partial file is removed."""
    with safefile.replace(Path(session), Path("checkpoints") / name / STATE, durable=True) as f:
        torch.save(state, f)
    return Path(session) / "checkpoints" / name


def read(folder: Path) -> dict:
    """The state of a checkpoint folder (or a state.pt file): plain tensors and numbers only."""
    path = Path(folder)
    path = path / STATE if path.is_dir() else path
    try:
        f = safefile.open_regular(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint there") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({exc.strerror or exc})") from None
    with f:
        return _parse(f, path)


def _records(f, path: Path) -> None:
    """torch.save writes a zip whose records are stored as they are, so a checkpoint holds no more
    than its size. A record compressed by someone else could expand ~1,000-fold in torch.load (a
    98 KB file, 100 MB of tensor); one claiming more bytes than the file has is no checkpoint either."""
    size = f.seek(0, 2)
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as z:  # a file object passed in stays open
            infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        infos = None
    f.seek(0)
    if infos is None:  # torch.save has written zips since PyTorch 1.6; the older format sizes nothing
        raise CheckpointError(f"{path}: refused: damaged or not a checkpoint (not the zip torch.save writes; "
                              f"a bare pickle is no checkpoint, and loading one could run code)")
    packed = next((i for i in infos if i.compress_type != zipfile.ZIP_STORED), None)
    if packed is not None:
        raise CheckpointError(f"{path}: refused: its record {packed.filename[-60:]!r} is compressed "
                              f"(torch.save never compresses; unpacked it could fill the memory)")
    if sum(i.file_size for i in infos) > size:
        raise CheckpointError(f"{path}: damaged or not a checkpoint (its records claim more bytes than the file has)")


def _parse(f, path: Path) -> dict:
    _records(f, path)
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused: it holds more than tensors and numbers, and loading it could run "
                              f"code ({str(exc).splitlines()[0][:160]})") from None
    except Exception as exc:  # noqa: BLE001 - whatever a foreign file makes torch raise, it is not a checkpoint
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({type(exc).__name__}: {str(exc)[:160]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("trainable"), dict):
        raise CheckpointError(f"{path}: not a tracebench checkpoint (no trained parameters in it)")
    odd = next((k for k, v in state["trainable"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if odd is not None:  # names are compared and sorted as text later: an int key would raise TypeError there
        what = f"a key of type {type(odd).__name__}" if not isinstance(odd, str) else f"{odd[:80]!r}, not a tensor"
        raise CheckpointError(f"{path}: not a tracebench checkpoint (its trained parameters hold {what})")
    return state


def keep_start(session: Path, source: Path) -> tuple[Path, str]:
    """model.init_from, copied into the session as checkpoints/start (its trained parameters, its
    source and the source's sha256): the session stays evaluable and resumable when the checkpoint
    it started from is gone or changed, and the run loads the copy, not a file that may change
    under it. Returns (the copy, the sha256)."""
    import hashlib

    source = Path(source)
    try:
        path = source / STATE if source.is_dir() else source
        with safefile.open_regular(path) as f:
            data = f.read()  # once: what is hashed is what is loaded
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    state = _parse(io.BytesIO(data), path)
    return save(session, START, {"trainable": state["trainable"], "source": str(source), "sha256": digest}), digest


def sha256_of(source: Path) -> str | None:
    """The sha256 of a checkpoint's state.pt (what keep_start records), or None where it cannot be read."""
    import hashlib

    try:
        path = source / STATE if source.is_dir() else source
        with safefile.open_regular(path) as f:
            digest = hashlib.sha256()
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
    except OSError:
        return None


def start_copy(session: Path) -> Path | None:
    """The session's copy of the checkpoint it started from (model.init_from), or None."""
    folder = Path(session) / "checkpoints" / START
    return folder if _real_dir(folder) and (folder / STATE).is_file() else None


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def steps(session: Path) -> list[Path]:
    """Step checkpoints of a session, oldest first: real folders named as the engine names them
    (a link in their place, or in place of checkpoints/, is none)."""
    folder = Path(session) / "checkpoints"
    if not _real_dir(folder):
        return []
    return sorted(p for p in folder.iterdir() if STEP.match(p.name) and _real_dir(p) and (p / STATE).exists())


def rotate(session: Path, keep_path: Path) -> None:
    """Delete step checkpoints beyond the newest KEEP: only real folders named step-N inside this
    session's checkpoints/, only the files the engine writes there (a folder holding anything else stays)."""
    for old in steps(session)[:-KEEP]:
        if old != keep_path:
            safefile.remove_own(Path(session), Path("checkpoints") / old.name, (STATE, STATE + ".tmp"))


def for_resume(session: Path) -> tuple[Path | None, dict | None, list[str]]:
    """(folder, state, problems): the newest step checkpoint that reads, and what was skipped."""
    skipped = []
    for folder in reversed(steps(session)):
        try:
            state = read(folder)
            odd = _odd_position(state)
            if odd:
                raise CheckpointError(f"{folder}: not a tracebench checkpoint to resume from ({odd})")
            return folder, state, skipped
        except CheckpointError as exc:
            skipped.append(str(exc))
    return None, None, skipped


# What a resume reads besides the weights, and the types the engine writes (None where it may be absent).
_RESUME_FIELDS = {"stage": (int,), "step": (int,), "global_step": (int,), "world": (int,), "parallel": (str,),
                  "optimizer": (dict, type(None)), "scheduler": (dict, type(None)), "baseline": (float, int, type(None)),
                  "rl_success": (dict,), "best_accuracy": (float, int, type(None))}


def _odd_position(state: dict) -> str | None:
    """Why a state cannot place a resumed run (a stage that is text, a negative step), or None:
    found here, where the checkpoint is skipped with its name, not as a TypeError mid-setup."""
    for key, kinds in _RESUME_FIELDS.items():
        if key not in state:
            if key in ("stage", "step"):
                return f"no {key!r} in it"
            continue
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"its {key!r} is {type(value).__name__} {str(value)[:40]!r}"
        if key in ("stage", "step", "global_step", "world") and value < (1 if key == "world" else 0):
            return f"its {key!r} is {value}"
    odd = next((f"{k!r}: {v!r}" for k, v in state.get("rl_success", {}).items() if not isinstance(k, str)
                or not (isinstance(v, (tuple, list)) and len(v) == 2 and all(type(n) is int for n in v))), None)
    if odd is not None:  # each question's running success: question -> (right, tries)
        return f"its 'rl_success' holds {odd[:60]}, not question: (right, tries)"
    return None


def choose(session: Path, which: str = "best") -> Path | None:
    """The checkpoint `engine eval` and `engine report` score: best (else last), last, a path, or
    None for `untrained` (the session's model as it was before training)."""
    if which == "untrained":
        return None
    session = Path(session)
    best = session / "checkpoints" / BEST
    done = steps(session)
    if which == "best":
        return best if (best / STATE).exists() else (done[-1] if done else None)
    if which == "last":
        return done[-1] if done else None
    path = Path(which)
    if not (path / STATE).is_file() and not path.is_file():
        raise CheckpointError(f"{which}: not a checkpoint (a folder with {STATE}), nor best, last or untrained")
    return path
