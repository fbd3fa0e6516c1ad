"""The rollout backend interface, and the vLLM weight push, with a fake vLLM engine (no GPU)."""

import pytest
import torch

from engine import config
from engine.backends import HFBackend, VLLMBackend, is_untied, vllm_name, vllm_weights
from engine.modeling import select_trainable, tiny_model
from engine.rollout import Sampler


class FakeModel:
    def __init__(self, tied: bool):
        self.config = type("C", (), {"tie_word_embeddings": tied})()
        self.loaded: list[list[tuple[str, torch.Tensor]]] = []

    def load_weights(self, weights):
        self.loaded.append([(n, t.clone()) for n, t in weights])


class FakeVLLM:
    """What the backend touches of vllm.LLM: llm_engine.model_executor.driver_worker.model_runner.model."""

    def __init__(self, tied: bool):
        self.model = FakeModel(tied)
        runner = type("R", (), {"model": self.model})()
        worker = type("W", (), {"model_runner": runner})()
        executor = type("E", (), {"driver_worker": worker})()
        self.llm_engine = type("L", (), {"model_executor": executor})()


def last_layers(tok, n=1):
    return select_trainable(tiny_model(tok), config.load(sets=["model.train=last_layers", f"model.unfreeze_layers={n}"]))


def test_trained_weights_are_pushed_with_vllm_names_after_each_step(default_tokenizer):
    model = last_layers(default_tokenizer)
    assert is_untied(model)  # some layers frozen: lm_head has its own copy
    fake = FakeVLLM(tied=False)
    backend = VLLMBackend(model, "unused", engine=fake)
    first = dict(fake.model.loaded[-1])
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(first) == trained and "lm_head.weight" in first
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    backend.sync_weights(model)
    assert torch.equal(dict(fake.model.loaded[-1])["lm_head.weight"], model.lm_head.weight)


def test_an_untied_head_is_never_pushed_into_a_tied_vllm_model(default_tokenizer):
    model = last_layers(default_tokenizer)
    with pytest.raises(ValueError, match="stale head"):
        VLLMBackend(model, "unused", engine=FakeVLLM(tied=True))


def test_peft_names_are_mapped_and_lora_is_refused(default_tokenizer):
    assert vllm_name("base_model.model.model.layers.1.mlp.up_proj.weight") == "model.layers.1.mlp.up_proj.weight"
    assert vllm_name("lm_head.weight") == "lm_head.weight"
    lora = select_trainable(tiny_model(default_tokenizer), config.load(sets=["model.train=lora", "model.lora_targets=[q_proj]"]))
    with pytest.raises(NotImplementedError, match="lora"):
        list(vllm_weights(lora, False))


def test_hf_backend_generates_from_the_shared_sampler(default_tokenizer):
    model = tiny_model(default_tokenizer)
    backend = HFBackend(Sampler(model))
    comps, stats = backend.generate(default_tokenizer, ["hello", "two words"], 4, 0.0, 1.0, 2)
    assert len(comps) == 2 and stats["tokens"] >= 2
