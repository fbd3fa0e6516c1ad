"""A run in Weights & Biases: mirrored while it trains (`run.wandb: PROJECT`), or exported
from a finished session (`engine export SESSION --wandb PROJECT`). Needs the `wandb`
package (the project's `wandb` extra). Offline by default (`run.wandb_mode`): the run is
written under `./wandb/` without any network, and `wandb sync` uploads it later.

Each phase has its own step (`sft/step`, `rl/step`); evaluations are plotted against
`train/step`, the training steps taken so far (tags: mirror.py)."""

from __future__ import annotations

from pathlib import Path

from .mirror import Mapping, replay


class MissingWandb(RuntimeError):
    pass


class WandbMirror:
    def __init__(self, project: str, mode: str = "offline", name: str | None = None, folder: str | Path | None = None):
        try:
            import wandb
        except ImportError:
            raise MissingWandb("W&B output needs the wandb package: pip install wandb") from None
        self.run = wandb.init(project=project, name=name, mode=mode, dir=str(folder) if folder else None,
                              settings=wandb.Settings(silent=True, console="off"), reinit="create_new")
        for phase in ("sft", "rl"):
            self.run.define_metric(f"{phase}/step")
            self.run.define_metric(f"{phase}/*", step_metric=f"{phase}/step")
        self.run.define_metric("train/step")
        self.run.define_metric("eval/*", step_metric="train/step")
        self.map = Mapping()
        self.logged = 0

    def on_event(self, e: dict) -> None:
        kind, step, values = self.map.scalars(e)
        if values:
            axis = "train/step" if kind == "eval" else f"{kind}/step"
            self.run.log({**values, axis: step})
            self.logged += len(values)
        if e.get("kind") == "run_started":
            self.run.config.update(e.get("config") or {}, allow_val_change=True)
        elif e.get("kind") == "run_finished":
            self.run.summary["status"] = e.get("status")

    def close(self) -> None:
        self.run.finish()


def export(session: str | Path, project: str, mode: str = "offline", folder: str | Path | None = None) -> WandbMirror:
    mirror = WandbMirror(project, mode, name=Path(session).name, folder=folder)
    replay(session, mirror)
    return mirror
