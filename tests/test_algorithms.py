"""RL algorithms behind one interface (engine/algorithms.py): each class's advantages and loss,
and the one table that the config, the plan and the new-run form read."""

import json
import math
import subprocess
import sys

import pytest
import torch

from engine import config, plan
from engine.algorithms import ALGORITHMS, for_config


def algo(*sets):
    return for_config(config.load(sets=list(sets)))


def test_each_algorithm_has_its_group_size_and_advantages():
    rewards = [1.0, 0.0, 0.7, 0.7]
    reinforce = algo("rl.algorithm=reinforce", "rl.group_size=2")
    assert (reinforce.name, reinforce.group_size, reinforce.grouped) == ("reinforce", 1, False)
    assert reinforce.advantages(rewards, 0.5) == pytest.approx([0.5, -0.5, 0.2, 0.2])  # against the running baseline
    assert reinforce.advantages(rewards, None) == pytest.approx([0.4, -0.6, 0.1, 0.1])  # first round: the batch mean
    assert reinforce.tied(rewards) is None
    for name in ("grpo", "gspo"):  # GSPO takes GRPO's group-relative advantages
        a = algo(f"rl.algorithm={name}", "rl.group_size=2")
        assert (a.group_size, a.grouped) == (2, True)
        assert a.advantages(rewards, 0.5) == pytest.approx([1.0, -1.0, 0.0, 0.0], rel=1e-3)  # the baseline plays no part
        assert a.advantages(rewards, None)[2:] == [0.0, 0.0]  # a tied group: exactly zero
        assert a.tied(rewards) == 0.5
        none = algo(f"rl.algorithm={name}", "rl.group_size=2", "rl.scale_rewards=none")
        assert none.advantages(rewards, None) == pytest.approx([0.5, -0.5, 0.0, 0.0])


def _row(a, logps, old, adv):
    lp = torch.tensor(logps, dtype=torch.float64, requires_grad=True)
    loss, bit = a.row_loss(lp, None if old is None else torch.tensor(old, dtype=torch.float64), adv)
    loss.backward()
    return float(loss.detach()), lp.grad.tolist(), bit


def test_gspo_clips_one_ratio_per_completion_against_a_hand_computation():
    gspo = algo("rl.algorithm=gspo")
    assert (gspo.rc.gspo_epsilon, gspo.rc.gspo_epsilon_high) == (3e-4, 4e-4)  # the paper's ranges
    logps = [-1.0, -2.0, -0.5]
    # inside the range: s = exp(mean(logp - old)) = exp(1e-4); loss -s A; d/dlogp_t = -A s / 3
    old = [x - 1e-4 for x in logps]
    s = math.exp(1e-4)
    loss, grad, bit = _row(gspo, logps, old, 0.8)
    assert loss == pytest.approx(-0.8 * s) and grad == pytest.approx([-0.8 * s / 3] * 3) and bit == 0.0
    # the tokens' ratios 1.105, 0.905, 1.105 stay inside GRPO's 0.2, but their geometric mean 1.034 is above
    # 1 + 4e-4: with A > 0 the clipped term is the smaller one and carries no gradient
    old = [-1.1, -1.9, -0.6]
    s = math.exp((0.1 - 0.1 + 0.1) / 3)
    loss, grad, bit = _row(gspo, logps, old, 0.8)
    assert loss == pytest.approx(-(1 + 4e-4) * 0.8) and grad == pytest.approx([0.0] * 3) and bit == 1.0
    # with A < 0 the unclipped term is the smaller one: it keeps its gradient
    loss, grad, bit = _row(gspo, logps, old, -0.8)
    assert loss == pytest.approx(0.8 * s) and grad == pytest.approx([0.8 * s / 3] * 3) and bit == 0.0
    # GRPO on the same row clips each token at 0.2: nothing is clipped, every token keeps its own ratio
    loss, grad, bit = _row(algo("rl.algorithm=grpo"), logps, old, 0.8)
    assert grad == pytest.approx([-0.8 * math.exp(0.1), -0.8 * math.exp(-0.1), -0.8 * math.exp(0.1)]) and bit == 0.0


def test_gspo_on_a_batch_used_once_has_ratio_one_and_the_mean_token_gradient():
    """rl.batch_reuse=1: s = 1, its gradient s times the MEAN of the tokens' log-prob gradients, where
    GRPO's is their sum: a long completion weighs no more than a short one."""
    logps = [-1.0, -2.0, -0.5, -0.25]
    loss, grad, bit = _row(algo("rl.algorithm=gspo"), logps, None, 0.6)
    assert loss == pytest.approx(-0.6) and grad == pytest.approx([-0.6 / 4] * 4) and bit is None
    loss, grad, bit = _row(algo("rl.algorithm=grpo"), logps, None, 0.6)
    assert loss == pytest.approx(0.6 * 3.75) and grad == pytest.approx([-0.6] * 4) and bit is None
    # a completion with no tokens (EOS first) adds no gradient, rather than a NaN that would skip the whole update
    loss, grad, bit = _row(algo("rl.algorithm=gspo"), [], None, 0.6)
    assert loss == pytest.approx(-0.6) and grad == []
    loss, grad, bit = _row(algo("rl.algorithm=gspo"), [], [], 0.6)
    assert loss == pytest.approx(-0.6) and grad == []


def test_gspo_row_weight_makes_the_batch_loss_a_mean_over_completions():
    """rl.update divides the sum of weighted rows by the batch's tokens: GRPO's is then the token mean,
    GSPO's the completion mean (the paper's 1/G sum over the group)."""
    assert algo("rl.algorithm=grpo").row_weight(30.0, 4) == 1.0
    assert algo("rl.algorithm=gspo").row_weight(30.0, 4) * 4 / 30.0 == pytest.approx(1.0)


def test_the_update_weighs_each_gspo_completion_alike_and_each_grpo_token_alike(default_tokenizer):
    """rl.update on the tiny model, a 5-token and a 14-token completion (advantages +1, -1), batch used once:
    GSPO's gradient is that of -(1/2) sum_i A_i mean_t log p (each completion alike), GRPO's that of
    -(1/19) sum_i A_i sum_t log p (each token alike)."""
    from engine.modeling import make_optimizer, tiny_model
    from engine.rollout import Completion, completion_logprobs
    from engine.train.context import Handles
    from engine.train.rl import Batch, update

    tok = default_tokenizer
    comps = [tok(t, add_special_tokens=False)["input_ids"] for t in ("expert: a", "- expert: b\n  trace: [c, d, e]")]
    batch = Batch(0, [], ["q", "q"], [Completion("", c, False) for c in comps], [1.0, 0.0], [], {})
    adv = [1.0, -1.0]

    def grads(name, hand=None):
        torch.manual_seed(0)
        model = tiny_model(tok)
        cfg = config.load(sets=[f"rl.algorithm={name}", "rl.lr=0", "rl.max_grad_norm=1e6"])
        if hand:
            lps = completion_logprobs(model, tok, batch.prompts, comps, cfg.rl.temperature)
            hand(lps).backward()
            return [p.grad.clone() for p in model.parameters() if p.grad is not None], None
        opt = make_optimizer(model, "adamw", 0.0)
        seen = {}
        opt.register_step_pre_hook(lambda o, a, k: seen.update(g=[p.grad.clone() for p in model.parameters() if p.grad is not None]))
        stats = update(model, None, tok, batch, adv, opt, cfg, Handles(model))
        return seen["g"], stats

    n = sum(len(c) for c in comps)
    assert len(comps[0]) < len(comps[1])
    gspo, stats = grads("gspo")
    assert stats["loss"] == pytest.approx(-(1.0 - 1.0) / 2, abs=1e-6) and stats["clip_ratio"] is None
    per_completion, _ = grads("gspo", lambda lps: -sum(a * lp.mean() for a, lp in zip(adv, lps)) / 2)
    per_token, _ = grads("gspo", lambda lps: -sum(a * lp.sum() for a, lp in zip(adv, lps)) / n)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(gspo, per_completion))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(gspo, per_token))
    grpo, _ = grads("grpo")
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grpo, per_token))


def test_the_config_offers_the_tables_algorithms_and_refuses_another_in_one_line():
    assert config.RLConfig.__dataclass_fields__["algorithm"].metadata["choices"] == tuple(ALGORITHMS) == ("grpo", "reinforce", "gspo")
    assert config.RLConfig().algorithm == "grpo"  # the default run is unchanged
    with pytest.raises(config.ConfigError) as exc:
        config.load(sets=["rl.algorithm=ppo"])
    assert str(exc.value) == "rl.algorithm: 'ppo' is not allowed; choose one of grpo, reinforce, gspo"
    docs = {k: d for k, _, d in config.describe()}
    assert all(f"{name}:" in docs["rl.algorithm"] for name in ALGORITHMS)
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--model", "tiny", "--set", "rl.algorithm=GSPO"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "rl.algorithm: 'GSPO' is not allowed; choose one of grpo, reinforce, gspo" in out.stderr


def test_the_plan_counts_the_classes_group_size():
    shape = plan.Shape(hidden=64, layers=2, heads=2, kv_heads=2, intermediate=128, vocab=1000, tied=True)
    sets = ["rl.group_size=8", "rl.questions=4", "run.phases=rl"]
    rows = {name: plan.rollout_rows(config.load(sets=sets + [f"rl.algorithm={name}"])) for name in ALGORITHMS}
    assert rows == {"grpo": 32, "gspo": 32, "reinforce": 4}
    secs = {name: plan.stage_seconds(config.load(sets=sets + [f"rl.algorithm={name}"]), shape)["rl"] for name in ALGORITHMS}
    assert secs["gspo"] == pytest.approx(8 * secs["reinforce"]) and secs["gspo"] == pytest.approx(secs["grpo"])


def test_a_tiny_gspo_run_finishes_with_rl_metrics(tmp_path):
    """The whole path from --set to the metrics (the untrained tiny model's rewards tie, so its updates
    are skipped: the loss itself is tested above on the same model)."""
    folder = tmp_path / "gspo"
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--model", "tiny", "--session", str(folder), "--plain",
                          "--set", "run.phases=rl", "--set", "rl.algorithm=gspo", "--set", "rl.iterations=2",
                          "--set", "rl.max_new_tokens=16", "--set", "eval.at=rl",
                          "--set", "eval.synthetic=2", "--set", "eval.gsm8k=0", "--set", "eval.max_new_tokens=16"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["kind"] == "run_started")
    assert started["config"]["rl"]["algorithm"] == "gspo"
    rl = [e for e in events if e["kind"] == "metrics" and e["phase"] == "rl"]
    assert [e["step"] for e in rl] == [1, 2]
    # tied_groups: the run knows GSPO samples groups (a string test for "grpo" reported none)
    assert all(math.isfinite(e["loss"]) and "reward" in e and "tied_groups" in e for e in rl)
    assert next(e for e in events if e["kind"] == "run_finished")["status"] == "completed"


async def test_the_new_run_form_offers_every_algorithm_of_the_table(tmp_path, monkeypatch):
    from textual.widgets import Select

    from workbench.app import sessions_app

    monkeypatch.setenv("TRACEBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    app = sessions_app(tmp_path / "sessions")
    async with app.run_test(size=(160, 50)) as pilot:
        form = app.screen.query_one("#form")
        select = app.screen.query_one("#f-rl-alg", Select)
        assert select.value == "grpo"
        for name, cls in ALGORITHMS.items():
            select.value = name  # Select refuses a value it does not offer
            await pilot.pause()
            sets, errors = form.settings()
            assert f"rl.algorithm={name}" in sets and not errors
        assert [label for label, _ in select._options if _ is not Select.BLANK] == [a.label for a in ALGORITHMS.values()]


def test_a_grouped_algorithm_with_one_sample_per_question_is_refused_naming_the_key():
    """One sample a question: every group ties, every advantage is 0, and the run would learn nothing."""
    from engine import config

    for name in ("grpo", "gspo"):
        with pytest.raises(config.ConfigError, match=r"rl\.group_size: 1 sample per question"):
            config.load(sets=[f"rl.algorithm={name}", "rl.group_size=1"])
    assert config.load(sets=["rl.algorithm=reinforce", "rl.group_size=1"]).rl.group_size == 1
    assert config.load(sets=["rl.group_size=1", "run.phases=sft,eval"])  # no RL: nothing to refuse
