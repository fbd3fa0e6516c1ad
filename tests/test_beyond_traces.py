"""Direct-answer (cot) fine-tuning, collapse detection, instruction tuning and its report."""

import json
import subprocess
import sys

import pytest

from engine.events import read_all
from engine.health import collapsed, distinct_n, health
from engine.tasks import final_number


def engine(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout)


def sets(*pairs):
    return [a for p in pairs for a in ("--set", p)]


def test_final_number_extraction():
    assert final_number("so 3 + 4 = 7\n#### 7") == 7
    assert final_number("She pays $1,250.50 in total.") == 1250.5
    assert final_number("no idea") is None
    assert final_number("#### -12") == -12


def test_health_measures():
    looping = ["The answer is 5. The answer is 5. The answer is 5. The answer is 5."] * 2
    h = health(looping + ["a fine answer of 12"], [True, False, False], ["q1", "q2", "q3"])
    assert h["loop_rate"] == 2 / 3 and h["identical_rate"] == 2 / 3 and abs(h["cut_rate"] - 1 / 3) < 1e-9
    assert distinct_n(["a b a b"], 1) == 0.5 and collapsed(h)
    assert collapsed(health(["x is 1", "y is 2"], [False, False], ["a", "b"])) is None


def test_cot_task_trains_and_evaluates_on_gsm8k(tmp_path):
    out = engine("train", "--model", "tiny", "--session", str(tmp_path / "cot"), "--plain",
                 *sets("run.task=cot", "data.train_size=16", "run.phases=sft,eval", "eval.gsm8k=4", "eval.at=start,sft"))
    assert out.returncode == 0, out.stderr[-2000:]
    events = read_all(tmp_path / "cot" / "events.jsonl")
    evals = [e for e in events if e["kind"] == "eval"]
    assert {e["set"] for e in evals} == {"gsm8k"} and all(e["total"] == 4 and "health" in e for e in evals)
    assert all(set(e["by_expert"]) == {"gsm8k"} for e in evals)


def test_collapse_alert_fires_and_stops_early_keeping_the_best_checkpoint(tmp_path):
    """A run that collapses by construction: the tiny model, a few steps in, writes the same output
    for every question (the detector's 'identical across different questions'). The first periodic
    evaluation writes `best` (the first trained weights scored), sees the collapse and, with
    run.stop_on_collapse, stops the run there with a checkpoint, long before its last step."""
    folder = tmp_path / "collapse"
    out = engine("train", "--model", "tiny", "--session", str(folder), "--plain",
                 *sets("data.train_size=24", "data.gsm8k_traces=0", "sft.batch_size=4", "sft.epochs=10", "run.phases=sft,eval",
                       "eval.synthetic=8", "eval.gsm8k=0", "eval.at=sft", "eval.every=2", "eval.max_new_tokens=24",
                       "run.stop_on_collapse=true"))
    assert out.returncode == 0, out.stderr[-2000:]
    events = read_all(folder / "events.jsonl")
    evals = [e for e in events if e["kind"] == "eval"]
    assert evals and evals[0]["health"]["identical_rate"] >= 0.5, [e.get("health") for e in evals]  # the construction
    alerts = [e["message"] for e in events if e["kind"] == "alert" and "collaps" in e["message"]]
    assert any("may be collapsing" in m for m in alerts) and any("the best checkpoint is" in m for m in alerts), alerts
    assert events[-1]["status"] == "stopped"
    metrics = [e for e in events if e["kind"] == "metrics"]
    assert max(e["step"] for e in metrics) == 2 < metrics[-1]["total"]  # stopped at the evaluation that saw it
    assert (folder / "checkpoints" / "best" / "state.pt").exists()


def test_instruct_task_with_lora_and_the_report(tmp_path):
    rows = [{"instruction": f"Repeat the word {w} twice.", "input": "", "output": f"{w} {w}"} for w in
            ["apple", "river", "stone", "cloud", "lamp", "tiger", "bread", "music"]]
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    held.write_text("".join(json.dumps(r) + "\n" for r in rows[6:]) + json.dumps({"instruction": "Say hi.", "input": "politely", "output": "Hello there"}) + "\n")
    folder = tmp_path / "inst"
    out = engine("train", "--model", "tiny", "--session", str(folder), "--plain",
                 *sets("run.task=instruct", f"data.instruct_train={train}", f"eval.instruct_sets=[{held}]", "model.train=lora",
                       "run.phases=sft,eval", "eval.at=sft", "sft.epochs=3"))
    assert out.returncode == 0, out.stderr[-2000:]
    started = read_all(folder / "events.jsonl")[0]
    assert started["params_trainable"] < started["params_total"] / 5  # LoRA adapters only
    rep = engine("report", str(folder), str(held), str(train), "--max-new-tokens", "16")
    assert rep.returncode == 0, rep.stderr[-2000:]
    report = json.loads((folder / "report.json").read_text())
    assert set(report["sets"]) == {"held", "train"}
    row = report["sets"]["held"]
    assert set(row) == {"bleu", "rouge_l", "meteor", "length_ratio", "truncation_rate"}
    assert row["rouge_l"]["delta"] == row["rouge_l"]["tuned"] - row["rouge_l"]["base"]
    md = (folder / "report.md").read_text()
    assert "| held | bleu |" in md
    if row["meteor"]["base"] is None:
        assert "METEOR not computed" in md and "METEOR not computed" in rep.stdout
    bad = engine("train", "--model", "tiny", "--set", "run.task=instruct")
    assert bad.returncode == 2 and "data.instruct_train" in bad.stderr
