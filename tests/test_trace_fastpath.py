"""The line-based fast reader builds exactly what the YAML reader builds, or steps aside."""


from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.synthetic import generate
from engine.trace import check
from engine.trace.values import read_yaml, read_fast


def shape(x):
    if isinstance(x, dict):
        return ("map", x.line, {k: (shape(v), x.key_lines.get(k)) for k, v in x.items()})
    if isinstance(x, list):
        return ("seq", x.line, [shape(v) for v in x], list(x.lines))
    return (type(x).__name__, x)


def test_generated_traces_read_the_same_both_ways():
    fast = 0
    for e in generate(1500, 11, phrasings="all"):
        a = read_fast(e.trace, 2)
        if a is not None:
            fast += 1
            assert shape(a) == shape(read_yaml(e.trace, 2)), e.trace
    assert fast == 1500  # the generator's own format always takes the fast path


MUTATIONS = [
    lambda t: t.replace("value: ", "value: '", 1),
    lambda t: t.replace("}", "} # note", 1),
    lambda t: t.replace(", ", ",", 2),
    lambda t: t.replace("- {", "-  {", 1),
    lambda t: t.replace("args: [", "args: [ ", 1),
    lambda t: t.replace("value: 1", "value: 1_0", 1),
    lambda t: t.replace("value: ", "value: 0x", 1),
    lambda t: t.replace("value: ", "value: -", 1),
    lambda t: t.replace("var: ", "var: &a ", 1),
    lambda t: t.replace("trace:", "trace: ", 1),
    lambda t: t.replace("expert: ", "expert:  ", 1),
    lambda t: t + "- {op: query, var: result, var: other}\n",
    lambda t: t.replace("{op: init", "{op: init, value: true", 1),
    lambda t: t.replace("value: ", "value: null", 1),
    lambda t: t.replace("\n- ", "\n\n- ", 1),
    lambda t: "- " + t.replace("\n", "\n  ").rstrip() + "\n",
]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, len(MUTATIONS) - 1), max_size=3))
def test_mutated_traces_agree_on_the_report(seed, picks):
    text = generate(1, seed)[0].trace
    for i in picks:
        text = MUTATIONS[i](text)
    fast = read_fast(text, 0)
    try:
        slow = read_yaml(text, 0)
    except Exception:
        slow = "error"
    if fast is not None:
        assert slow != "error" and shape(fast) == shape(slow), text
    check(text, 1)  # and the checker as a whole never raises
