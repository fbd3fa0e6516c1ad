"""The Textual app: sessions, live runs, the trace stepper. Imports no torch."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding

from .screens.help import HelpScreen, bindings_of, key_label
from .themes import DEFAULT_THEME, load_themes, remember_theme, remembered_theme, theme_names


class Workbench(App):
    CSS_PATH = "app.tcss"
    TITLE = "tracebench"
    BINDINGS = [  # ctrl+p (the command palette) is Textual's own, shown once at the footer's right
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),  # in every key bar: the way out is never a guess
    ]

    def __init__(self, start, theme: str | None = None):
        super().__init__()
        self.start_screen = start  # a callable returning the first screen
        self.wanted_theme = theme

    def on_mount(self) -> None:
        for t in load_themes():
            self.register_theme(t)
        wanted = self.wanted_theme or remembered_theme(lambda why: self.notify(why, severity="warning")) or DEFAULT_THEME
        known = wanted in self.available_themes
        if not known:  # the CLI refuses an unknown --theme; this is a remembered one whose file is gone
            self.notify(f"no theme {wanted!r}; themes: {', '.join(theme_names())}", severity="warning")
        self.theme = wanted if known else DEFAULT_THEME
        self.theme_changed_signal.subscribe(self, lambda theme: remember_theme(theme.name))
        if self.wanted_theme and known:  # an unknown name never overwrites the remembered theme
            remember_theme(wanted)
        self.push_screen(self.start_screen())

    def get_system_commands(self, screen):
        """Every action of the screen in the palette, with its key, beside Textual's own."""
        # Textual's own, less Quit (the app's `q` below names its key) and Keys (Textual's panel of
        # generic widget keys; `?` lists this screen's)
        yield from (c for c in super().get_system_commands(screen) if c.title not in ("Quit", "Keys"))
        seen = set()
        for node in (screen, self):
            for b in node.BINDINGS:
                action = b.action.removeprefix("app.") if isinstance(b, Binding) else None
                if not action or not b.description or action in seen or action.startswith("focus"):
                    continue
                if node is screen and screen.check_action(action.split("(")[0], ()) is False:
                    continue  # not offered here now (stop on a finished run), as the footer and `?` say
                seen.add(action)  # `app.help` on a screen and `help` on the app are one entry
                said = f"key: {key_label(b.key)}" + (f"; {b.tooltip}" if b.tooltip else "")  # the key bar's word, whole
                yield SystemCommand(b.description, said, partial(node.run_action, b.action))

    def leave(self) -> None:
        """Back to the screen below, or quit on the first one (the stack's bottom is Textual's
        own default screen, which would show blank)."""
        if len(self.screen_stack) > 2:
            self.pop_screen()
        else:
            self.exit()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(type(self.screen).__name__.replace("Screen", ""), bindings_of(self.screen, self)))


def sessions_app(root: Path, theme: str | None = None) -> Workbench:
    from .screens.sessions import SessionsScreen

    return Workbench(lambda: SessionsScreen(root), theme)


def attach_app(target: str, theme: str | None = None, ssh_options: list[str] | None = None) -> Workbench:
    from .screens.run import RunScreen

    return Workbench(lambda: RunScreen(target, ssh_options=ssh_options), theme)


def stepper_app(text: str, expect_answer=None, expect_expert=None, title: str = "trace", theme: str | None = None,
                path: str | None = None) -> Workbench:
    from .screens.stepper import StepperScreen

    return Workbench(lambda: StepperScreen(text, expect_answer, expect_expert, title=title, path=path), theme)
