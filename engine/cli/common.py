"""What every command shares: the failure line and the sessions folder."""

from __future__ import annotations

import sys

DEFAULT_ROOT = "sessions"


def fail(cmd: str, message: str, code: int = 2) -> int:
    from ..events import clean_text

    print(clean_text(f"engine {cmd}: {message}"), file=sys.stderr)  # a file name may carry escapes
    return code


def not_a_session(target) -> str | None:
    """Why `target` is a path that names no session, or None (a session folder, or a model name).
    A path whose folder exists here (`sessions/typo`) is a session the user meant, not a hub id."""
    from pathlib import Path

    path = Path(target)
    if (path / "config.yaml").is_file():
        return None
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{target}: not a session folder (it has no config.yaml)"
    looks_local = str(target).startswith((".", "/", "~")) or (len(path.parts) > 1 and path.parent.is_dir())
    return f"{target}: no such session folder" if looks_local else None


def load_weights(model, ckpt) -> str | None:
    """A checkpoint's weights into `model`; the reason when they cannot be (None: loaded)."""
    from ..checkpoints import CheckpointError
    from ..modeling import CheckpointMismatch, load_checkpoint

    try:
        load_checkpoint(model, ckpt)
    except CheckpointMismatch as exc:
        return f"{ckpt}: {exc}"
    except CheckpointError as exc:
        return str(exc)
    return None
