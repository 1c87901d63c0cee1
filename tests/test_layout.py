"""The package layout shows the architecture: dependencies point one way and there are no import cycles.

Layers, lowest first: infrastructure and problems, the numerical methods (``approx``, ``nn``), the generators that
build on networks (``teacher``), the user-facing fitting tool and the benchmarks, the chapters' experiments, their
plotting, the book machinery, and the command line. A module may import only its own layer or lower ones; every
import statement counts, function-level ones included (read statically, see :mod:`pml.engine.closure`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pml.engine.closure import PACKAGE_DIR, _imported, module_path

LAYERS = [
    {"pml.config", "pml.paths", "pml.threads", "pml.metrics", "pml.scaling", "pml.data", "pml.equations",
     "pml.engine"},
    {"pml.approx", "pml.nn"},
    {"pml.teacher"},
    {"pml.fitting", "pml.benchmarks"},
    {"pml.experiments"},
    {"pml.plotting"},
    {"pml.book"},
    {"pml.cli"},
]
MAX_TOP_LEVEL_MODULES = 12


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        names.append(".".join(("pml",) + parts).removesuffix(".__init__"))
    return names


def _layer(module: str) -> int:
    for level, group in enumerate(LAYERS):
        if any(module == g or module.startswith(g + ".") for g in group):
            return level
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layout.py")


def _graph() -> dict[str, set[str]]:
    modules = set(_modules())
    graph = {}
    for name in modules:
        if name == "pml":
            continue  # the package's lazy `pml.fit` entry point
        imported = _imported(name, module_path(name))
        # importing a submodule runs its parent packages' __init__: not an edge of its own
        graph[name] = {m for m in imported if m in modules and m != "pml" and not name.startswith(m + ".")}
    return graph


def test_every_module_is_in_a_layer_and_imports_only_downward():
    upward = [f"{src} (layer {_layer(src)}) imports {dst} (layer {_layer(dst)})"
              for src, dsts in sorted(_graph().items()) for dst in sorted(dsts) if _layer(dst) > _layer(src)]
    assert not upward, "imports that point upward:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_nothing_imports_the_command_line():
    users = sorted(src for src, dsts in _graph().items() if "pml.cli" in dsts)
    assert not users, f"only the entry point may import pml.cli; imported by {users}"


def test_top_level_stays_small():
    top = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules at the top of pml/: {top}"


@pytest.mark.parametrize("package", ["approx", "nn", "fitting", "engine", "book", "experiments", "plotting"])
def test_layer_packages_exist(package):
    assert (Path(PACKAGE_DIR) / package / "__init__.py").is_file()
