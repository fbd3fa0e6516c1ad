"""The JSONL files `engine data` writes and training reads go through one writer and reader
(engine/data/tracefile.py): written whole or not at all, a bad line named by file and line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine import config
from engine.data import tracefile

RECORD = {"question": "Tom has 3 apples and buys 4. How many now? (½ price, \u00e9t\u00e9)", "answer": 7,
          "expert": "arithmetic", "pattern": "gsm8k-self", "sample": 0, "gsm8k_index": 12,
          "trace": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 3}\n- {op: init, var: b, value: 4}\n"
                   "- {op: compute, compute_op: add, args: [a, b], var: c}\n- {op: query, var: c}\n"}


def engine(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_record_written_then_read_back_is_equal(tmp_path):
    out = tmp_path / "new" / "folder" / "own.jsonl"  # folders made where missing, as the commands always did
    other = {**RECORD, "question": "Second?", "answer": 2.5, "numbers": {"3": "5"}}
    assert tracefile.write(out, [RECORD, other]) == 2
    assert list(tracefile.read(out)) == [(1, RECORD), (2, other)]
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_write_that_fails_halfway_leaves_the_previous_file_whole(tmp_path):
    """A round of expert iteration killed (here: failing) while writing must not leave half a file
    that the next training run would read as the whole round."""
    out = tmp_path / "own.jsonl"
    tracefile.write(out, [RECORD] * 3)
    before = out.read_bytes()

    def records():
        yield RECORD
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        tracefile.write(out, records())
    assert out.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("bad, why", [('{"question": "torn', "not JSON"), ("[1, 2]", "not a JSON object"),
                                      ("garbage", "not JSON")])
def test_a_torn_or_garbage_line_is_an_error_naming_the_file_and_line(tmp_path, bad, why):
    f = tmp_path / "own.jsonl"
    f.write_text(json.dumps(RECORD) + "\n\n" + bad + "\n" + json.dumps(RECORD) + "\n")
    with pytest.raises(ValueError) as err:
        list(tracefile.read(f))
    assert str(err.value).startswith(f"{f} line 3: {why}") and " at at " not in str(err.value)
    # every reader of these files says the same: `engine data stats`, and training on it as data.self_traces
    out = engine("data", "stats", str(f))
    assert out.returncode != 0 and out.stderr.strip() == f"engine data stats: {err.value}"
    from engine.tasks import training_pairs

    with pytest.raises(ValueError, match=f"{f} line 3: {why}"):
        training_pairs(config.load(sets=["data.train_size=1", "data.gsm8k_traces=0", f"data.self_traces={f}"]))


def test_the_data_commands_write_through_the_one_writer_and_say_in_one_line_when_they_cannot(tmp_path):
    (tmp_path / "taken").mkdir()
    for cmd in (["generate", "--n", "2"], ["gsm8k-traces", "--split", "test"], ["variants", "--split", "test", "--limit", "2"]):
        out = engine("data", *cmd, "--out", str(tmp_path / "taken"))  # a folder where the file should go
        err = out.stderr.strip()
        assert out.returncode != 0 and "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
        assert str(tmp_path / "taken") in err and "Is a directory" in err
    out = engine("data", "variants", "--split", "test", "--limit", "3", "--k", "1", "--out", str(tmp_path / "v.jsonl"))
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [r for _, r in tracefile.read(tmp_path / "v.jsonl")]
    assert rows and {"question", "answer", "trace", "gsm8k_index", "variant"} <= set(rows[0])
