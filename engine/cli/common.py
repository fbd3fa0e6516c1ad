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


def session_config(folder, sets: list[str] | None = None, training: bool = False):
    """A session's config.yaml with `sets` applied. Where the run started from another checkpoint
    (model.init_from), the session's own copy of it (checkpoints/start) is used: the session stays
    evaluable and resumable when that checkpoint is gone or has changed since."""
    from pathlib import Path

    from .. import checkpoints
    from .. import config as config_mod

    copy = checkpoints.start_copy(Path(folder))
    return config_mod.load(Path(folder) / "config.yaml", ([f"model.init_from={copy}"] if copy else []) + list(sets or []),
                           training=training)  # to evaluate it, its training-only files need not be there


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


class CannotLoad(Exception):
    """Why a session's model (or a named model) cannot be had; `code` is the exit code."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def session_model(target: str, which: str = "best", sets: list[str] | None = None):
    """(cfg, tokenizer, model, checkpoint) for a session folder at a checkpoint (best, last, a
    path, or `untrained`: its config's model as it was before training), or for a model name
    untrained (checkpoint None): the one loader of `engine eval`, `engine report` and
    `engine data self-traces`. Raises CannotLoad with the reason."""
    from pathlib import Path

    from transformers.utils import logging as hf_logging

    from .. import checkpoints
    from .. import config as config_mod
    from ..models import TINY, ModelNotFound
    from ..modeling import CheckpointMismatch, load_model, load_tokenizer, pick_device

    why = not_a_session(target)
    if why:
        raise CannotLoad(why)
    folder = Path(target)
    try:
        if (folder / "config.yaml").exists():
            cfg = session_config(folder, sets)
            ckpt = checkpoints.choose(folder, which)
        else:
            cfg = config_mod.load(None, [f"model.name={target}", *(sets or [])],
                                  base=config_mod.smoke_overrides() if target == TINY else None)
            ckpt = None
        hf_logging.disable_progress_bar()  # "Loading weights" bars are noise in a command's output
        tok = load_tokenizer(cfg.model.name)
        model = load_model(cfg, tok, pick_device(cfg.model.device))
    except (config_mod.ConfigError, checkpoints.CheckpointError) as exc:
        raise CannotLoad(str(exc)) from None
    except CheckpointMismatch as exc:  # model.init_from that does not fit the session's model
        raise CannotLoad(str(exc), 1) from None
    except ModelNotFound as exc:
        raise CannotLoad(str(exc), 1) from None
    if ckpt:
        why = load_weights(model, ckpt)
        if why:
            raise CannotLoad(why, 1)
    from ..rollout import Sampler

    # the weights as a run's own evaluations decode them (model.generate_dtype: a bf16 copy on a
    # GPU by default, or where asked), so that engine eval scores what the run scored
    return cfg, tok, Sampler(model, cfg.model.generate_dtype)(), ckpt
