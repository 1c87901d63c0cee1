"""The API reference (book/api): its docstring hook, the docstring rule (NumPy sections on the entry points, at least
one line on every other public name) and a page for every documented module."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

from pml import paths
from pml.book.docstrings import escape_bars


def test_bars_are_escaped_outside_literals_roles_and_literal_blocks():
    lines = ["A norm |r|^2 and ``a | b`` and :func:`x|y`.", "", "Python::", "", "    a = b | c", "", "After |D|.",
             ">>> 1 | 2"]
    assert escape_bars(lines) == [r"A norm \|r\|^2 and ``a | b`` and :func:`x|y`.", "", "Python::", "",
                                  "    a = b | c", "", r"After \|D\|.", ">>> 1 | 2"]


# --- the public names of the documented packages and their place in book/api ---------------------------------

PACKAGES = ("pml.approx", "pml.nn", "pml.fitting")
MODULES = ("pml.metrics", "pml.equations")


def _modules() -> list[str]:
    names = list(MODULES)
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    return names


def _public(module_name: str) -> list[tuple[str, object]]:
    """The module's ``__all__`` (functions and classes), else what it defines without a leading underscore; for
    the modules of pml.fitting without ``__all__`` (re-exported by the package) nothing."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        if module_name.startswith("pml.fitting."):
            return []
        names = [n for n, o in vars(module).items() if not n.startswith("_") and getattr(o, "__module__", "") ==
                 module_name]
    objs = [(n, getattr(module, n)) for n in names]
    return [(n, o) for n, o in objs if inspect.isfunction(o) or inspect.isclass(o)]


def _documented_names() -> list[tuple[str, object]]:
    out = [(f"pml.fitting.{n}", o) for n, o in _public("pml.fitting")]
    for module in _modules():
        out += [(f"{module}.{n}", o) for n, o in _public(module)]
    return out


# --- the docstring rule ------------------------------------------------------------------------------------------
# Full NumPy sections (Parameters, and Returns or Yields for a function) on the entry points a user calls: the
# names of ENTRY_POINTS and every name the book links with a {py:func}, {py:class} or {py:meth} role. Every other
# public function and class of the documented packages needs a docstring of at least one line; its arguments are
# described by its signature and its entry point.

ENTRY_POINTS = (
    # pml.fit and the commands `pml fit` / `pml predict`
    "pml.fit", "pml.load",
    "pml.fitting.fit", "pml.fitting.load", "pml.fitting.diagnose", "pml.fitting.float64_floor",
    "pml.fitting.FittedModel", "pml.fitting.FittedModel.predict", "pml.fitting.FittedModel.save",
    "pml.fitting.FittedModel.load", "pml.fitting.PrecisionReport",
    "pml.fitting.commands.fit_file", "pml.fitting.commands.predict_file",
    # the engine: a task, a sweep of tasks and running a sweep
    "pml.engine.Task", "pml.engine.Task.run", "pml.engine.Sweep", "pml.engine.Sweep.tasks",
    "pml.engine.Sweep.assemble", "pml.engine.run",
    # the method classes and their public methods
    "pml.approx.simplex.SimplexInterpolator", "pml.approx.simplex.SimplexInterpolator.find",
    "pml.approx.splines.Tricubic", "pml.approx.splines.Tricubic.from_grid", "pml.approx.splines.Tricubic.from_points",
    "pml.approx.splines.Tricubic.from_derivatives", "pml.approx.splines.Tricubic.evaluate",
    "pml.approx.classical.PolynomialLSQ.fit", "pml.approx.classical.PolynomialLSQ.predict",
    "pml.approx.classical.Chebyshev.fit", "pml.approx.classical.Chebyshev.predict",
    "pml.approx.classical.RBF.fit", "pml.approx.classical.RBF.predict",
    "pml.approx.kernel.KernelModel", "pml.approx.kernel.KernelModel.predict",
    "pml.nn.networks.BatchedMLP", "pml.nn.networks.ModularMLP",
    # the fitting functions and trainers the chapters call
    "pml.approx.piecewise.fit_piecewise_polynomial", "pml.approx.kernel.fit",
    "pml.nn.training.train", "pml.nn.training.train_batched",
    "pml.nn.bfgs.bfgs", "pml.nn.lm.LMOptions", "pml.nn.lm.least_squares", "pml.nn.lm.train",
    "pml.nn.boosting.boost", "pml.nn.multistage.fit", "pml.nn.readout.fit", "pml.nn.deep.fit",
)
BOOK_LINK = re.compile(r"\{py:(?:func|class|meth)\}`(?:[^`<]*<)?(pml\.[\w.]+)")


def _resolve(dotted: str) -> object:
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = inspect.getattr_static(obj, attr) if inspect.isclass(obj) else getattr(obj, attr)
        return getattr(obj, "__func__", obj)  # a classmethod or staticmethod: its function
    raise ImportError(dotted)


def _book_links() -> list[str]:
    return sorted({m for p in paths.book_dir().rglob("*.md") for m in BOOK_LINK.findall(p.read_text())})


def _entry_points() -> list[str]:
    return sorted(set(ENTRY_POINTS) | set(_book_links()))


def _has_sections(name: str, obj: object) -> None:
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{name} has no docstring"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return  # an exception: its docstring says when it is raised
    params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    if params:
        assert re.search(r"^Parameters\n-{10}", doc, re.M), f"{name}: an entry point without a 'Parameters' section"
    if inspect.isfunction(obj):
        assert re.search(r"^(Returns\n-{7}|Yields\n-{6})", doc, re.M), f"{name}: an entry point without 'Returns'"


@pytest.mark.parametrize("name", _entry_points())
def test_entry_point_has_numpy_sections(name):
    _has_sections(name, _resolve(name))


@pytest.mark.parametrize("name, obj", _documented_names(), ids=lambda v: v if isinstance(v, str) else "")
def test_public_name_has_a_docstring(name, obj):
    assert (inspect.getdoc(obj) or "").strip(), f"{name} has no docstring (one line at least)"


def test_every_documented_module_has_a_page():
    pages = "\n".join(p.read_text() for p in (paths.book_dir() / "api").glob("*.md"))
    documented = set(re.findall(r"\.\. automodule:: ([\w.]+)", pages))
    missing = [m for m in _modules() if m not in documented and not m.startswith("pml.fitting.")]
    missing += [m for m in ("pml.fitting.guide", "pml.fitting.datafiles", "pml.fitting.commands") if m not in documented]
    assert not missing, f"modules without a section in book/api: {missing}"
    for name in importlib.import_module("pml.fitting").__all__:
        obj = getattr(importlib.import_module("pml.fitting"), name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert re.search(rf"\.\. auto(function|class|exception):: {name}\b", pages), f"pml.fitting.{name}"
