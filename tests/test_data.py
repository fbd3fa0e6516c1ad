"""Synthetic generators, GSM8K loading, and prompts with the default tokenizer."""

import json
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from engine.data import gsm8k
from engine.data.synthetic import PATTERNS, generate, make_example
from engine.trace import check

SHIPPED = gsm8k.SHIPPED


def test_every_pattern_in_every_phrasing_scores_one_against_its_own_answer():
    import random

    for expert, patterns in PATTERNS.items():
        for name in patterns:
            for ph in range(2):
                for seed in range(25):
                    ex = make_example(random.Random(seed), expert, name, ph)
                    r = check(ex.trace, ex.answer, expert)
                    assert r.reward == 1.0 and not r.diagnostics, (expert, name, ph, seed)


def test_patterns_cover_the_seed_experiments():
    assert len(PATTERNS) == 6 and all(len(p) >= 4 for p in PATTERNS.values())
    comp = [generate(1, s, {"composition": 1})[0] for s in range(40)]
    traces = " ".join(e.trace for e in comp)
    assert "prev.result" in traces and "sub0.result" in traces


def test_generation_is_deterministic_and_follows_the_mix():
    a, b = generate(200, 7), generate(200, 7)
    assert [e.to_json() for e in a] == [e.to_json() for e in b]
    assert generate(50, 8)[0].question != a[0].question or generate(50, 8)[1].question != a[1].question
    only = Counter(e.expert for e in generate(100, 1, {"percentage": 3, "arithmetic": 1}))
    assert set(only) == {"percentage", "arithmetic"} and only["percentage"] > only["arithmetic"]
    one = {(e.pattern, e.question.split()[-1]) for e in generate(300, 2, phrasings="one")}
    many = {(e.pattern, e.question.split()[-1]) for e in generate(300, 2, phrasings="all")}
    assert len(many) > len(one)


def test_data_generate_and_stats_cli(tmp_path):
    out = tmp_path / "d.jsonl"
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine", "data", *a], capture_output=True, text=True, timeout=60)
    assert run("generate", "--n", "40", "--seed", "1", "--out", str(out)).returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 40 and set(rows[0]) == {"question", "expert", "pattern", "trace", "answer"}
    stats = run("stats", str(out))
    assert stats.returncode == 0 and "composition" in stats.stdout or "arithmetic" in stats.stdout
    bad = run("generate", "--n", "3", "--mix", "algebra=1", "--out", str(out))
    assert bad.returncode == 2 and "algebra" in bad.stderr


def test_gsm8k_ships_inside_the_project_and_is_the_default(monkeypatch):
    monkeypatch.delenv("TRACEBENCH_GSM8K", raising=False)
    root = Path(__file__).resolve().parents[1]
    assert SHIPPED.is_relative_to(root) and (SHIPPED / "LICENSE").read_text().startswith("MIT License")
    assert "cobbe2021gsm8k" in (SHIPPED / "README.md").read_text()
    assert gsm8k.default_source() == str(SHIPPED)
    assert len(gsm8k.load(None, "train")) == 7473 and len(gsm8k.load(None, "test")) == 1319


def test_gsm8k_answers_parse_from_the_shipped_copy():
    problems = gsm8k.load(str(SHIPPED), "test")
    assert len(problems) == 1319 and all(isinstance(p.answer, Fraction) for p in problems)
    assert len(gsm8k.load(str(SHIPPED / "train.jsonl"), limit=10)) == 10


@pytest.mark.parametrize("text,value", [("#### 1,234", 1234), ("#### -5", -5), ("#### 3.50", Fraction(7, 2)), ("#### $12", 12)])
def test_gsm8k_answer_formats(text, value):
    assert gsm8k.parse_answer("work...\n" + text) == value


def test_gsm8k_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="GSM8K"):
        gsm8k.load(str(tmp_path / "none.jsonl"))


def test_prompts_use_the_chat_template_and_mask_the_prompt(default_tokenizer):
    from engine.data.prompts import IGNORE, prompt_text, trace_answer, training_ids

    ex = generate(1, 0)[0]
    text = prompt_text(default_tokenizer, ex.question)
    assert text.startswith("<|im_start|>system") and ex.question in text and text.endswith("<|im_start|>assistant\n")
    ids, labels = training_ids(default_tokenizer, ex.question, trace_answer(ex.trace))
    learned = default_tokenizer.decode([i for i, l in zip(ids, labels) if l != IGNORE])
    assert learned == trace_answer(ex.trace) + "<|im_end|>"
    assert labels[: len(default_tokenizer(text, add_special_tokens=False)["input_ids"])] == [IGNORE] * len(
        default_tokenizer(text, add_special_tokens=False)["input_ids"]
    )


def test_plain_prompt_without_a_template(default_tokenizer):
    from engine.data.prompts import prompt_text

    class NoTemplate:
        chat_template = None

    assert "### Question\nHow many?" in prompt_text(NoTemplate(), "How many?")


def test_default_length_limits_fit_the_longest_gold_trace(default_tokenizer):
    """A correct answer must never be cut: the default training length and the
    rollout and evaluation limits hold every pattern's gold trace (the
    three-part composition is ~300 tokens) with its prompt."""
    import random

    from engine import config
    from engine.data.prompts import end_of_turn, trace_answer, training_ids

    cfg = config.load()
    longest_answer = longest_example = 0
    for expert, patterns in PATTERNS.items():
        for name in patterns:
            for ph in range(2):
                ex = make_example(random.Random(ph), expert, name, ph)
                answer = trace_answer(ex.trace) + end_of_turn(default_tokenizer)
                longest_answer = max(longest_answer, len(default_tokenizer(answer, add_special_tokens=False)["input_ids"]))
                ids, _ = training_ids(default_tokenizer, ex.question, trace_answer(ex.trace), max_len=10_000)
                longest_example = max(longest_example, len(ids))
    assert longest_answer > 250  # the three-part composition is in the set
    assert cfg.eval.max_new_tokens >= longest_answer + 8 and cfg.rl.max_new_tokens >= longest_answer + 8
    assert cfg.data.max_len >= longest_example


def test_the_end_of_turn_is_read_off_each_models_chat_template(default_tokenizer):
    """A new model needs no hard-coded token: ChatML closes a turn with <|im_end|>, Zephyr with </s>."""
    import copy

    from engine.data.prompts import end_of_turn

    assert end_of_turn(default_tokenizer) == "<|im_end|>"
    zephyr = copy.deepcopy(default_tokenizer)
    zephyr.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    assert end_of_turn(zephyr) == "</s>"
    plain = copy.deepcopy(default_tokenizer)
    plain.chat_template = None
    assert end_of_turn(plain) == plain.eos_token
