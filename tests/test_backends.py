"""The rollout backend interface, and vLLM in colocate mode, with a fake `vllm` that has the real API's shape (no GPU)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from engine import config
from engine.backends import HFBackend, is_untied, make_backend, start_folder, vllm_name, vllm_weights
from engine.data.prompts import prompt_text
from engine.events import read_all
from engine.modeling import make_optimizer, select_trainable, tiny_model
from engine.rollout import Sampler, completion_logprobs
from tests import fake_vllm


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    """Each test starts as a single process (no torchrun variables) and leaves none behind:
    the backend sets what vLLM's in-process executor needs."""
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)


def last_layers(tok, n=1):
    return select_trainable(tiny_model(tok), config.load(sets=["model.train=last_layers", f"model.unfreeze_layers={n}"]))


def vllm_cfg(*sets):
    return config.load(sets=["rl.backend=vllm", *sets])


def test_vllm_starts_in_process_from_a_folder_that_carries_the_untied_head(monkeypatch, tmp_path, default_tokenizer):
    fake_vllm.install(monkeypatch)
    model = last_layers(default_tokenizer)
    assert is_untied(model)  # some layers frozen: lm_head has its own copy
    # what the engine did before: the original checkpoint with the tie switched off has no head to load
    model.save_pretrained(tmp_path / "original")
    untie = json.loads((tmp_path / "original" / "config.json").read_text())
    untie["tie_word_embeddings"] = True
    (tmp_path / "original" / "config.json").write_text(json.dumps(untie))
    tied_checkpoint = tiny_model(default_tokenizer)
    tied_checkpoint.save_pretrained(tmp_path / "tied")
    with pytest.raises(ValueError, match="lm_head"):
        fake_vllm.LLM(str(tmp_path / "tied"), hf_overrides={"tie_word_embeddings": False})

    backend = make_backend(vllm_cfg("rl.vllm_memory=0.4"), model, default_tokenizer, None)
    llm = backend.llm
    assert llm.kwargs["distributed_executor_backend"] == "external_launcher"  # in this process, on this rank's GPU
    assert llm.kwargs["gpu_memory_utilization"] == 0.4 and llm.kwargs["dtype"] == "bfloat16"
    folder = Path(llm.kwargs["model"])
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        saved = {k: f.get_tensor(k) for k in f.keys()}
    assert not json.loads((folder / "config.json").read_text())["tie_word_embeddings"]
    assert saved["lm_head.weight"].dtype == torch.bfloat16
    assert torch.equal(saved["lm_head.weight"], model.lm_head.weight.detach().to(torch.bfloat16))
    assert llm.calls == ["load_weights", "reset_prefix_cache"]


def test_without_the_in_process_executor_the_model_is_out_of_reach(monkeypatch, default_tokenizer, tmp_path):
    """vLLM V1's default engine core runs in another process: the weight path TRL uses does not exist."""
    fake_vllm.install(monkeypatch)
    folder = start_folder(last_layers(default_tokenizer), default_tokenizer, tmp_path)
    with pytest.raises(AttributeError, match="model_executor"):
        fake_vllm.LLM(str(folder)).llm_engine.model_executor


def test_after_an_update_vllm_samples_from_the_trained_weights_with_a_fresh_prefix_cache(monkeypatch, default_tokenizer):
    fake_vllm.install(monkeypatch)
    model = last_layers(default_tokenizer)
    backend = make_backend(vllm_cfg(), model, default_tokenizer, None)
    prompt = default_tokenizer("expert: arithmetic", add_special_tokens=False)["input_ids"]
    completion = default_tokenizer("\ntrace: []", add_special_tokens=False)["input_ids"]

    def trained_logprobs():
        with torch.no_grad():
            return completion_logprobs(model, default_tokenizer, ["expert: arithmetic"], [completion])[0]

    before = backend.llm.logprobs(prompt, completion)
    assert torch.allclose(before, trained_logprobs(), atol=0.05)  # bf16 copy of the same weights
    opt = make_optimizer(model, "adamw", 5e-2)
    (-completion_logprobs(model, default_tokenizer, ["expert: arithmetic"], [completion])[0].sum()).backward()
    opt.step()
    assert not torch.allclose(backend.llm.logprobs(prompt, completion), trained_logprobs(), atol=0.05)  # stale until pushed
    backend.sync_weights(model)
    assert torch.allclose(backend.llm.logprobs(prompt, completion), trained_logprobs(), atol=0.05)
    comps, stats = backend.generate(default_tokenizer, ["hello", "two words"], 4, 0.0, 1.0, 2)
    assert len(comps) == 2 and stats["tokens"] == sum(len(c.tokens) for c in comps)
    calls = backend.llm.calls
    assert calls == ["load_weights", "reset_prefix_cache", "load_weights", "reset_prefix_cache", "generate"]


def test_prompts_go_in_as_the_token_ids_the_hf_path_uses(monkeypatch, default_tokenizer):
    fake_vllm.install(monkeypatch)
    seen = []
    real = fake_vllm.LLM.generate
    monkeypatch.setattr(fake_vllm.LLM, "generate", lambda self, prompts, /, **kw: seen.extend(prompts) or real(self, prompts, **kw))
    backend = make_backend(vllm_cfg(), last_layers(default_tokenizer), default_tokenizer, None)
    text = prompt_text(default_tokenizer, "What is 2 + 3?", "system")
    backend.generate(default_tokenizer, [text], 3, 0.0, 1.0, 1)
    assert seen == [{"prompt_token_ids": default_tokenizer(text, add_special_tokens=False)["input_ids"]}]


def test_sleep_mode_frees_vllm_for_the_update_and_wakes_it_for_the_push_and_the_rollouts(monkeypatch, default_tokenizer):
    fake_vllm.install(monkeypatch)
    model = last_layers(default_tokenizer)
    backend = make_backend(vllm_cfg("rl.vllm_sleep=true"), model, default_tokenizer, None)
    assert backend.llm.kwargs["enable_sleep_mode"] is True
    backend.generate(default_tokenizer, ["hello"], 2, 0.0, 1.0, 1)
    backend.sync_weights(model)
    backend.generate(default_tokenizer, ["hello"], 2, 0.0, 1.0, 1)
    assert backend.llm.calls == ["load_weights", "reset_prefix_cache", "generate", "reset_prefix_cache", "sleep(1)",
                                 "wake_up(weights)", "load_weights", "reset_prefix_cache", "wake_up(kv_cache)", "generate",
                                 "reset_prefix_cache", "sleep(1)"]


def test_after_an_update_that_pushed_nothing_the_next_rollouts_wake_the_weights_too(monkeypatch, default_tokenizer):
    """Every group tied: no step, no push. The old backend then woke only the KV cache and
    vLLM sampled from the weights' released memory; every tag is woken before any use now."""
    fake_vllm.install(monkeypatch)
    backend = make_backend(vllm_cfg("rl.vllm_sleep=true"), last_layers(default_tokenizer), default_tokenizer, None)
    backend.generate(default_tokenizer, ["hello"], 2, 0.0, 1.0, 1)
    assert backend.llm.sleeping == {"weights", "kv_cache"}
    comps, _ = backend.generate(default_tokenizer, ["hello"], 2, 0.0, 1.0, 1)  # no sync_weights between
    assert len(comps) == 1 and "wake_up(weights,kv_cache)" in backend.llm.calls


def test_the_fake_refuses_what_vllm_cannot_survive_or_does_not_accept(monkeypatch, default_tokenizer, tmp_path):
    fake_vllm.install(monkeypatch)
    monkeypatch.setenv("RANK", "0")
    folder = start_folder(last_layers(default_tokenizer), default_tokenizer, tmp_path)
    for key, value in (("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(key, value)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fake_vllm.LLM(str(folder), distributed_executor_backend="external_launcher", gpu_memory_fraction=0.3)
    with pytest.raises(TypeError):
        fake_vllm.SamplingParams(max_new_tokens=4)  # transformers' name, not vLLM's
    llm = fake_vllm.LLM(str(folder), distributed_executor_backend="external_launcher", enable_sleep_mode=True)
    prompt = [{"prompt_token_ids": [1, 2, 3]}]
    with pytest.raises(TypeError):
        llm.generate(prompt, fake_vllm.SamplingParams(max_tokens=2), batch_size=4)
    model = llm.llm_engine.model_executor.driver_worker.model_runner.model
    llm.sleep(level=1)
    with pytest.raises(RuntimeError, match="released"):
        llm.generate(prompt, fake_vllm.SamplingParams(max_tokens=2))
    with pytest.raises(RuntimeError, match="released"):
        model.load_weights([])
    llm.wake_up(tags=["kv_cache"])
    with pytest.raises(RuntimeError, match="weights"):  # the KV cache alone is not enough
        llm.generate(prompt, fake_vllm.SamplingParams(max_tokens=2))
    llm.wake_up(tags=["weights", "kv_cache"])  # names a tag already awake: vLLM wakes nothing
    assert llm.sleeping == {"weights"}
    llm.wake_up(tags=["weights"])
    assert len(llm.generate(prompt, fake_vllm.SamplingParams(max_tokens=2))) == 1


def test_vllm_outputs_are_cut_where_the_transformers_path_cuts_them(default_tokenizer):
    """One stop rule: after the fence that closes the block. An opening line of just ``` no
    longer ends the output (the old stop string "```\n" did)."""
    from engine.backends import fenced

    text = "```\nexpert: arithmetic\n```\nand then more words"
    tokens = default_tokenizer(text, add_special_tokens=False)["input_ids"]
    done = fenced(default_tokenizer, tokens, length=True)
    assert done.text == "```\nexpert: arithmetic\n```" and not done.cut
    assert default_tokenizer.decode(done.tokens).startswith(done.text) and len(done.tokens) < len(tokens)
    open_only = fenced(default_tokenizer, tokens[:5], length=True)
    assert open_only.cut and open_only.tokens == tokens[:5]


def test_an_rl_run_with_the_vllm_backend_pushes_after_every_step(monkeypatch, tmp_path):
    """The whole run (engine/run.py) with rl.backend=vllm: vLLM starts at RL's beginning, from
    the weights SFT left, and is pushed to after every update that took a step."""
    fake_vllm.install(monkeypatch)
    made = []
    real = fake_vllm.LLM.__init__
    monkeypatch.setattr(fake_vllm.LLM, "__init__", lambda self, *a, **k: made.append(self) or real(self, *a, **k))
    from engine.run import run

    cfg = config.load(sets=["model.name=tiny", "rl.backend=vllm", "run.phases=sft,rl", "rl.iterations=2",
                            "rl.max_new_tokens=8", "rl.temperature=1.0"], base=config.smoke_overrides())
    assert run(cfg, tmp_path / "s") == "completed"
    events = read_all(tmp_path / "s" / "events.jsonl")
    rl = [e for e in events if e["kind"] == "metrics" and e["phase"] == "rl"]
    assert len(made) == 1 and len(rl) == 2
    pushes = made[0].calls.count("load_weights")
    assert pushes == 1 + sum(not e["skipped"] for e in rl)  # the start, then one per step taken
    assert all(a != "load_weights" or b == "reset_prefix_cache" for a, b in zip(made[0].calls, made[0].calls[1:]))


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


def test_under_fsdp2_the_folder_vllm_starts_from_keeps_the_untied_head(tmp_path):
    """Every FSDP2 parameter is a DTensor whose data_ptr() is 0: comparing pointers took the
    untied head for a tied one, dropped lm_head.weight while the config said untied, and vLLM
    refused to start. One gloo rank, the model sharded as run.parallel=fsdp shards it."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    script = Path(__file__).parent / "scripts" / "fsdp_untied.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "dtensor: DTensor data_ptrs equal: True" in out.stdout  # what fooled the old check
    assert "untied: True" in out.stdout and "lm_head saved: True" in out.stdout and "config ties: False" in out.stdout


def test_the_vllm_extra_is_one_release_pinned_with_the_torch_setup_installs():
    """pyproject's extra and constraints/vllm.txt name the same release, and the constraints hold
    torch at scripts/setup.sh's version: installing the extra cannot swap the torch the figures came from."""
    import re

    root = Path(__file__).parent.parent
    extra = re.search(r'^vllm = \["vllm==([\d.]+)"\]', (root / "pyproject.toml").read_text(), re.M)
    pins = dict(line.split("==") for line in (root / "constraints" / "vllm.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    setup_torch = re.search(r"TORCH_VERSION=\$\{TORCH_VERSION:-([\d.]+)\}", (root / "scripts" / "setup.sh").read_text())
    assert extra and pins["vllm"] == extra.group(1)
    assert setup_torch and pins["torch"] == setup_torch.group(1)


def test_vllm_with_lora_or_8bit_or_without_the_package_is_refused_before_sft(tmp_path):
    """Refused where the configuration is read, not when RL starts after a whole SFT phase."""
    import subprocess
    import sys

    for sets, word in ((["model.train=lora"], "model.train=lora"), (["model.load_8bit=true"], "model.load_8bit")):
        with pytest.raises(config.ConfigError, match=f"rl.backend: .*{word}"):
            vllm_cfg(*sets)
    assert vllm_cfg("model.train=lora", "run.phases=sft").model.train == "lora"  # no RL: no vLLM
    folder = tmp_path / "s"
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--model", "tiny", "--plain", "--set", "rl.backend=vllm",
                          "--session", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "needs vLLM" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not folder.exists()  # nothing ran, no session was made
