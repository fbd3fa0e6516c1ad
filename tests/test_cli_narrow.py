"""The command line as a new user meets it in an 80-column terminal or a pipe: nothing cut, every
command and every setting described, the figures the same wherever they appear."""

import json
import os
import subprocess
import sys

from engine import config
from engine.models import KNOWN, params_label
from engine.plan import Shape


def engine(*args, columns: int | None = 80, timeout=240, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)


def wide(text: str, width: int = 80) -> list[str]:
    return [line for line in text.splitlines() if len(line) > width]


def test_models_at_80_columns_is_readable_whole():
    out = engine("models")
    assert out.returncode == 0 and not wide(out.stdout), wide(out.stdout)
    assert "…" not in out.stdout  # nothing cut
    for m in KNOWN.values():
        assert f"{m.name}  {m.params}" in out.stdout  # a name line per model, its size beside it
        assert " ".join(m.measured.split()[:4]) in " ".join(out.stdout.split())  # the long text is there, wrapped
    wide_out = engine("models", columns=200).stdout
    assert "comes from" in wide_out and "measured" in wide_out.splitlines()[2]  # a wide terminal keeps the table


def test_a_model_size_is_one_figure_computed_from_its_shape():
    for m in KNOWN.values():
        assert m.params == params_label(Shape(*m.shape).params())
    assert KNOWN["tiny"].params == "3.2M" == params_label(3_244_352)  # what a tiny run's header shows


def test_config_docs_describe_every_key_and_fit_80_columns_piped_or_not():
    keys = [k for k, _, _ in config.describe()]
    undescribed = [k for k, _, doc in config.describe() if not doc or doc.startswith("one of")]
    assert not undescribed, undescribed
    for columns in (80, None):  # None: piped, no COLUMNS: 80
        out = engine("config", "show", "--docs", columns=columns)
        assert out.returncode == 0 and not wide(out.stdout), wide(out.stdout)
        lines = out.stdout.splitlines()
        for key in keys:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
            assert lines[at + 1].startswith("    ") and lines[at + 1].strip(), key  # its description below it


def test_an_option_given_to_a_group_points_at_the_subcommand_it_belongs_to():
    out = engine("config", "--docs")  # the reviewer's first try: the option is `engine config show`'s
    assert out.returncode == 2 and "engine config show --docs" in out.stderr and "Traceback" not in out.stderr
    other = engine("config", "--nothing")
    assert other.returncode == 2 and "unrecognized arguments: --nothing" in other.stderr and "belongs" not in other.stderr


def test_bare_engine_lists_every_command_with_a_line_each():
    out = engine()
    assert out.returncode == 2 and "the following arguments are required" not in out.stderr
    assert "usage: engine" in out.stdout and "commands:" in out.stdout and not wide(out.stdout)
    for cmd in ("trace", "models", "train", "eval", "ls", "stop", "plan", "report"):
        assert any(line.strip().startswith(cmd + " ") and len(line.split()) > 2 for line in out.stdout.splitlines()), cmd


def test_ls_takes_the_sessions_folder_as_an_argument(tmp_path):
    session = tmp_path / "runs" / "one"
    session.mkdir(parents=True)
    (session / "status.json").write_text(json.dumps({"status": "completed", "model": "tiny"}))
    by_arg = engine("ls", str(tmp_path / "runs"), "--json")
    by_flag = engine("ls", "--root", str(tmp_path / "runs"), "--json")
    assert by_arg.returncode == 0 and json.loads(by_arg.stdout) == json.loads(by_flag.stdout)
    assert [r["run"] for r in json.loads(by_arg.stdout)] == ["one"]
    missing = engine("ls", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.strip() == f"engine ls: {tmp_path / 'nope'}: no such folder"
    assert "--root DIR" in engine("ls", "--help").stdout


def test_ls_says_what_its_progress_counts_as_the_workbench_list_does(tmp_path):
    """`sft 17/32` and `eval 4/4` said nothing of what was counted, nor that a run had finished."""
    from workbench.screens.sessions import progress_cell

    statuses = {"a-sft": {"status": "stopped", "phase": "sft", "step": 17, "total": 32},
                "b-rl": {"status": "stopped", "phase": "rl", "step": 0, "total": 3},
                "c-done": {"status": "completed", "phase": "eval", "step": 4, "total": 4}}
    for name, st in statuses.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "status.json").write_text(json.dumps({**st, "model": "tiny"}))
    out = engine("ls", str(tmp_path))
    assert out.returncode == 0 and not wide(out.stdout), out.stdout
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
    for name, said in (("a-sft", "sft 17/32 steps"), ("b-rl", "rl 0/3 iters"), ("c-done", "done")):
        assert said in lines[name] and said == progress_cell({**statuses[name], "run": name}), lines
    assert "4/4" not in out.stdout


def test_eval_of_a_session_without_a_checkpoint_says_it_scores_the_untrained_model(tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    cfg = config.load(sets=["model.name=tiny"], base=config.smoke_overrides())
    (folder / "config.yaml").write_text(cfg.to_yaml())  # a run that saved no checkpoint yet
    out = engine("eval", str(folder), "--set", "eval.synthetic=2", "--set", "eval.gsm8k=0", "--set", "eval.max_new_tokens=8")
    assert out.returncode == 0, out.stderr
    assert f"{folder} has no checkpoint yet" in out.stderr and "scoring the untrained model tiny" in out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if "synthetic" in line and "%" in line]
    assert rows and all(r[0] == "untrained" for r in rows), out.stdout  # labelled so, not `base`
    assert not wide(out.stdout) and "…" not in out.stdout  # the table fits 80 columns, nothing cut


def test_the_evaluations_table_fits_80_columns_with_the_experts_below_it():
    from engine.cli.console import console
    from engine.cli.tables import eval_table

    evals = [{"at": "step-000600", "set": name, "accuracy": 0.109, "accuracy_ci": [0.091, 0.13], "parse_rate": 0.957,
              "valid_rate": 0.91, "correct": 111, "total": 1019,
              "by_expert": {"arithmetic": {"correct": 50, "total": 300}, "composition": {"correct": 20, "total": 400},
                            "percentage": {"correct": 41, "total": 319}}} for name in ("synthetic-unseen", "gsm8k-301-1319")]
    for width in (80, 160):
        c = console(width=width, record=True)
        c.print(eval_table(evals))
        text = c.export_text()
        assert not wide(text, width) and "…" not in text, text
        assert "gsm8k-301-1319" in text and "10.9% [9.1%, 13.0%]" in text and "percentage 41/319" in text


def test_a_command_group_without_its_subcommand_prints_its_help():
    for group, subs in (("trace", ("check", "run")), ("config", ("show",)), ("data", ("generate", "stats"))):
        out = engine(group)
        assert out.returncode == 2 and "arguments are required" not in out.stderr, (group, out.stderr)
        assert f"usage: engine {group}" in out.stdout and all(s in out.stdout for s in subs), group
