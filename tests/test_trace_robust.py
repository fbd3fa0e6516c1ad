"""The checker never raises, refuses object-building tags, and stays fast on bombs."""

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.trace import check

scalars = st.one_of(
    st.integers(-10**30, 10**30), st.floats(allow_nan=True), st.text(max_size=12), st.booleans(), st.none(),
    st.sampled_from(["init", "compute", "query", "add", "prev.result", "sub3.result", "x", "1e999", ".nan"]),
)
keys = st.sampled_from(["op", "var", "value", "source", "args", "compute_op", "base", "rate", "from", "to", "amount", "entity", "expert", "trace"])
trees = st.recursive(scalars, lambda kids: st.lists(kids, max_size=5) | st.dictionaries(keys | st.text(max_size=5), kids, max_size=6), max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text):
    r = check(text, 1, "arithmetic")
    assert r.reward in (0.0, 0.3, 0.5, 0.7, 1.0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.booleans())
def test_arbitrary_yaml_structures_never_raise(tree, fenced):
    text = yaml.safe_dump(tree, default_flow_style=None, allow_unicode=True)
    if fenced:
        text = "```yaml\n" + text + "```\n"
    r = check(text, 3)
    assert isinstance(r.to_json(), dict)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(keys, scalars, max_size=5), max_size=8), st.sampled_from(["arithmetic", "percentage", "entity_track", "nope", 3]))
def test_arbitrary_step_lists_never_raise(steps, expert):
    text = yaml.safe_dump({"expert": expert, "trace": steps}, default_flow_style=None)
    check(text, 3, "arithmetic")


def test_python_tags_are_refused():
    for text in ["!!python/object/apply:os.system ['echo hi']", "expert: !!python/name:os.system\ntrace: []", "!custom {a: 1}"]:
        r = check(text)
        assert [d.code for d in r.diagnostics] == ["parse_error"] and "tag" in r.diagnostics[0].message


@pytest.mark.wallclock
def test_alias_bomb_is_answered_quickly(within):
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    with within(0.5, "an alias bomb refused"):
        r = check("\n".join(lines))
    assert r.diagnostics[0].code == "parse_error" and "alias" in r.diagnostics[0].message


def test_recursive_alias_and_deep_nesting():
    assert check("&a [*a]").diagnostics[0].code == "parse_error"
    assert check("[" * 100000).diagnostics[0].code == "parse_error"
    assert check("a:\n" + "".join(" " * (2 * i) + "b:\n" for i in range(1, 200))).diagnostics[0].code == "parse_error"


def test_huge_numbers_are_diagnosed_not_computed():
    text = "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1e999999999}\n- {op: query, var: a}\n"
    assert check(text).diagnostics[0].code == "missing_field"
