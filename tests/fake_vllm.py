"""A stand-in for the `vllm` package with the names and signatures of the release the
`vllm` extra pins (constraints/vllm.txt: LLM, SamplingParams, RequestOutput; LLM.generate /
reset_prefix_cache / sleep / wake_up; llm_engine.model_executor.driver_worker.model_runner.model.load_weights
under the in-process `external_launcher` executor), so a renamed call breaks a test here,
not on the GPU. It runs the model with transformers on the CPU and REFUSES what the real
engine refuses or cannot survive:

- an argument the real signature lacks (LLM's keywords and EngineArgs' fields, SamplingParams'
  fields, generate's keywords): TypeError, as Python gives the real one;
- a folder whose config unties the head but holds no `lm_head.weight` is refused at load;
- without `distributed_executor_backend="external_launcher"` the engine core runs in
  another process and `llm_engine.model_executor` does not exist (V1's multiprocessing);
- sleep mode as vLLM's executor keeps it (vllm/v1/executor/abstract.py): `sleep(level)` releases
  both memory tags, "weights" and "kv_cache" (after resetting the prefix cache, as LLM.sleep
  does); `wake_up(tags)` maps back the named ones (None: all); a tag that is not asleep makes the
  whole call a no-op, as vLLM does (it only logs a warning). vLLM's docstring: "wake_up should
  be called with all tags (or None) before the engine is used again". The real engine does not
  check it: it samples from, or writes into, memory it released. So here `generate` while any tag
  sleeps, and `load_weights` while "weights" sleeps, raise; `sleep` without enable_sleep_mode too;
- `load_weights` of a name the model lacks fails;
- sample log-probs as vLLM returns them (`SamplingParams(logprobs=N)`: each output position a
  dict {token id: Logprob(logprob, rank, decoded_token)} holding the sampled token and the top N),
  of the raw logits by default and after temperature with `logprobs_mode="processed_logprobs"`;
  `logprobs` below -1 is refused (SamplingParams' check), above the engine's `max_logprobs` (20)
  at generate (vLLM's processor), and an unknown `logprobs_mode` at start. `logprob_shift` (a
  number, or a function of the position) is added to what it reports: a test's known mismatch
  between the sampler's kernels and the trainer's;
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

# fields of vllm.EngineArgs that LLM(**kwargs) hands on and that this project or TRL's colocate mode pass;
# any other keyword is refused, as EngineArgs refuses a field it lacks
ENGINE_ARGS = {"enable_prefix_caching", "enable_sleep_mode", "distributed_executor_backend", "max_model_len",
               "max_num_seqs", "max_num_batched_tokens", "logprobs_mode", "model_impl", "disable_log_stats",
               "max_logprobs"}
LOGPROBS_MODES = ("raw_logits", "raw_logprobs", "processed_logits", "processed_logprobs")  # vllm.config.model.LogprobsMode
TAGS = ("weights", "kv_cache")  # the memory tags of sleep mode (CuMemAllocator)


@dataclass(kw_only=True)
class SamplingParams:
    """The fields of vllm.SamplingParams this project or TRL use (an unknown keyword is a TypeError)."""

    n: int = 1
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None  # scripts/gpu_check.py reads the real engine's; the fake returns none
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False

    def __post_init__(self):
        if self.logprobs is not None and self.logprobs != -1 and self.logprobs < 0:
            raise ValueError(f"logprobs must be non-negative or -1, got {self.logprobs}.")  # VLLMValidationError(ValueError)
        if self.temperature < 0 or not 0 < self.top_p <= 1 or (self.max_tokens is not None and self.max_tokens < 1):
            raise ValueError(f"invalid sampling parameters: temperature={self.temperature}, top_p={self.top_p}, "
                             f"max_tokens={self.max_tokens}")  # vLLM's _verify_args refuses these too


@dataclass
class Logprob:
    """vllm.logprobs.Logprob: one token's log-prob, its rank in the vocabulary (1 = most likely)."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


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
        if "weights" in self.llm.sleeping:
            raise RuntimeError("load_weights into the weights' memory vLLM released (sleep without wake_up(tags=['weights']))")
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
    def __init__(self, model: str, *, tokenizer: str | None = None, dtype: str = "auto", seed: int = 0,
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool = False, hf_overrides: dict | None = None,
                 **kwargs):
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
        if kwargs.get("logprobs_mode", "raw_logprobs") not in LOGPROBS_MODES:  # a Literal EngineArgs' config validates
            raise ValueError(f"logprobs_mode: {kwargs['logprobs_mode']!r} is not one of {LOGPROBS_MODES}")
        if not config.get("tie_word_embeddings", True) and "lm_head.weight" not in names:
            raise ValueError(f"There is no module or parameter named 'lm_head' in {folder}")  # what vLLM says
        self.kwargs = {"model": model, "dtype": dtype, "seed": seed, "gpu_memory_utilization": gpu_memory_utilization,
                       "enforce_eager": enforce_eager, "hf_overrides": hf_overrides, **kwargs}
        torch_dtype = torch.float32 if dtype == "auto" else getattr(torch, dtype)
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or folder)
        self.calls: list[str] = []
        self.logprob_shift = 0.0  # for tests: added to every reported log-prob (a number, or position -> number)
        self.sleeping: set[str] = set()  # the memory tags released by sleep and not yet woken
        self.model = _Model(hf, self)
        self.llm_engine = types.SimpleNamespace()
        if kwargs.get("distributed_executor_backend") == "external_launcher":  # in-process: the model is reachable
            runner = types.SimpleNamespace(model=self.model)
            self.llm_engine.model_executor = types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner))

    def generate(self, prompts, sampling_params: SamplingParams | None = None, *, use_tqdm: bool = True,
                 lora_request=None, priority: list[int] | None = None,
                 tokenization_kwargs: dict | None = None) -> list[RequestOutput]:
        if self.sleeping:
            raise RuntimeError(f"generate while {sorted(self.sleeping)} sleep: vLLM would sample from memory it "
                               "released (wake_up with every tag, or None, first)")
        sp = sampling_params or SamplingParams()
        most = self.kwargs.get("max_logprobs", 20)
        if sp.logprobs is not None and (self.tokenizer.vocab_size if sp.logprobs == -1 else sp.logprobs) > most:
            raise ValueError(f"Requested sample logprobs of {sp.logprobs}, which is greater than max allowed: {most}")
        self.calls.append("generate")
        out = []
        for i, prompt in enumerate(prompts):
            ids = prompt["prompt_token_ids"] if isinstance(prompt, dict) else self.tokenizer(prompt)["input_ids"]
            tokens, text, reason, lps = self._sample(ids, sp)
            total = None if lps is None else sum(d[t].logprob for d, t in zip(lps, tokens))
            out.append(RequestOutput(str(i), None, list(ids), None, [CompletionOutput(0, text, tokens, total, lps, reason)]))
        return out

    @torch.no_grad()
    def _sample(self, ids: list[int], sp: SamplingParams) -> tuple[list[int], str, str, list | None]:
        """As vLLM's engine: the EOS token (unless ignore_eos) and stop_token_ids end an output with
        the token kept; a stop string ends it as soon as the text holds it, the text cut before it
        (or after it, include_stop_str_in_output). With sp.logprobs, each position's log-probs too."""
        hf, tokens = self.model.hf, []
        lps = None if sp.logprobs is None else []
        ends = set(sp.stop_token_ids or []) | ({self.tokenizer.eos_token_id} if not sp.ignore_eos else set())
        stops = [sp.stop] if isinstance(sp.stop, str) else list(sp.stop or [])
        for _ in range(sp.max_tokens or 16):
            logits = hf(input_ids=torch.tensor([ids + tokens])).logits[0, -1].float()
            if sp.temperature > 0:
                token = int(torch.multinomial(torch.softmax(logits / sp.temperature, -1), 1))
            else:
                token = int(logits.argmax())
            tokens.append(token)
            if lps is not None:
                lps.append(self._position(logits, token, sp, len(tokens) - 1))
            text = self.tokenizer.decode(tokens, skip_special_tokens=sp.skip_special_tokens)
            if token in ends:
                return tokens, text, "stop", lps
            for stop in stops:
                at = text.find(stop)
                if at >= 0:
                    return tokens, text[: at + (len(stop) if sp.include_stop_str_in_output else 0)], "stop", lps
        return tokens, self.tokenizer.decode(tokens, skip_special_tokens=sp.skip_special_tokens), "length", lps

    def _position(self, logits, token: int, sp: SamplingParams, at: int) -> dict:
        """One position's {token id: Logprob}: the top sp.logprobs and the sampled token (vLLM's shape)."""
        mode = self.kwargs.get("logprobs_mode", "raw_logprobs")
        scaled = logits / sp.temperature if mode.startswith("processed") and sp.temperature > 0 else logits
        values = torch.log_softmax(scaled, -1) if mode.endswith("logprobs") else scaled
        shift = self.logprob_shift(at) if callable(self.logprob_shift) else self.logprob_shift
        n = self.tokenizer.vocab_size if sp.logprobs == -1 else sp.logprobs
        chosen = [token] + [int(t) for t in torch.topk(values, n).indices if int(t) != token][:n]
        return {t: Logprob(float(values[t]) + shift, int((values > values[t]).sum()) + 1, self.tokenizer.decode([t]))
                for t in chosen}

    def reset_prefix_cache(self, reset_running_requests: bool = False, reset_connector: bool = False) -> bool:
        self.calls.append("reset_prefix_cache")
        return True

    def sleep(self, level: int = 1) -> None:
        if not self.kwargs.get("enable_sleep_mode"):
            raise ValueError("Sleep mode is not enabled (LLM(..., enable_sleep_mode=True))")
        self.reset_prefix_cache()  # LLM.sleep does this first
        if self.sleeping:  # the executor: "Executor is already sleeping." and nothing else
            return
        self.calls.append(f"sleep({level})")
        self.sleeping = set(TAGS)

    def wake_up(self, tags: list[str] | None = None) -> None:
        unknown = set(tags or ()) - set(TAGS)
        if unknown:
            raise ValueError(f"unknown memory tags {sorted(unknown)}; vLLM's are {TAGS}")
        if not self.sleeping or any(t not in self.sleeping for t in tags or ()):
            return  # vLLM logs "Executor is not sleeping" / "Tag ... is not in sleeping tags" and wakes nothing
        self.calls.append(f"wake_up({','.join(tags or ['all'])})")
        self.sleeping -= set(tags or TAGS)

    # for tests: log-probs of `completion` after `prompt_ids` under the model vLLM samples from
    @torch.no_grad()
    def logprobs(self, prompt_ids: list[int], completion: list[int]) -> torch.Tensor:
        ids = torch.tensor([prompt_ids + completion])
        logits = self.model.hf(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        return torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None]).squeeze(1)


def install(monkeypatch) -> types.ModuleType:
    """Put this module in place of `vllm` for one test."""
    module = types.ModuleType("vllm")
    for name in ("LLM", "SamplingParams", "RequestOutput", "CompletionOutput"):  # Logprob lives in vllm.logprobs
        setattr(module, name, globals()[name])
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module
