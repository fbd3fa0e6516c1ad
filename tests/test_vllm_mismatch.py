"""rl.vllm_is_cap: vLLM's log-probs of the tokens it sampled, and the update weighed by the
sampler/trainer mismatch (truncated importance sampling, as TRL's GRPOTrainer). The strict fake
`vllm` (tests/fake_vllm.py) samples with transformers in bf16 and reports log-probs in the real
shape; its `logprob_shift` makes a known mismatch."""

import itertools

import pytest
import torch

from engine import config
from engine.algorithms import for_config, sampler_mismatch
from engine.backends import HFBackend, make_backend
from engine.modeling import make_optimizer, tiny_model
from engine.rollout import Sampler, completion_logprobs
from engine.tasks.common import Score
from engine.train.context import Events, Handles
from engine.train import rl
from tests import fake_vllm

ORIGINAL_UPDATE = rl.update  # called as every caller called it before the correction existed


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)


def vllm_cfg(*sets):
    return config.load(sets=["rl.backend=vllm", "rl.lr=0", "rl.max_grad_norm=1e6", *sets])


def grads_of(model, step):
    """The gradients an optimizer step sees (read before the update zeroes them)."""
    opt = make_optimizer(model, "adamw", 0.0)
    seen = {}
    opt.register_step_pre_hook(lambda o, a, k: seen.update(g=[p.grad.clone() for p in model.parameters() if p.grad is not None]))
    out = step(opt)
    return seen.get("g"), out


def test_vllm_rollouts_carry_the_log_probs_of_the_tokens_vllm_sampled(monkeypatch, default_tokenizer):
    """Asked with logprobs=0 after temperature (processed_logprobs), cut with the tokens: they are the
    trained model's tempered log-probs to bf16 rounding. With the cap at 0 nothing is asked."""
    fake_vllm.install(monkeypatch)
    tok, model = default_tokenizer, tiny_model(default_tokenizer)
    backend = make_backend(vllm_cfg(), model, tok, None)
    assert backend.llm.kwargs["logprobs_mode"] == "processed_logprobs"  # vLLM's default reports the raw logits'
    prompts = ["expert: arithmetic", "two words"]
    torch.manual_seed(1)
    comps, _ = backend.generate(tok, prompts, 6, 0.5, 1.0, 2)
    with torch.no_grad():
        ours = completion_logprobs(model, tok, prompts, [c.tokens for c in comps], temperature=0.5)
        raw = completion_logprobs(model, tok, prompts, [c.tokens for c in comps], temperature=1.0)
    for c, lp, untempered in zip(comps, ours, raw):
        assert c.logprobs is not None and len(c.logprobs) == len(c.tokens) > 0
        assert torch.allclose(torch.tensor(c.logprobs), lp, atol=0.05)  # the trainer's tempered ones, to bf16 rounding
        assert not torch.allclose(torch.tensor(c.logprobs), untempered, atol=0.05)  # vLLM's default mode would give these
    off = make_backend(vllm_cfg("rl.vllm_is_cap=0"), model, tok, None)
    assert not off.logprobs and off.generate(tok, prompts, 4, 0.7, 1.0, 2)[0][0].logprobs is None
    assert HFBackend(Sampler(model)).generate(tok, prompts, 4, 0.7, 1.0, 2)[0][0].logprobs is None


def test_the_fake_returns_vllms_shape_and_refuses_the_logprobs_vllm_refuses(monkeypatch, default_tokenizer, tmp_path):
    from engine.backends import start_folder

    fake_vllm.install(monkeypatch)
    folder = start_folder(tiny_model(default_tokenizer), default_tokenizer, tmp_path)
    with pytest.raises(ValueError, match="non-negative or -1"):
        fake_vllm.SamplingParams(logprobs=-2)
    with pytest.raises(ValueError, match="logprobs_mode"):
        fake_vllm.LLM(str(folder), logprobs_mode="processed")
    llm = fake_vllm.LLM(str(folder))
    prompt = [{"prompt_token_ids": [1, 2, 3]}]
    for too_many in (21, -1):  # above the engine's max_logprobs (20); -1 asks the whole vocabulary
        with pytest.raises(ValueError, match="greater than max allowed"):
            llm.generate(prompt, fake_vllm.SamplingParams(max_tokens=2, logprobs=too_many))
    out = llm.generate(prompt, fake_vllm.SamplingParams(max_tokens=3, logprobs=2, temperature=0))[0].outputs[0]
    assert len(out.logprobs) == len(out.token_ids) == 3
    for position, token in zip(out.logprobs, out.token_ids):
        assert token in position and 1 <= len(position) <= 3 and position[token].rank == 1  # greedy: the top token
        assert isinstance(position[token], fake_vllm.Logprob) and position[token].logprob <= 0
    assert llm.generate(prompt, fake_vllm.SamplingParams(max_tokens=2))[0].outputs[0].logprobs is None  # not asked


def shifted(at: int) -> float:
    """The known mismatch: vLLM reports even positions 1.5 nats too unlikely (weight e^1.5 > 2: capped),
    odd ones 0.3 too likely (weight e^-0.3: kept)."""
    return -1.5 if at % 2 == 0 else 0.3


@pytest.mark.parametrize("algorithm", ["grpo", "gspo"])
def test_a_known_mismatch_weighs_each_token_by_its_capped_ratio_and_the_gradient_follows(monkeypatch, default_tokenizer, algorithm):
    """Weights min(exp(trainer - vLLM), cap): per token for grpo, per completion (the sequence's ratio,
    TRL's sequence_truncate) for gspo; the update's gradient is the hand-written weighted loss's."""
    fake_vllm.install(monkeypatch)
    tok = default_tokenizer
    cfg = vllm_cfg(f"rl.algorithm={algorithm}", "rl.vllm_is_cap=2")
    backend = make_backend(cfg, tiny_model(tok), tok, None)
    backend.llm.logprob_shift = shifted
    torch.manual_seed(3)
    comps, _ = backend.generate(tok, ["q", "q"], 6, cfg.rl.temperature, 1.0, 2)
    batch = rl.Batch(0, [], ["q", "q"], comps, [1.0, 0.0], [], {})
    adv = [1.0, -1.0]
    algo = for_config(cfg)

    model = tiny_model(tok)
    trainer = rl.old_logprobs(batch, adv, tok, cfg, Handles(model))
    weights, gap = sampler_mismatch(algo, trainer, comps, cfg.rl.vllm_is_cap)
    ratios = [torch.exp(trainer[i] - torch.tensor(comps[i].logprobs)) for i in range(2)]
    if algorithm == "grpo":
        expected = [torch.clamp(r, max=2.0) for r in ratios]
        flat = torch.cat(expected)
        assert 0 < gap["vllm_is_capped"] < 1 and gap["vllm_is_capped"] == pytest.approx(float((flat == 2.0).float().mean()))
    else:
        expected = [torch.clamp(r.prod(), max=2.0) for r in ratios]
    for i in range(2):
        assert torch.allclose(weights[i], expected[i], rtol=1e-5) and not weights[i].requires_grad
    diff = torch.cat([trainer[i] - torch.tensor(comps[i].logprobs) for i in range(2)]).abs().mean()
    assert gap["vllm_logprob_gap"] == pytest.approx(float(diff), rel=1e-5) and gap["vllm_logprob_gap"] > 0.3

    got, stats = grads_of(model, lambda opt: rl.update(model, None, tok, batch, adv, opt, cfg, Handles(model), weights=weights))
    hand_model = tiny_model(tok)
    lps = completion_logprobs(hand_model, tok, batch.prompts, [c.tokens for c in comps], cfg.rl.temperature)
    if algorithm == "grpo":
        n = sum(len(c.tokens) for c in comps)
        loss = -sum(a * (w * lp).sum() for a, w, lp in zip(adv, expected, lps)) / n
    else:
        loss = -sum(a * w * lp.mean() for a, w, lp in zip(adv, expected, lps)) / 2
    loss.backward()
    hand = [p.grad for p in hand_model.parameters() if p.grad is not None]
    assert len(got) == len(hand) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, hand))
    plain_model = tiny_model(tok)
    plain, _ = grads_of(plain_model, lambda opt: rl.update(plain_model, None, tok, batch, adv, opt, cfg, Handles(plain_model)))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, plain))  # the correction moved the step


def one_iteration(monkeypatch, tok, cfg, backend_of):
    """rl.train for one iteration on the tiny model, rewards 0, 1, 0, 1, ... (every group spread):
    the old_logprobs passes it ran, the update's arguments and gradients, its metrics."""
    count = itertools.count()

    def score(cfg, item, text, cut):
        right = next(count) % 2
        return Score("correct" if right else "wrong", float(right), True)

    monkeypatch.setattr(rl, "score", score)
    passes, updates = [], []
    real_old, real_update = rl.old_logprobs, rl.update
    monkeypatch.setattr(rl, "old_logprobs", lambda *a, **k: passes.append(1) or real_old(*a, **k))

    def update(model, *a, **k):
        updates.append((a, k))
        return real_update(model, *a, **k)

    monkeypatch.setattr(rl, "update", update)
    model = tiny_model(tok)
    events = Events()
    seen = []
    events.emit = lambda kind, **f: seen.append({"kind": kind, **f})
    got, _ = grads_of(model, lambda opt: list(rl.train(model, None, tok, opt, cfg, Handles(model), backend_of(model), events=events)))
    metrics = [e for e in seen if e["kind"] == "metrics"]
    return passes, updates, got, metrics


@pytest.mark.parametrize("backend", ["hf", "vllm-cap-0"])
def test_without_the_correction_the_update_is_the_old_one_to_the_bit(monkeypatch, default_tokenizer, backend):
    """The hf backend (the default run) and rl.vllm_is_cap=0: no log-probs asked, no extra pass, no
    weights, no new metric, and the gradient is bit for bit that of the update called as before."""
    fake_vllm.install(monkeypatch)
    tok = default_tokenizer
    sets = ["rl.iterations=1", "rl.questions=2", "rl.group_size=2", "rl.max_new_tokens=6", "rl.temperature=1.0"]
    if backend == "hf":
        cfg = config.load(sets=["rl.lr=0", "rl.max_grad_norm=1e6", *sets])
        passes, updates, got, metrics = one_iteration(monkeypatch, tok, cfg, lambda m: HFBackend(Sampler(m)))
    else:
        cfg = vllm_cfg("rl.vllm_is_cap=0", *sets)
        passes, updates, got, metrics = one_iteration(monkeypatch, tok, cfg, lambda m: make_backend(cfg, m, tok, None))
    assert passes == [] and len(updates) == 1 and updates[0][0][-2:] == (None, None)  # old, weights
    assert not {"vllm_logprob_gap", "vllm_is_capped"} & set(metrics[0])
    a, _ = updates[0]
    batch, adv = a[2], a[3]
    assert any(adv) and all(c.logprobs is None for c in batch.completions)
    model = tiny_model(tok)  # the same weights the iteration started from (the rollouts change none)
    old_way, _ = grads_of(model, lambda opt: ORIGINAL_UPDATE(model, None, tok, batch, adv, opt, cfg, Handles(model)))
    assert len(got) == len(old_way) and all(torch.equal(a, b) for a, b in zip(got, old_way))


def test_with_the_cap_one_pass_gives_the_weights_and_the_metrics(monkeypatch, default_tokenizer):
    fake_vllm.install(monkeypatch)
    tok = default_tokenizer
    cfg = vllm_cfg("rl.iterations=1", "rl.questions=2", "rl.group_size=2", "rl.max_new_tokens=6", "rl.temperature=1.0")
    passes, updates, _, metrics = one_iteration(monkeypatch, tok, cfg, lambda m: make_backend(cfg, m, tok, None))
    a, k = updates[0]
    assert passes == [1] and a[-2] is None and set(a[-1]) == {i for i, x in enumerate(a[3]) if x}  # no ratio: used once
    assert metrics[0]["vllm_logprob_gap"] > 0 and 0 <= metrics[0]["vllm_is_capped"] <= 1  # bf16 sampler, fp32 trainer


def test_a_cap_below_one_is_refused_in_one_line():
    with pytest.raises(config.ConfigError, match="^rl.vllm_is_cap: 0.5 would weigh down"):
        config.load(sets=["rl.vllm_is_cap=0.5"])
    assert config.load(sets=["rl.vllm_is_cap=0"]).rl.vllm_is_cap == 0 and config.RLConfig().vllm_is_cap == 2.0


def test_two_fsdp_ranks_one_fully_tied_both_run_the_correction_pass():
    """Two gloo ranks under FSDP, rank 1's groups all tied, sampler log-probs on every rank: whether
    the trainer's pass runs is decided together (rank 1 joins it with a padding row), or the ranks'
    gathers would pair wrongly and hang."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).parent / "scripts" / "rl_reuse_tied.py"
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                             str(port), str(script), "--sampler-logprobs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the ranks hung with the mismatch correction")
    assert proc.returncode == 0, err[-3000:]
    assert "rank 0 finished 2 iterations" in out and "rank 1 finished 2 iterations" in out
