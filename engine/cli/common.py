"""What every command shares: the failure line and the sessions folder."""

from __future__ import annotations

import sys

DEFAULT_ROOT = "sessions"


def fail(cmd: str, message: str, code: int = 2) -> int:
    print(f"engine {cmd}: {message}", file=sys.stderr)
    return code


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
