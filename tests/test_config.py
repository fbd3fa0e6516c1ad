import re
import subprocess
import sys

import pytest

from engine import config


def test_overrides_are_typed_and_checked():
    cfg = config.load(sets=["sft.lr=3e-4", "model.train=lora", "rl.algorithm=reinforce", "data.mix={arithmetic: 2}", "run.phases=sft,eval"])
    assert cfg.sft.lr == 3e-4 and cfg.model.train == "lora" and cfg.data.mix == {"arithmetic": 2} and cfg.run.phases == ["sft", "eval"]


@pytest.mark.parametrize("pair,needle", [
    ("sft.lr=fast", "sft.lr"), ("model.train=all", "last_layers, lora, full"), ("sft.epochs=-2", "out of range"),
    ("sft.lrate=1", "unknown key"), ("run.phases=sft,dance", "run.phases"), ("model.load_8bit=perhaps", "model.load_8bit"),
    ("data.mix={algebra: 1}", "data.mix"), ("eval.mix={percentage: -1}", "eval.mix.percentage"), ("justtext", "key=value"),
])
def test_bad_values_name_their_key(pair, needle):
    with pytest.raises(config.ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        config.load(sets=[pair])


@pytest.mark.parametrize("text,lost", [("1e-400", "rounds to 0"), ("1.0e-400", "rounds to 0"), ("1e400", "overflows")])
def test_a_number_a_float_cannot_hold_is_refused_not_turned_into_zero_or_inf(tmp_path, text, lost):
    # rl.vllm_is_cap=0 means off: a tiny cap that silently became 0 would turn the correction off
    with pytest.raises(config.ConfigError, match=f"rl.vllm_is_cap: .* is too .*{lost}"):
        config.load(sets=[f"rl.vllm_is_cap={text}"])
    f = tmp_path / "c.yaml"
    f.write_text(f"rl:\n  vllm_is_cap: {text}\n")
    with pytest.raises(config.ConfigError, match=f"(line 2|rl.vllm_is_cap): .* is too .*{lost}"):
        config.load(f)  # YAML reads 1.0e-400 as a float (caught on its line), 1e-400 as text (caught at its key)
    assert config.load(sets=["rl.vllm_is_cap=0", "sft.lr=1e-300"]).sft.lr == 1e-300  # 0 and small numbers are kept


@pytest.mark.parametrize("text", ["1e-40_0", "\uff11e-400", "\u0661e-400"])
def test_underscores_and_other_scripts_digits_do_not_slip_past_the_float_check(text):
    with pytest.raises(config.ConfigError, match="rounds to 0"):
        config.load(sets=[f"rl.vllm_is_cap={text}"])


def test_a_text_key_keeps_a_value_that_looks_like_a_huge_number(tmp_path):
    """A W&B project named 1.0e999 is text; the session's config must load again after the run."""
    cfg = config.load(sets=["run.wandb=1.0e999"])
    f = tmp_path / "config.yaml"
    f.write_text(cfg.to_yaml())
    assert config.load(f).run.wandb == "1.0e999"


def test_five_thousand_digits_are_too_large_not_inf():
    with pytest.raises(config.ConfigError, match=r"rl.vllm_is_cap: '9{24}\.\.\.' \(5,000 characters\) is too large"):
        config.load(sets=["rl.vllm_is_cap=" + "9" * 5000])


def test_yaml_file_and_cli_errors_are_one_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("sft:\n  lr: 0.001\nrl:\n  iterations: 3\n")
    assert config.load(f).rl.iterations == 3
    f.write_text("sft: [1, 2")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(f)
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--set", "sft.lr=abc"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == "engine train: sft.lr: expected float, got 'abc'"
    show = subprocess.run([sys.executable, "-m", "engine", "config", "show", "--set", "rl.iterations=7"], capture_output=True, text=True)
    assert show.returncode == 0 and "iterations: 7" in show.stdout


def test_the_held_out_set_does_not_move_with_the_training_mix():
    from engine.tasks import eval_sets

    even = eval_sets(config.load(sets=["eval.gsm8k=0"]))["synthetic"]
    trained_on_one = eval_sets(config.load(sets=["eval.gsm8k=0", "data.mix={percentage: 1}"]))["synthetic"]
    only = eval_sets(config.load(sets=["eval.gsm8k=0", "eval.mix={percentage: 1}"]))["synthetic"]
    assert [i.question for i in even] == [i.question for i in trained_on_one]
    assert len({i.expert for i in even}) == 6 and {i.expert for i in only} == {"percentage"}


def test_gpu_preset_scales_sizes_and_user_settings_win(monkeypatch):
    import argparse

    import torch

    from engine.cli.train import resolve_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    notes = []
    args = argparse.Namespace(set=["rl.iterations=7"], model=None, config=None)
    cfg = resolve_config(args, note=notes.append)
    assert cfg.rl.questions == 32 and cfg.eval.batch_size == 256 and cfg.rl.iterations == 7
    assert notes and notes[0].startswith("preset gpu (a CUDA device will be used)")
    cpu = resolve_config(argparse.Namespace(set=["model.device=cpu"], model=None, config=None), note=notes.append)
    assert cpu.rl.questions == config.load().rl.questions and "no CUDA device" in notes[-1]


def test_every_task_is_a_config_choice_and_a_train_option():
    import dataclasses
    import subprocess
    import sys

    from engine.tasks import TASKS

    field = next(f for f in dataclasses.fields(config.RunConfig) if f.name == "task")
    assert set(field.metadata["choices"]) == set(TASKS)
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(name in out for name in TASKS)
    bad = subprocess.run([sys.executable, "-m", "engine", "train", "--task", "poetry"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_every_shipped_recipe_loads():
    from pathlib import Path

    recipes = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        if path.name == CONTINUATION:
            continue  # replays 1,000 gold traces on top of a trained run, given by the user: its own test below
        cfg = config.load(path)
        assert cfg.data.gsm8k_traces > config.load().data.gsm8k_traces  # the longer recipe trains on more GSM8K


CONTINUATION = "cpu-expert-iteration.yaml"


@pytest.mark.parametrize("setting", ["model.init_from= <a checkpoint> ", "model.lora_targets=[q_proj,<more>]"])
def test_a_placeholder_is_refused_wherever_it_comes_from(setting):
    key = setting.partition("=")[0]
    with pytest.raises(config.ConfigError, match=rf"{re.escape(key)}(\[1\])?: .*is a placeholder .*--set {re.escape(key)}=\.\.\."):
        config.load(None, [setting])
    with pytest.raises(config.ConfigError, match="is a placeholder"):  # a session's saved config, read back
        config.load(None, base=config.parse_sets([setting]), training=False)
    config.load(None, [f"{key}=" if "[" not in setting else f"{key}=[q_proj]"])  # a real value is taken


def test_the_expert_iteration_recipe_is_judged_on_the_dev_split_only(tmp_path):
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "recipes" / CONTINUATION
    # without the user's checkpoint it would train the base model for 146 steps and mean nothing:
    # refused, naming both inputs at once
    with pytest.raises(config.ConfigError, match=r"model\.init_from: '<the checkpoint .* is a placeholder.*"
                                                 r"--set model\.init_from=\.\.\. --set data\.self_traces=\.\.\."):
        config.load(recipe)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "state.pt").write_bytes(b"")
    with pytest.raises(config.ConfigError, match=r"data\.self_traces: '<the file engine data self-traces wrote>' is a placeholder"):
        config.load(recipe, [f"model.init_from={tmp_path / 'ck'}"])
    # the control of docs/training.md: the same continuation with no self traces (empty is a value)
    assert config.load(recipe, [f"model.init_from={tmp_path / 'ck'}", "data.self_traces="]).data.self_traces == ""
    (tmp_path / "self.jsonl").write_text("")
    cfg = config.load(recipe, [f"model.init_from={tmp_path / 'ck'}", f"data.self_traces={tmp_path / 'self.jsonl'}"])
    assert cfg.run.phases == ["sft", "eval"] and cfg.eval.dev == 500 and cfg.eval.gsm8k == 0
    assert (cfg.eval.at, cfg.sft.lr, cfg.sft.batch_size) == (["sft"], config.load().sft.lr / 4, 8)  # as measured
