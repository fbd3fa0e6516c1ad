"""A run in TensorBoard: mirrored while it trains (`run.tensorboard: DIR`), or exported
from a finished session (`engine export SESSION --tensorboard DIR`). Needs the
`tensorboard` package (the project's `tensorboard` extra). Tags: mirror.py."""

from __future__ import annotations

from pathlib import Path

from .mirror import Mapping, replay


class MissingTensorBoard(RuntimeError):
    pass


class TensorBoardMirror:
    def __init__(self, logdir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingTensorBoard("TensorBoard output needs the tensorboard package: pip install tensorboard") from None
        self.w = SummaryWriter(log_dir=str(logdir))
        self.map = Mapping()
        self.scalars = 0

    def on_event(self, e: dict) -> None:
        wall = e.get("t")
        _, step, values = self.map.scalars(e)
        for tag, value in values.items():
            self.w.add_scalar(tag, value, step, walltime=wall)
        self.scalars += len(values)
        for tag, text, at in self.map.texts(e):
            self.w.add_text(tag, text, at, walltime=wall)
        if e.get("kind") == "run_finished":
            self.w.flush()

    def close(self) -> None:
        self.w.flush()
        self.w.close()


def export(session: str | Path, logdir: str | Path) -> int:
    """Write a session's events as TensorBoard summaries; returns the number of scalars written."""
    mirror = TensorBoardMirror(logdir)
    replay(session, mirror)
    return mirror.scalars
