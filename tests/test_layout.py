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

# The science package, bottom to top; a module may import from its own layer's earlier modules
# and any layer below.
LAYERS = {
    "foundation": ("progress", "config", "stage_keys", "store", "machine"),
    "inputs": ("synthetic", "original", "data"),
    "models": ("training", "cnn", "zoo"),
    "measures": ("measures", "stats"),
    "method": ("alignment", "networks", "cyclegan", "stacked_gans", "behaviour", "fusion"),
    "evaluation": (
        "evaluate",
        "gan_checks",
        "verdicts",
        "words",
        "report",
        "original_protocol",
        "figures",
        "comparison_figures",
    ),
    "orchestration": ("pipeline", "sweep", "ablation"),
}
# The tool that builds the book (`kernelfusion/build/`), above the science: it imports the
# science, the science never imports it. The command line (`__main__`) sits on top of both.
BUILD = ("build.jupyter_kernels", "build.compute", "build.book", "build.pdf", "__main__")
ORDER = [module for layer in LAYERS.values() for module in layer] + list(BUILD)
# the package's door, the build package's door, and the book's Sphinx plug-ins (imported by
# Sphinx, importing nothing of the package)
OUTSIDE = {"__init__", "build.__init__", "build.mystnb_plotly", "build.sphinx_book"}


def module_name(path: Path) -> str:
    """`path`'s module name inside the package: `config`, `build.book`."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def modules() -> set[str]:
    return {module_name(p) for p in PACKAGE.rglob("*.py")}


def package_imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """The package modules `path` imports, and those imported inside a function (line, name)."""
    tree = ast.parse(path.read_text())
    known, me = modules(), module_name(path)
    here = me.split(".")[:-1]  # the package `path` sits in, below kernelfusion
    found: set[str] = set()
    inner: list[tuple[int, str]] = []
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - (node.level - 1)] + (node.module or "").split(".")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kernelfusion"):
            base = node.module.split(".")[1:]
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("kernelfusion.") for a in node.names]
            base = None
        else:
            continue
        if base is not None:
            base = [b for b in base if b]
            prefix = ".".join(base)
            names = [prefix] if prefix in known else []
            names += [f"{prefix}.{a.name}".lstrip(".") for a in node.names]
        names = [n for n in names if n in known and n != me]
        found.update(names)
        if names and id(node) not in top:
            inner += [(node.lineno, n) for n in names]
    return found, inner


def graph() -> dict[str, set[str]]:
    return {module_name(p): package_imports(p)[0] for p in PACKAGE.rglob("*.py")}


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
    assert modules() - OUTSIDE == set(ORDER), "name each new module's layer in LAYERS or BUILD"


def test_every_module_is_in_the_readmes_layout_table():
    readme = (PACKAGE.parent / "README.md").read_text()
    missing = sorted(
        m for m in modules() - {"__init__", "build.__init__"} if f"`{m}`" not in readme
    )
    assert not missing, f"the README's layout table names no {missing}"


def test_no_science_module_imports_the_build_tool():
    science = [m for m in ORDER if m not in BUILD]
    found = {m: sorted(i for i in graph()[m] if i.startswith("build")) for m in science}
    assert {m: i for m, i in found.items() if i} == {}


@pytest.mark.parametrize("module", ORDER)
def test_a_module_imports_only_from_below(module):
    imports, inner = package_imports(PACKAGE / f"{module.replace('.', '/')}.py")
    above = sorted(m for m in imports if m in ORDER and ORDER.index(m) > ORDER.index(module))
    assert not above, f"{module} imports {above}, which sit above it in LAYERS"
    assert not inner, f"{module} imports package modules inside functions: {inner}"


def test_no_module_is_much_over_600_lines():
    lengths = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 650} == {}


def test_the_package_door_imports_a_module_when_it_is_first_used():
    """`import kernelfusion` imports none of its modules (the book's Sphinx plug-ins run in every
    Jupyter Book build: they imported torch and the whole package, 2.7 s); `kf.<module>` imports
    that one, and a name that is no module is an AttributeError."""
    script = textwrap.dedent("""
        import sys
        import kernelfusion as kf, kernelfusion.build.sphinx_book, kernelfusion.build.mystnb_plotly
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
