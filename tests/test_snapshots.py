"""A few SVG snapshots of what a person sees (update with --snapshot-update after a deliberate change)."""

import pytest

from workbench.app import stepper_app

from .test_workbench_stepper import OVERWRITE
from .traces import COMPOSED


@pytest.fixture(autouse=True)
def fixed_theme(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path))


def test_stepper_at_an_overwrite(snap_compare):
    assert snap_compare(stepper_app(OVERWRITE, expect_answer=15, theme="harbor", title="overwrite.yaml"), press=["n", "n"], terminal_size=(120, 32))


def test_stepper_composed_at_the_end(snap_compare):
    assert snap_compare(stepper_app(COMPOSED, expect_answer=74, theme="paper", title="composed.yaml"), press=["e"], terminal_size=(120, 32))


def _overview(size):
    from workbench.app import attach_app
    from workbench.examples import ROOT

    async def loaded(pilot):
        for _ in range(50):
            await pilot.pause(0.1)
            if pilot.app.screen.state.finished:
                break
        await pilot.pause(0.5)  # the next redraw

    return attach_app(str(ROOT / "default-run"), theme="harbor"), loaded


@pytest.mark.parametrize("size", [(100, 30), (160, 48), (220, 60)])
def test_overview_of_the_recorded_run(snap_compare, size):
    """The first screen of a run: four plots on their own axes, the stages, accuracy by
    expert with what it was before (entity_track 25/34 -> 24/34 in red), the RL reading,
    the latest sample and alerts; readable at 100x30, using the space at 220x60."""
    app, loaded = _overview(size)
    assert snap_compare(app, run_before=loaded, terminal_size=size)


def test_session_list_at_100x30_keeps_progress_and_best_accuracy_in_view(snap_compare):
    from workbench.app import sessions_app

    async def listed(pilot):
        await pilot.pause(0.5)

    app = sessions_app(__import__("pathlib").Path("no-such-sessions-folder"), theme="harbor")
    assert snap_compare(app, run_before=listed, terminal_size=(100, 30))
