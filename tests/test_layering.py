"""The engine runs without the UI; the UI opens without torch."""

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[str]:
    names = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=package + "."):
        if not info.name.endswith(".__main__"):  # running it is not importing it
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


def test_a_wheel_carries_the_themes_gsm8k_and_the_example(tmp_path):
    import subprocess
    import sys
    import zipfile

    out = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    # every package of the tree is in the wheel (pyproject lists them by hand: engine/plan/ was once left out)
    packages = {str(p.parent.relative_to(ROOT)) for pkg in ("engine", "workbench") for p in (ROOT / pkg).rglob("__init__.py")}
    assert not {p for p in packages if f"{p}/__init__.py" not in names}
    assert "workbench/theme_files/paper.yaml" in names and "workbench/theme_files/harbor.yaml" in names
    assert {"engine/data/files/gsm8k/train.jsonl", "engine/data/files/gsm8k/test.jsonl", "engine/data/files/gsm8k/LICENSE"} <= set(names)
    assert {"workbench/example/default-run/events.jsonl", "workbench/example/default-run/status.json",
            "workbench/example/stepper-tour/events.jsonl"} <= set(names)
    # installed from the wheel (no source tree beside it), the workbench finds its themes
    target = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                          str(next(tmp_path.glob("*.whl")))], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    probe = "from workbench.themes import THEMES_DIR, load_themes; print(THEMES_DIR, sorted(t.name for t in load_themes()))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**__import__("os").environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0 and str(target) in out.stdout and "['harbor', 'paper']" in out.stdout, out.stdout + out.stderr


def _import_graph(packages=("engine", "workbench")) -> dict[str, set[str]]:
    """module -> the project modules it imports, counting imports inside functions too."""
    import ast

    files = {}
    for pkg in packages:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(full if full in files else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def test_no_import_cycles_in_engine_or_workbench():
    graph = _import_graph()
    assert "engine.tasks.trace" in graph["engine.tasks"] and graph["engine.report"]  # the graph sees imports
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


# what may drive training: the recipe and the run around it, the command line, and train/ itself
TRAIN_DRIVERS = ("engine.train", "engine.recipe", "engine.run", "engine.cli")


def test_nothing_beneath_the_training_loops_imports_them():
    """Imports run one way, down: a decoder, a task or an integration that imports engine.train
    ties the lower layer to the loops (and, through them, to the recipe) and invites a cycle."""
    graph = _import_graph(("engine",))
    assert "engine.train.loss" in graph["engine.train.sft"]  # the graph sees imports of engine/train
    upward = sorted(f"{module} imports {dep}" for module, deps in graph.items() for dep in deps
                    if (dep == "engine.train" or dep.startswith("engine.train."))
                    and not any(module == d or module.startswith(d + ".") for d in TRAIN_DRIVERS))
    assert not upward, "\n".join(upward)
