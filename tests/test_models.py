"""Model names: an unreachable hub id fails at once with one sentence."""

import time

import pytest

from engine.models import ModelNotFound, resolve


def test_an_unknown_hub_id_without_a_hub_fails_within_seconds(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens there: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(ModelNotFound, match="cannot be reached") as err:
        resolve("nobody/no-such-model-xyz")
    assert time.perf_counter() - start < 5 and "huggingface-cli download nobody/no-such-model-xyz" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE"):
        resolve("nobody/no-such-model-xyz")
