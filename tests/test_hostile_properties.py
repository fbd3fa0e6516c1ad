"""Every reader of outside input, fed hostile values by Hypothesis: huge and non-finite numbers, lone
surrogates, deep nesting, very long lines, wrong types. Each reader answers with its value, a counted
skip, or a one-line error naming the file (and the line, where the file has lines); never a traceback.
The examples are fixed (derandomize) and few, so CI never flakes and the whole file takes seconds;
a reader that took the square of its input (the GSM8K pattern did) would take minutes here."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

hostile = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))

# JSON text no json.dumps writes, each a way a file from elsewhere breaks a reader
JSON_VALUES = [
    "9" * 5000, "-" + "9" * 400, "1e999", "-1e999", "1e-999", "NaN", "Infinity", "-Infinity", "0.1e-400",
    '"\\ud800"', '"a\\udc00b"', '"\\u001b[2J"', '"\\u0000"', "[" * 3000 + "]" * 3000, '{"a":' * 3000 + "1" + "}" * 3000,
    '"' + "a" * 300_000 + '"', "true", "false", "null", "[]", "{}", '"12"', '"#### 5"', '"x\\n#### 1e999"',
    '"#### ' + "9" * 5000 + '"', "-0", "12", '"3/0"', '"$1,234.50"', "[1, 2]", '{"a": 1}',
]
json_value = st.one_of(st.sampled_from(JSON_VALUES),
                       st.integers(-10**45, 10**45).map(str),
                       st.floats(allow_nan=True, allow_infinity=True).map(lambda x: json.dumps(x)),
                       st.text(max_size=30).map(json.dumps))
garbage_line = st.sampled_from(["{", "[1, 2]", "\x00\x01", "\udcff", "{'a': 1}", "x" * 2_000_000, "   ", "\ufeff{}"])


@st.composite
def jsonl_line(draw, keys):
    """A JSON object whose fields are each sometimes hostile, or a line that is no JSON object."""
    if draw(st.integers(0, 5)) == 0:
        return draw(garbage_line)
    fields = {k: draw(st.one_of(st.just(v), json_value)) for k, v in keys.items() if draw(st.integers(0, 6))}
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


def write_lines(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
    return path


def one_line_naming(exc: BaseException, path: Path, line: bool = False) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) < 2000 and str(path) in text, text[:500]
    assert "set_int_max_str_digits" not in text and "Traceback" not in text
    if line:
        assert " line " in text or "no problems" in text, text[:500]


def bounded(value: Fraction) -> bool:
    return abs(value.numerator) < 10**100 and value.denominator < 10**100


def encodable(value) -> bool:
    """Text that every terminal and file writer takes: no lone surrogate anywhere in it."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            encodable(k), encodable(v)
    elif isinstance(value, list):
        for v in value:
            encodable(v)
    return True


PROBLEM = {"question": '"Tom has 3 apples and buys 4 more."', "answer": "7", "expert": '"arithmetic"',
           "trace": '"expert: arithmetic"'}
GSM8K = {"question": '"Tom has 3 apples and buys 4 more."', "answer": '"He has <<3+4=7>>7.\\n#### 7"'}


# ------------------------------------------------------------------ numbers in text
@hostile
@given(st.one_of(st.sampled_from(["1e999", "9" * 5000, ".5", "1.", "-", "1e" + "9" * 50, "inf", "NaN", "0x10",
                                  "1" * 40, "1" * 41, "1_000", "\ud800", " 12 "]), st.text(max_size=60)))
def test_numbers_in_text_are_bounded_or_refused_in_words(text):
    from engine.numbers import BadNumber, decimal

    try:
        value = decimal(text)
    except BadNumber as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200
        return
    assert bounded(value)


# ------------------------------------------------------------------ problem files (engine eval --problems, data.self_traces)
@hostile
@given(st.lists(jsonl_line(PROBLEM), min_size=1, max_size=4))
def test_problem_files_give_problems_or_one_line_naming_file_and_line(lines):
    from engine.data import problems

    with tempfile.TemporaryDirectory() as d:
        path = write_lines(Path(d), "p.jsonl", lines)
        try:
            loaded = problems.load(path)
        except ValueError as exc:
            one_line_naming(exc, path, line=True)
            return
    for p in loaded:
        assert encodable(p.question) and bounded(p.answer)


# ------------------------------------------------------------------ GSM8K files (data gsm8k-traces, variants, runs with data.gsm8k)
@hostile
@given(st.lists(jsonl_line(GSM8K), min_size=1, max_size=4))
def test_gsm8k_files_convert_with_counted_rejections_or_one_line_naming_the_line(lines):
    from engine.data import gsm8k, gsm8k_traces, variants

    with tempfile.TemporaryDirectory() as d:
        path = write_lines(Path(d), "train.jsonl", lines)
        try:
            rows = gsm8k.load_rows(str(path), "train")
        except ValueError as exc:
            one_line_naming(exc, path, line=True)
            return
        try:
            gsm8k.load(str(path), "train")
        except ValueError as exc:
            one_line_naming(exc, path, line=True)
    done = gsm8k_traces.convert_all(rows)  # a bulk reader: every row gets an outcome, none raises
    assert all(c.kept or c.reason in gsm8k_traces.REASONS for c in done)
    assert all(v.variants or v.reason in variants.REASONS for v in (variants.make(c, 2) for c in done))


@hostile
@given(st.text(max_size=40), st.sampled_from(["9" * 5000, "1e999", "3/" + "9" * 5000, "1,000,000", "\ud800", "7" * 60]),
       st.sampled_from(["<<1e999*2=4>>", "<<3+4=7>>", "1+" * 3000, "<<" + "9" * 5000 + "=1>>", "<<3/0=1>>", "(" * 500]))
def test_gsm8k_conversion_takes_any_question_and_answer(prefix, number, step):
    from engine.data import gsm8k_traces, self_traces, variants

    question = f"{prefix} Tom has {number} apples and 3 pears."
    c = gsm8k_traces.convert(0, question, f"{step} so 7\n#### 7")
    assert c.kept or c.reason in gsm8k_traces.REASONS
    assert all(bounded(m.value) for m in variants.mentions(question))
    trace = f"expert: arithmetic\ntrace:\n- {{op: init, var: a, value: {number}}}\n- {{op: query, var: a}}\n"
    assert self_traces.ungrounded(trace, question) is None or isinstance(self_traces.ungrounded(trace, question), str)


# ------------------------------------------------------------------ traces (engine trace check, the checker on every output)
@hostile
@given(st.sampled_from(["9" * 5000, "1e999", ".nan", "-.inf", "'\ud800'", "[" * 200, "&a [*a, *a]", "x" * 100_000,
                        "!!python/object:os.system ls", "0x" + "f" * 500, "1:2:3:4:5:6:7:8:9"]),
       st.sampled_from(["value", "var", "op", "args"]))
def test_traces_with_hostile_values_get_a_report(value, key):
    from engine.trace import check

    fields = {"op": "init", "var": "a", "value": "3"} | {key: value}
    text = "expert: arithmetic\ntrace:\n- {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}\n- {op: query, var: a}\n"
    report = check(text, 3)
    assert report.outcome and all(encodable(d.message) for d in report.diagnostics)


# ------------------------------------------------------------------ configs (engine train/plan --config, a session's config.yaml)
CONFIG_KEYS = ["sft.lr", "data.train_size", "data.mix", "eval.problems", "model.name", "run.phases", "rl.iterations", "data.seed",
               "model.init_from", "data.self_traces", "model.lora_targets"]
YAML_VALUES = ["9" * 5000, "!!int " + "9" * 5000, ".inf", ".nan", "!!float 1e999", "[" * 100 + "]" * 100, '"\\ud800"',
               "x" * 200_000, "{arithmetic: " + "9" * 5000 + "}", "-1", "[a, b]", "{a: 1}", "true", "~", "&x [*x]", "0x" + "f" * 2000,
               # a recipe's placeholders (<...>), as a user or a broken file may write them
               '"<' + "x" * 100_000 + '>"', '"<\\ud800>"', '" <x> "', '["<a>", "<b>", ok]', "[" + "<x>, " * 5000 + "]", '"<>"']


@hostile
@given(st.sampled_from(CONFIG_KEYS), st.one_of(st.sampled_from(YAML_VALUES), st.text(max_size=30).map(json.dumps)))
def test_configs_load_or_say_which_file_and_key_in_one_line(key, value):
    from engine import config

    section, name = key.split(".")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        path.write_text(f"{section}:\n  {name}: {value}\n", encoding="utf-8", errors="surrogatepass")
        try:
            config.load(path)
        except config.ConfigError as exc:
            text = str(exc)
            assert "\n" not in text and len(text) < 400 and (str(path) in text or key in text), text[:500]


# ------------------------------------------------------------------ session folders (engine ls, the workbench's list)
@hostile
@given(st.dictionaries(st.sampled_from(["status", "model", "phase", "step", "total", "started", "best_accuracy", "error"]),
                       json_value, max_size=8))
def test_any_status_json_lists_its_session(fields):
    from engine.session import summarize

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "run"
        folder.mkdir()
        text = "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"
        (folder / "status.json").write_text(text)
        row = summarize(folder)
    assert isinstance(row["status"], str) and encodable(row)
    assert row["step"] is None or 0 <= row["step"] < 10**9


@hostile
@given(st.lists(st.one_of(jsonl_line({"kind": '"metrics"', "t": "1.5", "step": "3", "loss": "0.5", "phase": '"sft"'}),
                          jsonl_line({"kind": '"eval"', "t": "2", "set": '"gsm8k"', "accuracy": "0.5", "by_expert": "{}"})),
                max_size=5))
def test_event_lines_are_events_or_counted_as_bad(lines):
    from engine.events import EventReader

    reader = EventReader(Path("unused"), checked=True)
    events = reader.feed(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    assert len(events) + reader.bad_lines == sum(1 for x in lines if x.strip())
    assert all(isinstance(e["kind"], str) and encodable(e) for e in events)


# ------------------------------------------------------------------ model folders (engine plan, the new-run form)
SHAPE = {"hidden_size": "576", "num_hidden_layers": "30", "num_attention_heads": "9", "num_key_value_heads": "3",
         "intermediate_size": "1536", "vocab_size": "49152"}


@hostile
@given(st.one_of(jsonl_line(SHAPE), st.sampled_from(["[" * 50_000, "", "\xff\xfe", "[1]", '{"text_config": 3}'])))
def test_model_config_json_gives_a_shape_or_names_file_and_key(text):
    from engine.plan import BadModelConfig, estimate, known_shape, render
    from engine import config

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            shape = known_shape(d)
        except BadModelConfig as exc:
            one_line_naming(exc, Path(d) / "config.json")
            return
    assert shape is not None and min(shape.hidden, shape.layers, shape.heads, shape.vocab) >= 1
    plan = estimate(config.load(None, ["model.name=tiny"]), shape, d)
    assert plan.peak.total > 0 and render(plan)


# ------------------------------------------------------------------ checkpoints (eval, resume, model.init_from)
@st.composite
def state_pt(draw):
    """Bytes a state.pt may hold: noise, or a zip of torch's layout whose records are anything."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2000))
    buf = io.BytesIO()
    packed = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(buf, "w") as z:
        for name in draw(st.lists(st.sampled_from(["a/data.pkl", "a/version", "a/data/0", "a/byteorder", "../x"]), max_size=4, unique=True)):
            z.writestr(name, draw(st.one_of(st.binary(max_size=300), st.just(b"\0" * 200_000))), packed)
    return buf.getvalue()


@hostile
@given(state_pt())
def test_a_state_pt_from_elsewhere_is_refused_naming_it(data):
    from engine import checkpoints

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "state.pt"
        path.write_bytes(data)
        try:
            checkpoints.read(path)
        except checkpoints.CheckpointError as exc:
            one_line_naming(exc, path)
        else:
            raise AssertionError("noise read as a checkpoint")


# ------------------------------------------------------------------ TRL logs (the TraceSession callback)
@hostile
@given(st.dictionaries(st.one_of(st.sampled_from(["step", "total", "kind", "t", "phase", "loss", "x/y", "\ud800"]),
                                 st.integers(), st.none()),
                       st.one_of(st.integers(-10**30, 10**30), st.just(10**5000), st.floats(), st.text(max_size=5),
                                 st.none(), st.lists(st.integers(), max_size=2)), max_size=6))
def test_trl_logs_never_raise_into_training(logs):
    from engine.integrations.trl import metric_values

    values = metric_values(logs)
    assert all(isinstance(k, str) for k in values)
    json.dumps(list(values))  # names a recorder can write


# ------------------------------------------------------------------ the terminal
@hostile
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200))
def test_any_text_reaches_the_terminal_encodable(text):
    from engine.events import clean_text

    shown = clean_text(text)
    assert "\x1b" not in shown
    shown.encode("utf-8")  # raises on a lone surrogate


# ------------------------------------------------------------------ instruction files (the instruct task, engine report)
@hostile
@given(st.lists(jsonl_line({"instruction": '"Say hi."', "input": '""', "output": '"hi"'}), min_size=1, max_size=4))
def test_instruction_files_give_rows_of_text_or_one_line_naming_file_and_line(lines):
    from engine.tasks.instruct import instruction_prompt, read_instructions

    with tempfile.TemporaryDirectory() as d:
        path = write_lines(Path(d), "i.jsonl", lines)
        try:
            rows = read_instructions(str(path))
        except ValueError as exc:
            one_line_naming(exc, path)
            return
    assert all(encodable(instruction_prompt(r)) and encodable(r["output"]) for r in rows)
