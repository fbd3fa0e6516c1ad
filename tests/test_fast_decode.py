"""Fast decoding (engine/speculate.py): drafts checked in one pass give the plain decoder's
greedy tokens, keep every row's cache right when rows accept different counts, and leave
the sampled distribution unchanged."""

import pytest
import torch

from engine import config, rollout, speculate
from engine.modeling import tiny_model
from engine.rollout import decode, generate

PROMPTS = ["Count to twenty: 1, 2, 3,", "List some fruit:", "Here is a long sentence about the sea, the sky, and",
           "Numbers:", "The alphabet, with commas: a, b,"]


@pytest.fixture(scope="module")
def model(default_tokenizer):
    m = tiny_model(default_tokenizer).eval()
    with torch.no_grad():  # sharper logits: a random model that writes varied tokens, not one repeated
        for p in m.parameters():
            p.mul_(8)
    return m


def batch(tok, prompts):
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


def oracle(monkeypatch, plain: list[list[int]], vocab: int):
    """Drafts that are right for the first (row % 4) tokens and then wrong: rows accept 0 to 3
    draft tokens a pass, so their caches get holes in different places."""
    def propose(self, r):
        done = len(self.seq[r]) - self.prompt_len[r]
        right = plain[r][done : done + r % 4]
        wrong = [(t + 1) % vocab for t in plain[r][done + len(right) : done + len(right) + 1]]
        return right + wrong, ["history"] * len(right + wrong)

    monkeypatch.setattr(speculate.Drafter, "propose", propose)


def test_greedy_fast_decoding_gives_the_plain_decoders_tokens_while_rows_leave(model, default_tokenizer, monkeypatch):
    tok = default_tokenizer
    monkeypatch.setattr(rollout, "GROW", 5)  # the cache is squeezed and grows many times inside 40 tokens
    ids, mask = batch(tok, PROMPTS)
    free = decode(model, tok, ids, mask, 40, 0.0, 1.0, [tok.eos_token_id])
    ends = [free[0][0][9], free[2][0][17], free[4][0][4], tok.eos_token_id]  # rows end at different steps
    plain = decode(model, tok, ids, mask, 40, 0.0, 1.0, ends)
    assert len({len(t) for t, _ in plain}) > 2, "the test needs rows that end at different steps"
    oracle(monkeypatch, [t for t, _ in plain], len(tok))
    tally, heard = {}, []
    fast = speculate.decode(model, tok, ids, mask, 40, 0.0, 1.0, ends, on_rows=heard.append, tally=tally)
    assert fast == plain
    assert 0 < tally["accepted_history"] < tally["drafted_history"]  # some drafts kept, some refused
    assert tally["passes"] < sum(len(t) for t, _ in plain) / len(plain)  # fewer passes than tokens per row
    assert heard == sorted(set(heard)) and heard[-1] == sum(e for _, e in plain)


def test_the_real_drafter_and_the_shared_prompt_start_give_the_plain_tokens(model, default_tokenizer):
    """Chat prompts (a shared start run once), the forced-text table and n-gram lookup as shipped."""
    from engine.data.prompts import prompt_text

    tok = default_tokenizer
    prompts = [prompt_text(tok, q) for q in ("What is 2 + 2?", "Tom has 3 apples and buys 5 more. How many now?",
                                             "A train goes 60 km in an hour. How far in 3 hours?")]
    plain, stats = generate(model, tok, prompts, 30, 0.0)
    fast, fstats = generate(model, tok, prompts, 30, 0.0, fast=True)
    assert [c.tokens for c in fast] == [c.tokens for c in plain]
    assert stats["passes"] == 30 and fstats["passes"] <= 30


def test_min_new_tokens_holds_at_every_draft_position(model, default_tokenizer, monkeypatch):
    tok = default_tokenizer
    ids, mask = batch(tok, PROMPTS[:3])
    plain = decode(model, tok, ids, mask, 12, 0.0, 1.0, [tok.eos_token_id], min_new=12)
    oracle(monkeypatch, [t for t, _ in plain], len(tok))
    assert speculate.decode(model, tok, ids, mask, 12, 0.0, 1.0, [tok.eos_token_id], min_new=12) == plain
    assert all(len(t) == 12 for t, _ in plain)


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_the_rejection_rule_leaves_the_sampled_distribution_unchanged(top_p):
    """One draft token x at two positions of a toy vocabulary: the first token out is x with
    probability p(x), else drawn from the rest; the second, after an accepted x, from p2."""
    torch.manual_seed(0)
    rows = 200_000
    first, second = torch.tensor([1.0, 0.2, -0.5, 0.7, 0.0]), torch.tensor([0.1, 1.5, 0.3, -1.0, 0.4])
    logits = torch.stack([first, second])[None].expand(rows, -1, -1)
    want = [speculate.probabilities(x[None], 1.0, top_p)[0] for x in (first, second)]
    want = [w / w.sum() for w in want]
    for x in (3, 2):  # a draft the model likes, and one it does not (or top-p cuts)
        draft = torch.full((rows, 1), x)
        n, after = speculate.accept(logits, draft, torch.ones(rows, dtype=torch.long), 1.0, top_p)
        out_first = torch.where(n == 1, torch.full_like(after, x), after)
        got = torch.bincount(out_first, minlength=5).float() / rows
        assert (got - want[0]).abs().max() < 0.005, (x, got, want[0])
        got2 = torch.bincount(after[n == 1], minlength=5).float() / max(int((n == 1).sum()), 1)
        if int((n == 1).sum()) > 10_000:
            assert (got2 - want[1]).abs().max() < 0.01, (x, got2, want[1])


def test_sampling_with_drafts_follows_the_seed(model, default_tokenizer):
    tok = default_tokenizer
    torch.manual_seed(3)
    a, _ = generate(model, tok, PROMPTS, 10, 0.8, fast=True)
    torch.manual_seed(3)
    b, _ = generate(model, tok, PROMPTS, 10, 0.8, fast=True)
    assert [c.tokens for c in a] == [c.tokens for c in b]


def test_the_switch_is_one_config_key_off_by_default():
    assert config.load().model.fast_decode is False
    assert config.load(sets=["model.fast_decode=true"]).model.fast_decode is True
    with pytest.raises(config.ConfigError, match="model.fast_decode"):
        config.load(sets=["model.fast_decode=maybe"])


def test_rl_rollouts_take_the_switch(model, default_tokenizer):
    from engine.backends import make_backend
    from engine.rollout import Sampler

    for on in (False, True):
        cfg = config.load(sets=[f"model.fast_decode={str(on).lower()}"])
        assert make_backend(cfg, model, default_tokenizer, Sampler(model)).fast is on


@pytest.mark.slow
def test_the_real_model_decodes_the_same_greedy_tokens_fast(default_tokenizer):
    from engine.data.prompts import prompt_text
    from engine.data.synthetic import generate as synthesize
    from engine.modeling import load_model, pick_device

    tok = default_tokenizer
    model = load_model(config.load(), tok, pick_device("cpu")).eval()
    prompts = [prompt_text(tok, e.question) for e in synthesize(6, 5)]
    plain, _ = generate(model, tok, prompts, 64, 0.0)
    fast, stats = generate(model, tok, prompts, 64, 0.0, fast=True)
    assert [c.tokens for c in fast] == [c.tokens for c in plain]
    assert stats["passes"] < 64


def test_the_benchmark_compares_bf16_on_the_development_split_without_looking_at_test_problems(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, str(root / "benchmarks/decode.py"), "--compare", "4", "--dev", "--against", "bf16",
                          "--model", "tiny", "--max-new", "6", "--batch", "2"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "gsm8k-dev 0/4 right" in run.stdout and "gsm8k-dev: bf16 right where plain was wrong 0" in run.stdout
    assert "McNemar p" in run.stdout and "outputs that differ:" in run.stdout
    assert not list(tmp_path.rglob("*ledger*"))  # the development split is no look at the test problems
    wrong = subprocess.run([sys.executable, str(root / "benchmarks/decode.py"), "--dev"], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path, env=env)
    assert wrong.returncode == 2 and "--compare" in wrong.stderr
