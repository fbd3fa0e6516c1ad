"""TRL's GRPOTrainer with the trace reward, watched by the workbench's own reader and stepper."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.events import EventReader
from engine.integrations.trl import TraceSession
from engine.session import Session
from engine.trace import check

from .waiting import wait_for

GOOD = "```yaml\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 3}\n- {op: init, var: b, value: 4}\n" \
       "- {op: compute, compute_op: add, args: [a, b], var: c}\n- {op: query, var: c}\n```"


def test_the_reward_is_the_trace_reward_with_codes_and_samples(tmp_path):
    with TraceSession(tmp_path / "s", samples_per_batch=2) as run:
        extra = {}
        rewards = run.reward(["q1", [{"role": "user", "content": "q2"}], "q3"],
                             [GOOD, [{"role": "assistant", "content": GOOD}], "no trace here"],
                             answer=[7, "so #### 8", 7], expert=["arithmetic", "arithmetic", ""],
                             log_extra=lambda name, values: extra.setdefault(name, values))
    assert rewards == [check(GOOD, 7).reward, check(GOOD, 8).reward, 0.0] and rewards[0] == 1.0 and rewards[1] == 0.7
    assert extra["trace_codes"][2] != "" and run.reward.__name__ == "trace_reward"
    from engine.events import EventReader

    kinds = [e["kind"] for e in EventReader(tmp_path / "s" / "events.jsonl", checked=True).read()]
    assert kinds == ["sample", "sample", "run_finished"]


@pytest.mark.slow
def test_grpo_trainer_two_steps_on_cpu_read_by_the_workbench(tmp_path, default_tokenizer):
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    from engine.data.synthetic import generate
    from engine.events import EventReader
    from engine.modeling import tiny_model
    from engine.session import Session
    from workbench.follow import Follower
    from workbench.runstate import RunState
    from workbench.stepper_model import Stepper

    rows = [{"prompt": e.question, "answer": float(e.answer), "expert": e.expert} for e in generate(8, 0)]
    args = trl.GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                          max_completion_length=12, logging_steps=1, report_to=[], save_strategy="steps", save_steps=2,
                          use_cpu=True, bf16=False, learning_rate=1e-4, seed=0)
    session = tmp_path / "grpo"
    live = []
    with TraceSession(session, max_completion_length=12) as run:
        follower = Follower(str(session), live.extend, interval=0.05).start()  # what `workbench attach` runs
        trainer = trl.GRPOTrainer(model=tiny_model(default_tokenizer), processing_class=default_tokenizer,
                                  reward_funcs=[run.reward], train_dataset=datasets.Dataset.from_list(rows), args=args,
                                  callbacks=[run.callback()])
        during = Session(session).is_live()
        trainer.train()
    written = EventReader(session / "events.jsonl", checked=True).read()
    wait_for(lambda: len(live) >= len(written), "the follower to read the whole session")
    follower.stop()
    assert during and live == written  # followed live, all of it

    state = RunState(name="grpo")
    state.add(EventReader(session / "events.jsonl", checked=True).read())
    assert state.started["config"]["trainer"] == "trl.GRPOTrainer" and state.started["stages"] == ["rl"]
    rl = state.series["rl"]
    assert [s for s, _ in rl["reward"]] == [1, 2] and "loss" in rl and "completion_length" in rl and "tied_groups" in rl
    assert state.status == "completed" and state.checkpoints and state.checkpoints[-1]["step"] == 2
    sample = state.samples[-1]
    assert sample["phase"] == "rl" and sample["question"] in {r["prompt"] for r in rows} and sample["cut"] is True
    stepper = Stepper(sample["text"], sample["expected_answer"], sample["expected_expert"])
    assert stepper.report.outcome == sample["outcome"] and stepper.report.reward == sample["reward"]


def test_a_row_that_cannot_be_scored_is_said_on_every_rank(tmp_path, monkeypatch, capsys):
    with TraceSession(tmp_path / "s") as run:
        assert run.reward(["q"], [GOOD], answer=["no number here"]) == [0.0]
    alerts = [e for e in EventReader(tmp_path / "s" / "events.jsonl", checked=True).read() if e["kind"] == "alert"]
    assert len(alerts) == 1 and "scoring failed" in alerts[0]["message"]
    monkeypatch.setenv("RANK", "1")  # a rank that holds no session: its own terminal hears it
    other = TraceSession(tmp_path / "s1")
    assert other.reward(["q"], [GOOD], answer=["no number here"]) == [0.0] and not (tmp_path / "s1").exists()
    assert "rank 1: scoring failed" in capsys.readouterr().err


def test_under_torchrun_rank_0_alone_owns_the_session(tmp_path):
    """Two gloo ranks each build a TraceSession, as a training script under torchrun/accelerate
    does: rank 0 writes the session, rank 1 only scores (it would be refused the lock)."""
    pytest.importorskip("trl")
    folder = tmp_path / "grpo"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(Path(__file__).parent / "scripts" / "trl_ranks.py"), str(folder), str(tmp_path / "out")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rank 0 done" in out.stdout and "rank 1 done" in out.stdout
    events = EventReader(folder / "events.jsonl", checked=True).read()
    kinds = [e["kind"] for e in events]
    assert kinds.count("run_started") == 1 and kinds.count("run_finished") == 1 and events[-1]["status"] == "completed"
    assert events[0]["world_size"] == 2 and [e["step"] for e in events if e["kind"] == "metrics"][:2] == [1, 2]
    assert Session(folder).status()["status"] == "completed"
