"""Pilot tests of the trace stepper: step through traces showing each diagnostic."""

from engine.trace import CODES
from workbench.app import stepper_app
from workbench.stepper_model import Stepper

from .traces import COMPOSED

OVERWRITE = """expert: arithmetic
trace:
- {op: init, var: a, value: 2}
- {op: init, var: a, value: 5}
- {op: compute, compute_op: mul, args: [a, 3], var: r}
- {op: query, var: r}
"""

LOOP = "expert: arithmetic\ntrace:\n- {op: init, var: x, value: 1}\n" + "- {op: compute, compute_op: add, args: [x, 1], var: x}\n" * 4 + "- {op: query, var: x}\n"

# one trace per diagnostic code, each small enough to read
BY_CODE = {
    "parse_error": "I think the answer is 12.",
    "truncated": "```yaml\nexpert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n",
    "unknown_expert": OVERWRITE.replace("arithmetic", "algebra").replace("value: 5}", "value: 5, x: 1}").replace("- {op: init, var: a, value: 2}\n", ""),
    "wrong_expert": OVERWRITE.replace("- {op: init, var: a, value: 2}\n", ""),
    "unknown_op": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: add, args: [a, 3], var: r}\n- {op: query, var: r}\n",
    "expert_boundary": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 50}\n- {op: percent_of, base: a, rate: 10, var: r}\n- {op: query, var: r}\n",
    "missing_field": "expert: arithmetic\ntrace:\n- {op: init, var: a}\n- {op: query, var: a}\n",
    "conflicting_init": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1, source: prev.result}\n- {op: query, var: a}\n",
    "string_value": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: step1}\n- {op: query, var: a}\n",
    "undefined_var": "expert: arithmetic\ntrace:\n- {op: compute, compute_op: add, args: [a, 1], var: r}\n- {op: query, var: r}\n",
    "bad_source": "expert: arithmetic\ntrace:\n- {op: init, var: a, source: prev.result}\n- {op: query, var: a}\n",
    "overwrite": OVERWRITE,
    "missing_query": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: compute, compute_op: mul, args: [a, 3], var: r}\n",
    "query_init_only": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: query, var: a}\n",
    "div_zero": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: compute, compute_op: div, args: [a, 0], var: r}\n- {op: query, var: r}\n",
    "out_of_range": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 1e12}\n- {op: compute, compute_op: mul, args: [a, a], var: r}\n- {op: query, var: r}\n",
    "steps_after_query": OVERWRITE.replace("- {op: init, var: a, value: 5}\n", "") + "- {op: init, var: z, value: 1}\n",
    "template_loop": LOOP,
    "text_loop": "Let me think.\nLet me think.\nLet me think.\nLet me think.\n",
    "unused_value": "expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: init, var: b, value: 9}\n- {op: compute, compute_op: mul, args: [a, 3], var: r}\n- {op: query, var: r}\n",
}


def test_every_code_has_a_stepper_trace():
    assert set(BY_CODE) == set(CODES)
    for code, text in BY_CODE.items():
        expert = "percentage" if code == "wrong_expert" else None
        assert code in {d.code for d in Stepper(text, 1, expert).report.diagnostics}, code


async def test_overwrite_is_marked_in_variables_and_source():
    app = stepper_app(OVERWRITE, expect_answer=15)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        await pilot.press("n")
        assert screen.model.current.line == 3
        await pilot.press("n")  # the overwriting step
        table = screen.query_one("#variables")
        row = [str(c) for c in table.get_row_at(0)]
        assert row[0] == "a" and row[1] == "5" and row[2] == "2" and row[4] == "OVERWRITTEN"
        status = str(screen.query_one("#stepper-status").render())
        assert "overwrite" in status
        source = screen.source_text().plain.splitlines()
        assert source[3].startswith(" ●") and "value: 5" in source[3]
        header = str(screen.query_one("#stepper-header").render())
        assert "invalid" in header and "reward 0.5" in header and "expected 15" in header


async def test_back_end_continue_and_breakpoints():
    app = stepper_app(LOOP)
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        await pilot.press("e")
        assert s.model.at_end and s.model.current.op == "query"
        await pilot.press("p", "p")
        assert s.model.position == len(s.model.records) - 3
        await pilot.press("r", "n", "n", "b")  # breakpoint on the line of step 1
        bp_line = s.model.current.line
        await pilot.press("r", "c")
        assert s.model.current.line == bp_line and "breakpoint" in str(s.query_one("#stepper-status").render())
        assert "◆" in s.source_text().plain.splitlines()[bp_line - 1]


async def test_template_loop_range_and_diagnostic_jump():
    app = stepper_app(LOOP)
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        diags = s.query_one("#diagnostics")
        codes = [str(diags.get_row_at(i)[1]) for i in range(diags.row_count)]
        loop_row = codes.index("template_loop")
        row = [str(c) for c in diags.get_row_at(loop_row)]
        assert row[2] == "4-7" and "4 times" in row[4]
        diags.focus()
        diags.move_cursor(row=loop_row)
        await pilot.press("enter")
        assert s.model.current.line == 4


async def test_composed_trace_shows_parts_and_wiring():
    app = stepper_app(COMPOSED, expect_answer=74)
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        await pilot.press("e")
        wiring = str(s.query_one("#wiring").render())
        assert "part 1: prev ← prev.result = 64" in wiring
        plain = s.source_text().plain
        assert "part 0" in plain and "part 1" in plain
        assert "reward 1" in str(s.query_one("#stepper-header").render())


async def test_each_code_is_visible_where_it_happens():
    for code, text in BY_CODE.items():
        app = stepper_app(text, expect_answer=1, expect_expert="percentage" if code == "wrong_expert" else None)
        async with app.run_test(size=(140, 40)):
            s = app.screen
            diags = s.query_one("#diagnostics")
            codes = [str(diags.get_row_at(i)[1]) for i in range(diags.row_count)]
            assert code in codes, code
            d = next(d for d in s.model.report.diagnostics if d.code == code)
            if d.line:
                line = next(ln for ln in s.source_text().plain.splitlines() if ln[2:].split("│")[0].strip() == str(d.line))
                assert ("●" if d.is_error else "▲") in line[:3] or "●" in line[:3], (code, line)


async def test_edit_in_place_save_with_ctrl_s_and_step_the_edit(tmp_path):
    trace = tmp_path / "t.yaml"
    trace.write_text(OVERWRITE)
    fixed = OVERWRITE.replace("- {op: init, var: a, value: 5}\n", "")
    app = stepper_app(OVERWRITE, expect_answer=6, path=str(trace))
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        await pilot.press("E")
        editor = s.query_one("#editor")
        editor.text = fixed
        await pilot.pause()
        await pilot.press("ctrl+s")
        assert s.model.report.valid and s.model.report.reward == 1.0
        assert trace.read_text() == fixed and f"saved to {trace}" in str(s.query_one("#stepper-status").render())
        await pilot.press("e")
        assert s.model.current.answer == 6
        await pilot.press("escape")  # saved: leaves without asking
        await pilot.pause()
        assert app.return_code is not None


async def test_ctrl_s_on_a_trace_from_no_file_asks_where_to_save(tmp_path):
    app = stepper_app(OVERWRITE)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("E")
        app.screen.query_one("#editor").insert("# checked\n")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert type(app.screen).__name__ == "Ask"
        target = tmp_path / "saved.yaml"
        await pilot.press(*str(target), "enter")
        await pilot.pause()
        assert target.read_text().startswith("# checked\n") and type(app.screen).__name__ == "StepperScreen"


async def test_goto_dialog():
    app = stepper_app(LOOP)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("g")
        await pilot.press("3", "enter")
        assert app.screen.model.position == 3


async def test_continue_stops_at_step_less_diagnostics_and_any_line_breakpoints():
    app = stepper_app(BY_CODE["wrong_expert"], expect_answer=15, expect_expert="percentage")
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("c")
        status = str(app.screen.query_one("#stepper-status").render())
        assert "wrong_expert" in status  # it belongs to no step, and `c` says so instead of a bare "end"
    app = stepper_app(LOOP)
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        await pilot.press("B", *"2", "enter")  # line 2 is `trace:`, no step of its own
        await pilot.press("c")
        assert s.model.position == 0 and "breakpoint at line 2" in str(s.query_one("#stepper-status").render())
        assert "◆" in s.source_text().plain.splitlines()[1]


async def test_raw_output_is_not_the_parsed_view_and_messages_wrap():
    raw = "Sure! Here is the trace:\n```yaml\nexpert: arithmetic  \ntrace:\n- {op: init, var: a, value: 2}\n- {op: query, var: a}\n```\nDone."
    from workbench.screens.stepper import StepperScreen

    app = stepper_app("")
    async with app.run_test(size=(100, 40)) as pilot:
        await app.push_screen(StepperScreen(raw, 2, raw=raw, title="sample"))
        s = app.screen
        parsed = s.source_text()
        await pilot.press("w")
        shown = s.source_text().plain
        assert "raw model output" in shown and "arithmetic··" in shown and shown != parsed.plain
        chatter = next(span for span in parsed.spans if parsed.plain[span.start:span.end].startswith("Sure!"))
        assert "dim" in str(chatter.style)  # the parsed view dims what is not the YAML
    app = stepper_app(LOOP)
    async with app.run_test(size=(80, 30)) as pilot:
        diags = app.screen.query_one("#diagnostics")
        assert diags.row_count >= 2
        diags.focus()
        await pilot.press("down")
        d = app.screen.model.report.diagnostics[1]
        assert d.message in str(app.screen.query_one("#stepper-status").render())  # the whole message, wrapped


async def test_escape_on_the_first_screen_quits_and_asks_before_dropping_an_edit():
    app = stepper_app(OVERWRITE)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("E")
        app.screen.query_one("#editor").insert("# note\n")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm"  # an unsaved edit: asked first, with buttons
        assert "not saved" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "StepperScreen" and app.is_running
        await pilot.press("E")  # checked (the editor closes) but still not saved: Esc still asks
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm"
        await pilot.press("y")
        await pilot.pause()
        assert app.return_code is not None  # discarded on "y", and the first screen quit
    app = stepper_app(OVERWRITE)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("escape")
        await pilot.pause()
        assert app.return_code is not None  # quit, not a blank default screen


async def test_the_editor_marks_diagnostic_lines_in_its_margin():
    app = stepper_app(OVERWRITE)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("E")
        await pilot.pause()
        editor = app.screen.query_one("#editor")
        assert editor.render_line(3).text.startswith("●")  # line 4 overwrites `a`
        assert not editor.render_line(0).text.startswith(("●", "▲"))
        editor.text = OVERWRITE.replace("- {op: init, var: a, value: 5}\n", "")  # fixed: the mark goes
        await pilot.pause()
        assert not any(editor.render_line(y).text.startswith("●") for y in range(5))


UNUSED = ("expert: arithmetic\ntrace:\n- {op: init, var: a, value: 2}\n- {op: init, var: b, value: 5}\n"
          "- {op: compute, compute_op: mul, args: [a, 3], var: r}\n- {op: query, var: r}\n")


async def test_c_stops_at_a_warning_found_after_the_run_and_the_counter_counts_from_one():
    from workbench.app import stepper_app

    app = stepper_app(UNUSED)
    async with app.run_test(size=(160, 45)) as pilot:
        s = app.screen
        await pilot.press("c")
        await pilot.pause()
        status = str(s.query_one("#stepper-status").render())
        assert "unused_value at line 4" in status and s.model.current.line == 4
        assert "step 2 of 4" in str(s.query_one("#stepper-header").render())
        await pilot.press("c")
        await pilot.pause()
        assert "end of trace (1 diagnostic in all: unused_value)" in str(s.query_one("#stepper-status").render())
    app = stepper_app("this: is: not: yaml: [")
    async with app.run_test(size=(160, 45)) as pilot:
        assert "no steps" in str(app.screen.query_one("#stepper-header").render())


async def test_the_highlighted_diagnostic_is_shown_whole_and_wrapped_at_100_columns():
    from workbench.app import stepper_app

    app = stepper_app(UNUSED)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        detail = app.screen.query_one("#diagnostic-detail")
        text = str(detail.render())
        message = app.screen.model.report.diagnostics[0].message
        assert "unused_value" in text and message in text.replace("\n", " ")
        assert detail.size.height >= 2  # wrapped, not cut at the pane's edge
