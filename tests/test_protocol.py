"""The protocol in the tool: a development split no run trains on, sealed test problems whose
every scoring is recorded, leak checks on every training source, a split named for one JSONL
file, synthetic problems in unseen wordings, the grounded vote and the paired comparison."""

import json
import subprocess
import sys
from fractions import Fraction

import pytest

from engine import config, protocol
from engine.data import gsm8k

TEST_PROBLEMS = gsm8k.load(None, "test")
TRAIN_ROWS = gsm8k.load_rows(None, "train")


def engine(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_the_development_split_is_fixed_and_never_trained_on():
    from engine.tasks import training_pairs
    from engine.train.rl import questions

    dev = protocol.dev_problems(None)
    assert len(dev) == 500 and len({p.question for p in dev}) == 500
    assert [p.question for p in protocol.dev_problems(None)] == [p.question for p in dev]  # no seed moves it
    dev_q = {p.question for p in dev}
    train_q = {r["question"] for r in TRAIN_ROWS}
    assert dev_q <= train_q and not dev_q & {p.question for p in TEST_PROBLEMS}
    for seed in (0, 7):
        cfg = config.load(sets=["data.gsm8k_traces=100000", "data.train_size=1", "data.gsm8k_variants=0", f"data.seed={seed}"])
        trained = {q for q, _ in training_pairs(cfg)}
        assert len(trained) > 5900 and not trained & dev_q
    asked = {it.question for i in range(10) for it in questions(config.load(sets=["rl.questions=16"]), i, 0)}
    assert asked & train_q and not asked & dev_q
    cot = config.load(sets=["run.task=cot", "data.train_size=2000"])
    assert not {q for q, _ in training_pairs(cot)} & dev_q and len(training_pairs(cot)) == 2000


def test_leak_checks_catch_test_questions_with_other_numbers_and_near_copies():
    test_q = TEST_PROBLEMS[5].question
    import re

    other_numbers = re.sub(r"\d+", lambda m: str(int(m.group()) + 3), test_q)
    assert other_numbers != test_q and protocol.leak(other_numbers) == "template"
    bella = next(r["question"] for r in TRAIN_ROWS if r["question"].startswith("Bella bought stamps"))
    assert protocol.leak(bella) == "ngram"  # Max's stamps in the test split, another name and numbers
    assert protocol.leak(TRAIN_ROWS[0]["question"]) is None
    skipped = protocol.excluded_train(None)
    assert sum(v == "dev" for v in skipped.values()) == 500 and {"ngram"} <= set(skipped.values())


def test_a_self_traces_file_carrying_test_and_development_problems_is_cleaned_and_says_so(tmp_path):
    from engine.tasks import training_pairs

    trace = ("expert: arithmetic\ntrace:\n- {op: init, var: a, value: 3}\n- {op: init, var: b, value: 4}\n"
             "- {op: compute, compute_op: add, args: [a, b], var: c}\n- {op: query, var: c}\n")  # as self-traces writes it
    test_q = TEST_PROBLEMS[0].question
    dev_q = protocol.dev_problems(None)[0].question
    rows = [{"question": q, "answer": 7, "trace": trace} for q in ("Ann has 3 pens and gets 4 more. How many pens?", test_q, dev_q)]
    own = tmp_path / "self.jsonl"
    own.write_text("".join(json.dumps(r) + "\n" for r in rows))
    drops = protocol.Drops()
    cfg = config.load(sets=["data.train_size=1", "data.gsm8k_traces=0", f"data.self_traces={own}"])
    # the test and dev rows do not ground 3 and 4 in their question: check them as they are read, before grounding
    kept = protocol.clean([r["question"] for r in rows], str(own), None, drops)
    assert kept == [True, False, False]
    assert "2 of 3 dropped" in drops.message() and "of the development split" in drops.message() and "test question" in drops.message()
    pairs = training_pairs(cfg, protocol.Drops())
    assert any(q.startswith("Ann has") for q, _ in pairs) and not {q for q, _ in pairs} & {test_q, dev_q}


def test_a_training_run_says_what_the_protocol_kept_out(tmp_path):
    folder = tmp_path / "run"
    run = engine("train", "--model", "tiny", "--session", str(folder), "--plain", "--set", "run.phases=[sft,eval]",
                 "--set", "eval.at=[sft]", "--set", "eval.synthetic=1", "--set", "eval.gsm8k=2",
                 "--set", "data.gsm8k_traces=60", "--set", "data.train_size=8", "--set", "sft.epochs=0.1")
    assert run.returncode == 0, run.stderr[-2000:]
    alerts = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if '"alert"' in line]
    assert any("never trained on: GSM8K gold traces" in a["message"] and "of the development split" in a["message"] for a in alerts)
    # its evaluation on test problems 1-2 is a look at the test set too: in the sessions folder's ledger
    (entry,) = [json.loads(line) for line in (tmp_path / protocol.LEDGER).read_text().splitlines()]
    assert (entry["by"], entry["set"], entry["first"], entry["last"]) == ("engine train", "gsm8k", 1, 2)
    assert entry["family"] == protocol.family(config.load(folder / "config.yaml"), "best")


def test_one_jsonl_file_as_gsm8k_needs_its_split(tmp_path):
    one = tmp_path / "mine.jsonl"
    one.write_text("".join(json.dumps(r) + "\n" for r in TRAIN_ROWS[:20]))
    with pytest.raises(config.ConfigError, match=r"data.gsm8k: .*mine.jsonl is one file.*:train or .*:test"):
        config.load(sets=[f"data.gsm8k={one}"])
    run = engine("config", "show", "--set", f"data.gsm8k={one}")
    assert run.returncode != 0 and "Traceback" not in run.stderr and "name the split" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    named = config.load(sets=[f"data.gsm8k={one}:train"]).data.gsm8k
    assert len(gsm8k.load_rows(named, "train")) == 20
    assert [r["question"] for r in gsm8k.load_rows(named, "test")] == [p.question for p in TEST_PROBLEMS]  # not the file again
    with pytest.raises(config.ConfigError, match="no file"):
        config.load(sets=[f"data.gsm8k={tmp_path / 'missing.jsonl'}:test"])


def test_synthetic_unseen_shares_no_template_with_training():
    from engine.data.synthetic import generate
    from engine.tasks import eval_sets

    cfg = config.load(sets=["data.train_size=600", "eval.synthetic=200", "eval.synthetic_unseen=200", "eval.gsm8k=0"])
    sets = eval_sets(cfg)
    assert list(sets) == ["synthetic", "synthetic-unseen"] and len(sets["synthetic-unseen"]) == 200
    blind = lambda q: " ".join(w for w in protocol.words(q) if w != "#")  # noqa: E731 - numbers aside
    trained = {blind(e.question) for e in generate(600, cfg.data.seed, cfg.data.mix, "one")}
    old = sum(blind(it.question) in trained for it in sets["synthetic"])
    new = sum(blind(it.question) in trained for it in sets["synthetic-unseen"])
    assert old > 20 and new == 0  # the old set repeats training's wordings; the unseen one never does
    assert "synthetic-unseen" not in eval_sets(config.load(sets=["eval.synthetic_unseen=5", "data.phrasings=all"]))


def test_heldout_scorings_are_recorded_and_counted_per_family(tmp_path):
    """Each scoring of test problems is a line of the sessions folder's ledger; --heldout says how
    often this family has looked at the sealed problems, this time included."""
    cfg = config.load(sets=["model.name=tiny"], base=config.smoke_overrides())
    fam = protocol.family(cfg, None)
    ledger = tmp_path / "sessions" / protocol.LEDGER
    ledger.parent.mkdir()
    earlier = [{"family": fam, "first": 301, "last": 1319}, {"family": fam, "first": 1, "last": 300},
               {"family": "another", "first": 301, "last": 1319}]
    ledger.write_text("".join(json.dumps(e) + "\n" for e in earlier))
    run = engine("eval", "tiny", "--heldout", "--limit", "2", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["heldout_scorings"] == 2 and out["family"] == fam and list(out["sets"]) == ["gsm8k-301-302"]
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["first"] == 301 and lines[-1]["last"] == 302 and lines[-1]["total"] == 2
    run = engine("eval", "tiny", "--dev", "--limit", "2", "--json", cwd=tmp_path)  # the dev split: no look at the test set
    assert run.returncode == 0, run.stderr[-2000:]
    assert list(json.loads(run.stdout)["sets"]) == ["gsm8k-dev"] and len(ledger.read_text().splitlines()) == 4


def test_a_family_is_the_recipe_without_its_seeds_or_evaluation():
    base = config.load()
    same = config.load(sets=["run.seed=5", "data.seed=9", "eval.gsm8k=50", "eval.batch_size=4"])
    other = config.load(sets=["sft.lr=1e-3"])
    assert protocol.family(base, "best") == protocol.family(same, "last") != protocol.family(other, "best")
    assert protocol.family(base, None) == protocol.family(other, "untrained")  # the untrained model: its name


def test_grounded_vote_counts_only_clean_traces_that_read_the_question(monkeypatch):
    from engine.rollout import Completion
    from engine.tasks import Item
    from engine.train import evaluate as ev

    def trace(x, y):
        return ("```yaml\nexpert: arithmetic\ntrace:\n" f"- {{op: init, var: a, value: {x}}}\n- {{op: init, var: b, value: {y}}}\n"
                "- {op: compute, compute_op: add, args: [a, b], var: c}\n- {op: query, var: c}\n```")

    grounded, invented = trace(3, 4), trace(5, 4)  # 7 from the question's numbers; 9 from a 5 it never wrote
    outputs = {0.0: [invented], 0.8: [grounded, invented, invented]}  # greedy, then three samples

    def fake_generate(model, tokenizer, prompts, max_new_tokens, temperature=0.0, top_p=1.0, batch_size=32,
                      min_new_tokens=0, on_batch=None, on_rows=None, fast=False):  # rollout.generate's signature
        return [Completion(t, [1] * 5, False) for t in outputs[temperature]], {"tokens_per_s": 1.0}

    monkeypatch.setattr(ev, "generate", fake_generate)
    monkeypatch.setattr(ev, "prompt_text", lambda tok, q, system: q)
    cfg = config.load(sets=["eval.samples=4", "eval.vote=grounded"])
    fields, _ = ev.evaluate(None, None, [Item("Tom has 3 apples and buys 4 more. How many apples does he have?", Fraction(7))], cfg)
    assert fields["accuracy"] == 0 and fields["maj_at_k"] == 0  # greedy wrong; the invented 9 wins the plain vote
    assert fields["grounded_maj_at_k"] == 1 and fields["pass_at_k"] == 1  # only the grounded trace may vote
    # each vote against greedy, paired on the same problems: the grounded one gained the problem
    g = fields["grounded_vs_greedy"]
    assert (g["gained"], g["lost"], g["mcnemar_p"], g["change"], g["a_correct"], g["b_correct"]) == ([0], [], 1.0, 1.0, 0, 1)
    assert fields["maj_vs_greedy"]["gained"] == fields["maj_vs_greedy"]["lost"] == []
    plain, _ = ev.evaluate(None, None, [Item("Tom has 3 apples and buys 4 more. How many apples does he have?", Fraction(7))],
                           config.load(sets=["eval.samples=4"]))
    assert "grounded_maj_at_k" not in plain


def test_vote_needs_samples_and_reports_beside_majority(tmp_path):
    run = engine("eval", "tiny", "--vote", "grounded", cwd=tmp_path)
    assert run.returncode == 2 and "--samples" in run.stderr and "Traceback" not in run.stderr
    run = engine("eval", "tiny", "--dev", "--limit", "2", "--samples", "2", "--vote", "grounded", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    dev = json.loads(run.stdout)["sets"]["gsm8k-dev"]
    assert {"accuracy", "maj_at_k", "pass_at_k", "grounded_maj_at_k", "sample_seconds", "grounded_vs_greedy"} <= set(dev)
    assert dev["samples"] == 2
    run = engine("eval", "tiny", "--dev", "--limit", "2", "--samples", "2", "--vote", "grounded", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "grounded vote of 2 against greedy (paired)" in run.stdout and "McNemar p" in run.stdout
    took = [line for line in run.stdout.splitlines() if "took" in line]
    assert len(took) == 1 and took[0].startswith("gsm8k-dev: 1 more sample per problem took"), took  # once, not per vote


def test_dev_and_heldout_score_their_split_alone_whatever_sets_the_session_carries(tmp_path):
    """A session that evaluated its own problem file and unseen wordings: --dev must be the
    development split alone (every choice is made there), --heldout the sealed problems alone."""
    extra = tmp_path / "mine.jsonl"
    extra.write_text(json.dumps({"question": "Ann has 2 apples and buys 3. How many?", "answer": "5"}) + "\n")
    session = tmp_path / "s"
    run = engine("train", "--model", "tiny", "--session", str(session), "--plain", "--set", "run.phases=sft,eval",
                 "--set", "data.train_size=4", "--set", "data.gsm8k_traces=0", "--set", "sft.batch_size=4",
                 "--set", f"eval.problems=[{json.dumps(str(extra))}]", "--set", "eval.synthetic_unseen=2",
                 "--set", "eval.synthetic=2", "--set", "eval.gsm8k=2", "--set", "eval.at=[]")
    assert run.returncode == 0, run.stderr[-2000:]
    finished = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    assert {"mine", "synthetic-unseen", "synthetic"} <= {e["set"] for e in finished if e["kind"] == "eval"}
    for flag, only in (("--dev", "gsm8k-dev"), ("--heldout", "gsm8k-301-302")):
        run = engine("eval", str(session), flag, "--limit", "2", "--json", cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
        assert list(json.loads(run.stdout)["sets"]) == [only], flag
    run = engine("eval", str(session), "--limit", "2", "--json", cwd=tmp_path)  # without a flag: the session's own sets
    assert {"mine", "synthetic-unseen"} <= set(json.loads(run.stdout)["sets"])
    run = engine("eval", str(session), "--dev", "--limit", "2", "--set", "eval.synthetic_unseen=2", "--json", cwd=tmp_path)
    assert list(json.loads(run.stdout)["sets"]) == ["gsm8k-dev", "synthetic-unseen"]  # a set asked for by name is scored too


def test_dev_and_heldout_refuse_an_instruct_session(tmp_path):
    """The instruct task has no GSM8K split: --dev must not quietly score its instruct sets instead."""
    from engine.cli.evaluate import split_problem
    from types import SimpleNamespace

    cfg = config.load()
    cfg.run.task = "instruct"  # as a session of that task loads (its files need not exist for the check)
    for dev, heldout in ((True, False), (False, True)):
        why = split_problem(SimpleNamespace(dev=dev, heldout=heldout), cfg)
        assert why and "instruct session has none" in why
    assert split_problem(SimpleNamespace(dev=True, heldout=False), config.load()) is None


def test_diff_pairs_outcomes_and_tests_the_flips():
    from engine.stats import paired as compare

    a = [True] * 10 + [False] * 10 + [True] * 2 + [False] * 8
    b = [True] * 10 + [False] * 10 + [False] * 2 + [True] * 8
    c = compare(a, b)
    assert c["gained"] == list(range(22, 30)) and c["lost"] == [20, 21]
    assert c["mcnemar_p"] == pytest.approx(0.109375)  # 2 against 8: binomial(10, 1/2)
    assert c["change"] == pytest.approx(0.2) and c["change_ci"][0] < 0.2 < c["change_ci"][1]


def test_diff_command_compares_two_checkpoints_on_the_same_problems(tmp_path):
    from engine.cli.diff import split_target

    session = tmp_path / "s"
    session.mkdir()
    (session / "config.yaml").write_text("{}\n")
    assert split_target(f"{session}:last") == (str(session), "last") and split_target(str(session)) == (str(session), "best")
    assert split_target("tiny") == ("tiny", "best")
    run = engine("diff", "tiny", "tiny", "--limit", "2", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert set(out["sets"]) == {"synthetic", "gsm8k"}
    for c in out["sets"].values():  # the same weights twice: nothing flips
        assert c["problems"] == 2 and c["gained"] == c["lost"] == [] and c["mcnemar_p"] == 1.0 and c["change"] == 0
    assert len((tmp_path / "sessions" / protocol.LEDGER).read_text().splitlines()) == 2  # both looked at test problems
    assert out["same_weights"] and "A and B are the same weights (tiny (untrained))" in run.stderr  # said, not silent
    run = engine("diff", "tiny", str(tmp_path / "nope"), cwd=tmp_path)
    assert run.returncode != 0 and "nope" in run.stderr and "Traceback" not in run.stderr


def test_diff_says_when_a_and_b_are_the_same_weights(tmp_path):
    """`best` is a copy of a step's weights with another stage and step beside them: the same
    weights, told from the checkpoints' tensor storages, not their bytes."""
    import torch

    from engine.cli.diff import same_weights

    s = tmp_path / "s"
    four, eight = {"w": torch.arange(6.0)}, {"w": torch.arange(6.0) * 2}
    for name, weights, stage in (("step-000004", four, 1), ("step-000008", eight, 1), ("best", eight, -1)):
        (s / "checkpoints" / name).mkdir(parents=True)
        torch.save({"stage": stage, "step": 8, "trainable": weights}, s / "checkpoints" / name / "state.pt")
    (s / "config.yaml").write_text("{}\n")
    step8 = str(s / "checkpoints" / "step-000008")
    assert same_weights((str(s), "best"), (str(s), step8)) == str(s / "checkpoints" / "best")  # best is step 8's copy
    assert same_weights((str(s), "last"), (str(s), "best"))
    assert same_weights((str(s), "best"), (str(s), str(s / "checkpoints" / "step-000004"))) is None  # same shapes, other values
    assert same_weights((str(s), "best"), (str(s), "untrained")) is None and same_weights(("tiny", "best"), (str(s), "best")) is None
    assert same_weights((str(s), "untrained"), (str(s), "untrained")).endswith("(untrained)")
    assert same_weights((str(s), "nope"), (str(s), "nope")) is None  # the loader refuses it, with its reason


def test_a_key_added_to_the_config_at_its_default_leaves_every_family_as_it_was():
    """The ledger counts a family's looks at the sealed problems; a config key added later (at its
    default) must not make every earlier recipe a new family whose count starts again at 0."""
    cfg = config.load(sets=["sft.lr=1e-4", "rl.algorithm=gspo"])

    class Older:  # the same recipe as a config from before rl.gspo_epsilon existed writes it
        def to_dict(self):
            d = cfg.to_dict()
            del d["rl"]["gspo_epsilon"]
            return d

    assert protocol.family(Older(), "best") == protocol.family(cfg, "best")
    assert protocol.family(config.load(sets=["sft.lr=2e-4", "rl.algorithm=gspo"]), "best") != protocol.family(cfg, "best")
