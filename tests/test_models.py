"""Model names: an unreachable hub id fails at once with one sentence."""

import pytest

from engine.models import ModelNotFound, resolve


@pytest.mark.wallclock
def test_an_unknown_hub_id_without_a_hub_fails_within_seconds(monkeypatch, within):
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens there: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with within(5, "an unreachable hub refused"), pytest.raises(ModelNotFound, match="cannot be reached") as err:
        resolve("nobody/no-such-model-xyz")
    assert "huggingface-cli download nobody/no-such-model-xyz" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE"):
        resolve("nobody/no-such-model-xyz")


def test_engine_models_lists_the_models_people_ask_for_with_what_was_measured():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "engine", "models"], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "COLUMNS": "400"}).stdout
    for name in ("smollm2-135m-instruct", "smollm2-360m-instruct", "qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct"):
        assert name in out
    assert "99.5%" in out and "not yet measured" in out


def test_a_known_hub_name_fails_with_its_hub_id_when_nothing_can_be_had(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="Qwen/Qwen2.5-0.5B-Instruct"):
        resolve("qwen2.5-0.5b-instruct")


def test_problem_names_what_cannot_be_loaded_without_loading_anything(tmp_path, monkeypatch):
    from engine.models import problem

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert problem("tiny") is None and problem("smollm2-135m-instruct") is None
    assert "no model folder" in problem(str(tmp_path / "nothing-here"))
    assert "not a model folder" in problem(str(tmp_path))
    assert "HF_HUB_OFFLINE" in problem("nobody/no-such-model-xyz")


@pytest.mark.wallclock
def test_a_dataset_id_without_a_hub_fails_within_seconds(monkeypatch, within):
    from engine.data import gsm8k

    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with within(5, "an unreachable hub refused"), pytest.raises(FileNotFoundError, match="cannot be reached") as err:
        gsm8k.load_rows("nobody/no-such-dataset")
    assert "local JSONL path" in str(err.value)


@pytest.mark.wallclock
def test_a_model_in_the_local_hub_cache_loads_without_a_hub(tmp_path, monkeypatch, default_tokenizer, within):
    from engine.modeling import tiny_model

    cache = tmp_path / "hub"
    snap = cache / "models--someone--small-model" / "snapshots" / "0123abcd"
    tiny_model(default_tokenizer).save_pretrained(snap)
    (cache / "models--someone--small-model" / "refs").mkdir()
    (cache / "models--someone--small-model" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    with within(5, "a cached model found without asking the hub"):
        assert resolve("someone/small-model") == str(snap)


def test_engine_models_at_80_columns_ends_no_line_in_padding():
    """rich pads each cell to the width: 21 of the list's lines once ended in spaces up to column 80."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "engine", "models"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "80"}).stdout
    assert "smollm2-135m-instruct" in out
    assert [line for line in out.splitlines() if line != line.rstrip()] == []
