"""FSDP2 (`run.parallel=fsdp`) on this CPU with gloo ranks: the same loss curve as one process,
checkpoints that hold the whole state and resume on another number of ranks, uneven data."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from engine.checkpoints import read, steps
from engine.events import read_all

SFT = ["--model", "tiny", "--plain", "--set", "run.phases=sft", "--set", "data.train_size=37", "--set", "data.gsm8k_traces=3",
       "--set", "sft.batch_size=4", "--set", "sft.epochs=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def train(*args, ranks: int = 1):
    # --standalone: a rendezvous on a port the OS picks, so runs side by side never collide
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--standalone"] if ranks > 1 \
        else [sys.executable]
    out = subprocess.run([*launch, "-m", "engine", "train", *args], capture_output=True, text=True, timeout=400, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]


def sft_losses(folder):
    return [e["loss"] for e in read_all(folder / "events.jsonl") if e["kind"] == "metrics" and e["phase"] == "sft"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process accumulating two batches a step, and two FSDP ranks taking one each: the same batches a step."""
    root = tmp_path_factory.mktemp("fsdp")
    train("--session", str(root / "one"), *SFT, "--set", "sft.grad_accum=2")
    train("--session", str(root / "two"), *SFT, "--set", "run.parallel=fsdp", "--set", "run.checkpoint_every=3", ranks=2)
    return root


def test_two_sharded_ranks_follow_the_single_process_loss_curve(runs):
    one, two = sft_losses(runs / "one"), sft_losses(runs / "two")
    assert len(one) == len(two) == 8 and one[-1] < one[0]
    assert all(abs(a - b) < 1e-4 * abs(a) for a, b in zip(one, two)), (one, two)
    started = read_all(runs / "two" / "events.jsonl")[0]
    assert started["world_size"] == 2 and started["config"]["run"]["parallel"] == "fsdp"


def test_a_sharded_checkpoint_holds_the_whole_state_and_resumes_mid_stage_exactly(runs, tmp_path):
    whole, single = read(steps(runs / "two")[-1]), read(steps(runs / "one")[-1])
    assert whole["parallel"] == "fsdp" and whole["world"] == 2
    assert whole["trainable"].keys() == single["trainable"].keys()
    # the same weights as the single process: a shard gathered in the wrong place or left out would
    # differ by about the tensor's whole size; two ranks differ from one process only by summation
    # order, which Adam (dividing by tiny second moments) turns into drifts of well under 1% after
    # 20 steps at the smoke run's lr (0.7% measured on one CPU, 1e-5 on another)
    for k, ref in single["trainable"].items():
        drift = ((whole["trainable"][k] - ref).norm() / ref.norm()).item()
        assert drift < 0.02, (k, drift)
    assert all(not hasattr(v, "full_tensor") for v in whole["trainable"].values())  # plain tensors, not shards
    # stopped after step 6 (its checkpoint); resumed on 2 ranks with the gathered optimizer state: steps 7, 8 as before
    folder = tmp_path / "resumed"
    shutil.copytree(runs / "two", folder)
    for later in steps(folder):
        if later.name > "step-000006":
            shutil.rmtree(later)
    train("--resume", str(folder), "--plain", ranks=2)
    losses = sft_losses(folder)
    assert losses[8:] == pytest.approx(losses[6:8], rel=1e-5)


def test_a_stage_boundary_checkpoint_resumes_on_three_ranks_with_uneven_data(runs, tmp_path):
    """37 examples in batches of 4 do not divide over 3 ranks; the 2-rank session continues into RL and evaluation on 3."""
    folder = tmp_path / "three"
    shutil.copytree(runs / "two", folder)
    train("--resume", str(folder), "--plain", "--set", "run.phases=sft,rl,eval", "--set", "rl.iterations=2",
          "--set", "eval.synthetic=3", "--set", "eval.gsm8k=0", ranks=3)
    events = read_all(folder / "events.jsonl")
    started = [e for e in events if e["kind"] == "run_started"]
    assert [e["world_size"] for e in started] == [2, 3] and events[-1]["status"] == "completed"
    assert [e["step"] for e in events if e["kind"] == "metrics" and e["phase"] == "rl"] == [1, 2]
    assert any(e["kind"] == "eval" for e in events)


def test_three_sharded_ranks_with_uneven_data_train_evaluate_and_finish(runs, tmp_path):
    """Started from another session's checkpoint (model.init_from): rank 0 copies it and tells the
    others where it is (a real broadcast over gloo); every rank starts from those weights."""
    folder = tmp_path / "uneven"
    start = steps(runs / "one")[-1]
    train("--session", str(folder), "--model", "tiny", "--plain", "--set", "run.parallel=fsdp", "--set", "data.train_size=37",
          "--set", "data.gsm8k_traces=3", "--set", "sft.batch_size=4", "--set", "sft.epochs=1.5", "--set", "rl.iterations=2",
          "--set", "eval.synthetic=3", "--set", "eval.gsm8k=0", "--set", "eval.at=rl", "--set", f"model.init_from={start}", ranks=3)
    events = read_all(folder / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds.count("run_started") == 1 and kinds.count("run_finished") == 1 and events[-1]["status"] == "completed"
    assert events[0]["init_from_sha256"] and (folder / "checkpoints" / "start" / "state.pt").is_file()
    assert sft_losses(folder)[0] < sft_losses(runs / "one")[0] - 0.3  # a trained start: untrained, the first loss is the other's
    sft = [e["step"] for e in events if e["kind"] == "metrics" and e["phase"] == "sft"]
    assert sft == list(range(1, len(sft) + 1)) and kinds.count("eval") >= 1


def test_fsdp_refuses_8bit_weights_by_name():
    from engine import config

    with pytest.raises(config.ConfigError, match="run.parallel: fsdp shards full-precision weights"):
        config.load(sets=["run.parallel=fsdp", "model.load_8bit=true"])


def test_an_rl_update_with_more_signal_on_one_rank_does_not_leave_the_other_waiting():
    """Under FSDP every forward pass is a collective: a rank with fewer micro-batches runs
    zero-weight passes until it has run as many as the rank with the most."""
    from pathlib import Path

    script = Path(__file__).parent / "scripts" / "fsdp_update.py"
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                          str(script)], capture_output=True, text=True, timeout=180, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rank 0 updated, loss finite: True" in out.stdout and "rank 1 updated, loss finite: True" in out.stdout


def test_rl_with_batch_reuse_finishes_when_one_ranks_batch_is_fully_tied():
    """rl.batch_reuse=2 on 2 sharded ranks, rank 1's groups all tied: the ranks decide together
    whether to compute the sampling log-probs, and run them without prefix sharing (one FSDP
    pass per chunk on every rank). Before, rank 1 skipped them and both ranks hung."""
    import signal
    import socket
    from pathlib import Path

    with socket.socket() as s:  # a free port: tests running side by side never meet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).parent / "scripts" / "rl_reuse_tied.py"
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                             str(port), str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the ranks too, not only torchrun
        proc.communicate()
        pytest.fail("the ranks hung in RL with rl.batch_reuse=2")
    assert proc.returncode == 0, err[-3000:]
    assert "rank 0 finished 2 iterations" in out and "rank 1 finished 2 iterations" in out


def test_under_ddp_each_step_is_the_mean_over_every_ranks_tokens():
    """Two DDP ranks with batches of different lengths: the RL update's and an SFT micro-batch's
    gradients equal one process's gradient over both batches' tokens (each rank used to divide
    by its own token count, so a rank's short batch weighed as much as another's long one)."""
    import socket
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).parent / "scripts" / "ddp_token_mean.py"
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                          str(script)], capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank} RL gradient is the global token mean: True" in out.stdout
        assert f"rank {rank} SFT gradient is the global token mean: True" in out.stdout
