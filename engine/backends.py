"""Where rollouts are generated: one small interface, two backends.

- `hf` (the default): transformers' generation on the trained model itself, or a
  one-dtype copy of it (see rollout.Sampler), refreshed before each use.
- `vllm` (optional, `pip install tracebench[vllm]`, a GPU machine): a vLLM engine in
  each training process, as TRL's GRPOTrainer does in colocate mode (trl/generation/
  vllm_generation.py), designed after it:
  - vLLM starts at the beginning of RL from a folder the run writes: the model as it is
    then, in bf16, with its own `lm_head` when training untied it. (Starting from the
    original checkpoint with `tie_word_embeddings` switched off fails: that checkpoint
    has no `lm_head.weight` to load.)
  - `distributed_executor_backend="external_launcher"`: the engine runs inside this
    process, on this rank's GPU (cuda:LOCAL_RANK, from torchrun's environment), so
    `llm_engine.model_executor.driver_worker.model_runner.model.load_weights` reaches
    the model vLLM samples from. With vLLM's default multiprocessing executor that
    path does not exist.
  - after every optimizer step the trained weights are pushed under vLLM's names, then
    the prefix cache is reset: cached keys and values of the shared prompt were
    computed with the old weights.
  - prompts go in as token ids, tokenized as the hf path tokenizes them, so the BOS
    handling and the template are the same whichever backend samples.
  - `rl.vllm_sleep`: vLLM's memory (weights to CPU, KV cache dropped) is freed
    between rollouts, for the update. vLLM requires every released tag to be woken
    before the engine is used again, and does not check it: the backend keeps which
    tags sleep and wakes them before any use, the weights before a push (the KV cache
    later, for a lower peak, as TRL does) and whatever still sleeps before `generate`.
    An update that takes no step (every group tied) pushes nothing: the next rollouts
    wake the weights themselves.
  - `rl.vllm_is_cap` > 0: vLLM returns the sampled tokens' log-probs (`SamplingParams(logprobs=0)`:
    per position a dict {token id: Logprob} holding the sampled token), taken after temperature
    (`logprobs_mode="processed_logprobs"`, as TRL passes it: vLLM's default reports the raw logits'),
    so they compare with the trainer's tempered ones; each Completion carries them, cut with its
    tokens, and the update weighs each token by the mismatch (algorithms.sampler_mismatch).
  - the completion is cut where the transformers path stops: after the fence that
    closes the ```yaml block (the second fence), or at the end of the turn. vLLM has no
    stop rule for "the second fence" (a stop string "```\n" ended an output whose opening
    line was just "```"), so it stops at the end of the turn and the cut is made here.

The care point is the output head. When some layers stay frozen, training gives
`lm_head` its own copy of the embedding matrix (modeling.untie_output_embeddings);
the folder vLLM starts from carries that head and `tie_word_embeddings: false`, and
`vllm_weights` refuses to push an untied head into a model that ties it.

Awaiting a GPU: tests here drive the backend with a fake `vllm` module that has the
pinned release's names and signatures and runs the model with transformers on the CPU
(tests/fake_vllm.py); scripts/gpu-check.sh runs the real one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import torch

from .rollout import FENCE, Completion, Sampler, _backtick_ids, _cut_after_fence, generate

PEFT_PREFIX = "base_model.model."


class Backend(Protocol):
    def generate(self, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float, top_p: float,
                 batch_size: int, on_rows=None) -> tuple[list[Completion], dict]: ...

    def sync_weights(self, model) -> None: ...


class HFBackend:
    """transformers' generation; the sampler copies trained weights itself before each use."""

    logprobs = False  # the sampler is the trained model: no mismatch to correct, no extra pass

    def __init__(self, sampler: Sampler, fast: bool = False):
        self.sampler = sampler  # shared with evaluation: one copy of the weights
        self.fast = fast  # model.fast_decode: drafts checked in the same pass (engine/speculate.py)

    def generate(self, tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, on_rows=None):
        return generate(self.sampler(), tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, on_rows=on_rows,
                        fast=self.fast)

    def sync_weights(self, model) -> None:
        refresh = getattr(self.sampler, "refresh", None)  # FSDP's whole copy: gathered here, by every rank
        if refresh:
            refresh(model)
        # a Sampler refreshes itself on every call


def is_untied(model) -> bool:
    """Whether `lm_head` has its own weight. The parameter objects are compared, as
    modeling.untie_output_embeddings does: under FSDP2 every parameter is a DTensor whose
    data_ptr() is 0, so comparing pointers took an untied head for a tied one."""
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    return out is not None and inp is not None and out.weight is not inp.weight


def vllm_weights(model, target_ties_embeddings: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """(vLLM name, tensor) for every trained parameter: what changes after an optimizer step."""
    if any("lora_" in n for n, _ in model.named_parameters()):
        raise NotImplementedError("the vLLM backend pushes full weights; with model.train=lora use rl.backend=hf")
    if is_untied(model) and target_ties_embeddings:
        raise ValueError("the trained model has its own lm_head, but the vLLM model ties it to the embeddings: "
                         "it would sample with a stale head; start vLLM from a config with tie_word_embeddings=false")
    from .parallel import whole

    for name, p in model.named_parameters():
        if p.requires_grad:
            yield vllm_name(name), whole(p.detach())  # under FSDP every rank gathers, every rank's vLLM loads


def vllm_name(name: str) -> str:
    """A parameter's name as vLLM's model knows it (peft's wrapper prefix dropped)."""
    return name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name


class VLLMBackend:
    """vLLM in this process (TRL's colocate mode), started from `folder` (see start_folder)."""

    def __init__(self, model, tokenizer, folder, memory: float = 0.3, sleep: bool = False, seed: int = 0,
                 max_model_len: int | None = None, logprobs: bool = False):
        try:
            import vllm
        except ImportError:
            raise RuntimeError(VLLM_MISSING) from None
        self.tokenizer, self.sleep = tokenizer, sleep
        self.logprobs = logprobs  # rl.vllm_is_cap > 0: completions carry vLLM's log-probs of their tokens
        self.sleeping: set[str] = set()  # memory tags vLLM released and has not mapped back
        launcher_env()
        empty_cache()  # vLLM sizes its KV cache from the free memory it sees: give back what torch cached
        # max_num_batched_tokens: TRL's 4096; vLLM's default (up to 32,768) misleads its memory profiler
        # into finding no room for the KV cache beside a training process
        self.llm = vllm.LLM(model=str(folder), dtype="bfloat16", seed=seed, gpu_memory_utilization=memory,
                            distributed_executor_backend="external_launcher", enable_prefix_caching=True,
                            enable_sleep_mode=sleep, max_model_len=max_model_len, logprobs_mode="processed_logprobs",
                            max_num_batched_tokens=max(4096, max_model_len or 0))
        self.sync_weights(model)

    def _wake(self, *tags: str) -> None:
        """Map back the tags that sleep, of those named. vLLM ignores a whole wake_up call
        that names a tag already awake, so only sleeping ones are named."""
        todo = [t for t in tags if t in self.sleeping]
        if todo:
            empty_cache()  # the update's cached blocks go back first: room for what vLLM maps again
            self.llm.wake_up(tags=todo)
            self.sleeping -= set(todo)

    def _target(self):
        return self.llm.llm_engine.model_executor.driver_worker.model_runner.model

    def sync_weights(self, model) -> None:
        self._wake("weights")  # load_weights must not write into memory vLLM released
        target = self._target()
        tied = bool(getattr(getattr(target, "config", None), "tie_word_embeddings", False))
        target.load_weights(vllm_weights(model, tied))
        self.llm.reset_prefix_cache()  # the shared prompt's cached keys/values came from the old weights

    def generate(self, tokenizer, prompts, max_new_tokens, temperature, top_p, batch_size, on_rows=None):
        import time

        from vllm import SamplingParams

        from .rollout import stop_ids

        start = time.perf_counter()
        self._wake("weights", "kv_cache")  # every tag, before any use: an update without a push woke none
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]  # as rollout.generate does
        params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                stop_token_ids=stop_ids(tokenizer), logprobs=0 if self.logprobs else None)
        outs = self.llm.generate([{"prompt_token_ids": p} for p in ids], sampling_params=params, use_tqdm=False)
        if self.sleep:
            self.llm.sleep(level=1)  # weights to CPU memory, KV cache dropped: room for the update
            self.sleeping = {"weights", "kv_cache"}
        comps = [fenced(tokenizer, list(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length") for o in outs]
        if self.logprobs:
            for c, o in zip(comps, outs):
                c.logprobs = sampled_logprobs(o.outputs[0])[: len(c.tokens)]  # cut where fenced cut the tokens
        if on_rows:
            on_rows(len(comps), len(comps))
        seconds = time.perf_counter() - start
        tokens = sum(len(c.tokens) for c in comps)
        return comps, {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9)}


def sampled_logprobs(output) -> list[float]:
    """The log-prob vLLM gave each sampled token: CompletionOutput.logprobs holds one {token id: Logprob}
    per position (the top `logprobs` and the sampled token; a FlatLogprobs reads the same)."""
    return [float(position[token].logprob) for position, token in zip(output.logprobs, output.token_ids)]


VLLM_MISSING = "rl.backend=vllm needs vLLM: pip install 'tracebench[vllm]' -c constraints/vllm.txt on a GPU machine"


def vllm_problem(cfg) -> str | None:
    """Why rl.backend=vllm cannot run here (no vllm package), said before the run starts: not
    when RL begins after a whole SFT phase. None when it can, or when RL does not use vLLM."""
    import importlib.util
    import sys

    if cfg.rl.backend != "vllm" or "rl" not in cfg.run.phases or "vllm" in sys.modules:
        return None
    try:
        return None if importlib.util.find_spec("vllm") else VLLM_MISSING
    except (ImportError, ValueError):
        return VLLM_MISSING


def fenced(tokenizer, tokens: list[int], length: bool) -> Completion:
    """A completion cut as the transformers path cuts it (rollout.generate): its tokens end with
    the one that closes the second fence, its text right after that fence. `length`: the output
    reached max_tokens; cut (scored as truncated) only when no fence closed it first."""
    ticks = _backtick_ids(tokenizer)
    for i, t in enumerate(tokens):
        if t in ticks:  # only a token with a backtick can complete a fence
            if tokenizer.decode(tokens[: i + 1], skip_special_tokens=True).count(FENCE) >= 2:
                tokens, length = tokens[: i + 1], False
                break
    return Completion(_cut_after_fence(tokenizer.decode(tokens, skip_special_tokens=True)), tokens, length)


def empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def launcher_env() -> None:
    """The torch.distributed variables the in-process executor joins by (torchrun sets them; a
    single process does not): rank 0 of 1 on this machine, on a free port, as TRL ensures."""
    import os
    import socket

    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])


def start_folder(model, tokenizer, root: Path | None = None) -> Path:
    """The model as it is now, in bf16, as a folder vLLM can start from: every weight (the
    untied head included), the config (with `tie_word_embeddings` as the model has it) and
    the tokenizer. A fresh private folder under the cache; removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    from .models import cache_dir

    if any("lora_" in n for n, _ in model.named_parameters()):
        raise NotImplementedError("the vLLM backend pushes full weights; with model.train=lora use rl.backend=hf")
    base = Path(root) if root else cache_dir() / "vllm"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="start-", dir=base))  # mode 0700, a name nobody could have linked
    atexit.register(shutil.rmtree, folder, True)
    from .parallel import whole

    state = {vllm_name(k): whole(v.detach()).to("cpu", torch.bfloat16) for k, v in model.state_dict().items()}
    if not is_untied(model):
        state.pop("lm_head.weight", None)  # tied: vLLM takes the head from the embeddings
    model.config.save_pretrained(folder)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)
    return folder


def make_backend(cfg, model, tokenizer, sampler: Sampler) -> Backend:
    """Called at the start of RL: vLLM starts from the weights as SFT left them."""
    if cfg.rl.backend == "vllm":
        import os

        rc = cfg.rl
        # the longest sequence a rollout makes: the longest prompt (the training length bounds it) and the output
        return VLLMBackend(model, tokenizer, start_folder(model, tokenizer), memory=rc.vllm_memory, sleep=rc.vllm_sleep,
                           seed=cfg.run.seed + int(os.environ.get("RANK", 0)),
                           max_model_len=cfg.data.max_len + rc.max_new_tokens, logprobs=rc.vllm_is_cap > 0)
    return HFBackend(sampler, fast=cfg.model.fast_decode)
