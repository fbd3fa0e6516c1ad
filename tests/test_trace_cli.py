"""`engine trace check` and `engine trace run` as a user runs them."""

import json
import re
import subprocess
import sys

GOOD = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: compute, compute_op: mul, args: [a, 3], var: r}\n- {op: query, var: r}\n"
BAD = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: init, var: a, value: 5}\n- {op: add, args: [a, 3], var: r}\n"


def engine(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_check_json_lines_and_exit_status(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    out = engine("trace", "check", "--json", "--expect-answer", "6", str(good), str(bad))
    assert out.returncode == 1
    first, second = [json.loads(line) for line in out.stdout.splitlines()]
    assert first["valid"] and first["answer"] == 6 and first["reward"] == 1.0 and first["source"].endswith("good.yaml")
    assert second["reward"] == 0.5 and {d["code"] for d in second["diagnostics"]} >= {"overwrite", "unknown_op", "missing_query"}
    overwrite = next(d for d in second["diagnostics"] if d["code"] == "overwrite")
    assert (overwrite["line"], overwrite["step"], overwrite["part"], overwrite["severity"]) == (4, 1, 0, "error")
    assert engine("trace", "check", "--json", str(good)).returncode == 0


def test_check_reads_stdin_and_reports_usage_errors(tmp_path):
    out = engine("trace", "check", "--json", "-", stdin=GOOD)
    assert out.returncode == 0 and json.loads(out.stdout)["source"] == "<stdin>"
    assert "reward" not in json.loads(out.stdout)
    missing = engine("trace", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert engine("trace", "check", "--expect-answer", "abc", "-", stdin=GOOD).returncode == 2


def test_check_text_report_puts_diagnostics_under_their_lines(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    lines = engine("trace", "check", str(bad)).stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("4 │"))
    assert "overwrite" in lines[at + 1] and "└" in lines[at + 1]


def test_run_prints_steps_with_old_and_new_values(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text(BAD)
    out = engine("trace", "run", str(f))
    assert out.returncode == 1
    assert "a: 2 → 5" in out.stdout and "overwrite" in out.stdout and "missing_query" in out.stdout
    ok = engine("trace", "run", "-", stdin=GOOD)
    assert ok.returncode == 0 and "r: — → 6" in ok.stdout and "answer = 6" in ok.stdout


# docs/trace-language.md's composed example, its part 1 writing `sale` twice: line 10 is part 1's
# second step, the sixth of the trace (the stepper's `step 6 of 8`)
TWO_PARTS = """- expert: percentage
  trace:
  - {op: init, var: price, value: 250}
  - {op: init, var: off, value: 12}
  - {op: percent_off, base: price, rate: off, var: result}
  - {op: query, var: result}
- expert: arithmetic
  trace:
  - {op: init, var: sale, source: prev.result}
  - {op: init, var: sale, value: 15}
  - {op: compute, compute_op: add, args: [sale, sale], var: result}
  - {op: query, var: result}
"""


def test_a_two_part_trace_names_a_step_by_the_steppers_count_and_json_keeps_the_contract(tmp_path):
    from engine.trace import check

    f = tmp_path / "two.yaml"
    f.write_text(TWO_PARTS)
    report = check(TWO_PARTS)
    overwrite = next(d for d in report.diagnostics if d.code == "overwrite")
    assert overwrite.render().startswith("error overwrite (line 10, step 6, part 1): ")  # was `part 1 step 2`
    text = engine("trace", "check", str(f)).stdout
    assert "(step 6, part 1)" in text and "step 2" not in text
    table = engine("trace", "run", str(f)).stdout
    assert re.search(r"│ 1 +│ 6 +│ 10 ", table), table  # `trace run`'s table: part 1, step 6, line 10
    d = next(d for d in json.loads(engine("trace", "check", "--json", str(f)).stdout)["diagnostics"] if d["code"] == "overwrite")
    assert (d["line"], d["part"], d["step"]) == (10, 1, 1)  # the JSON: within the part, from 0


def test_a_loop_in_a_later_part_names_its_step_by_the_whole_traces_count(tmp_path):
    from engine.trace import check

    text = ("- expert: arithmetic\n  trace:\n  - {op: init, var: a, value: 3}\n  - {op: query, var: a}\n"
            "- expert: arithmetic\n  trace:\n  - {op: init, var: x, source: prev.result}\n"
            + "  - {op: compute, compute_op: add, args: [x, 1], var: x}\n" * 3 + "  - {op: query, var: x}\n")
    loop = next(d for d in check(text).diagnostics if d.code == "template_loop")
    assert loop.message.startswith("step 4 (a block of 1 step) repeats 3 times")  # part 1's 2nd step: 2 came before
    assert loop.render().startswith("warning template_loop (line 8, step 4, part 1)") and (loop.part, loop.step) == (1, 1)
