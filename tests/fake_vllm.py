"""A stand-in for the `vllm` package with the names and signatures of the release the
`vllm` extra pins (LLM, SamplingParams, RequestOutput; LLM.generate / reset_prefix_cache /
sleep / wake_up; llm_engine.model_executor.driver_worker.model_runner.model.load_weights
under the in-process `external_launcher` executor), so a renamed call breaks a test here,
not on the GPU. It runs the model with transformers on the CPU and behaves as vLLM does
where the engine depends on it:

- a folder whose config unties the head but holds no `lm_head.weight` is refused at load;
- without `distributed_executor_backend="external_launcher"` the engine core runs in
  another process and `llm_engine.model_executor` does not exist (V1's multiprocessing);
- `load_weights` of a name the model lacks fails; while asleep without `wake_up(tags=["weights"])`
  it fails too (the weights' memory is released);
- `external_launcher` without torch.distributed's variables (RANK, WORLD_SIZE, MASTER_ADDR, ...) fails;
- every call is logged in `calls`, so tests can check the prefix cache is reset after a push.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch

# the keyword arguments of vllm.EngineArgs that this project passes (LLM(**kwargs) hands them on)
ENGINE_ARGS = {"enable_prefix_caching", "enable_sleep_mode", "distributed_executor_backend", "max_model_len",
               "max_num_seqs", "max_num_batched_tokens", "enforce_eager", "logprobs_mode"}


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    max_tokens: int | None = 16
    logprobs: int | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list | None
    outputs: list[CompletionOutput]
    finished: bool = True


class _Model:
    """The model vLLM samples from, as model_runner.model: config and load_weights."""

    def __init__(self, hf, llm):
        self.hf, self.config, self.llm = hf, hf.config, llm

    def load_weights(self, weights) -> set[str]:
        if self.llm.asleep and "weights" not in self.llm.awake:
            raise RuntimeError("load_weights while the weights' memory is released (sleep without wake_up(tags=['weights']))")
        own = dict(self.hf.named_parameters())
        loaded = set()
        with torch.no_grad():
            for name, tensor in weights:
                if name not in own:
                    raise KeyError(f"{name} is not a parameter of the vLLM model")
                own[name].copy_(tensor.to(own[name].dtype))
                loaded.add(name)
        self.llm.calls.append("load_weights")
        return loaded


class LLM:
    def __init__(self, model: str, *, tokenizer: str | None = None, dtype: str = "auto", seed: int | None = None,
                 gpu_memory_utilization: float = 0.9, hf_overrides: dict | None = None, **kwargs):
        unknown = set(kwargs) - ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got unexpected keyword arguments {sorted(unknown)}")
        if kwargs.get("distributed_executor_backend") == "external_launcher":
            import os

            missing = [k for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
            if missing:  # the in-process executor joins torch.distributed by these, as torchrun sets them
                raise ValueError(f"external_launcher needs {', '.join(missing)} in the environment")
        from safetensors import safe_open
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(model)
        config = {**json.loads((folder / "config.json").read_text()), **(hf_overrides or {})}
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            names = set(f.keys())
        if not config.get("tie_word_embeddings", True) and "lm_head.weight" not in names:
            raise ValueError(f"There is no module or parameter named 'lm_head' in {folder}")  # what vLLM says
        self.kwargs = {"model": model, "dtype": dtype, "seed": seed, "gpu_memory_utilization": gpu_memory_utilization,
                       "hf_overrides": hf_overrides, **kwargs}
        torch_dtype = torch.float32 if dtype == "auto" else getattr(torch, dtype)
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or folder)
        self.calls: list[str] = []
        self.asleep, self.awake = False, set()
        self.model = _Model(hf, self)
        self.llm_engine = types.SimpleNamespace()
        if kwargs.get("distributed_executor_backend") == "external_launcher":  # in-process: the model is reachable
            runner = types.SimpleNamespace(model=self.model)
            self.llm_engine.model_executor = types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner))

    def generate(self, prompts, /, sampling_params: SamplingParams | None = None, *, use_tqdm: bool = True,
                 lora_request=None) -> list[RequestOutput]:
        if self.asleep and "kv_cache" not in self.awake:
            raise RuntimeError("generate while asleep (wake_up(tags=['kv_cache']) first)")
        sp = sampling_params or SamplingParams()
        self.calls.append("generate")
        out = []
        for i, prompt in enumerate(prompts):
            ids = prompt["prompt_token_ids"] if isinstance(prompt, dict) else self.tokenizer(prompt)["input_ids"]
            tokens, reason = self._sample(ids, sp)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            for stop in sp.stop or []:
                at = text.find(stop)
                if at >= 0:
                    text, reason = text[: at + (len(stop) if sp.include_stop_str_in_output else 0)], "stop"
            out.append(RequestOutput(str(i), None, list(ids), None, [CompletionOutput(0, text, tokens, None, None, reason)]))
        return out

    @torch.no_grad()
    def _sample(self, ids: list[int], sp: SamplingParams) -> tuple[list[int], str]:
        hf, tokens = self.model.hf, []
        for _ in range(sp.max_tokens or 16):
            logits = hf(input_ids=torch.tensor([ids + tokens])).logits[0, -1].float()
            if sp.temperature > 0:
                token = int(torch.multinomial(torch.softmax(logits / sp.temperature, -1), 1))
            else:
                token = int(logits.argmax())
            tokens.append(token)
            if token in (sp.stop_token_ids or []):
                return tokens, "stop"
        return tokens, "length"

    def reset_prefix_cache(self, reset_running_requests: bool = False) -> bool:
        self.calls.append("reset_prefix_cache")
        return True

    def sleep(self, level: int = 1) -> None:
        self.calls.append(f"sleep({level})")
        self.asleep, self.awake = True, set()

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.calls.append(f"wake_up({','.join(tags or ['all'])})")
        self.awake |= set(tags or ["weights", "kv_cache"])
        if self.awake >= {"weights", "kv_cache"}:
            self.asleep, self.awake = False, set()

    # for tests: log-probs of `completion` after `prompt_ids` under the model vLLM samples from
    @torch.no_grad()
    def logprobs(self, prompt_ids: list[int], completion: list[int]) -> torch.Tensor:
        ids = torch.tensor([prompt_ids + completion])
        logits = self.model.hf(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        return torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None]).squeeze(1)


def install(monkeypatch) -> types.ModuleType:
    """Put this module in place of `vllm` for one test."""
    module = types.ModuleType("vllm")
    for name in ("LLM", "SamplingParams", "RequestOutput", "CompletionOutput"):
        setattr(module, name, globals()[name])
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module
