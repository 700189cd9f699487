"""The package's shape: its modules form layers, each importing only from layers below it (so
there is no import cycle), and no module imports another of the package inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kernelfusion"

# Bottom to top; a module may import from its own layer's earlier modules and any layer below.
LAYERS = {
    "foundation": ("progress", "config", "keys", "store", "machine"),
    "inputs": ("synthetic", "original", "data"),
    "models": ("training", "cnn", "zoo"),
    "measures": ("metrics", "stats"),
    "method": ("alignment", "translators", "cyclegan", "stacking", "behaviour", "models"),
    "evaluation": (
        "evaluate",
        "gan_checks",
        "verdicts",
        "report",
        "replication",
        "plots",
        "result_plots",
    ),
    "orchestration": (
        "pipeline",
        "sweep",
        "ablation",
        "ahead",
        "kernels",
        "book",
        "printing",
        "__main__",
    ),
}
ORDER = [module for layer in LAYERS.values() for module in layer]
OUTSIDE = {"__init__", "mystnb_plotly", "sphinx_book"}  # the package's door and book plug-ins


def package_imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """The package modules `path` imports, and those imported inside a function (line, name)."""
    tree = ast.parse(path.read_text())
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found: set[str] = set()
    inner: list[tuple[int, str]] = []
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kernelfusion"):
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("kernelfusion.")]
        names = [n for n in names if n in modules and n != path.stem]
        found.update(names)
        if names and id(node) not in top:
            inner += [(node.lineno, n) for n in names]
    return found, inner


def graph() -> dict[str, set[str]]:
    return {p.stem: package_imports(p)[0] for p in PACKAGE.glob("*.py")}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `edges` (module -> the modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for other in sorted(edges.get(node, ())):
            if state.get(other) == 1:
                return path[path.index(other) :] + [other]
            if other not in state and (found := visit(other)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_passes_a_tree():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    assert cycle(graph()) is None


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - OUTSIDE
    assert modules == set(ORDER), "name each new module's layer in LAYERS (and in the README)"


@pytest.mark.parametrize("module", ORDER)
def test_a_module_imports_only_from_below(module):
    imports, inner = package_imports(PACKAGE / f"{module}.py")
    above = sorted(m for m in imports if m in ORDER and ORDER.index(m) > ORDER.index(module))
    assert not above, f"{module} imports {above}, which sit above it in LAYERS"
    assert not inner, f"{module} imports package modules inside functions: {inner}"


def test_no_module_is_much_over_600_lines():
    lengths = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 650} == {}


def test_the_package_door_imports_a_module_when_it_is_first_used():
    """`import kernelfusion` imports none of its modules (the book's Sphinx plug-ins run in every
    Jupyter Book build: they imported torch and the whole package, 2.7 s); `kf.<module>` imports
    that one, and a name that is no module is an AttributeError."""
    script = textwrap.dedent("""
        import sys
        import kernelfusion as kf, kernelfusion.sphinx_book, kernelfusion.mystnb_plotly
        assert not {"torch", "kernelfusion.store"} & set(sys.modules), sys.modules.keys()
        assert kf.config.load("smoke").preset == "smoke" and "torch" not in sys.modules
        assert kf.pipeline.run and "torch" in sys.modules
        try:
            kf.no_such_module
        except AttributeError:
            print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["ok"], done.stderr[-2000:]
