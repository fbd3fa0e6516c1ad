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


def remembered_theme() -> str | None:
    try:
        return json.loads(settings_file().read_text()).get("theme")
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return None


def remember_theme(name: str) -> None:
    path = settings_file()
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    data["theme"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
