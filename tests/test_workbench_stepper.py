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
        await pilot.press("r", "n", "b")  # `b`: a breakpoint on the line that runs next (▶), step 2's
        bp_line = s.model.next.line
        assert "▶" in s.source_text().plain.splitlines()[bp_line - 1]
        await pilot.press("r", "c")  # stops before that line runs, as a debugger does
        assert s.model.position == 0 and s.model.next.line == bp_line
        assert "stopped before" in str(s.query_one("#stepper-status").render())
        assert "◆" in s.source_text().plain.splitlines()[bp_line - 1]
        assert [r["name"] for r in s.model.variables()] == ["x"] and s.model.variables()[0]["value"] == 1


async def test_template_loop_range_and_diagnostic_jump():
    app = stepper_app(LOOP)
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        diags = s.query_one("#diagnostics")
        codes = [str(diags.get_row_at(i)[1]) for i in range(diags.row_count)]
        loop_row = codes.index("template_loop")
        row = [str(c) for c in diags.get_row_at(loop_row)]
        message = s.model.report.diagnostics[loop_row].message
        assert row[2] == "4-7" and "4 times" in message
        assert row[3] == message or (row[3].endswith("…") and message.startswith(row[3][:-1]))  # cut with a sign
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
                line = next(ln for ln in s.source_text().plain.splitlines() if ln[2:].split("│")[0].strip(" ▶") == str(d.line))
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


async def test_goto_counts_steps_from_one_as_the_header_does_and_refuses_what_is_not_a_step():
    app = stepper_app(LOOP)  # 6 steps
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen

        def status():
            return str(s.query_one("#stepper-status").render())

        await pilot.press("g", "3", "enter")
        assert s.model.position == 2 and "step 3 of 6" in str(s.query_one("#stepper-header").render())
        assert "at step 3 of 6" in status()
        for typed, said in (("42", "there is no step 42: this trace has 6 steps (1-6)"), ("0", "there is no step 0"),
                            ("abc", "not a step number: 'abc'")):
            await pilot.press("g", *typed, "enter")
            assert s.model.position == 2 and said in status(), typed  # refused, not clamped to a step


async def test_variables_and_messages_count_steps_as_the_header_does():
    app = stepper_app(OVERWRITE)
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        await pilot.press("n", "n")
        assert "step 2 of 4" in str(s.query_one("#stepper-header").render())
        row = [str(c) for c in s.query_one("#variables").get_row_at(0)]
        assert row[0] == "a" and row[3] == "2"  # set at step 2: the header's count, not 1
        d = next(d for d in s.model.report.diagnostics if d.code == "overwrite")
        assert "(set on line 3)" in d.message and "step 2" in d.render()


async def test_continue_stops_at_step_less_diagnostics_and_breakpoints_only_go_on_steps():
    app = stepper_app(BY_CODE["wrong_expert"], expect_answer=15, expect_expert="percentage")
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("c")
        status = str(app.screen.query_one("#stepper-status").render())
        assert "wrong_expert" in status  # it belongs to no step, and `c` says so instead of a bare "end"
    app = stepper_app(LOOP)
    async with app.run_test(size=(140, 40)) as pilot:
        s = app.screen
        for typed, said in (("2", "no breakpoint at line 2: no step starts there; steps start on lines 3-8"),
                            ("99", "no breakpoint at line 99: the text has 8 lines"),
                            ("abc", "not a line number: 'abc'")):
            await pilot.press("B", *typed, "enter")
            assert said in str(s.query_one("#stepper-status").render()), typed
        assert not s.model.breakpoints and "◆" not in s.source_text().plain
        await pilot.press("B", "6", "enter", "c")
        assert "template_loop" in str(s.query_one("#stepper-status").render())  # a warning on line 4 comes first
        await pilot.press("c")
        assert s.model.next.line == 6 and s.model.current.line == 5  # stopped before line 6 runs
        assert "breakpoint at line 6" in str(s.query_one("#stepper-status").render())


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
        await pilot.press("escape")  # in the editor, Esc stops editing: the edit is checked, still not saved
        await pilot.pause()
        assert type(app.screen).__name__ == "StepperScreen" and not app.screen.query_one("#editor").display
        assert "not saved" in str(app.screen.query_one("#stepper-status").render())
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm"  # an unsaved edit: asked first, with buttons
        assert "not saved" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "StepperScreen" and app.is_running
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


async def test_at_100_columns_every_key_the_header_and_the_message_column_fit():
    from textual.widgets._footer import FooterKey

    long_title = "sessions/a-rather-long-session-name/samples/step-1200/problem-0042.yaml"
    app = stepper_app(OVERWRITE, expect_answer=15, title=long_title)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        s = app.screen
        keys = {k.key_display for k in s.query(FooterKey) if k.region.right <= 100 and k.region.width}
        assert {"E", "w", "c", "g", "B"} <= keys, keys
        from workbench.screens.help import bindings_of

        source = s.source_text().plain.splitlines()
        assert len(source) > len(OVERWRITE.splitlines())  # the compute line is wider than the pane: wrapped...
        bar = source[0].index("│")
        assert all(line[bar:bar + 1] == "│" for line in source), source  # ...under its text, the gutter kept
        described = dict(bindings_of(s, app))  # `?` keeps the whole sentence the key bar shortens
        assert described["B"].startswith("Toggle a breakpoint on a line you type") and "1 = the first" in described["g"]
        header = s.query_one("#stepper-header")
        assert header.size.height == 1 and "step - of 4" in str(header.render())  # cut with …, not wrapped
        diags = s.query_one("#diagnostics")
        message = str(diags.get_row_at(0)[3])
        assert len(message) >= 20  # was one character wide
        assert message == s.model.report.diagnostics[0].message or message.endswith("…")
        await pilot.press("E")
        await pilot.pause()
        keys = {k.key_display for k in s.query(FooterKey) if k.region.right <= 100 and k.region.width}
        assert any("s" in k for k in keys) and any("esc" in k for k in keys), keys  # ctrl+s shown while editing
        await pilot.press("escape")  # stops editing, back to stepping (the text is unchanged: nothing to ask)
        await pilot.pause()
        assert not s.query_one("#editor").display and app.is_running and type(app.screen).__name__ == "StepperScreen"


async def test_a_two_part_traces_diagnostic_names_the_step_the_header_shows():
    """The header said `step 6 of 8` while the diagnostic said `part 1 step 2`: one count now."""
    from .test_trace_cli import TWO_PARTS

    app = stepper_app(TWO_PARTS)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        await pilot.press("g", "6", "enter")
        await pilot.pause()
        assert "step 6 of 8" in str(s.query_one("#stepper-header").render())
        s.query_one("#diagnostics").focus()
        await pilot.pause()
        detail = str(s.query_one("#diagnostic-detail").render())
        assert "overwrite (line 10, step 6, part 1)" in detail and "step 2" not in detail, detail
