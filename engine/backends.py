"""Where rollouts are generated: one small interface, two backends.

- `hf` (the default): transformers' generation on the trained model itself, or a
  one-dtype copy of it (see rollout.Sampler), refreshed before each use.
- `vllm` (optional, `pip install tracebench[vllm]`, a GPU machine): a vLLM engine in
  the same process, as TRL does in colocate mode. After every optimizer step the
  trained weights are pushed into it, with names mapped to vLLM's, so it never
  samples from stale weights.

The care point is the output head. When some layers stay frozen, training gives
`lm_head` its own copy of the embedding matrix (modeling.untie_output_embeddings).
vLLM reads `tie_word_embeddings` from the model's config and, if it is true, would
keep sampling with the embedding matrix: a stale head. The vLLM backend therefore
starts from a config with the tie switched off whenever the trained model is
untied, and `vllm_weights` refuses to push an untied head into a tied target.

Awaiting a GPU: the vLLM path is tested here with a fake engine (names, the tie,
the push after each step); its speed is not measured yet.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import torch

from .rollout import Completion, Sampler, generate

PEFT_PREFIX = "base_model.model."


class Backend(Protocol):
    def generate(self, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float, top_p: float,
                 batch_size: int, on_rows=None) -> tuple[list[Completion], dict]: ...

    def sync_weights(self, model) -> None: ...


class HFBackend:
    """transformers' generation; the sampler copies trained weights itself before each use."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler  # shared with evaluation: one copy of the weights

    def generate(self, tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, on_rows=None):
        return generate(self.sampler(), tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, on_rows=on_rows)

    def sync_weights(self, model) -> None:
        pass  # Sampler() refreshes on every call


def is_untied(model) -> bool:
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    return out is not None and inp is not None and out.weight.data_ptr() != inp.weight.data_ptr()


def vllm_weights(model, target_ties_embeddings: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """(vLLM name, tensor) for every trained parameter: what changes after an optimizer step."""
    if any("lora_" in n for n, _ in model.named_parameters()):
        raise NotImplementedError("the vLLM backend pushes full weights; with model.train=lora use rl.backend=hf")
    if is_untied(model) and target_ties_embeddings:
        raise ValueError("the trained model has its own lm_head, but the vLLM model ties it to the embeddings: "
                         "it would sample with a stale head; start vLLM from a config with tie_word_embeddings=false")
    for name, p in model.named_parameters():
        if p.requires_grad:
            yield vllm_name(name), p.detach()


def vllm_name(name: str) -> str:
    """A parameter's name as vLLM's model knows it (peft's wrapper prefix dropped)."""
    return name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name


class VLLMBackend:
    """vLLM in the same process (TRL's colocate mode). `engine` is a vllm.LLM, or anything with its
    `generate` and a model with `load_weights`; tests pass a fake one."""

    def __init__(self, model, model_path: str, engine=None, gpu_memory_utilization: float = 0.3):
        self.untied = is_untied(model)
        if engine is None:
            try:
                import vllm
            except ImportError:
                raise RuntimeError("rl.backend=vllm needs vLLM: pip install 'tracebench[vllm]' on a GPU machine") from None
            overrides = {"tie_word_embeddings": False} if self.untied else {}
            engine = vllm.LLM(model=model_path, hf_overrides=overrides, gpu_memory_utilization=gpu_memory_utilization,
                              enable_prefix_caching=True)
        self.engine = engine
        self.sync_weights(model)

    def _target(self):
        e = getattr(self.engine, "llm_engine", self.engine)
        return e.model_executor.driver_worker.model_runner.model

    def sync_weights(self, model) -> None:
        target = self._target()
        tied = bool(getattr(getattr(target, "config", None), "tie_word_embeddings", False))
        target.load_weights(list(vllm_weights(model, tied)))

    def generate(self, tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, on_rows=None):
        import time

        from vllm import SamplingParams

        start = time.perf_counter()
        params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, stop=["```\n"],
                                include_stop_str_in_output=True)
        outs = self.engine.generate(prompts, params, use_tqdm=False)
        comps = [Completion(o.outputs[0].text, list(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length")
                 for o in outs]
        seconds = time.perf_counter() - start
        tokens = sum(len(c.tokens) for c in comps)
        return comps, {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9)}


def make_backend(name: str, model, sampler: Sampler, model_name: str) -> Backend:
    if name == "vllm":
        from .models import resolve

        return VLLMBackend(model, resolve(model_name))
    return HFBackend(sampler)
