"""Device and precision choices, proven on a CPU by calling the choosing functions
with a CUDA device (no GPU needed), and the process group they imply."""

import torch

from engine import config
from engine.modeling import keep_master_weights, make_optimizer, pick_device, pick_dtype, select_trainable, tiny_model, use_autocast
from engine.rollout import Sampler
from engine.run import process_group_backend


def test_on_cuda_frozen_weights_are_bf16_trained_ones_fp32_masters_and_autocast_is_on(monkeypatch, default_tokenizer):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda = torch.device("cuda", 0)
    dtype = pick_dtype("auto", cuda)
    assert dtype == torch.bfloat16 and use_autocast(cuda) and not use_autocast(cuda, "off")
    cfg = config.load(sets=["model.train=last_layers", "model.unfreeze_layers=1"])
    model = select_trainable(tiny_model(default_tokenizer).to(dtype), cfg)  # what load_model does, minus the GPU
    keep_master_weights(model)
    trained = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.dtype for n, p in model.named_parameters() if not p.requires_grad}
    assert trained and set(trained.values()) == {torch.float32}
    assert frozen and set(frozen.values()) == {torch.bfloat16}


def test_fp32_masters_keep_updates_that_bf16_weights_round_away(default_tokenizer):
    """AdamW at the RL rate moves fp32 masters; the same update on bf16 weights mostly vanishes."""
    moved = {}
    for name, master in (("bf16", False), ("fp32 master", True)):
        torch.manual_seed(0)
        model = select_trainable(tiny_model(default_tokenizer).to(torch.bfloat16), config.load(sets=["model.train=full"]))
        if master:
            keep_master_weights(model)
        opt = make_optimizer(model, "adamw", 1e-5)
        before = [p.detach().clone() for p in model.parameters()]
        ids = torch.randint(0, 100, (2, 12))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        changed = sum(int((a.float() != b.float()).sum()) for a, b in zip(before, model.parameters()))
        moved[name] = changed / sum(p.numel() for p in model.parameters())
    assert moved["fp32 master"] > 0.9 and moved["bf16"] < 0.5 * moved["fp32 master"]


def test_cpu_bf16_only_where_amx_makes_it_faster(monkeypatch):
    import engine.modeling as m

    cpu = torch.device("cpu")
    monkeypatch.setattr(m, "cpu_has_amx", lambda: False)
    assert not m.fast_bf16(cpu) and not use_autocast(cpu) and use_autocast(cpu, "on")
    monkeypatch.setattr(m, "cpu_has_amx", lambda: True)
    assert m.fast_bf16(cpu) and use_autocast(cpu)


def test_devices_and_process_group_for_torchrun(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device("cuda") == torch.device("cuda", 3)  # `model.device=cuda` is this rank's own GPU
    assert pick_device("cpu") == torch.device("cpu")
    assert process_group_backend(True) == "cpu:gloo,cuda:nccl" and process_group_backend(False) == "gloo"
    from engine.run import process_group_options

    # on GPUs the process group is bound to this rank's GPU from the start (NCCL guesses it otherwise)
    assert process_group_options(True) == {"backend": "cpu:gloo,cuda:nccl", "device_id": torch.device("cuda", 3)}
    assert process_group_options(False) == {"backend": "gloo"}


def test_sampling_copy_is_one_dtype_and_follows_the_masters(default_tokenizer):
    model = select_trainable(tiny_model(default_tokenizer).to(torch.bfloat16), config.load(sets=["model.train=last_layers", "model.unfreeze_layers=1"]))
    keep_master_weights(model)
    sampler = Sampler(model, "auto")  # on a CPU: fp32 for decoding
    low = sampler()
    assert low is not model and {p.dtype for p in low.parameters()} == {torch.float32}
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).add_(1.0)
    low = sampler()
    name, p = next((n, p) for n, p in model.named_parameters() if p.requires_grad)
    assert torch.equal(dict(low.named_parameters())[name], p.float())
    fp32 = tiny_model(default_tokenizer)
    assert Sampler(fp32, "auto")() is fp32  # nothing to copy on a CPU


def test_the_heartbeat_asks_about_its_own_ranks_gpu_from_its_own_thread(monkeypatch):
    """CUDA's current device is per thread: in the heartbeat's thread it is GPU 0, so a question
    without a device would open a context on GPU 0 from every rank and report GPU 0's memory."""
    import threading

    from engine import system
    from engine.run import own_gpu

    asked = []
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: asked.append(("mem", device)) or (1 << 30, 80 << 30))
    monkeypatch.setattr(torch.cuda, "utilization", lambda device=None: asked.append(("use", device)) or 40)
    seen = {}
    thread = threading.Thread(target=lambda: seen.update(system.snapshot(own_gpu())))
    thread.start()
    thread.join()
    assert asked == [("mem", 2), ("use", 2)] and seen["gpu_mem_total"] == 80.0 and seen["gpu"] == 40.0


def test_ddp_keeps_gradients_in_its_buckets(tmp_path, default_tokenizer):
    import torch.distributed as dist

    from engine.parallel import wrap

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = tiny_model(default_tokenizer)
        assert wrap(model, 1) is model
        ddp = wrap(model, 2)  # the wrapper as two ranks would build it, on this one-rank group
        assert ddp.gradient_as_bucket_view and ddp.module is model
    finally:
        dist.destroy_process_group()


def _frozen_layer_backward(cfg, tok):
    """(embeddings' output requires grad, backward passes through the frozen first layer, trained params with grads)
    for one loss backward of the model load_model makes from `cfg`."""
    from engine.modeling import decoder_layers, load_model

    model = load_model(cfg, tok, torch.device("cpu"))
    model.train()
    seen = {"embeddings": None, "backward": 0}
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner.get_input_embeddings().register_forward_hook(lambda m, i, out: seen.update(embeddings=out.requires_grad))
    decoder_layers(inner)[0].register_full_backward_hook(lambda m, gi, go: seen.update(backward=seen["backward"] + 1))
    ids = torch.tensor([tok("expert: arithmetic\ntrace: []", add_special_tokens=False)["input_ids"]])
    model(input_ids=ids, labels=ids).loss.backward()
    return seen["embeddings"], seen["backward"], sum(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_with_checkpointing_backward_stops_at_the_first_trained_layer(default_tokenizer):
    """transformers 5 makes the embeddings' output require grad whenever checkpointing is enabled:
    backward then ran through every frozen layer. Only LoRA keeps that (peft expects it)."""
    sets = ["model.name=tiny", "model.activation_checkpointing=true"]
    embeddings, frozen_backward, trained = _frozen_layer_backward(
        config.load(sets=sets + ["model.train=last_layers", "model.unfreeze_layers=1"]), default_tokenizer)
    assert embeddings is False and frozen_backward == 0 and trained > 2
    embeddings, frozen_backward, trained = _frozen_layer_backward(
        config.load(sets=sets + ["model.train=lora", "model.lora_targets=[q_proj]"]), default_tokenizer)
    assert embeddings is True and frozen_backward >= 1 and trained > 0


def test_on_cuda_adamw_is_fused_and_the_cpu_keeps_the_default_step(default_tokenizer):
    """One kernel for the whole AdamW step on a GPU (a small model's step is bound by kernel
    launches); on the CPU the default, so CPU runs reproduce as measured."""
    from types import SimpleNamespace

    from engine.modeling import adamw_options

    on_gpu = [SimpleNamespace(device=torch.device("cuda", 0), is_floating_point=lambda: True)] * 2
    assert adamw_options(on_gpu) == {"fused": True}
    model = tiny_model(default_tokenizer)
    assert adamw_options(list(model.parameters())) == {}
    assert make_optimizer(model, "adamw", 1e-3).defaults.get("fused") in (None, False)
    # the real torch takes the option the GPU gets (it runs fused on the CPU too): no fake argument
    opt = torch.optim.AdamW(list(model.parameters()), lr=1e-3, fused=True)
    ids = torch.randint(0, 100, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()


def test_engine_eval_and_its_siblings_decode_with_the_runs_generate_dtype():
    """engine eval, diff, report and self-traces load through session_model: they must score the
    weights as the run's own evaluations decode them (a bf16 copy where model.generate_dtype asks),
    not the fp32 weights whatever the key says."""
    from engine.cli.common import session_model

    _, _, plain, _ = session_model("tiny", "best")
    _, _, low, _ = session_model("tiny", "best", ["model.generate_dtype=bfloat16"])
    assert {p.dtype for p in plain.parameters()} == {torch.float32}  # auto on a CPU: the fp32 weights
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16} and not low.training
