"""The engine's own decoder (cache that grows, finished rows leaving the batch) against
transformers' `generate`, on the shipped model."""

import pytest
import torch

from engine import config, rollout
from engine.modeling import load_model, pick_device
from engine.prefix import move_first
from engine.rollout import decode, generate, pick


@pytest.fixture(scope="module")
def model(default_tokenizer):
    return load_model(config.load(), default_tokenizer, pick_device("cpu")).eval()


PROMPTS = ["Count to twenty: 1, 2, 3,", "List some fruit:", "Here is a long sentence about the sea, the sky, and",
           "Numbers:", "The alphabet, with commas: a, b,"]


def reference(model, tok, prompts, max_new, ends):
    """transformers' greedy generate, one prompt at a time (no padding at all)."""
    rows = []
    for p in prompts:
        enc = tok([p], return_tensors="pt", add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=ends, pad_token_id=tok.pad_token_id)
        rows.append(out[0, enc["input_ids"].shape[1]:].tolist())
    return rows


def test_greedy_outputs_are_generates_tokens_while_rows_leave_and_the_cache_grows(model, default_tokenizer, monkeypatch):
    tok = default_tokenizer
    monkeypatch.setattr(rollout, "GROW", 5)  # grow many times inside 30 tokens
    enc = tok(PROMPTS, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    ends = [tok.convert_tokens_to_ids(","), tok.eos_token_id]  # rows stop at different steps: the batch shrinks
    heard = []
    ours = decode(model, tok, enc["input_ids"], enc["attention_mask"], 30, 0.0, 1.0, ends, on_rows=heard.append)
    theirs = reference(model, tok, PROMPTS, 30, ends)
    assert [t for t, _ in ours] == theirs
    ended = sum(1 for _, e in ours if e)
    assert heard == sorted(set(heard)) and heard[-1] == ended and len(heard) > 1  # `rollouts 3/5` as rows finish
    lengths = {len(t) for t, _ in ours}
    assert len(lengths) > 2, "the test needs rows that end at different steps"
    assert [ended for _, ended in ours] == [t[-1] in ends for t in theirs]


def test_a_prompt_start_all_rows_share_is_run_once_and_the_outputs_stay_generates(model, default_tokenizer, monkeypatch):
    """Chat prompts share the system prompt and template: the decoder moves that start before
    the padding and runs it for one row; every row still gets generate's greedy tokens."""
    from engine.data.prompts import prompt_text

    tok = default_tokenizer
    monkeypatch.setattr(rollout, "GROW", 7)
    prompts = [prompt_text(tok, q) for q in ("What is 2 + 2?", "Tom has 3 apples and buys 5 more. How many now?",
                                             "A train goes 60 km in an hour. How far in 3 hours?")]
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    n, ids, mask = move_first(enc["input_ids"], enc["attention_mask"], tok.pad_token_id)
    assert n >= 40 and (ids[:, :n] == ids[0, :n]).all() and (mask.sum(1) == enc["attention_mask"].sum(1)).all()
    ends = [tok.convert_tokens_to_ids("\n"), tok.eos_token_id]
    ours = decode(model, tok, enc["input_ids"], enc["attention_mask"], 24, 0.0, 1.0, ends)
    assert [t for t, _ in ours] == reference(model, tok, prompts, 24, ends)


def test_a_row_stops_at_the_fence_that_closes_its_yaml_block(model, default_tokenizer):
    prompt = "Repeat exactly: ```yaml\na: 1\n``` and then ```yaml\nb: 2\n```\nNow again:"
    comps, _ = generate(model, default_tokenizer, [prompt], 60)
    text = comps[0].text
    if text.count("```") >= 2:  # the model wrote a block: nothing after its closing fence is kept
        assert text.rstrip().endswith("```")


def test_min_new_tokens_decodes_exactly_that_many(model, default_tokenizer):
    comps, stats = generate(model, default_tokenizer, PROMPTS[:3], 12, 0.0, batch_size=3, min_new_tokens=12)
    assert [len(c.tokens) for c in comps] == [12, 12, 12]
    assert stats["tokens"] == 36 and all(c.cut for c in comps)


def test_sampling_follows_the_seed_and_top_p_near_zero_is_greedy(model, default_tokenizer):
    tok = default_tokenizer
    torch.manual_seed(3)
    a, _ = generate(model, tok, PROMPTS, 10, 0.8)
    torch.manual_seed(3)
    b, _ = generate(model, tok, PROMPTS, 10, 0.8)
    assert [c.tokens for c in a] == [c.tokens for c in b]
    greedy, _ = generate(model, tok, PROMPTS, 10, 0.0)
    narrow, _ = generate(model, tok, PROMPTS, 10, 1.0, top_p=1e-6)
    assert [c.tokens for c in narrow] == [c.tokens for c in greedy]


def test_pick_keeps_only_the_top_p_mass():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    seen = {int(pick(logits, 1.0, 0.7)) for _ in range(200)}
    assert seen == {0, 1}
