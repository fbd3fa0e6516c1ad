"""The metric catalogue (engine/metrics.py) holds what runs emit, what the panes plot and what
docs/events.md's metric table lists: a metric added in one place and not the others fails here."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.events import read_all, sanitize
from engine.metrics import CATALOGUE, METRICS, unknown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics") / "run"
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                          "--set", "eval.at=rl", "--set", "eval.gsm8k=0", "--set", "rl.kl_coef=0.01", "--set", "rl.batch_reuse=2",
                          "--set", "rl.dynamic_sampling=true", "--set", "rl.dynamic_draws=1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return read_all(folder / "events.jsonl")


def test_a_tiny_run_emits_only_catalogued_metrics(tiny_run):
    """SFT and RL with the switches that add metrics (the KL penalty and batch reuse's clipping
    where an update is made, dynamic sampling): a metric the loops emit and the catalogue lacks
    fails here by name."""
    metrics = [e for e in tiny_run if e["kind"] == "metrics"]
    assert {e["phase"] for e in metrics} == {"sft", "rl"}
    stray = sorted({(e["phase"], name) for e in metrics for name in unknown(e["phase"], e)})
    assert not stray, f"metrics not in engine/metrics.py (add an entry and a row in docs/events.md): {stray}"
    emitted = {name for e in metrics for name in e}
    assert {"loss", "grad_norm", "threads", "reward", "tied_groups", "completion_length", "drawn"} <= emitted


def test_the_run_screen_reads_a_runs_eval_sets_from_run_started(tiny_run):
    """The engine names its sets and sizes in run_started (the same run: no second tiny run);
    the run screen takes them from there, not from the config."""
    from workbench.runstate import RunState

    state = RunState(name="run")
    state.add([sanitize(e) for e in tiny_run])
    assert state.eval_sets() == {"synthetic": 8} == tiny_run[0]["eval_sets"]


def test_unknown_names_a_metric_outside_the_catalogue_or_its_phase():
    assert unknown("sft", {"kind": "metrics", "t": 1.0, "phase": "sft", "step": 1, "total": 2, "loss": 0.5, "lr": 1e-4}) == []
    assert unknown("rl", ["reward", "rewrad", "threads"]) == ["rewrad", "threads"]  # a typo; an SFT-only metric


def _doc_table() -> dict[str, tuple[str, str, set[str]]]:
    """docs/events.md's metric table: {name: (label, unit, phases)}."""
    text = DOCS.read_text()
    section = text[text.index("### Metrics"):]
    section = section[: section.index("\n#", 1)] if "\n#" in section[1:] else section
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*`([a-z_0-9]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|", line)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip(), {p.strip() for p in m.group(4).split(",")})
    return rows


def test_the_docs_metric_table_is_the_catalogue():
    table = _doc_table()
    assert set(table) == set(METRICS), f"docs/events.md lacks {set(METRICS) - set(table)}, names uncatalogued {set(table) - set(METRICS)}"
    for m in CATALOGUE:
        assert table[m.name] == (m.label, m.unit, set(m.phases)), m.name


def test_every_metric_a_pane_plots_is_catalogued_for_its_phase():
    """A metric renamed in the engine and not in a pane would leave that plot empty for good."""
    from workbench.widgets import charts, overview

    named = [(phase, key) for _, _, phase, series, _ in overview.PLOTS for key, *_ in series]
    named += [("sft", key) for _, series in overview.SFT_PLOTS.values() for key, *_ in series]
    named += [pair for _, pairs, _ in charts.PLOTS for pair in pairs]
    assert named and [(p, k) for p, k in named if unknown(p, [k])] == []



def test_every_name_a_trl_log_key_is_given_is_a_catalogued_rl_metric():
    """TRL's keys the engine renames land under catalogued RL metrics (a pane plots them by those
    names and labels them from the catalogue); the keys it has no name for pass through under
    their own, and none of those takes a catalogued name by accident."""
    from engine.integrations.trl import METRICS as TRL, metric_values

    assert not unknown("rl", TRL.values()), unknown("rl", TRL.values())
    docs = (Path(__file__).parent.parent / "docs" / "events.md").read_text()
    table = docs.split("### Sessions written by TRL", 1)[1].split("\n#", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for key, name in TRL.items():  # the TRL key and the engine's name on one row of that section's table
        assert any(f"`{key}`" in row and f"`{name}`" in row.split("|")[2] or (f"`{key}`" in row and "the same" in row and key == name)
                   for row in rows), f"docs/events.md's TRL table lacks {key} -> {name}"
    logs = {"loss": 0.5, "learning_rate": 1e-5, "rewards/trace_reward/mean": 0.7, "step": 3, "kind": 1, "flag": True}
    values = metric_values(logs)
    assert values == {"loss": 0.5, "lr": 1e-5, "rewards_trace_reward_mean": 0.7, "trl_step": 3, "trl_kind": 1}
    assert unknown("rl", values) == ["rewards_trace_reward_mean", "trl_step", "trl_kind"]  # outside the catalogue, by their own names
