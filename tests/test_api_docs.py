"""The API reference (book/api): its docstring hook, and every public name of the documented packages has a NumPy-style
docstring and a page."""

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


# --- every public name of the documented packages has a NumPy-style docstring and a place in book/api -----------

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


@pytest.mark.parametrize("name, obj", _documented_names(), ids=lambda v: v if isinstance(v, str) else "")
def test_public_name_has_numpy_sections(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{name} has no docstring"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return  # an exception: its docstring says when it is raised
    params = [p for p in inspect.signature(obj).parameters if p != "self"]
    if params:
        assert re.search(r"^Parameters\n-{10}", doc, re.M), f"{name}: no 'Parameters' section"
    if inspect.isfunction(obj):
        assert re.search(r"^(Returns\n-{7}|Yields\n-{6})", doc, re.M), f"{name}: no 'Returns' section"


def test_every_documented_module_has_a_page():
    pages = "\n".join(p.read_text() for p in (paths.book_dir() / "api").glob("*.md"))
    documented = set(re.findall(r"\.\. automodule:: ([\w.]+)", pages))
    missing = [m for m in _modules() if m not in documented and not m.startswith("pml.fitting.")]
    missing += [m for m in ("pml.fitting.guide", "pml.fitting.tables", "pml.fitting.commands") if m not in documented]
    assert not missing, f"modules without a section in book/api: {missing}"
    for name in importlib.import_module("pml.fitting").__all__:
        obj = getattr(importlib.import_module("pml.fitting"), name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert re.search(rf"\.\. auto(function|class|exception):: {name}\b", pages), f"pml.fitting.{name}"
