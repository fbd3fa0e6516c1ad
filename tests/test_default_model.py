"""The real default model: a few training steps, and the 8-bit + LoRA path through bitsandbytes."""

import subprocess
import sys

import pytest

from engine.events import read_all

pytestmark = pytest.mark.slow


def test_default_model_trains_a_few_steps_end_to_end(tmp_path):
    folder = tmp_path / "default"
    sets = ["data.train_size=8", "data.gsm8k_traces=0", "sft.batch_size=4", "sft.epochs=1", "rl.iterations=1", "rl.questions=2", "rl.group_size=2",
            "rl.max_new_tokens=24", "eval.synthetic=2", "eval.gsm8k=1", "eval.max_new_tokens=24", "eval.at=rl"]
    cmd = [sys.executable, "-m", "engine", "train", "--session", str(folder), "--plain"] + [a for s in sets for a in ("--set", s)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    events = read_all(folder / "events.jsonl")
    started = events[0]
    assert started["model"] == "smollm2-135m-instruct" and started["params_total"] > 130_000_000
    assert started["params_trainable"] < started["params_total"]  # only the last layers + lm_head
    sft = [e for e in events if e["kind"] == "metrics" and e["phase"] == "sft"]
    assert len(sft) == 2 and all(0 < e["loss"] < 10 for e in sft)
    assert events[-1]["status"] == "completed"


def test_8bit_loading_with_lora_and_an_8bit_optimizer_takes_a_step(caplog):
    import torch

    from engine import config
    from engine.data.prompts import trace_answer, training_ids
    from engine.data.synthetic import generate
    from engine.modeling import load_model, load_tokenizer, make_optimizer, param_counts, pick_device
    from engine.train.sft import collate

    cfg = config.load(sets=["model.load_8bit=true", "model.train=lora", "sft.optimizer=adamw8bit"])
    tok = load_tokenizer(cfg.model.name)
    model = load_model(cfg, tok, pick_device("cpu"))
    linear = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    assert type(linear).__name__ == "Linear8bitLt"
    total, trainable = param_counts(model)
    assert 0 < trainable < total / 50
    opt = make_optimizer(model, cfg.sft.optimizer, 1e-3)
    assert type(opt).__name__ == "AdamW8bit"
    ex = generate(2, 0)
    batch = collate([training_ids(tok, e.question, trace_answer(e.trace)) for e in ex], tok.pad_token_id, "cpu")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    loss = model(**batch).loss
    loss.backward()
    opt.step()
    changed = sum(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if p.requires_grad)
    assert torch.isfinite(loss) and changed > 0
    for _ in range(2):  # bitsandbytes says its float16 cast on every 8-bit matmul (~630 lines); the user hears it once
        model(**batch).loss.backward()
    said = [r.getMessage() for r in caplog.records if "inputs will be cast" in r.getMessage()]
    assert len(said) == 1, len(said)


def test_last_layers_training_leaves_the_frozen_part_alone_and_learns_only_answers():
    """The tied lm_head is untied, so the embeddings stay as they were and no
    gradient runs through the frozen layers; the answer-only loss is the loss
    transformers computes over the whole sequence with prompt-masked labels."""
    import torch

    from engine import config
    from engine.data.prompts import trace_answer, training_ids
    from engine.data.synthetic import generate
    from engine.modeling import decoder_layers, load_model, load_tokenizer, pick_device
    from engine.train.sft import answer_loss, collate

    cfg = config.load()
    tok = load_tokenizer(cfg.model.name)
    model = load_model(cfg, tok, pick_device("cpu"))
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert head is not embed and torch.equal(head, embed)
    assert not embed.requires_grad and head.requires_grad
    batch = collate([training_ids(tok, e.question, trace_answer(e.trace)) for e in generate(3, 1)], tok.pad_token_id, "cpu")

    reached = []
    first_frozen = decoder_layers(model)[0]
    first_frozen.register_full_backward_hook(lambda *a: reached.append(True))
    loss = answer_loss(model, batch)
    full = model(**batch).loss
    assert torch.allclose(loss, full, atol=1e-5)
    loss.backward()
    assert reached == [] and embed.grad is None and head.grad is not None
