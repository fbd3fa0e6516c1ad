"""The clone carries its own contract: the docs name everything the trace language defines, and
nothing in the repository points outside it."""

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.trace.diagnostics import CODES
from engine.trace.language import COMPUTE_OPS, EXPERT_OPS, OP_FIELDS, OPS
from engine.trace.reward import OUTCOMES, RewardWeights

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = (ROOT / "docs" / "trace-language.md").read_text()


def _documented(name: str) -> bool:
    return f"`{name}`" in LANGUAGE


def test_every_operation_expert_and_field_is_documented():
    missing = [n for n in sorted(OPS) + list(COMPUTE_OPS) + list(EXPERT_OPS) if not _documented(n)]
    missing += [f"{op}.{f}" for op, fields in OP_FIELDS.items() for f in fields if not _documented(f)]
    missing += [n for n in ("value", "source", "compute_op", "args", "prev.result", "sub0.result") if not _documented(n)]
    assert not missing, f"docs/trace-language.md does not document {missing}"


def test_every_operation_has_a_row_in_the_operations_table():
    rows = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", LANGUAGE, re.M)}
    assert OPS <= rows, sorted(OPS - rows)


def test_every_diagnostic_code_is_documented_with_its_severity():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| (error|warning) \|", LANGUAGE, re.M)}
    assert set(CODES) <= set(rows), sorted(set(CODES) - set(rows))
    wrong = {code: (rows[code], sev) for code, (sev, _) in CODES.items() if rows[code] != sev}
    assert not wrong, f"severity in the docs differs from the code: {wrong}"


def test_the_reward_table_matches_the_defaults_and_names_every_config_key():
    weights = RewardWeights()
    for f in dataclasses.fields(weights):
        assert _documented(f"reward.{f.name}"), f.name
    for outcome in OUTCOMES:
        assert _documented(outcome), outcome
    for value in (weights.correct, weights.wrong_answer, weights.invalid, weights.wrong_expert, weights.unreadable):
        assert f"| {value:.1f} |" in LANGUAGE, value


def test_no_tracked_file_points_outside_the_repository():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # the two strings are built here so that this file does not match itself
    outside = ["../" + "shared", "shared" + "/spec"]
    found = subprocess.run(["git", "grep", "-I", "-n", "-F", *sum((["-e", s] for s in outside), [])],
                           cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 1, f"files point outside the repository:\n{found.stdout}"
