"""Themes from themes/*.yaml (the top of the source tree; a wheel carries them as
workbench.theme_files), and the remembered choice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from textual.theme import Theme

def _themes_dir() -> Path:
    """themes/ beside workbench/ in a source tree; workbench/theme_files/ in an installed wheel."""
    here = Path(__file__).resolve().parent
    for folder in (here / "theme_files", here.parent / "themes"):
        if folder.is_dir():
            return folder
    return here.parent / "themes"


THEMES_DIR = _themes_dir()
DEFAULT_THEME = "harbor"
_FIELDS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "success", "warning", "error", "dark")


def load_themes(folder: Path = THEMES_DIR) -> list[Theme]:
    out = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        out.append(Theme(name=data.get("name", path.stem), **{k: data[k] for k in _FIELDS if k in data}))
    return out


def theme_names() -> list[str]:
    """Every theme `--theme` takes: the project's own first, then Textual's (the palette's Theme lists the same)."""
    from textual.theme import BUILTIN_THEMES

    ours = [t.name for t in load_themes()]
    return ours + sorted(n for n in BUILTIN_THEMES if n not in ours)


def settings_file() -> Path:
    root = os.environ.get("TRACEBENCH_CONFIG_DIR") or os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "tracebench")
    return Path(root) / "workbench.json"


def read_settings() -> tuple[dict, str | None]:
    """The settings file's object, and why it was ignored (None when it was read or is not there).
    Read through the engine's bounded reader: a FIFO is never waited on, a folder, bad UTF-8 or
    100,000 brackets is a one-line reason, never an exception in the UI."""
    from engine.safefile import read_bytes

    path = settings_file()
    try:
        raw = read_bytes(path, 64 << 10)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"settings {path}: {exc.strerror or exc}; ignored"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8, not JSON, nested too deeply
        return {}, f"settings {path}: not JSON; ignored"
    if not isinstance(data, dict):
        return {}, f"settings {path}: not a JSON object; ignored"
    return data, None


def remembered_theme(note=lambda why: None) -> str | None:
    """The remembered theme's name, or None; `note` is told, in one line, why the file was ignored."""
    data, why = read_settings()
    theme = data.get("theme")
    if theme is not None and not (isinstance(theme, str) and theme.isprintable() and len(theme) <= 100):
        why, theme = f"settings {settings_file()}: `theme` is not a theme's name; ignored", None
    if why:
        note(why)
    return theme


def remember_theme(name: str) -> None:
    """Best effort: a settings file that cannot be written leaves the theme unremembered, not the UI
    crashed. Written whole through engine.safefile: a link at its name is replaced, never followed."""
    from engine.safefile import write

    path = settings_file()
    data, _ = read_settings()
    data["theme"] = name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path.parent, path.name, json.dumps(data))
    except OSError:
        pass
