"""RL carries signal where it can: its output limit is evaluation's, tied groups weigh exactly
nothing, KL works with a reused batch, a correctness-only reward, and medium-difficulty screening."""

import random

import pytest

from engine import config

# a trace whose answer is v: a = v - 1, b = 1, a + b
RIGHT = ("```yaml\nexpert: arithmetic\ntrace:\n- {{op: init, var: a, value: {v_1}}}\n- {{op: init, var: b, value: 1}}\n"
         "- {{op: compute, compute_op: add, args: [a, b], var: result}}\n- {{op: query, var: result}}\n```")
BROKEN = RIGHT.replace("args: [a, b]", "args: [a, c]")  # reads a variable never set: invalid


def test_rl_output_limit_follows_evaluations_unless_set():
    """A right trace of 321-400 tokens scored 0 in RL (limit 320) while evaluation (400) counted it."""
    assert config.load(sets=["eval.max_new_tokens=400"]).rl.max_new_tokens == 400
    assert config.load().rl.max_new_tokens == config.load().eval.max_new_tokens
    assert config.load(sets=["eval.max_new_tokens=400", "rl.max_new_tokens=256"]).rl.max_new_tokens == 256
    assert config.load("recipes/cpu-verified.yaml").rl.max_new_tokens == 400


def test_a_tied_group_has_exactly_zero_advantage():
    """[.7, .7, .7] minus its mean is 1.1e-16 in floating point; divided by std + 1e-4 that was a
    nonzero advantage, so the tied batch was not skipped and its rows cost a forward pass."""
    from engine.algorithms import for_config

    for scale in ("group", "batch", "none"):
        grpo = for_config(config.load(sets=["rl.group_size=3", f"rl.scale_rewards={scale}"]))
        adv = grpo.advantages([0.7, 0.7, 0.7, 1.0, 0.0, 0.0], None)
        assert adv[:3] == [0.0, 0.0, 0.0]
        assert adv[3] > 0 > adv[4]
    assert not any(for_config(config.load(sets=["rl.group_size=8"])).advantages([0.1] * 8, None))


def test_kl_with_a_reused_batch_updates_instead_of_a_key_error(default_tokenizer):
    """rl.kl_coef > 0 and rl.batch_reuse > 1: rows with a zero advantage join the update for their
    KL term but have no sampling log-probs; that was a KeyError at the first reuse."""
    import torch

    from engine.modeling import make_optimizer, tiny_model
    from engine.rollout import Completion
    from engine.train.context import Handles
    from engine.train.rl import Batch, old_logprobs, update

    tok = default_tokenizer
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in ("expert: a", "- expert: b\n  trace: [c]", "expert: c")]
    batch = Batch(0, [], ["q"] * 3, [Completion("", i, False) for i in ids], [1.0, 0.0, 0.5], [], {})
    adv = [1.0, -1.0, 0.0]  # the third row: no advantage, still a KL term
    cfg = config.load(sets=["rl.kl_coef=0.1", "rl.batch_reuse=2", "rl.lr=1e-3"])
    torch.manual_seed(0)
    model, ref = tiny_model(tok), tiny_model(tok)
    ctx = Handles(model)
    old = old_logprobs(batch, adv, tok, cfg, ctx)
    assert 2 not in old
    opt = make_optimizer(model, "adamw", cfg.rl.lr)
    for _ in range(cfg.rl.batch_reuse):
        stats = update(model, ref, tok, batch, adv, opt, cfg, ctx, old=old)
        assert stats["kl"] is not None and stats["kl"] >= 0 and not stats.get("skipped")


def test_correct_only_reward_pays_for_the_answer_alone():
    from engine.trace import check

    graded, correct = config.load().reward, config.load(sets=["reward.mode=correct"]).reward
    wrong, invalid, right = RIGHT.format(v_1=4), BROKEN.format(v_1=3), RIGHT.format(v_1=3)
    assert [check(t, 4, weights=graded).reward for t in (right, wrong, invalid)] == [1.0, 0.7, 0.5]
    assert [check(t, 4, weights=correct).reward for t in (right, wrong, invalid)] == [1.0, 0.0, 0.0]
    with pytest.raises(config.ConfigError, match="reward.mode"):
        config.load(sets=["reward.mode=sometimes"])


class _Backend:
    """Answers each question right with its own fixed chance (0, 1/2 or 1), as a model would
    that solves some questions always, some never and some sometimes; counts what it is asked."""

    def __init__(self, answers: dict):
        self.answers, self.rng, self.calls = answers, random.Random(0), []

    def chance(self, question: str) -> float:
        return sum(map(ord, question)) % 3 / 2

    def generate(self, tokenizer, prompts, max_new_tokens, *args, on_rows=None, **kw):
        from engine.rollout import Completion

        self.calls.append((len(prompts), max_new_tokens))
        out = []
        for p in prompts:
            q = next(q for q in self.answers if q in p)
            right = self.rng.random() < self.chance(q)
            out.append(Completion(RIGHT.format(v_1=self.answers[q] - 1 + (0 if right else 1)), [1, 2], False))
        return out, {"tokens": 2 * len(prompts), "seconds": 0.01, "tokens_per_s": 200.0}


def test_screening_keeps_questions_of_medium_difficulty_and_rl_asks_only_those(default_tokenizer, monkeypatch):
    from engine.train import rl

    cfg = config.load(sets=["rl.screen=6", "rl.screen_pool=30", "rl.questions=4", "rl.group_size=2",
                            "rl.iterations=3", "data.gsm8k_traces=0", "eval.max_new_tokens=400"])
    answers = {}
    real = rl.questions

    def remember(*a, **k):
        qs = real(*a, **k)
        answers.update({q.question: int(q.answer) for q in qs})
        return qs

    monkeypatch.setattr(rl, "questions", remember)
    backend = _Backend(answers)
    record = {}
    medium, screened = rl.screened(backend, default_tokenizer, cfg, record)
    assert screened == 30 and backend.calls == [(30 * 6, 400)]  # one pass, at evaluation's limit
    assert medium and all(backend.chance(q.question) == 0.5 for q in medium)
    sure = [q for q in answers if backend.chance(q) != 0.5]
    assert sure and not set(sure) & {q.question for q in medium}  # always or never right: dropped
    again = rl.screened(backend, default_tokenizer, cfg, record)  # a resume: the record holds the screening
    assert [q.question for q in again[0]] == [q.question for q in medium] and len(backend.calls) == 1
    batches = list(rl.rollouts(backend, default_tokenizer, cfg, 0, record=record, medium=medium))
    asked = {it.question for b in batches for it in b.items}
    assert len(batches) == 3 and asked <= {q.question for q in medium}
