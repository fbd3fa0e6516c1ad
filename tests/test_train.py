"""The engine end to end on the tiny preset: sessions, events, stop, resume, eval, ls."""

import shutil
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine import config
from engine.events import read_all

from .waiting import wait_for


def engine(*args, timeout=240, **kw):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "smoke"
    out = engine("train", "--model", "tiny", "--session", str(folder), "--plain", "--set", "eval.at=start,sft,rl",
                 "--set", f"run.tensorboard={folder.parent / 'tb'}", "--set", "run.wandb=tracebench-test",
                 env={**os.environ, "WANDB_DIR": str(folder.parent), "WANDB_SILENT": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    return folder, out


def test_smoke_run_writes_a_coherent_session(smoke):
    folder, out = smoke
    events = read_all(folder / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and events[-1]["status"] == "completed"
    started = events[0]
    assert started["schema"] == 1 and started["params_total"] > started["params_trainable"] > 0 or started["params_total"] == started["params_trainable"]
    assert started["config"]["model"]["name"] == "tiny" and started["device"] == "cpu"
    sft = [e for e in events if e["kind"] == "metrics" and e["phase"] == "sft"]
    rl = [e for e in events if e["kind"] == "metrics" and e["phase"] == "rl"]
    assert sft and all({"loss", "lr", "tokens_per_s", "step_time"} <= set(e) for e in sft)
    assert rl and all({"reward", "reward_std", "loss", "tokens_per_s"} <= set(e) for e in rl)
    evals = [e for e in events if e["kind"] == "eval"]
    assert {(e["at"], e["set"]) for e in evals} >= {("start", "synthetic"), ("sft", "synthetic"), ("rl", "synthetic"), ("rl", "gsm8k")}
    for e in evals:
        assert {"accuracy", "parse_rate", "valid_rate", "correct", "wrong_answer", "invalid_trace", "wrong_expert", "parse_fail", "by_expert"} <= set(e)
        assert sum(v["total"] for v in e["by_expert"].values()) == e["total"]
        lo, hi = e["accuracy_ci"]  # the 95% Wilson interval holds the accuracy
        assert 0 <= lo <= e["accuracy"] <= hi <= 1 and hi - lo > 0
    samples = [e for e in events if e["kind"] == "sample"]
    assert samples and {"question", "expected_answer", "text", "reward", "codes"} <= set(samples[0])
    assert any(e["kind"] == "checkpoint" for e in events) and (folder / "config.yaml").exists()
    assert json.loads((folder / "status.json").read_text())["status"] == "completed"
    assert "Evaluations" in out.stdout and "session:" in out.stdout


def test_ls_and_eval_read_the_session(smoke):
    folder, _ = smoke
    ls = engine("ls", "--root", str(folder.parent), "--json")
    row = json.loads(ls.stdout)[0]
    assert row["run"] == "smoke" and row["status"] == "completed" and row["model"] == "tiny"
    ev = engine("eval", str(folder), "--json", "--set", "eval.gsm8k=0")
    assert ev.returncode == 0
    assert json.loads(ev.stdout)["sets"]["synthetic"]["total"] == 8


def test_eval_refuses_a_checkpoint_that_trained_other_parameters(smoke, tmp_path):
    """A checkpoint from another configuration is refused by name, not loaded halfway."""
    import shutil

    import torch

    folder = tmp_path / "other"
    shutil.copytree(smoke[0], folder)
    ckpt = sorted((folder / "checkpoints").glob("step-*"))[-1] / "state.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["trainable"]["model.rotary_emb.inv_freq_not_trained"] = torch.zeros(1)
    torch.save(state, ckpt)
    ev = engine("eval", str(folder), "--checkpoint", "last", "--set", "eval.gsm8k=0")
    assert ev.returncode == 1 and "Traceback" not in ev.stderr
    assert "does not fit" in ev.stderr and "inv_freq_not_trained" in ev.stderr


def test_stop_from_another_shell_then_resume(tmp_path):
    folder = tmp_path / "stopme"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                             "--set", "sft.epochs=40", "--set", "eval.at=sft"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(e["kind"] == "metrics" for e in read_all(folder / "events.jsonl")), "the run's first step")
    assert engine("stop", str(folder)).returncode == 0
    proc.wait(timeout=120)
    events = read_all(folder / "events.jsonl")
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "stopped"
    ckpt = [e for e in events if e["kind"] == "checkpoint"][-1]
    stopped_at = ckpt["step"]
    assert Path(ckpt["path"]).exists() and 0 < stopped_at < 160
    out = engine("train", "--resume", str(folder), "--plain", "--set", "sft.epochs=1.5", "--set", "rl.iterations=1")
    assert out.returncode == 0, out.stderr[-2000:]
    events = read_all(folder / "events.jsonl")
    resumed = [e for e in events if e["kind"] == "run_started"][-1]
    assert resumed["resumed"] and resumed["resumed_from"]
    after = events[events.index(resumed):]
    sft_steps = [e["step"] for e in after if e["kind"] == "metrics" and e["phase"] == "sft"]
    assert not sft_steps or sft_steps[0] == stopped_at + 1  # it continues where it stopped
    assert after[-1]["status"] == "completed"


def test_sigterm_stops_cleanly_with_a_checkpoint(tmp_path):
    folder = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                             "--set", "sft.epochs=40", "--set", "eval.at=rl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(e["kind"] == "metrics" for e in read_all(folder / "events.jsonl")), "the run's first step")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    events = read_all(folder / "events.jsonl")
    assert events[-1]["status"] == "stopped" and any(e["kind"] == "checkpoint" for e in events)


def test_missing_model_is_one_clear_sentence(tmp_path):
    out = engine("train", "--model", str(tmp_path / "no-such-model"), "--session", str(tmp_path / "s"), "--plain")
    assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout
    assert "no model folder" in out.stderr and not (tmp_path / "s").exists()  # said before a session folder is made


@pytest.mark.parametrize("ranks", [3, 4])
def test_torchrun_with_uneven_data_finishes_with_one_coherent_session(tmp_path, ranks):
    """37 examples in batches of 4 do not divide over 3 or 4 ranks; RL batches tie (the
    tiny model writes nothing readable), so every rank must agree to skip them."""
    folder = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--standalone",
           "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain", "--set", "eval.gsm8k=0",
           "--set", "eval.at=rl", "--set", "data.train_size=37", "--set", "data.gsm8k_traces=3", "--set", "sft.batch_size=4",
           "--set", "sft.epochs=1.5", "--set", "rl.iterations=2", "--set", "eval.synthetic=3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    events = read_all(folder / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds.count("run_started") == 1 and kinds.count("run_finished") == 1
    assert events[0]["world_size"] == ranks and events[-1]["status"] == "completed"
    sft = [e for e in events if e["kind"] == "metrics" and e["phase"] == "sft"]
    steps = [e["step"] for e in sft]
    assert steps == list(range(1, sft[-1]["total"] + 1))  # one writer, every step once, to the planned end
    assert all(e["skipped"] for e in events if e["kind"] == "metrics" and e["phase"] == "rl")


def test_a_rank_whose_batch_tied_still_joins_the_update(default_tokenizer):
    """Another rank had signal (agree says: not all tied), so this rank's all-zero batch
    takes a zero-weight pass instead of returning early and leaving the others waiting."""
    from engine.modeling import make_optimizer, tiny_model
    from engine.rollout import Completion
    from engine.parallel import Collectives
    from engine.train.context import Handles
    from engine.train.rl import Batch, update

    model = tiny_model(default_tokenizer)
    calls = []
    dist = Collectives()
    dist.agree = lambda flag, all_of=False: calls.append(flag) or (flag and len(calls) > 1)  # another rank did not tie
    ids = default_tokenizer("expert: a")["input_ids"]
    batch = Batch(0, [], ["q", "q"], [Completion("", ids, False)] * 2, [1.0, 1.0], [], {})
    stats = update(model, None, default_tokenizer, batch, [0.0, 0.0], make_optimizer(model, "adamw", 1e-3), config.load(),
                   Handles(model), dist)
    assert not stats.get("skipped") and calls == [True, True]  # tied here, asked the others; then the finite check
    assert stats["loss"] == 0.0 and stats["entropy"] > 0  # the full pass ran, at zero weight
    assert all(p.grad is None for p in model.parameters())  # the step ran and cleared gradients


def test_every_rank_takes_the_same_number_of_steps():
    from engine.train.sft import rank_share

    batches = list(range(10))
    shares = [rank_share(batches, r, 4, 3) for r in range(4)]
    assert all(len(s) == 3 for s in shares) and shares[0] == [0, 4, 8] and shares[3] == [3, 7, 3]
    assert rank_share([0], 2, 3, 2) == [0, 0]


def test_rl_update_weights_every_token_alike_and_skips_a_batch_without_signal():
    """Tied groups move nothing (no Adam momentum drift); otherwise the loss is the
    token-level mean, so a long answer's tokens count as much as a short one's."""

    import torch

    from engine import config
    from engine.modeling import load_tokenizer, make_optimizer, tiny_model
    from engine.rollout import Completion, completion_logprobs
    from engine.train.context import Handles
    from engine.train.rl import Batch, update

    default_tokenizer = load_tokenizer("smollm2-135m-instruct")
    cfg = config.load(sets=["rl.lr=1e-2"])
    model = tiny_model(default_tokenizer)
    opt = make_optimizer(model, "adamw", cfg.rl.lr)
    ctx = Handles(model)
    short, long = default_tokenizer("expert: a")["input_ids"], default_tokenizer("- expert: a\n  trace: [b, c, d]")["input_ids"]
    batch = Batch(0, [], ["q", "q"], [Completion("", short, False), Completion("", long, False)], [1.0, 0.3], [], {})
    before = [p.detach().clone() for p in model.parameters()]

    assert update(model, None, default_tokenizer, batch, [0.0, 0.0], opt, cfg, ctx)["skipped"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))

    lp = completion_logprobs(model, default_tokenizer, batch.prompts, [short, long], cfg.rl.temperature)
    expected = -(1.0 * lp[0].sum() - 1.0 * lp[1].sum()) / (len(short) + len(long))
    stats = update(model, None, default_tokenizer, batch, [1.0, -1.0], opt, cfg, ctx)
    assert abs(stats["loss"] - expected.item()) < 1e-5 and not stats.get("skipped")
    assert stats["entropy"] > 0
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_rl_update_in_micro_batches_equals_one_pass_and_scales_logits_by_temperature():
    """Backward per micro-batch (one graph alive) gives the gradient of the whole-batch
    loss; log-probs are those of the tempered distribution the tokens were sampled from."""

    import torch

    from engine import config
    from engine.modeling import load_tokenizer, make_optimizer, tiny_model
    from engine.rollout import Completion, completion_logprobs
    from engine.train.context import Handles
    from engine.algorithms import tied_share
    from engine.train.rl import Batch, update

    tok = load_tokenizer("smollm2-135m-instruct")
    ids = [tok(t)["input_ids"] for t in ("expert: a", "- expert: b\n  trace: [c]", "x: 1", "y: [2, 3]", "z")]
    grads = []
    for micro in (1, 5):
        torch.manual_seed(0)
        model = tiny_model(tok)
        cfg = config.load(sets=[f"rl.micro_batch={micro}", "rl.lr=0", "rl.max_grad_norm=1e6"])
        ctx = Handles(model)
        batch = Batch(0, [], ["q"] * 5, [Completion("", i, False) for i in ids], [1, 0, 0.5, 0.7, 0.3], [], {})
        opt = make_optimizer(model, "adamw", 0.0)
        opt.zero_grad()
        # keep the gradient: step with lr 0, read it before zero_grad by hooking the optimizer
        seen = {}
        opt.register_step_pre_hook(lambda o, a, k: seen.update(g=[p.grad.clone() for p in model.parameters() if p.grad is not None]))
        update(model, None, tok, batch, [1.0, -0.5, 0.0, 2.0, -1.0], opt, cfg, ctx)
        grads.append(seen["g"])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))

    hot = completion_logprobs(model, tok, ["q"], [ids[0]], temperature=2.0)[0]
    cold = completion_logprobs(model, tok, ["q"], [ids[0]], temperature=1.0)[0]
    assert not torch.allclose(hot, cold)
    assert tied_share([1, 1, 0.5, 0.7, 0, 0], 2) == 2 / 3


def test_rl_log_probs_run_the_shared_prompt_once_and_equal_each_row_alone(default_tokenizer, monkeypatch):
    """An RL micro-batch shares the system prompt, or a group's whole prompt: that part runs
    once, and every row's log-probs and gradients are those of the row run alone."""
    import torch

    from engine import prefix, rollout
    from engine.data.prompts import prompt_text
    from engine.modeling import tiny_model

    tok = default_tokenizer
    torch.manual_seed(0)
    model = tiny_model(tok)
    group = [prompt_text(tok, "Tom has 3 apples and buys 5 more. How many now?")] * 3
    comps = [tok(t, add_special_tokens=False)["input_ids"]
             for t in ("```yaml\n- init: {a: 3}\n```", "```yaml\n- query: a", "```yaml\n", "We add them: 8.")]
    shared = []
    spy = prefix.continue_inputs
    monkeypatch.setattr(rollout, "continue_inputs", lambda f, ids, mask, n: (n and shared.append(n)) or spy(f, ids, mask, n))
    for prompts in (group + [prompt_text(tok, "What is 2 + 2?")], group):  # system prompt shared; the whole prompt shared
        rows = comps[: len(prompts)]
        together = rollout.completion_logprobs(model, tok, prompts, rows, 0.8)
        sum(lp.sum() for lp in together).backward()
        g_together = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        alone = [rollout.completion_logprobs(model, tok, [p], [c], 0.8)[0] for p, c in zip(prompts, rows)]
        sum(lp.sum() for lp in alone).backward()
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(together, alone))
        assert all(torch.allclose(a, p.grad, atol=1e-5, rtol=1e-4) for a, p in zip(g_together, model.parameters()))
        model.zero_grad()
        with torch.no_grad():  # every row whole, as benchmarks/rollout.py times it: the same log-probs, nothing shared
            whole = rollout.completion_logprobs(model, tok, prompts, rows, 0.8, share_prefix=False)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(together, whole))
    prompt_len = len(tok(group[0], add_special_tokens=False)["input_ids"])
    assert shared[0] >= 40 and shared[1] == prompt_len - 1  # the group: all of the prompt but its last token


def test_eval_and_report_score_the_same_checkpoint_and_say_which(smoke, tmp_path):
    folder, _ = smoke
    from engine import checkpoints

    best = folder / "checkpoints" / "best"
    assert checkpoints.choose(folder) == best
    out = engine("eval", str(folder), "--json", "--set", "eval.synthetic=2", "--set", "eval.gsm8k=0")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["checkpoint"] == str(best)
    last = engine("eval", str(folder), "--json", "--checkpoint", "last", "--set", "eval.synthetic=2", "--set", "eval.gsm8k=0")
    assert json.loads(last.stdout)["checkpoint"] == str(checkpoints.steps(folder)[-1])
    sets = tmp_path / "dev.jsonl"
    sets.write_text(json.dumps({"instruction": "Say hi", "output": "hi"}) + "\n")
    report = engine("report", str(folder), str(sets), "--limit", "1", "--max-new-tokens", "4", "--out", str(tmp_path))
    assert report.returncode == 0, report.stderr[-2000:]
    assert f"scoring {best}" in report.stderr and json.loads((tmp_path / "report.json").read_text())["checkpoint"] == str(best)


def _scalars(logdir: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_mirror_and_export_hold_every_metric_and_evaluation(smoke, tmp_path):
    pytest.importorskip("tensorboard")
    folder, _ = smoke
    events = read_all(folder / "events.jsonl")
    losses = [(e["step"], e["loss"]) for e in events if e["kind"] == "metrics" and e["phase"] == "sft"]
    accuracy = [e["accuracy"] for e in events if e["kind"] == "eval" and e["set"] == "synthetic"]
    out = engine("export", str(folder), "--tensorboard", str(tmp_path / "tb"))
    assert out.returncode == 0 and "scalars" in out.stdout, out.stderr
    for logdir in (folder.parent / "tb", tmp_path / "tb"):  # written live by the run, and exported after it
        scalars = _scalars(logdir)
        assert [(s, pytest.approx(v)) for s, v in scalars["sft/loss"]] == losses
        assert [pytest.approx(v) for _, v in scalars["eval/synthetic/accuracy"]] == accuracy
        assert "rl/reward" in scalars and any(tag.startswith("eval/synthetic/expert/") for tag in scalars)
    missing = engine("export", str(tmp_path / "nothing"), "--tensorboard", str(tmp_path / "tb2"))
    assert missing.returncode == 2 and "no events.jsonl" in missing.stderr


def wandb_history(folder: Path) -> list[dict]:
    """The logged rows of the offline W&B run under `folder`, read from its .wandb file
    (a LevelDB-style log of protobuf records: 7-byte header, then 32 KiB blocks)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = next(folder.rglob("run-*.wandb")).read_bytes()
    pos, rows, parts = 7, [], b""
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:  # a block's tail too small for a header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def test_wandb_offline_mirror_and_export_hold_every_metric_and_evaluation(smoke, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    folder, _ = smoke
    events = read_all(folder / "events.jsonl")
    losses = [e["loss"] for e in events if e["kind"] == "metrics" and e["phase"] == "sft"]
    accuracy = [e["accuracy"] for e in events if e["kind"] == "eval" and e["set"] == "synthetic"]
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    out = engine("export", str(folder), "--wandb", "tracebench-test", env={**os.environ, "WANDB_SILENT": "true"})
    assert out.returncode == 0 and "offline" in out.stdout, out.stderr
    for where in (folder.parent / "wandb", tmp_path / "wandb"):  # written live by the run, and exported after it
        rows = wandb_history(where)
        assert [pytest.approx(r["sft/loss"]) for r in rows if "sft/loss" in r] == losses
        assert [pytest.approx(r["eval/synthetic/accuracy"]) for r in rows if "eval/synthetic/accuracy" in r] == accuracy
        assert all("sft/step" in r for r in rows if "sft/loss" in r) and any("rl/reward" in r for r in rows)


@pytest.mark.wallclock
def test_a_stop_during_an_evaluation_acts_between_its_batches(tmp_path, within):
    """An evaluation reports how far it is (status.json, heartbeats) and a stop asked for
    in the middle ends the run after the current batch, not after the whole evaluation."""
    folder = tmp_path / "evalstop"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                             "--set", "eval.at=start", "--set", "eval.synthetic=2000", "--set", "eval.gsm8k=0",
                             "--set", "eval.batch_size=4", "--set", "eval.max_new_tokens=48"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def status() -> dict:
        try:
            return json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    seen = wait_for(lambda: (s := status()).get("phase") == "eval" and (s.get("step") or 0) > 0 and s,
                    "status.json to show the evaluation under way")
    assert 0 < seen["step"] < seen["total"] == 2000, seen
    with within(30, "the run's end after a stop asked mid-evaluation"):
        assert engine("stop", str(folder)).returncode == 0
        proc.wait(timeout=120)
    events = read_all(folder / "events.jsonl")
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "stopped"
    assert not [e for e in events if e["kind"] == "eval"]  # it did not finish the 2,000 problems first
    heartbeat_eval = [e for e in events if e["kind"] == "heartbeat" and e.get("phase") == "eval"]
    assert all(e.get("set") == "synthetic" and e.get("total") == 2000 for e in heartbeat_eval)


def test_sft_loss_fused_with_the_output_layer_equals_cross_entropy_of_the_logits(default_tokenizer):
    """The fused loss (chunks of the output layer, gradients taken in the forward pass) gives
    the loss and gradients of plain cross-entropy over the answer tokens, across chunk
    boundaries, with the output layer trained or frozen, and under bf16 autocast; so does
    running the prompt prefix the rows share once."""
    import torch

    from engine.data.prompts import trace_answer, training_ids
    from engine.modeling import tiny_model, untie_output_embeddings
    from engine.train import loss as sft_loss
    from engine.train.sft import collate

    tok = default_tokenizer
    rows = [training_ids(tok, f"Question {i}: how many apples are left?", trace_answer("- init: {apples: %d}\n" % i * (i + 2)))
            for i in range(1, 5)]
    batch = collate(rows, tok.pad_token_id, "cpu")
    assert int((batch["labels"] != -100).sum()) > sft_loss.CPU_CHUNK  # more than one chunk
    torch.manual_seed(0)
    model = tiny_model(tok)
    untie_output_embeddings(model)
    head = sft_loss.fusable(model)
    assert head is model.lm_head

    def run(h, share=True):
        out = sft_loss.answer_loss(model, batch, h, share)
        out.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return out.detach(), grads

    logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits[:, :-1]
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100)
    (plain, g_plain), (fused, g_fused) = run(None), run(head)
    assert torch.allclose(plain, expected, atol=1e-5) and torch.allclose(fused, expected, atol=1e-5)
    assert g_plain.keys() == g_fused.keys() and "lm_head.weight" in g_fused
    assert all(torch.allclose(g_plain[n], g_fused[n], atol=1e-5, rtol=1e-4) for n in g_plain)
    # the system prompt and chat template run once for the batch: same loss and gradients as every row whole
    assert sft_loss.shared_prefix(batch) >= 40
    whole, g_whole = run(head, share=False)
    assert torch.allclose(whole, fused, atol=1e-6) and g_whole.keys() == g_fused.keys()
    assert all(torch.allclose(g_whole[n], g_fused[n], atol=1e-5, rtol=1e-4) for n in g_whole)

    model.lm_head.weight.requires_grad_(False)
    _, g_frozen = run(head)
    assert "lm_head.weight" not in g_frozen and torch.allclose(g_frozen["model.norm.weight"], g_plain["model.norm.weight"], atol=1e-5)
    model.lm_head.weight.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (low_plain, _), (low_fused, g_low) = run(None), run(head)
    assert torch.allclose(low_plain, low_fused, atol=2e-2) and g_low["lm_head.weight"].dtype == torch.float32


def test_the_loss_reads_nothing_back_from_the_device(default_tokenizer, monkeypatch):
    """On a GPU, int() of a device tensor or a boolean mask over one stops the host until the
    device catches up, every micro-batch. The loss takes the shared prefix and the trained
    positions from the batch's host copy: on the meta device, which holds no data, any such read
    raises, so this runs only if there is none."""
    from types import SimpleNamespace

    import torch

    from engine.data.prompts import trace_answer, training_ids
    from engine.train import loss as sft_loss
    from engine.train.sft import collate

    tok, hidden_size = default_tokenizer, 16
    rows = [training_ids(tok, f"Question {i}: how many apples?", trace_answer("- init: {apples: %d}\n" % i)) for i in range(1, 4)]
    batch = collate(rows, tok.pad_token_id, "meta")
    assert batch["input_ids"].device.type == "meta" and batch.host["input_ids"].device.type == "cpu"
    assert sft_loss.shared_prefix(batch) >= 40  # from the host copy

    class Model(torch.nn.Module):  # the shapes a causal LM returns, on the meta device
        def forward(self, input_ids, attention_mask, logits_to_keep, position_ids=None, output_hidden_states=False,
                    use_cache=False, past_key_values=None):
            rows, width = input_ids.shape
            hidden = torch.zeros(rows, width, hidden_size, device="meta", requires_grad=True)
            logits = torch.zeros(rows, logits_to_keep, len(tok), device="meta", requires_grad=True)
            kv = torch.zeros(rows, 2, width, 8, device="meta")  # the shared prefix's cache, one layer
            cache = SimpleNamespace(layers=[SimpleNamespace(keys=kv, values=kv)]) if use_cache else None
            return SimpleNamespace(hidden_states=[hidden], logits=logits, past_key_values=cache)

    monkeypatch.setattr(torch, "is_autocast_enabled", lambda *_: False)  # autocast knows no meta device
    fused = []  # its chunked kernel reads no data back either, but autocast(enabled=False) refuses meta
    monkeypatch.setattr(sft_loss.LinearCrossEntropy, "apply", lambda *a: fused.append(a[:3]) or a[0].sum())
    head = torch.nn.Linear(hidden_size, len(tok), bias=False, device="meta")
    for share in (True, False):  # the rows continuing from the prefix run once (training's default), and whole
        for h in (head, None):
            loss = sft_loss.answer_loss(Model(), batch, h, share_prefix=share)
            assert loss.device.type == "meta" and loss.shape == ()
    answers = int((batch.host["labels"][:, 1:] != -100).sum())
    assert len(fused) == 2  # the fused path took exactly the answer positions, on the device
    for hidden, _, targets in fused:
        assert hidden.shape == (answers, hidden_size) and targets.shape == (answers,) and targets.device.type == "meta"


def test_host_tensors_reach_a_gpu_from_pinned_memory_without_waiting(monkeypatch):
    """From pageable memory a copy to a GPU waits for the GPU's queue; collate and the loss send
    through pinned memory with non_blocking. Called with a CUDA device (none here: the copy is
    recorded, not made); a CPU run copies plainly, as before."""
    import torch

    from engine.train.loss import send

    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pin") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **kw: calls.append((str(a[0]), kw)) or self)
    send(torch.zeros(3), torch.device("cuda", 0))
    assert calls == ["pin", ("cuda:0", {"non_blocking": True})]
    calls.clear()
    send(torch.zeros(3), "cpu")
    assert calls == [("cpu", {})]


def test_a_run_says_when_gold_answers_are_longer_than_the_limits_that_score_outputs():
    """GSM8K gold traces can exceed the generation limit: 5.5% of them are over 320 tokens.
    The run says so (and for which limit), instead of letting truncations look like the model's fault."""
    from engine import config
    from engine.recipe import long_answers

    lengths = [100] * 97 + [350, 390, 500]
    note = long_answers(lengths, config.load())
    assert "3 of 100 training answers (3.0%) are longer than rl.max_new_tokens and eval.max_new_tokens (320 tokens)" in note
    assert "the longest answer is 500 tokens" in note
    note = long_answers(lengths, config.load(sets=["eval.max_new_tokens=400", "rl.max_new_tokens=320"]))
    assert "3 of 100 training answers (3.0%) are longer than rl.max_new_tokens (320 tokens)" in note
    assert "1 of 100 training answers (1.0%) are longer than eval.max_new_tokens (400 tokens)" in note
    note = long_answers(lengths, config.load(sets=["eval.max_new_tokens=600", "rl.max_new_tokens=320"]))
    assert "eval.max_new_tokens" not in note and "rl.max_new_tokens (320 tokens)" in note
    assert long_answers(lengths, config.load(sets=["run.phases=[sft]"])) == ""
    assert long_answers([100] * 200 + [400], config.load()) == ""  # under 1%: not worth a line


def test_rl_log_probs_never_build_the_batchs_full_logits_and_equal_the_logits_path(default_tokenizer, monkeypatch):
    """The output layer runs on a chunk of completion tokens at a time (padding skipped) and
    backward recomputes each chunk: the same log-probs, entropies and gradients as full logits."""
    import torch

    from engine import rollout
    from engine.data.prompts import prompt_text
    from engine.modeling import tiny_model

    tok = default_tokenizer
    torch.manual_seed(0)
    model = tiny_model(tok)
    prompts = [prompt_text(tok, "Tom has 3 apples and buys 5 more. How many now?"), prompt_text(tok, "What is 2 + 2?")]
    comps = [tok(t, add_special_tokens=False)["input_ids"] for t in ("```yaml\n- init: {a: 3}\n```", "We add: 4")]
    kept, chunks = [], []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: kept.append(k.get("logits_to_keep")) or forward(*a, **k))
    real = rollout._chunk_logprobs
    monkeypatch.setattr(rollout, "_chunk_logprobs", lambda h, w, t, temp: chunks.append(len(h)) or real(h, w, t, temp))
    lp, ent = rollout.completion_logprobs(model, tok, prompts, comps, 0.8, entropy=True, chunk=5, whole_logits_bytes=0)
    sum(x.sum() for x in lp).backward()
    g_chunked = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    assert set(kept) == {1} and max(chunks) <= 5 and sum(chunks) >= sum(map(len, comps))  # never more than 5 positions' logits

    kept.clear()
    lp2, ent2 = rollout.completion_logprobs(model, tok, prompts, comps, 0.8, entropy=True)  # small: logits whole
    assert kept[-1] == max(map(len, comps)) + 1
    sum(x.sum() for x in lp2).backward()
    g_full = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert [len(x) for x in lp] == [len(c) for c in comps]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(lp, lp2))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(ent, ent2))
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g_chunked, g_full))


def test_activation_checkpointing_gives_the_same_gradients_and_is_on_in_the_gpu_preset(default_tokenizer):
    import torch

    from engine import config as cfgmod
    from engine.data.prompts import prompt_text, trace_answer, training_ids
    from engine.data.synthetic import generate
    from engine.modeling import checkpoint_activations, select_trainable, tiny_model
    from engine.prefix import checkpointed
    from engine.rollout import completion_logprobs
    from engine.train.loss import answer_loss, fusable
    from engine.train.sft import collate

    tok = default_tokenizer
    assert cfgmod.parse_sets([f"{k}={v}" for k, v in cfgmod.GPU.items()])["model"]["activation_checkpointing"] == "True"
    assert not cfgmod.load().model.activation_checkpointing  # off on the CPU: memory is not what runs short there
    batch = collate([training_ids(tok, e.question, trace_answer(e.trace)) for e in generate(3, 1)], tok.pad_token_id, "cpu")
    prompts = [prompt_text(tok, "What is 2 + 2?")] * 2
    comps = [tok(t, add_special_tokens=False)["input_ids"] for t in ("```yaml\n- init: {a: 3}\n```", "We add: 4")]
    grads = []
    for on in (False, True):
        torch.manual_seed(0)
        model = select_trainable(tiny_model(tok), cfgmod.load(sets=["model.train=last_layers", "model.unfreeze_layers=1"]))
        if on:
            checkpoint_activations(model)
        model.train()
        assert checkpointed(model) == on
        answer_loss(model, batch, fusable(model)).backward()
        sum(lp.sum() for lp in completion_logprobs(model, tok, prompts, comps, 0.8)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 2
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4) for n in grads[0])


def test_grpo_advantages_scaled_by_group_batch_or_not_at_all():
    from engine.algorithms import for_config

    rewards = [1.0, 0.0, 0.7, 0.5]
    group, none, batch = (for_config(config.load(sets=["rl.group_size=2", f"rl.scale_rewards={scale}"])).advantages(rewards, None)
                          for scale in ("group", "none", "batch"))
    assert none == pytest.approx([0.5, -0.5, 0.1, -0.1])  # Dr. GRPO: a sure question weighs what an unsure one does
    assert group == pytest.approx([1.0, -1.0, 1.0, -1.0], rel=1e-3)
    import statistics

    std = statistics.pstdev(rewards)
    assert batch == pytest.approx([a / (std + 1e-4) for a in none])


def test_a_reused_batch_clips_the_ratio_and_its_first_step_is_the_plain_gradient(default_tokenizer):
    import math

    import torch

    from engine.modeling import make_optimizer, tiny_model
    from engine.rollout import Completion
    from engine.train.context import Handles
    from engine.train.rl import Batch, old_logprobs, update

    tok = default_tokenizer
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in ("expert: a", "- expert: b\n  trace: [c]")]
    batch = Batch(0, [], ["q", "q"], [Completion("", i, False) for i in ids], [1.0, 0.0], [], {})
    adv = [1.0, -1.0]
    grads = {}
    for name in ("plain", "ratio 1", "ratio 1.5"):
        torch.manual_seed(0)
        model = tiny_model(tok)
        cfg = config.load(sets=["rl.lr=0", "rl.max_grad_norm=1e6", "rl.batch_reuse=2"])
        ctx = Handles(model)
        old = None if name == "plain" else old_logprobs(batch, adv, tok, cfg, ctx)
        if name == "ratio 1.5":  # as if the weights had moved: every token 1.5x likelier than when sampled
            old = {i: lp - math.log(1.5) for i, lp in old.items()}
        opt = make_optimizer(model, "adamw", 0.0)
        seen = {}
        opt.register_step_pre_hook(lambda o, a, k: seen.update(g=[p.grad.clone() for p in model.parameters() if p.grad is not None]))
        stats = update(model, None, tok, batch, adv, opt, cfg, ctx, old=old)
        grads[name] = seen["g"]
        if name != "plain":
            assert stats["clip_ratio"] == (0.0 if name == "ratio 1" else pytest.approx(0.5, abs=0.01))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads["plain"], grads["ratio 1"]))
    # clipped: the advantage-1 row (ratio above 1 + epsilon) adds nothing, the advantage -1 row still pushes down
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads["plain"], grads["ratio 1.5"]))


def test_dynamic_sampling_draws_until_the_groups_have_a_spread(default_tokenizer):
    import random

    from engine.rollout import Completion
    from engine.train.rl import rollouts

    tok = default_tokenizer

    class Backend:  # answers a question right with its own fixed chance (0, 1/2 or 1, by the question)
        def __init__(self):
            self.rng = random.Random(0)
            self.asked = []

        def generate(self, tokenizer, prompts, *args, on_rows=None, **kw):
            self.asked.append(len(prompts))
            out = []
            for p in prompts:
                answer = self.answers[next(q for q in self.answers if q in p)]
                chance = hash(p) % 3 / 2
                value = answer if self.rng.random() < chance else answer + 1
                text = f"```yaml\nexpert: arithmetic\ntrace:\n- {{op: init, var: a, value: {value}}}\n- {{op: query, var: a}}\n```"
                out.append(Completion(text, [1, 2, 3], False))
            return out, {"tokens": 3 * len(prompts), "seconds": 0.01, "tokens_per_s": 300.0}

    from engine.train import rl

    cfg = config.load(sets=["rl.questions=4", "rl.group_size=4", "rl.dynamic_sampling=true", "rl.dynamic_draws=3",
                            "rl.iterations=3", "data.gsm8k_traces=0"])
    backend = Backend()
    real = rl.questions
    backend.answers = {}

    def remember(*a, **k):
        qs = real(*a, **k)
        backend.answers.update({q.question: q.answer for q in qs})
        return qs

    rl_questions, rl.questions = rl.questions, remember
    try:
        record = {}
        batches = list(rollouts(backend, tok, cfg, 0, record=record))
    finally:
        rl.questions = rl_questions
    for b in batches:
        assert len(b.items) == 16  # rl.questions groups of 4, always: every rank keeps the same batch size
        groups = [b.rewards[g : g + 4] for g in range(0, 16, 4)]
        spread = sum(max(g) > min(g) for g in groups)
        assert spread == 4 or b.gen["drawn"] >= 4 + 3  # a spread in every group, or every extra round was drawn
        assert [max(g) > min(g) for g in groups] == sorted([max(g) > min(g) for g in groups], reverse=True)  # spread first
    assert any(b.gen["drawn"] > 4 for b in batches) and record and all(n % 4 == 0 for _, n in record.values())
    plain = config.load(sets=["rl.questions=4", "rl.group_size=4", "rl.iterations=1", "data.gsm8k_traces=0"])
    backend.asked.clear()
    rl.questions = remember
    try:
        list(rollouts(backend, tok, plain, 0))
    finally:
        rl.questions = rl_questions
    assert backend.asked == [16]  # without it: one draw of the configured questions, as before


def test_dynamic_samplings_running_success_is_in_checkpoints_and_a_resume_keeps_it(tmp_path):
    import torch

    folder = tmp_path / "dyn"
    sets = ["--set", "run.phases=[rl]", "--set", "rl.iterations=3", "--set", "rl.dynamic_sampling=true",
            "--set", "rl.dynamic_draws=1", "--set", "run.checkpoint_every=1"]
    out = engine("train", "--model", "tiny", "--session", str(folder), "--plain", *sets)
    assert out.returncode == 0, out.stderr[-2000:]
    mid = torch.load(folder / "checkpoints" / "step-000002" / "state.pt", weights_only=True)
    assert mid["stage"] == 0 and mid["step"] == 2
    record = mid["rl_success"]
    group = mid["config"]["rl"]["group_size"]
    assert record and all(0 <= right <= tries and tries % group == 0 for right, tries in record.values())
    # resumed mid-stage, the run starts from the record it had, not afresh
    shutil.rmtree(folder / "checkpoints" / "step-000003")
    out = engine("train", "--resume", str(folder), "--plain")
    assert out.returncode == 0, out.stderr[-2000:]
    end = torch.load(folder / "checkpoints" / "step-000003" / "state.pt", weights_only=True)
    assert set(record) <= set(end["rl_success"])
    assert all(end["rl_success"][q][1] >= tries for q, (_, tries) in record.items())


def test_a_new_run_starts_from_an_earlier_sessions_checkpoint(smoke, tmp_path):
    """model.init_from (expert iteration's next round): the new run's model holds the checkpoint's
    weights, so its first SFT step already has a trained model's loss; a folder that holds no
    checkpoint, or one written for other parameters, is refused by name."""
    import torch

    from engine import checkpoints
    from engine.modeling import load_model, load_tokenizer

    folder, _ = smoke
    last = checkpoints.steps(folder)[-1]
    cfg = config.load(None, ["model.name=tiny", f"model.init_from={last}"], base=config.smoke_overrides())
    params = dict(load_model(cfg, load_tokenizer("tiny"), torch.device("cpu")).named_parameters())
    state = checkpoints.read(last)["trainable"]
    assert state and all(torch.equal(params[n].detach().float(), t.float()) for n, t in state.items())

    new = tmp_path / "next"
    out = engine("train", "--model", "tiny", "--session", str(new), "--plain", "--set", f"model.init_from={last}",
                 "--set", "run.phases=sft", "--set", "eval.gsm8k=0")
    assert out.returncode == 0, out.stderr[-2000:]

    def first_loss(session):
        return next(e["loss"] for e in read_all(session / "events.jsonl") if e["kind"] == "metrics" and e["phase"] == "sft")

    assert first_loss(new) < first_loss(folder) - 0.3  # the same first batch (same seed): untrained, it would be equal

    empty = tmp_path / "empty"
    empty.mkdir()
    bad = engine("train", "--model", "tiny", "--session", str(tmp_path / "bad"), "--plain", "--set", f"model.init_from={empty}")
    assert bad.returncode == 2 and "model.init_from" in bad.stderr and "Traceback" not in bad.stderr
    lora = engine("train", "--model", "tiny", "--session", str(tmp_path / "lora"), "--plain", "--set", f"model.init_from={last}",
                  "--set", "model.train=lora")
    said = " ".join(lora.stderr.split())  # said before a session folder is made (checked on the model's skeleton)
    assert lora.returncode != 0 and "model.init_from" in said and "does not fit" in said and "Traceback" not in said
    assert not (tmp_path / "lora").exists()


def test_every_rank_loads_model_init_from_from_the_sessions_copy(tmp_path, monkeypatch):
    """Under torchrun rank 0 copies model.init_from into the session (checkpoints/start) and tells
    every rank where it is and the source's sha256: a rank that sees the copy loads it, not the
    original, which may have changed since (FSDP broadcasts no weights); one that does not (another
    machine) loads the source only while it still has that sha256. Whatever stops rank 0's copy
    (a full disk too) stops every rank, each after the same collectives."""
    import errno

    import torch

    from engine import checkpoints, recipe
    from engine.parallel import Collectives

    class Loaded(Exception):
        pass

    def load_model(cfg, tokenizer, device):  # where setup would load the weights from
        raise Loaded(cfg.model.init_from)

    class Ranks(Collectives):
        """Rank `rank` of two without a process group: `share` gives what rank 0 `told`, `agree`
        ORs this rank's flag with the other's; `calls` keeps the order of the collectives."""

        def __init__(self, rank: int, told=None, other: bool = False):
            super().__init__(rank, 2)
            self.told, self.other, self.calls = told, other, []

        def share(self, value):
            self.calls.append("share")
            return value if self.rank == 0 else self.told

        def agree(self, flag: bool, all_of: bool = False) -> bool:
            self.calls.append("agree")
            return (flag and self.other) if all_of else (flag or self.other)

    monkeypatch.setattr(recipe, "load_model", load_model)
    (tmp_path / "first").mkdir()
    source = checkpoints.save(tmp_path / "first", "step-000001", {"trainable": {"w": torch.ones(2)}})
    digest = checkpoints.sha256_of(source)
    cfg = config.load(None, ["model.name=tiny", f"model.init_from={source}"], base=config.smoke_overrides())
    session = tmp_path / "second"
    session.mkdir()  # the recorder made it on rank 0
    copy = session / "checkpoints" / "start"
    ranks = [Ranks(0), Ranks(1, told=(str(copy), digest))]
    for dist in ranks:
        with pytest.raises(Loaded) as loaded:
            recipe.Recipe(cfg, session, dist=dist).setup(resume=False)
        assert str(loaded.value) == str(copy)
        checkpoints.save(tmp_path / "first", "step-000001", {"trainable": {"w": torch.zeros(2)}})  # changed after rank 0 copied it
    assert checkpoints.read(copy)["trainable"]["w"].sum() == 2 and ranks[0].calls == ranks[1].calls == ["share", "agree"]
    elsewhere = str(tmp_path / "other-machine" / "checkpoints" / "start")  # rank 0's copy, out of this rank's sight
    with pytest.raises(checkpoints.CheckpointError, match="is not what rank 0 copied"):
        recipe.Recipe(cfg, session, dist=Ranks(1, told=(elsewhere, digest))).setup(resume=False)
    with pytest.raises(Loaded) as loaded:  # the source as rank 0 hashed it: read by the rank that has no copy
        recipe.Recipe(cfg, session, dist=Ranks(1, told=(elsewhere, checkpoints.sha256_of(source)))).setup(resume=False)
    assert str(loaded.value) == str(source)

    def full(session, source):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "keep_start", full)
    (tmp_path / "third").mkdir()
    failing = [Ranks(0), Ranks(1, told=None)]  # rank 1 hears that rank 0 could not copy
    with pytest.raises(OSError, match="No space left"):
        recipe.Recipe(cfg, tmp_path / "third", dist=failing[0]).setup(resume=False)
    with pytest.raises(checkpoints.CheckpointError, match="rank 0 could not copy"):
        recipe.Recipe(cfg, tmp_path / "third", dist=failing[1]).setup(resume=False)
    assert failing[0].calls == failing[1].calls == ["share"]


def test_model_compile_compiles_the_training_forward_in_setup_and_says_how_long(tmp_path, monkeypatch):
    """model.compile: torch.compile (with torch's own signature) is asked for dynamic shapes; setup
    runs one warm-up forward and backward through it, clears its gradients and reports the time."""
    import inspect

    import torch

    from engine.recipe import Recipe
    from engine.recorder import Recorder

    calls = []
    real = torch.compile

    def fake_compile(model=None, *, fullgraph=False, dynamic=None, backend=None, mode=None, options=None, name=None,
                     disable=False, recompile_limit=None, isolate_recompiles=False, shapes_spec=None):
        calls.append({"dynamic": dynamic, "backend": backend, "mode": mode})

        return Compiled(model)

    class Compiled(torch.nn.Module):  # as torch's OptimizedModule: the module in `_orig_mod`, its attributes read through
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self._orig_mod, name)

        def forward(self, *args, **kwargs):
            calls.append("forward")
            return self._orig_mod(*args, **kwargs)

    assert list(inspect.signature(fake_compile).parameters) == list(inspect.signature(real).parameters)
    monkeypatch.setattr(torch, "compile", fake_compile)
    seen = []

    class Sink:
        def on_event(self, e):
            seen.append(e)

        def close(self):
            pass

    recorder = Recorder()
    recorder.add(Sink())
    cfg = config.load(sets=["model.name=tiny", "model.compile=true", "run.phases=sft"])
    recipe = Recipe(cfg, tmp_path / "s", recorder)
    recipe.setup(resume=False)
    assert {"dynamic": True, "backend": None, "mode": None} in calls and "forward" in calls
    assert all(p.grad is None for p in recipe.model.parameters())  # the warm-up changed nothing
    said = [e for e in seen if e["kind"] == "alert" and "model.compile" in e["message"]]
    assert said and said[0]["compile_seconds"] >= 0
    assert isinstance(recipe.handles.forward, Compiled)  # the compiled forward is what the loops call


@pytest.mark.parametrize("name, theirs", [("cosine", "cosine"), ("linear", "linear"), ("constant", "constant_with_warmup")])
@pytest.mark.parametrize("warmup, total", [(0, 1), (0, 7), (3, 40), (10, 10), (5, 123)])
def test_the_learning_rate_schedule_is_transformers_own_to_the_bit(name, theirs, warmup, total):
    """sft.lr_factor is written out (importing transformers' get_scheduler costs every rank 2.5 s);
    a run's learning rates, and so its losses, must not move by one bit for it."""
    import torch
    from transformers import get_scheduler

    from engine.train.sft import schedule

    def rates(make):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=4e-4)
        sched, seen = make(opt), []
        for _ in range(total + 2):  # past the end too: a resumed run may step once more
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return seen

    cfg = config.Config()
    cfg.sft.schedule, cfg.sft.warmup = name, warmup / total
    mine = rates(lambda opt: schedule(opt, cfg, total))
    ref = rates(lambda opt: get_scheduler(theirs, opt, num_warmup_steps=int(cfg.sft.warmup * total), num_training_steps=total))
    assert mine == ref
    assert len(set(mine)) > 1 or name == "constant" and warmup == 0
