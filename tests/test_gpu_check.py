"""scripts/gpu_check.py's verdicts, from crafted outputs (the checks themselves need a GPU)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).parent.parent / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

BF16, EIGHT = "bf16 weights, LoRA", "8-bit, LoRA"


def result(loss, step_s=0.2, gpu_mb=900.0) -> tuple[int, str, str]:
    line = json.dumps({"loaded_mb": 1, "rss_mb": 2, "gpu_mb": gpu_mb, "step_s": step_s, "loss": loss})
    return 0, "bitsandbytes says something\n" + line + "\n", ""


def test_the_8bit_row_passes_only_a_step_that_ran_with_a_loss_near_bf16s():
    text, ok, figures = gpu_check.judge_8bit({BF16: result(2.000), EIGHT: result(2.030)})
    assert ok and figures["loss_8bit"] == 2.03 and "+1.5%" in text


@pytest.mark.parametrize("runs, why", [
    # the old check passed this: the benchmark printed "8-bit, LoRA: failed: ..." and exited 0
    ({BF16: result(2.0), EIGHT: (1, "", "Traceback ...\nRuntimeError: CUDA error: no kernel image")}, "no kernel image"),
    ({BF16: result(2.0), EIGHT: (0, "8-bit, LoRA: failed: out of memory\n", "")}, "no result line"),
    ({BF16: result(2.0), EIGHT: result(math.nan)}, "loss nan"),
    ({BF16: result(2.0), EIGHT: result(2.1)}, "+5.0%"),
    ({BF16: result(2.0)}, "not run"),
])
def test_the_8bit_row_fails_on_any_failed_or_doubtful_step(runs, why):
    text, ok, _ = gpu_check.judge_8bit(runs)
    assert not ok and why in text


def test_the_vllm_row_asks_a_stale_engine_to_be_told_from_a_synced_one():
    assert gpu_check.sync_ok(stale=0.30, synced=0.01)
    assert not gpu_check.sync_ok(stale=0.05, synced=0.01)  # passed before (|gap| < 0.1): the push was not seen
    assert not gpu_check.sync_ok(stale=0.30, synced=0.12)  # not synced
    assert not gpu_check.sync_ok(stale=0.0, synced=0.0)  # nothing changed: the check proves nothing
    assert not gpu_check.sync_ok(stale=math.nan, synced=0.01)
