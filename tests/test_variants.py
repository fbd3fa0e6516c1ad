"""Number variants of GSM8K problems: new numbers in the question and the gold trace together,
each variant's answer the trace's own, run clean; training and robustness evaluation use them."""

import json
import re
import subprocess
import sys
from fractions import Fraction

from engine import config
from engine.data.gsm8k import load_rows
from engine.data.gsm8k_traces import convert
from engine.data.variants import for_rows, make, mentions, summary
from engine.trace import check


def test_most_training_problems_give_variants_that_are_right_by_construction():
    rows = load_rows(None, "train")[:400]
    done = for_rows(rows, 3, seed=0)
    qualified = [v for v in done if v.variants]
    assert len(qualified) / len(done) >= 0.6  # the bar, on the first 400
    assert dict(summary(done)).keys() <= {"variants", "no_gold_trace", "ambiguous_number", "no_digit_inputs", "no_clean_variant"}
    for v in qualified:
        whole = v.answer.denominator == 1
        for x in v.variants:
            report = check(x["trace"], x["answer"])
            assert report.reward == 1.0 and not report.diagnostics  # the trace computes the stated answer, clean
            assert x["answer"] >= 0 and (not whole or x["answer"].denominator == 1)
            assert x["question"] != v.question and x["numbers"]
            for old, new in x["numbers"].items():
                assert new != old and ("." in old) == ("." in new)  # integers stay integers, decimals keep places
                if "." in old:
                    assert len(old.split(".")[1]) == len(new.split(".")[1])
            # only the mentioned digits changed: the words around them are the original's
            assert re.sub(r"[\d,.]+", "#", x["question"]) == re.sub(r"[\d,.]+", "#", v.question)


def test_constants_from_words_stay_and_a_number_written_twice_is_refused():
    james = convert(0, "James writes a 3-page letter to 2 different friends twice a week.  How many pages does he write a year?",
                    "He writes each friend 3*2=<<3*2=6>>6 pages a week\nSo he writes 6*2=<<6*2=12>>12 pages every week\n"
                    "That means he writes 12*52=<<12*52=624>>624 pages a year\n#### 624")
    assert james.kept and "twice=2" in james.facts
    v = make(james, 4, seed=1)
    assert v.variants
    for x in v.variants:
        assert "{op: init, var: twice, value: 2}" in x["trace"] and "{op: init, var: weeks_per_year, value: 52}" in x["trace"]
        letter, friends = (int(n) for n in re.findall(r"a (\d+)-page letter to (\d+) different", x["question"])[0])
        assert x["answer"] == letter * friends * 2 * 52
    twice = convert(0, "Tom buys 2 apples and 2 pears. How many fruits?", "2+2=<<2+2=4>>4\n#### 4")
    assert make(twice, 2).reason == "ambiguous_number"


def test_percentages_stay_whole_multiples_of_five():
    ms = mentions("A $40 kettle is 20% off and costs $1.25 to ship.")
    assert [(m.text, m.percent) for m in ms] == [("40", False), ("20", True), ("1.25", False)]
    rows = load_rows(None, "train")
    done = for_rows([r for r in rows[:1500] if "%" in r["question"]][:60], 3)
    seen = 0
    for v in done:
        for x in v.variants:
            for old, new in x["numbers"].items():
                if f"{old}%" in v.question:
                    seen += 1
                    assert f"{new}%" in x["question"] and int(new) % 5 == 0 and 5 <= int(new) <= 95
    assert seen > 5


def test_a_recipe_trains_on_variants_beside_the_gold_traces():
    from engine.tasks import training_pairs

    base = config.load(sets=["data.train_size=4", "data.gsm8k_traces=20"])
    more = config.load(sets=["data.train_size=4", "data.gsm8k_traces=20", "data.gsm8k_variants=2"])
    plain, varied = training_pairs(base), training_pairs(more)
    assert set(plain) < set(varied) and 20 + 4 < len(varied) <= 24 + 40


def test_the_cli_writes_variants_and_says_why_the_rest_give_none(tmp_path):
    out = tmp_path / "v.jsonl"
    run = subprocess.run([sys.executable, "-m", "engine", "data", "variants", "--split", "test", "--limit", "40", "--k", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(check(r["trace"], Fraction(str(r["answer"]))).reward == 1.0 for r in rows)
    assert "of 40 problems give variants" in run.stdout and "ambiguous_number" in run.stdout


def test_eval_reports_robustness_on_test_variants():
    run = subprocess.run([sys.executable, "-m", "engine", "eval", "tiny", "--variants", "2", "--limit", "6", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    robust = out["robustness"]
    assert set(out["sets"]) == {"originals", "variants"} and out["sets"]["originals"]["total"] == robust["problems"]
    assert robust["k"] == 2 and robust["variants"] == out["sets"]["variants"]["total"] and 0 <= robust["all_right"] <= robust["problems"]


def test_self_traces_keep_only_right_clean_distinct_traces_and_train_beside_the_gold_ones(tmp_path):
    from engine.data.self_traces import collect
    from engine.tasks import training_pairs

    right = "```yaml\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 3}\n- {op: init, var: b, value: 4}\n" \
            "- {op: compute, compute_op: add, args: [a, b], var: c}\n- {op: query, var: c}\n```"
    spaced = right.replace("value: 3}", "value:  3}")  # the same trace, other whitespace
    wrong = right.replace("value: 4", "value: 5")
    broken = right.replace("- {op: query, var: c}\n", "")  # missing_query: an error diagnostic
    found = collect([(0, "3 and 4?", Fraction(7)), (1, "2 and 2?", Fraction(4))], [[right, spaced, wrong, broken], [wrong]])
    assert len(found[0].traces) == 1 and found[1].traces == []
    out = tmp_path / "self.jsonl"
    out.write_text(json.dumps({"question": "3 and 4?", "answer": 7, "trace": found[0].traces[0]}) + "\n"
                   + json.dumps({"question": "forged", "answer": 8, "trace": found[0].traces[0]}) + "\n")
    pairs = training_pairs(config.load(sets=["data.train_size=2", "data.gsm8k_traces=0", f"data.self_traces={out}"]))
    assert ("3 and 4?", "```yaml\n" + found[0].traces[0] + "```") in pairs
    assert not any(q == "forged" for q, _ in pairs)  # a trace that does not compute its answer is not taught


def test_the_self_traces_command_samples_scores_and_reports_new_problems(tmp_path):
    out = tmp_path / "self.jsonl"
    run = subprocess.run([sys.executable, "-m", "engine", "data", "self-traces", "tiny", "--k", "2", "--limit", "3", "--without-gold",
                          "--set", "eval.max_new_tokens=16", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "of 3 problems got a right, clean trace" in run.stdout and "0 of the 3 without a gold trace gained one" in run.stdout
    assert out.exists()  # the random tiny model writes nothing right: an empty file, said so
    assert "greedy outputs 3/3" in run.stderr and "sampled outputs 3/3" in run.stderr  # where a long round is, as it goes
    assert "outputs from the untrained model tiny (tiny is a model name, not a session)" in run.stderr  # never passes for trained


def test_a_self_trace_right_by_luck_is_not_kept():
    """Session 12's round kept two traces that reach the answer through a wrong computation:
    one starts from numbers the question does not hold, one leaves a number unread."""
    from engine.data.self_traces import kept_trace, ungrounded

    question = ("Rosie runs 6 miles per hour. She runs for 1 hour on Monday, 30 minutes on Tuesday, 1 hour on "
                "Wednesday, and 20 minutes on Thursday. If she wants to run 20 miles for the week, how many minutes "
                "should she run on Friday?")
    lucky = ("expert: arithmetic\ntrace:\n- {op: init, var: a, value: 30}\n- {op: init, var: b, value: 20}\n"
             "- {op: compute, compute_op: div, args: [a, b], var: c}\n- {op: init, var: d, value: 6}\n"
             "- {op: init, var: e, value: 6}\n- {op: compute, compute_op: mul, args: [d, e], var: f}\n"
             "- {op: compute, compute_op: sub, args: [f, a], var: g}\n- {op: init, var: h, value: 5}\n"
             "- {op: compute, compute_op: mul, args: [h, g], var: i}\n- {op: query, var: i}\n")
    assert kept_trace(lucky, Fraction(30)) is not None  # right and clean: what the executor alone lets through
    assert kept_trace(lucky, Fraction(30), question) is None and ungrounded(lucky, question) == "never reads the question's 1"
    from engine.data.self_traces import collect

    found = collect([(0, question, Fraction(30))], [[lucky]])[0]
    assert found.traces == [] and found.lucky == 1  # counted, so `engine data self-traces` says how many were left out
    invented = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 6}\n- {op: init, var: b, value: 17}\n" \
               "- {op: compute, compute_op: add, args: [a, b], var: c}\n- {op: query, var: c}\n"
    assert ungrounded(invented, "Ann has 6 pens and buys 17 more in 2019.") is None  # a year is no input
    assert "starts from 17" in ungrounded(invented, "Ann has 6 pens and buys a dozen more.")
    half = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 40}\n- {op: init, var: b, value: 2}\n" \
           "- {op: compute, compute_op: div, args: [a, b], var: c}\n- {op: query, var: c}\n"
    assert ungrounded(half, "Half of the 40 apples are red. How many are red?") is None  # `half` says 2
