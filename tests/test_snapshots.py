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
