"""GSM8K solutions as gold traces; the trace task's mix; any problem set as an eval set."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import pytest

from engine import config
from engine.data import gsm8k, gsm8k_traces, problems
from engine.data.gsm8k_traces import convert
from engine.stats import majority, wilson
from engine.trace import check


def test_an_annotated_solution_becomes_a_named_trace_that_scores_one():
    q = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"
    a = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    c = convert(0, q, a)
    assert c.kept, c.reason
    assert "{op: init, var: friends, value: 48}" in c.trace  # named after the words beside the number
    assert "{op: init, var: half, value: 2}" in c.trace and c.facts == ["half=2"]  # a stated fact, flagged as one
    assert "args: [friends, clips]" in c.trace  # the earlier result is a reference, not a number
    assert c.trace.rstrip().endswith("{op: query, var: clips_april}")  # a second `clips` says which
    r = check(c.trace, 72)
    assert r.reward == 1.0 and not r.diagnostics


def test_each_mention_of_a_number_gets_its_own_variable_named_after_its_own_words():
    q = ("He buys 2 large pizzas and 2 small pizzas. A large pizza has 16 slices and a small pizza has 8 slices. "
         "Then he eats half of them and doubles the rest. The box costs $20.")
    a = ("He gets 2*16=<<2*16=32>>32 large slices and 2*8=<<2*8=16>>16 small slices.\n"
         "Together 32+16=<<32+16=48>>48 slices, half eaten: 48/2=<<48/2=24>>24 slices left, doubled: 24*2=<<24*2=48>>48\n#### 48")
    c = convert(0, q, a)
    assert c.kept, c.reason
    # the second 2 is the small pizzas, not the large ones read again; `half` and `doubles` are their own 2s
    assert "{op: init, var: pizzas, value: 2}" in c.trace and "{op: init, var: small_pizzas, value: 2}" in c.trace
    assert "args: [small_pizzas, slices_2]" in c.trace and "{op: init, var: half, value: 2}" in c.trace
    assert "{op: init, var: doubles, value: 2}" in c.trace
    # a result is named after the words that follow it in the solution
    assert "var: large_slices}" in c.trace and "args: [large_slices, small_slices]" in c.trace


def test_plain_text_steps_are_read_and_derived_constants_are_computed():
    q = "Joy can read 8 pages of a book in 20 minutes. How many hours will it take her to read 120 pages?"
    a = "In one hour, there are 3 sets of 20 minutes.\nSo, Joy can read 8 x 3 = <<8*3=24>>24 pages in an hour.\nIt will take her 120/24 = <<120/24=5>>5 hours to read 120 pages.\n#### 5"
    c = convert(1, q, a)
    assert c.kept and "compute_op: div, args: [minutes_per_hour, minutes]" in c.trace  # 3 = 60 / 20, not invented
    plain = convert(2, "Hillary has 43 dollars and deposits 18 dollars. How much is left?", "She has $43 - $18 = $25\n#### 25")
    assert plain.kept and "compute_op: sub" in plain.trace


@pytest.mark.parametrize("question,answer,reason", [
    ("Tom has 5 apples. How many?", "He has 5 apples.\n#### 5", "no_annotation"),
    ("Tom has 5 apples and buys 3. How many?", "5+3=<<5+3=9>>9\n#### 9", "wrong_arithmetic"),
    ("Tom has 5 apples. How many after 17 more?", "5+17=<<5+17=22>>22, and 22+41=<<22+41=63>>63\n#### 63", "invented_number"),
    ("Tom has 5 apples and 3 pears.", "5+3=<<5+3=8>>8\n#### 9", "answer_not_computed"),
])
def test_problems_that_cannot_be_traced_faithfully_are_dropped_with_a_reason(question, answer, reason):
    c = convert(0, question, answer)
    assert not c.kept and c.reason == reason and reason in gsm8k_traces.REASONS


def test_most_of_gsm8k_train_converts_and_every_kept_trace_scores_one():
    rows = gsm8k.load_rows(None, "train")[:400]
    done = gsm8k_traces.convert_all(rows)
    kept = [c for c in done if c.kept]
    assert len(kept) / len(done) > 0.8
    for c in kept:
        r = check(c.trace, c.answer)
        assert r.reward == 1.0 and not r.diagnostics, c.index


def test_no_test_question_reaches_training():
    cfg = config.load(sets=["data.gsm8k_traces=100000", "data.train_size=1"])
    from engine.tasks import training_pairs

    test_questions = {p.question for p in gsm8k.load(None, "test")}
    trained = {q for q, _ in training_pairs(cfg)}
    assert len(trained) > 5900 and not trained & test_questions  # all gold traces but the development split's (~460)
    from engine.train.rl import questions

    asked = {it.question for i in range(20) for it in questions(config.load(sets=["rl.questions=16"]), i, 0)}
    assert not asked & test_questions and asked & {q for q in trained}  # RL draws from the same mix


def test_trace_mix_holds_both_sources_in_the_configured_sizes():
    from engine.tasks import training_pairs

    pairs = training_pairs(config.load(sets=["data.train_size=30", "data.gsm8k_traces=20"]))
    train_questions = {p.question for p in gsm8k.load(None, "train")}
    assert len(pairs) == 50 and sum(q in train_questions for q, _ in pairs) == 20
    assert all(a.startswith("```yaml\n") and a.endswith("```") for _, a in pairs)
    assert len(training_pairs(config.load(sets=["data.train_size=30", "data.gsm8k_traces=0"]))) == 30


def test_gsm8k_traces_cli_writes_records_and_stats_explains_the_rest(tmp_path):
    out = tmp_path / "test.jsonl"
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine", "data", *a], capture_output=True, text=True, timeout=120)
    made = run("gsm8k-traces", "--split", "test", "--out", str(out))
    assert made.returncode == 0, made.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) > 1100 and {"question", "expert", "pattern", "trace", "answer", "gsm8k_index"} <= set(rows[0])
    stats = run("stats", str(out))
    assert stats.returncode == 0 and "GSM8K conversion" in stats.stdout and "invented_number" in stats.stdout


def test_any_problem_file_is_an_eval_set(tmp_path):
    f = tmp_path / "people.jsonl"
    f.write_text(json.dumps({"question": "Ann has 3 pens and buys 4. How many?", "answer": 7}) + "\n"
                 + json.dumps({"question": "Half of 10?", "answer": "10/2 = 5\n#### 5", "expert": "arithmetic"}) + "\n\n"
                 + json.dumps({"question": "Price?", "answer": "$1,250.50"}) + "\n")
    got = problems.load(f)
    assert [p.answer for p in got] == [7, 5, Fraction("1250.5")] and got[1].expert == "arithmetic"
    from engine.tasks import eval_sets

    sets = eval_sets(config.load(sets=["eval.synthetic=2", "eval.gsm8k=0", f"eval.problems=[{f}]"]))
    assert set(sets) == {"synthetic", "people"} and len(sets["people"]) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match="bad.jsonl line 1"):
        problems.load(bad)


def test_wilson_interval_and_majority_vote():
    lo, hi = wilson(0, 200)
    assert lo == 0 and 0.015 < hi < 0.02
    lo, hi = wilson(190, 200)
    assert 0.90 < lo < 0.95 < hi < 0.98
    assert wilson(0, 0) == (0.0, 0.0)
    assert majority([None, 3, 4, 4, None]) == 4 and majority([None]) is None and majority([2, 3]) == 2


def test_engine_eval_on_problem_files_with_k_samples(tmp_path):
    a, b = tmp_path / "mine.jsonl", tmp_path / "theirs.jsonl"
    a.write_text("".join(json.dumps({"question": f"Ann has {i} pens and buys 2. How many?", "answer": i + 2}) + "\n" for i in range(5)))
    b.write_text(json.dumps({"question": "What is 2 times 3?", "answer": "#### 6"}) + "\n")
    out = subprocess.run([sys.executable, "-m", "engine", "eval", "tiny", "--problems", str(a), "--problems", str(b),
                          "--limit", "3", "--samples", "2", "--temperature", "1.0", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    sets = json.loads(out.stdout)["sets"]
    assert set(sets) == {"mine", "theirs"} and sets["mine"]["total"] == 3 and sets["theirs"]["total"] == 1
    for s in sets.values():
        assert s["samples"] == 2 and 0 <= s["pass_at_k"] <= 1 and len(s["maj_at_k_ci"]) == 2
        assert s["pass_at_k"] >= s["accuracy"]  # the greedy output is one of the k
    missing = subprocess.run([sys.executable, "-m", "engine", "eval", "tiny", "--problems", str(tmp_path / "none.jsonl")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such problem file" in missing.stderr and "Traceback" not in missing.stderr
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    for odd, kind in ((fifo, "a FIFO"), (tmp_path, "a folder")):
        out = subprocess.run([sys.executable, "-m", "engine", "eval", "tiny", "--problems", str(odd)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and f"not a problem file (a regular JSONL file; this is {kind})" in out.stderr, out.stderr


def test_heldout_gsm8k_is_problems_301_to_1319_under_its_own_name(tmp_path):
    from engine import config as config_mod
    from engine.data.gsm8k import load_rows
    from engine.tasks.common import gsm8k_test

    rows = load_rows(None, "test")
    dev = gsm8k_test(config_mod.load(None, []))
    held = gsm8k_test(config_mod.load(None, ["eval.gsm8k_from=301", "eval.gsm8k=1019"]))
    assert list(dev) == ["gsm8k"] and len(dev["gsm8k"]) == 300
    assert list(held) == ["gsm8k-301-1319"] and len(held["gsm8k-301-1319"]) == 1019 == len(rows) - 300
    assert held["gsm8k-301-1319"][0].question == rows[300]["question"] != dev["gsm8k"][-1].question
    assert {i.question for i in held["gsm8k-301-1319"]}.isdisjoint(i.question for i in dev["gsm8k"][:300])
    out = subprocess.run([sys.executable, "-m", "engine", "eval", "tiny", "--heldout", "--limit", "2", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)  # its ledger line stays there
    assert out.returncode == 0, out.stderr[-2000:]
    sets = json.loads(out.stdout)["sets"]
    assert list(sets) == ["gsm8k-301-302"] and sets["gsm8k-301-302"]["total"] == 2
