"""Every diagnostic code of trace-format.md, on traces written for the purpose."""

import pytest

from engine.trace import CODES, check


def codes(text, **kw):
    return {d.code for d in check(text, **kw).diagnostics}


def diag(text, code, **kw):
    found = [d for d in check(text, **kw).diagnostics if d.code == code]
    assert found, f"expected {code}, got {[d.code for d in check(text, **kw).diagnostics]}"
    return found[0]


GOOD = """expert: arithmetic
trace:
- {op: init, var: base, value: 100}
- {op: init, var: tax, value: 8}
- {op: compute, compute_op: add, args: [base, tax], var: result}
- {op: query, var: result}
"""


def test_a_good_trace_is_valid_and_scores_one():
    r = check(GOOD, 108, "arithmetic")
    assert r.valid and r.answer == 108 and r.reward == 1.0 and r.diagnostics == []


def test_parse_error_on_prose_and_on_broken_yaml():
    assert codes("The answer is 42.") == {"parse_error"}
    assert "parse_error" in codes("expert: [arithmetic\ntrace: }{\n- x\nmore: 1")
    assert diag("- {op: init, var: x, value: 1}\n- {op: query, var: x}", "parse_error").line == 1


def test_truncated_unclosed_fence_and_cut_last_line():
    fenced = "```yaml\n" + GOOD
    d = diag(fenced, "truncated")
    assert d.line == 7  # the last line the model wrote
    cut = GOOD.rsplit("\n", 2)[0][:-5]  # the query line cut half way
    d = diag(cut, "truncated")
    assert d.line == 6
    assert check(cut, 108).reward == 0.0


def test_unknown_expert_and_wrong_expert_score_point_three():
    text = GOOD.replace("expert: arithmetic", "expert: algebra")
    assert diag(text, "unknown_expert").line == 1
    assert check(text, 108).reward == 0.3
    d = diag(GOOD, "wrong_expert", expect_answer=108, expect_expert="percentage")
    assert d.line == 1 and check(GOOD, 108, "percentage").reward == 0.3


def test_invented_operation():
    text = GOOD.replace("{op: compute, compute_op: add,", "{op: add,")
    d = diag(text, "unknown_op")
    assert (d.line, d.step) == (5, 2) and "compute_op" in d.message
    assert check(text, 108, "arithmetic").reward == 0.5


def test_unknown_compute_op():
    assert diag(GOOD.replace("compute_op: add", "compute_op: power"), "unknown_op").step == 2


def test_expert_boundary():
    text = GOOD.replace("{op: compute, compute_op: add, args: [base, tax], var: result}", "{op: percent_of, base: base, rate: tax, var: result}")
    d = diag(text, "expert_boundary")
    assert d.line == 5 and "percentage" not in d.message and "arithmetic" in d.message


@pytest.mark.parametrize(
    "step",
    [
        "{op: init, var: x}",
        "{op: compute, compute_op: add, args: base, var: x}",
        "{op: compute, compute_op: add, args: [base], var: x}",
        "{op: compute, compute_op: sub, args: [base, tax, 1], var: x}",
        "{op: compute, args: [base, tax], var: x}",
        "{op: compute, compute_op: add, args: [base, tax]}",
        "{var: x, value: 3}",
        "just a string",
    ],
)
def test_missing_field(step):
    text = GOOD.replace("- {op: query, var: result}", f"- {step}\n- {{op: query, var: result}}")
    assert diag(text, "missing_field").line == 6


def test_conflicting_init():
    d = diag(GOOD.replace("value: 8}", "value: 8, source: prev.result}"), "conflicting_init")
    assert (d.line, d.step) == (4, 1)


def test_string_value():
    d = diag(GOOD.replace("value: 8}", "value: step1}"), "string_value")
    assert d.line == 4 and "step1" in d.message


def test_undefined_var():
    d = diag(GOOD.replace("args: [base, tax]", "args: [base, taxes]"), "undefined_var")
    assert d.line == 5 and "taxes" in d.message


def test_bad_source():
    assert diag(GOOD.replace("value: 8}", "source: prev.result}"), "bad_source").line == 4
    composed = """- expert: arithmetic
  trace:
  - {op: init, var: a, source: sub1.result}
  - {op: compute, compute_op: add, args: [a, 1], var: r}
  - {op: query, var: r}
- expert: arithmetic
  trace:
  - {op: init, var: a, value: 1}
  - {op: compute, compute_op: add, args: [a, 1], var: r}
  - {op: query, var: r}
"""
    assert diag(composed, "bad_source").line == 3


def test_overwrite_and_update_is_not_overwrite():
    text = GOOD.replace("value: 8}", "value: 8}\n- {op: init, var: tax, value: 9}")
    d = diag(text, "overwrite")
    assert (d.line, d.step) == (5, 2) and "8" in d.message
    update = GOOD.replace(
        "- {op: query, var: result}",
        "- {op: compute, compute_op: add, args: [result, 1], var: result}\n- {op: query, var: result}",
    )
    assert check(update, 109).valid


def test_missing_query():
    text = GOOD.replace("- {op: query, var: result}\n", "")
    d = diag(text, "missing_query")
    assert d.line == 5 and check(text, 108).answer is None


def test_query_init_only():
    text = GOOD.replace("- {op: query, var: result}", "- {op: query, var: base}")
    assert diag(text, "query_init_only").line == 6


def test_div_zero():
    text = GOOD.replace("compute_op: add, args: [base, tax]", "compute_op: div, args: [base, 0]")
    assert diag(text, "div_zero").line == 5


def test_steps_after_query_warning_and_not_run():
    text = GOOD + "- {op: compute, compute_op: add, args: [result, 1], var: more}\n"
    d = diag(text, "steps_after_query", expect_answer=108)
    r = check(text, 108)
    assert d.severity == "warning" and d.line == 7 and r.valid and r.reward == 1.0
    assert r.records[-1].status == "skipped"


def test_template_loop_gives_block_and_count():
    body = "".join("- {op: compute, compute_op: add, args: [x, 1], var: x}\n- {op: compute, compute_op: mul, args: [x, 2], var: x}\n" for _ in range(4))
    text = "expert: arithmetic\ntrace:\n- {op: init, var: x, value: 1}\n" + body + "- {op: query, var: x}\n"
    d = diag(text, "template_loop")
    assert d.severity == "warning" and (d.line, d.end_line, d.step) == (4, 11, 1)
    assert "block of 2 steps" in d.message and "4 times" in d.message


def test_template_loop_over_parts():
    part = "- expert: arithmetic\n  trace:\n  - {op: init, var: a, value: 2}\n  - {op: compute, compute_op: mul, args: [a, 3], var: r}\n  - {op: query, var: r}\n"
    d = diag(part * 3, "template_loop")
    assert "part 0" in d.message and "3 times" in d.message


def test_text_loop_lines_and_spans():
    d = diag("I think.\n" + "Let me write the trace.\n" * 5, "text_loop")
    assert d.line == 2 and "5 times" in d.message
    assert "text_loop" in codes("So the answer is 12. So the answer is 12. So the answer is 12. So the answer is 12.")


def test_unused_value():
    text = GOOD.replace("value: 8}", "value: 8}\n- {op: init, var: fee, value: 3}")
    d = diag(text, "unused_value", expect_answer=108)
    assert d.severity == "warning" and d.line == 5 and check(text, 108).reward == 1.0


def test_every_code_is_exercised_somewhere_in_this_file():
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    missing = [c for c in CODES if f'"{c}"' not in source]
    assert missing == []


def test_out_of_range_on_a_value_no_word_problem_needs():
    text = GOOD.replace("value: 8}", "value: 8}\n- {op: init, var: big, value: 99999999999}").replace(
        "compute_op: add, args: [base, tax]", "compute_op: mul, args: [base, tax, big, big]")
    d = diag(text, "out_of_range")
    assert d.line == 6 and d.step == 3 and "1e15" in d.message
