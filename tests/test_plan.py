"""`engine plan`: per-GPU memory from the model's shape and the config, offline; a GPU run
that will not fit is refused before it loads (proven here by calling it with a CUDA device)."""

import types

import pytest
import torch

from engine import config
from engine.cli import main
from engine.models import KNOWN
from engine.plan import GIB, Shape, cpu_minutes, estimate, known_shape, sft_examples, shape_of_config
from engine.tasks.trace import training_pairs

GPU_PRESET = config.parse_sets([f"{k}={v}" for k, v in config.GPU.items()])


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_every_listed_model_has_a_plan_offline(name, capsys):
    assert main(["plan", "--model", name, "--gpus", "1", "--gpu-memory", "80"]) in (0, 1)
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: ") and all(m in out for m in ("sft step", "rl update", "decode"))
    assert "fits" in out  # "fits: ..." or "does not fit: ..."


def test_the_registry_shapes_give_the_published_parameter_counts():
    counts = {name: Shape(*m.shape).params() for name, m in KNOWN.items()}
    assert round(counts["smollm2-135m-instruct"] / 1e6) == 135 and round(counts["smollm2-1.7b-instruct"] / 1e8) == 17
    assert round(counts["tinyllama-1.1b-chat"] / 1e8) == 11 and round(counts["qwen2.5-0.5b-instruct"] / 1e6) == 494
    # a local folder's config.json gives the same shape as the registry
    cfg = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
           "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True}
    assert shape_of_config(cfg) == known_shape("smollm2-135m-instruct")


def test_a_full_17b_rl_update_needs_activation_checkpointing_on_80_gb(capsys):
    sets = ["--set", "model.train=full", "--set", "model.activation_checkpointing=false"]
    assert main(["plan", "--model", "smollm2-1.7b-instruct", "--gpu-memory", "80", *sets]) == 0  # train sizes it
    out = capsys.readouterr().out
    assert "does not fit: the rl update needs" in out and "model.activation_checkpointing=true" in out
    assert "engine train on this GPU sets rl.micro_batch=32: then it fits" in out  # the user's checkpointing kept
    assert main(["plan", "--model", "smollm2-1.7b-instruct", "--gpu-memory", "80", "--gpus", "8", "--set", "model.train=full"]) == 0
    out = capsys.readouterr().out
    assert "fits: the peak" in out and "8 GPUs" in out and "more GPUs add speed, not room" in out


def test_plans_exit_status_says_whether_engine_train_will_run_on_that_gpu(capsys):
    """A config too large as written but one `engine train` sizes to fit (smaller micro-batches)
    exits 0 and names the changes; one it cannot size (the user chose the sizes) exits 1."""
    sets = ["--model", "smollm2-360m-instruct", "--gpu-memory", "8", "--set", "rl.questions=4"]
    assert main(["plan", *sets]) == 0
    out = capsys.readouterr().out
    assert "does not fit: the decode needs" in out and "engine train on this GPU sets eval.batch_size=" in out
    assert out.rstrip().endswith("then it fits")
    assert main(["plan", *sets, "--set", "eval.batch_size=256"]) == 1  # the user's size is kept: it never fits
    assert "engine train on this GPU sets" not in capsys.readouterr().out


def test_checkpointing_and_chunked_logits_shrink_what_the_gpu_preset_needs():
    cfg = config.load(sets=["model.name=smollm2-1.7b-instruct", "model.train=full", "rl.micro_batch=64"])
    shape = known_shape(cfg.model.name)
    off = estimate(cfg, shape, "m", memory=80 * GIB)
    cfg.model.activation_checkpointing = True
    on = estimate(cfg, shape, "m", memory=80 * GIB)
    part = lambda plan, name: next(p.bytes for p in {m.name: m for m in plan.moments}["rl update"].parts if p.name.startswith(name))
    assert part(on, "activations") < part(off, "activations") / 5
    assert part(on, "log-prob logits") < 1 * GIB  # 64 x 320 x 49k fp32 logits whole would be 3 x 3.75 GiB


def test_decoding_is_counted_with_what_training_still_holds_then():
    """Evaluations and hf rollouts run while Adam's state of the phase is allocated (and vLLM stays
    resident from RL's start): 1.7B full training on one GPU peaks near 47 GiB there, not at the
    RL update's 37.9 GiB the plan said, so a 40 GB card was told the run fits."""
    cfg = config.load(sets=["model.name=smollm2-1.7b-instruct", "model.train=full"], base=GPU_PRESET)
    shape = known_shape(cfg.model.name)
    moments = lambda plan: {m.name: m for m in plan.moments}
    plan = estimate(cfg, shape, "m", memory=80 * GIB)
    decode = moments(plan)["decode"]
    state = next(p.bytes for p in moments(plan)["rl update"].parts if p.name == "optimizer state")
    assert any(p.name == "optimizer state" and p.bytes == state for p in decode.parts)
    assert plan.peak is decode and 46 * GIB < decode.total < 48 * GIB and not estimate(cfg, shape, "m", memory=40 * GIB).fits
    cfg.rl.backend = "vllm"  # resident from RL's start: its share is there while evaluations decode
    assert 70 * GIB < moments(estimate(cfg, shape, "m", memory=80 * GIB))["decode"].total < 72 * GIB
    cfg.rl.vllm_sleep = True  # freed after each rollout
    assert moments(estimate(cfg, shape, "m", memory=80 * GIB))["decode"].total == pytest.approx(decode.total)


def test_a_gpu_run_that_will_not_fit_is_refused_before_anything_loads(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(name="NVIDIA L4", total_memory=24 * GIB))
    folder = tmp_path / "run"
    code = main(["train", "--model", "smollm2-1.7b-instruct", "--session", str(folder), "--set", "model.train=full"])
    err = capsys.readouterr().err
    assert code == 1 and "will not fit the GPU (NVIDIA L4)" in err and "does not fit" in err and "--set" in err
    assert not folder.exists()


def test_a_gpu_run_gets_micro_batches_sized_to_the_model_unless_the_user_chose_them(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the 1.7B model is not here: the run stops at that, after sizing
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(name="NVIDIA A100", total_memory=80 * GIB))
    folder = tmp_path / "run"
    full = ["--set", "model.train=full", "--set", "model.activation_checkpointing=false"]
    main(["train", "--model", "smollm2-1.7b-instruct", "--session", str(folder), *full])
    err = capsys.readouterr().err
    assert "sized for NVIDIA A100 (80 GiB): rl.micro_batch=32" in err and "will not fit" not in err
    main(["train", "--model", "smollm2-1.7b-instruct", "--session", str(folder), *full, "--set", "rl.micro_batch=64"])
    err = capsys.readouterr().err
    assert "sized for" not in err and "will not fit the GPU (NVIDIA A100)" in err  # the user's own size is kept
    assert not folder.exists()


def test_a_gpu_run_with_room_spends_it_on_speed_unless_the_user_chose(monkeypatch, tmp_path, capsys):
    """Micro-batches as large as the plan allows and activation checkpointing only where memory
    needs it: on a large GPU the preset's checkpointing goes and the RL micro-batch grows; the
    user's own choice of either, with --set or in a config file, is kept; a resume grows nothing."""
    from engine.cli.train import size_for_gpu

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the 360M model is not here: the run stops at that, after sizing
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(name="NVIDIA H200", total_memory=141 * GIB))
    folder = tmp_path / "run"
    main(["train", "--model", "smollm2-360m-instruct", "--session", str(folder)])
    err = capsys.readouterr().err
    assert "sized for NVIDIA H200 (141 GiB): model.activation_checkpointing=false, rl.micro_batch=128" in err, err
    main(["train", "--model", "smollm2-360m-instruct", "--session", str(folder), "--set", "model.activation_checkpointing=true",
          "--set", "rl.micro_batch=64"])
    mine = tmp_path / "mine.yaml"
    mine.write_text("model:\n  activation_checkpointing: true\nrl:\n  micro_batch: 64\n")  # the preset's values, set again
    main(["train", "--model", "smollm2-360m-instruct", "--session", str(folder), "--config", str(mine)])
    err = capsys.readouterr().err
    assert "sized for" not in err and "will not fit" not in err and "model.activation_checkpointing" not in err
    assert not folder.exists()
    cfg = config.load(sets=["model.name=smollm2-360m-instruct"], base=GPU_PRESET)
    assert size_for_gpu(cfg, set(), resize=False)[1:] == (None, None)  # a resumed run keeps what its first start chose


@pytest.mark.parametrize("model,sets,gib", [("smollm2-135m-instruct", [], 24), ("smollm2-360m-instruct", [], 24),
                                            ("smollm2-360m-instruct", [], 80), ("smollm2-1.7b-instruct", ["model.train=full"], 80),
                                            ("smollm2-360m-instruct", ["rl.kl_coef=0.05", "sft.grad_accum=4"], 80)])
def test_growing_stops_where_the_room_ends_and_never_changes_what_is_trained_on(model, sets, gib):
    from engine.plan import grow
    from engine.plan.fit import GROW_HEADROOM
    from engine.plan.memory import WORST_ACT

    cfg = config.load(sets=[f"model.name={model}", *sets], base=GPU_PRESET)
    shape, memory = known_shape(model), gib * GIB

    def peak(c) -> float:  # with every activation at its most: the figure growing is held to
        return estimate(c, shape, model, 1, memory, act=WORST_ACT).peak.total

    changes = grow(cfg, shape, model, 1, memory)
    assert changes and {c.partition("=")[0] for c in changes} <= {"model.activation_checkpointing", "rl.micro_batch"}
    grown = config.load(sets=[f"model.name={model}", *sets, *changes], base=GPU_PRESET)
    assert estimate(grown, shape, model, 1, memory).peak.total < peak(grown) <= GROW_HEADROOM * memory
    assert grown.sft == cfg.sft and grown.data == cfg.data  # which examples make a step depends on the SFT batch
    rows = cfg.rl.questions * cfg.rl.group_size
    assert cfg.rl.micro_batch <= grown.rl.micro_batch <= rows
    if grown.rl.micro_batch < rows:  # one more doubling would not have had room
        bigger = config.load(sets=[f"model.name={model}", *sets, *changes, f"rl.micro_batch={min(rows, 2 * grown.rl.micro_batch)}"],
                             base=GPU_PRESET)
        assert peak(bigger) > GROW_HEADROOM * memory
    if grown.model.activation_checkpointing:  # kept only where the run has no room without it
        off = config.load(sets=[f"model.name={model}", *sets, *changes, "model.activation_checkpointing=false"], base=GPU_PRESET)
        assert peak(off) > GROW_HEADROOM * memory


def test_a_run_without_room_turns_checkpointing_back_on_before_it_halves_a_batch():
    """A session grown on a large GPU (checkpointing off) resumed on a smaller one: checkpointing,
    which changes no batch, comes back first; the user's own `false` is kept, and batches halve."""
    from engine.plan import fit

    cfg = config.load(sets=["model.name=smollm2-1.7b-instruct", "model.train=full", "model.activation_checkpointing=false"],
                      base=GPU_PRESET)
    changes, plan = fit(cfg, known_shape(cfg.model.name), "m", 1, 80 * GIB)
    assert changes == ["model.activation_checkpointing=true"] and plan.fits
    changes, plan = fit(cfg, known_shape(cfg.model.name), "m", 1, 80 * GIB, {"model.activation_checkpointing"})
    assert changes == ["rl.micro_batch=32"] and plan.fits
    changes, plan = fit(cfg, known_shape(cfg.model.name), "m", 1, 80 * GIB, {"model.activation_checkpointing", "rl.micro_batch"})
    assert changes == [] and not plan.fits


def test_the_kl_reference_pass_is_counted_in_the_rl_update():
    cfg = config.load(sets=["model.name=smollm2-360m-instruct", "rl.micro_batch=256"], base=GPU_PRESET)
    kl = config.load(sets=["model.name=smollm2-360m-instruct", "rl.micro_batch=256", "rl.kl_coef=0.05"], base=GPU_PRESET)
    shape = known_shape(cfg.model.name)

    def update(c):
        return next(m for m in estimate(c, shape, "m", 1).moments if m.name == "rl update")

    from engine.plan import PROMPT_TOKENS

    part = next(p for p in update(kl).parts if p.name == "KL reference pass")
    # chunked logits at this size: every layer's hidden states of the micro-batch, 2.5 bytes a value on a GPU
    assert part.bytes == (shape.layers + 1) * 256 * (PROMPT_TOKENS + cfg.rl.max_new_tokens) * shape.hidden * 2.5
    assert update(kl).total - update(cfg).total >= part.bytes + 360e6  # and the reference model itself


def test_the_time_estimate_counts_the_examples_training_will_make(tmp_path):
    """The new-run form's "about N minutes" follows what SFT will train on: number variants
    (from their measured yield) and a self-traces file count, as the real training mix does."""
    sets = ["data.train_size=40", "data.gsm8k_traces=300"]
    plain = config.load(None, sets)
    assert sft_examples(plain) == len(training_pairs(plain)) == 340
    varied = config.load(None, [*sets, "data.gsm8k_variants=2"])
    made = len(training_pairs(varied)) - 340
    assert made > 200 and abs(sft_examples(varied) - 340 - made) < 0.15 * made, (sft_examples(varied), made)
    own = tmp_path / "own.jsonl"
    own.write_text("".join('{"question": "q%d", "answer": 1}\n' % i for i in range(25)))
    assert sft_examples(config.load(None, [*sets, f"data.self_traces={own}"])) == 365
    shape = known_shape("smollm2-135m-instruct")
    assert cpu_minutes(varied, shape) > cpu_minutes(plain, shape)


def test_when_hf_rollouts_set_the_decoding_batch_the_advice_is_fewer_questions():
    """A smaller eval.batch_size cannot shrink a decoding batch that an RL iteration's samples set:
    the run is not 'sized' to eval.batch_size=1 for nothing, and the advice names rl.questions."""
    from engine.plan import fit, render

    cfg = config.load(sets=["model.name=smollm2-1.7b-instruct", "model.train=full"], base=GPU_PRESET)
    changes, plan = fit(cfg, known_shape(cfg.model.name), "m", 1, 36 * GIB)
    assert not plan.fits and plan.peak.name == "decode" and not any(c.startswith("eval.batch_size") for c in changes)
    assert any("--set rl.questions=16" in line for line in render(plan))


def test_the_plans_evaluation_time_counts_the_sets_the_run_evaluates(tmp_path):
    """The development split, the unseen wordings and a problem file take time too: the plan counts
    the sets with the function run_started's `eval_sets` comes from, not eval.synthetic + eval.gsm8k."""
    from engine.plan import CPU_EVAL_S_PER_PROBLEM, stage_seconds
    from engine.tasks import eval_set_sizes, eval_sets

    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join('{"question": "q%d", "answer": %d}\n' % (i, i) for i in range(7)))
    cfg = config.load(None, ["eval.synthetic=20", "eval.gsm8k=30", "eval.dev=40", "eval.synthetic_unseen=10",
                             f"eval.problems=[{mine}]"])
    sizes = eval_set_sizes(cfg)
    assert sizes == {name: len(items) for name, items in eval_sets(cfg).items()}
    assert sizes == {"gsm8k-dev": 40, "synthetic": 20, "synthetic-unseen": 10, "gsm8k": 30, "mine": 7}
    shape = known_shape("smollm2-135m-instruct")
    scale = shape.params() / 134.5e6
    assert stage_seconds(cfg, shape)["eval"] == pytest.approx(107 * CPU_EVAL_S_PER_PROBLEM * scale)
    # a run's own sets (its run_started event) when the caller has them: no file of its config is opened
    assert stage_seconds(cfg, shape, eval_sets={"gsm8k": 5})["eval"] == pytest.approx(5 * CPU_EVAL_S_PER_PROBLEM * scale)
    assert eval_set_sizes(config.load(None, ["run.phases=[sft]"])) == {}


def test_the_gold_trace_count_the_plan_assumes_is_what_the_shipped_data_gives():
    """Asking for more GSM8K gold traces than exist trains on all there are: the plan's cap is the
    count a run really gets (protocol's exclusions applied), counted here from the shipped data."""
    from engine.data.gsm8k import load_rows
    from engine.data.gsm8k_traces import SHIPPED_GOLD, SHIPPED_TRAINABLE_GOLD, convert_all
    from engine.tasks import gsm8k_gold

    assert sum(c.kept for c in convert_all(load_rows(None, "train"))) == SHIPPED_GOLD
    everything = config.load(None, ["data.gsm8k_traces=100000", "data.train_size=3"])
    assert len(gsm8k_gold(everything)) == SHIPPED_TRAINABLE_GOLD
    assert sft_examples(everything) == 3 + SHIPPED_TRAINABLE_GOLD


@pytest.mark.parametrize("targets", ["[q_proj,k_proj,v_proj,o_proj]", "[q_proj,gate_proj,up_proj,down_proj]"])
def test_the_plans_lora_count_is_what_peft_trains(default_tokenizer, targets):
    """The LoRA count multiplies out Shape.linears (the one table of a layer's linear layers)."""
    from engine.modeling import param_counts, select_trainable, tiny_model
    from engine.plan import trained_params

    cfg = config.load(None, ["model.train=lora", "model.lora_rank=4", f"model.lora_targets={targets}"])
    trained = param_counts(select_trainable(tiny_model(default_tokenizer), cfg))[1]
    assert trained_params(known_shape("tiny"), cfg) == trained > 0
