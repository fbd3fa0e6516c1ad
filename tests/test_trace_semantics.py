"""Parsing as outputs really come, execution records, composition, reward."""

from fractions import Fraction

from engine.trace import RewardWeights, check, execute, parse

from .traces import COMPOSED as BARE_COMPOSED

COMPOSED = "Sure! Here is the trace.\n\n```yaml\n" + BARE_COMPOSED + "```\nHope that helps.\n"


def test_fenced_composed_trace_with_chatter():
    r = check(COMPOSED, 74, "composition")
    assert r.valid and r.answer == 74 and r.reward == 1.0
    assert r.expert == ["percentage", "arithmetic"]
    assert [rec.line for rec in r.records][:2] == [6, 7]
    wired = r.records[4]
    assert wired.reads == {"prev.result": 64} and wired.writes[0].new == 64


def test_parts_do_not_share_variables():
    text = COMPOSED.replace("args: [prev, shipping]", "args: [price, shipping]")
    assert "undefined_var" in {d.code for d in check(text).diagnostics}


def test_sub_n_source_and_failed_part_source():
    text = COMPOSED.replace("source: prev.result", "source: sub0.result")
    assert check(text, 74).valid
    broken = COMPOSED.replace("args: [price, ...]", "").replace("base: price", "base: nothing")
    r = check(broken)
    assert [d.code for d in r.diagnostics if d.is_error] == ["undefined_var", "undefined_var"]
    assert r.answer is None


def test_bare_yaml_after_chatter():
    text = "Let me think.\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: compute, compute_op: mul, args: [a, 3], var: r}\n- {op: query, var: r}\n"
    r = check(text, 6)
    assert r.valid and r.records[0].line == 4


def test_block_style_steps_and_decimals_are_exact():
    text = """expert: percentage
trace:
- op: init
  var: price
  value: 19.99
- op: init
  var: rate
  value: 15
- op: percent_of
  base: price
  rate: rate
  var: tip
- op: query
  var: tip
"""
    r = check(text, 2.9985)
    assert r.valid and r.answer == Fraction("2.9985") and r.records[2].line == 9


def test_division_is_exact_and_answers_match_within_tolerance():
    text = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1}\n- {op: compute, compute_op: div, args: [a, 3], var: r}\n- {op: query, var: r}\n"
    r = check(text, "0.333")
    assert r.answer == Fraction(1, 3) and r.reward == 1.0
    assert check(text, "0.32").reward == 0.7


def test_entity_ops():
    text = """expert: entity_track
trace:
- {op: init, var: alice.marbles, value: 10}
- {op: transfer, from: alice.marbles, to: bob.marbles, amount: 4}
- {op: consume, entity: bob.marbles, amount: 1}
- {op: add_entity, entity: bob.marbles, amount: 5}
- {op: query, var: bob.marbles}
"""
    r = check(text, 8)
    assert r.valid and r.answer == 8
    assert {w.var: (w.old, w.new) for w in r.records[1].writes} == {"alice.marbles": (10, 6), "bob.marbles": (None, 4)}


def test_records_carry_state_reads_writes_and_status():
    p = parse(COMPOSED)
    recs = [r for r in execute(p.trace) if hasattr(r, "status")]
    assert recs[2].op == "percent_off" and recs[2].reads == {"price": 80, "rate": 20}
    assert recs[2].state == {"price": 80, "rate": 20, "result": 64} and recs[2].written_at["result"] == 2
    assert recs[3].answer == 64


def test_failed_step_stops_the_part_but_static_checks_continue():
    text = """expert: arithmetic
trace:
- {op: init, var: a, value: 1}
- {op: compute, compute_op: div, args: [a, 0], var: b}
- {op: init, var: c, value: oops}
- {op: query, var: b}
"""
    r = check(text)
    assert [rec.status for rec in r.records] == ["ran", "failed", "skipped", "skipped"]
    assert {"div_zero", "string_value"} <= set(r.codes)


def test_reward_weights_and_warning_penalty():
    text = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1}\n- {op: init, var: b, value: 2}\n- {op: compute, compute_op: add, args: [a, 1], var: r}\n- {op: query, var: r}\n"
    assert check(text, 2).reward == 1.0
    assert check(text, 2, weights=RewardWeights(warning_penalty=0.25)).reward == 0.75
    assert check(text, 3, weights=RewardWeights(wrong_answer=0.6)).reward == 0.6


def test_json_report_shape():
    out = check(COMPOSED, 74, source="x.yaml").to_json()
    assert set(out) >= {"source", "parsed", "valid", "expert", "answer", "reward", "diagnostics"}
    assert out["answer"] == 74 and isinstance(out["answer"], int)
    assert "reward" not in check(COMPOSED).to_json()
