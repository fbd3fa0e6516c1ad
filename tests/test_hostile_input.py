"""What a file from elsewhere can do (issue 38, items 4-6, 8, 10): each case as a user meets it,
through the command or the reader they run. docs/reliability.md, "What a file can do", points here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HUGE = "9" * 5000  # Python's int() refuses more than 4,300 digits, in words about the interpreter
SURROGATE = '"x\\ud800y"'  # a lone surrogate as JSON writes it: no encoder takes it


def engine(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


def one_line(out) -> str:
    """The error a command printed: exactly one line, no traceback."""
    err = out.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    return err


def shipped_rows(n: int) -> list[dict]:
    from engine.data.gsm8k import load_rows

    return load_rows(None, "train", n)


# ------------------------------------------------------------------ item 4: numbers in GSM8K files and configs
def test_gsm8k_traces_counts_infinite_and_5000_digit_numbers_as_rejections(tmp_path):
    rows = shipped_rows(3)
    bad = [{"question": "Tom has 2 apples.", "answer": "He eats <<1e999*2=4>>4 of them.\n#### 4"},
           {"question": f"Tom has {HUGE} apples and 2 pears.", "answer": "<<2*2=4>>4\n#### 4"},
           {"question": "Tom has 2 apples.", "answer": f"<<2*2=4>>4\n#### {HUGE}"},
           {"question": "Tom has 3/" + HUGE + " of a pie.", "answer": "<<2*2=4>>4\n#### 4"}]
    src = tmp_path / "gsm.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows + bad))
    out = engine("data", "gsm8k-traces", "--source", str(src), "--out", str(tmp_path / "kept.jsonl"))
    assert out.returncode == 0, out.stderr[-2000:]
    rejected = [json.loads(x) for x in (tmp_path / "kept.rejected.jsonl").read_text().splitlines()]
    by_index = {r["gsm8k_index"]: r for r in rejected}
    assert [by_index[i]["reason"] for i in range(3, 7)] == ["bad_number"] * 4
    assert "not a finite number" in by_index[3]["detail"] and "5,000 characters" in by_index[4]["detail"]
    assert "of 7 problems kept" in out.stderr  # the good rows went on being converted


def test_variants_and_self_traces_read_questions_with_5000_digit_numbers():
    from engine.data import gsm8k_traces, self_traces, variants

    question = f"Ann has {HUGE} marbles and buys 3 more bags of 4."
    assert [m.text for m in variants.mentions(question)] == ["3", "4"]  # the unreadable one is no input
    c = gsm8k_traces.convert(0, question, "<<3*4=12>>12\n#### 12")
    assert not c.kept and c.reason == "bad_number"
    assert variants.make(c, 4).reason == "no_gold_trace"
    trace = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 3}\n- {op: init, var: b, value: 4}\n" \
            "- {op: compute, fn: mul, args: [a, b], var: c}\n- {op: query, var: c}\n"
    assert self_traces.ungrounded(trace, question) is None


def test_gsm8k_eval_set_with_a_huge_answer_names_the_file_and_line(tmp_path):
    from engine.data import gsm8k

    f = tmp_path / "test.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "x\n#### 4"}) + "\n\n" +
                 json.dumps({"question": "q", "answer": f"x\n#### {HUGE}"}) + "\n")
    with pytest.raises(ValueError) as err:
        gsm8k.load(str(f), "test")
    assert f"{f} line 3:" in str(err.value) and "too long for an answer" in str(err.value)


def test_config_with_a_5000_digit_number_is_one_line_naming_file_and_line(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"sft:\n  lr: 0.001\ndata:\n  train_size: {HUGE}\n")
    err = one_line(engine("config", "show", "--config", str(cfg)))
    assert f"config file {cfg} line 4:" in err and "more than 40 digits" in err
    session = tmp_path / "s"
    session.mkdir()
    (session / "config.yaml").write_text(cfg.read_text())
    from engine import config

    with pytest.raises(config.ConfigError, match="line 4"):  # what eval and resume of such a session read
        config.load(session / "config.yaml")


# ------------------------------------------------------------------ item 5: the plain-step pattern is linear
def test_a_megabyte_answer_is_rejected_at_once_and_plain_steps_are_read_in_one_pass():
    from engine.data import gsm8k_traces

    c = gsm8k_traces.convert(0, "Tom has 2 apples.", "1+" * (1 << 19) + "1=3\n#### 3")
    assert c.reason == "text_too_long" and "1,048,58" in c.detail
    # the pattern itself, on a megabyte: unbounded, 64 KB took 25 s (the square of the length)
    assert list(gsm8k_traces._plain_steps("1+" * (1 << 19))) == []
    steps = list(gsm8k_traces._plain_steps("$2 + 3 = $5; " * 80_000))
    assert len(steps) == 80_000 and steps[0] == ("$2 + 3", "5", 0, 11)


# ------------------------------------------------------------------ item 6: lone surrogates
def test_a_lone_surrogate_in_one_status_json_hides_no_session(tmp_path):
    root = tmp_path / "sessions"
    for name, model in (("bad", SURROGATE), ("good", '"ok-model"')):
        (root / name).mkdir(parents=True)
        (root / name / "status.json").write_text(f'{{"status": "completed", "model": {model}, "error": {SURROGATE}}}')
    out = engine("ls", "--root", str(root))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok-model" in out.stdout and "x\ufffdy" in out.stdout
    listed = json.loads(engine("ls", "--root", str(root), "--json").stdout)
    assert sorted(r["model"] for r in listed) == ["ok-model", "x\ufffdy"]


def test_data_stats_and_problem_files_take_lone_surrogates(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(f'{{"question": {SURROGATE}, "answer": 3, "expert": "arithmetic", "pattern": {SURROGATE}}}\n')
    out = engine("data", "stats", str(f))
    assert out.returncode == 0 and "x\ufffdy" in out.stdout, out.stderr[-2000:]
    from engine.data import problems

    assert problems.load(f)[0].question == "x\ufffdy"  # what a tokenizer gets: no surrogate


def test_export_and_terminal_text_replace_lone_surrogates():
    from engine.events import clean_text, sanitize

    shown = clean_text("model \ud800 \x1b[2J done")
    assert shown == "model \ufffd  done" and shown.encode("utf-8")
    event = sanitize({"kind": "metrics", "t": 1.0, "step": 1, "loss\udc00": 0.5})  # what export writes as a tag
    assert list(event)[-1] == "loss\ufffd"


# ------------------------------------------------------------------ item 8: a model folder's config.json
@pytest.mark.parametrize("change, key", [
    ({"num_attention_heads": 0}, "num_attention_heads"),
    ({"hidden_size": "576"}, "hidden_size"),
    ({"hidden_size": -576}, "hidden_size"),
    ({"intermediate_size": int("9" * 400)}, "intermediate_size"),
    ({"num_key_value_heads": 2}, "num_key_value_heads"),  # 9 heads are not shared by 2 KV heads
])
def test_plan_refuses_a_model_shape_no_model_has(tmp_path, change, key):
    from engine.plan import BadModelConfig, known_shape

    good = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "intermediate_size": 1536, "vocab_size": 49152}
    (tmp_path / "config.json").write_text(json.dumps({**good, **change}))
    with pytest.raises(BadModelConfig) as err:
        known_shape(str(tmp_path))
    assert str(tmp_path / "config.json") in str(err.value) and f"`{key}`" in str(err.value)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_engine_plan_says_which_key_of_a_deeply_nested_config_json(tmp_path):
    (tmp_path / "config.json").write_text("[" * 100_000)
    err = one_line(engine("plan", "--set", f"model.name={tmp_path}"))
    assert f"{tmp_path / 'config.json'}: not JSON (nested too deeply)" in err


def test_the_forms_count_of_a_self_traces_file_is_bounded(tmp_path):
    from engine import plan

    f = tmp_path / "self.jsonl"
    line = b'{"question": "q", "answer": 1, "trace": "t"}\n'
    f.write_bytes(line * ((3 * plan.COUNT_BYTES) // len(line)))  # three times what is read
    n = (3 * plan.COUNT_BYTES) // len(line)
    assert abs(plan.count_lines(f) - n) <= n // 100
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert plan.count_lines(fifo) == 0  # never waits on a writer that does not come


# ------------------------------------------------------------------ item 10: checkpoints, status.json, --k
def test_a_compressed_state_pt_is_refused_before_it_expands(tmp_path):
    import torch

    from engine import checkpoints

    plain = tmp_path / "plain.pt"
    torch.save({"trainable": {"w": torch.zeros(1_000_000)}}, plain)
    bomb = tmp_path / "ckpt" / "state.pt"
    bomb.parent.mkdir()
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for info in zin.infolist():
            zout.writestr(zipfile.ZipInfo(info.filename, info.date_time), zin.read(info), zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < plain.stat().st_size / 100  # 4 MB of tensor in a few KB
    with pytest.raises(checkpoints.CheckpointError, match="is compressed"):
        checkpoints.read(bomb.parent)
    assert checkpoints.read(plain)["trainable"]["w"].shape == (1_000_000,)


def test_a_huge_error_text_leaves_the_session_listed_with_its_status(tmp_path):
    from engine.recorder import StatusFile
    from engine.session import MAX_STATUS_BYTES, Session, summarize

    s = Session(tmp_path / "run").create()
    status = StatusFile(s, {"status": "running", "model": "tiny"})
    status.on_event({"kind": "run_finished", "status": "failed", "error": "é" * 500_000, "t": 1.0})
    assert (s.path / "status.json").stat().st_size < MAX_STATUS_BYTES
    row = summarize(s.path)
    assert row["status"] == "failed" and row["error"].startswith("éé")


def test_data_variants_caps_k_as_the_config_does(tmp_path):
    err = one_line(engine("data", "variants", "--k", "65", "--out", str(tmp_path / "v.jsonl")))
    assert "at most 64" in err
    assert not (tmp_path / "v.jsonl").exists()
