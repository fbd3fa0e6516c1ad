"""The engine runs without the UI; the UI opens without torch."""

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[str]:
    names = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=package + "."):
        names.append(info.name)
    return names


def _imports_in_fresh_python(modules: list[str], forbidden: str) -> str:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(k for k in sys.modules if k == {forbidden!r} or k.startswith({forbidden + '.'!r})))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()


def test_engine_never_imports_textual():
    assert _imports_in_fresh_python(_modules("engine"), "textual") == "[]"


def test_workbench_never_imports_torch():
    assert _imports_in_fresh_python(_modules("workbench"), "torch") == "[]"
    assert _imports_in_fresh_python(_modules("workbench"), "transformers") == "[]"
