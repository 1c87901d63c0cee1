"""The API reference (book/api): its docstring hook, and every public name of the documented packages has a NumPy-style
docstring and a page."""

from __future__ import annotations

from pml.book.docstrings import escape_bars


def test_bars_are_escaped_outside_literals_roles_and_literal_blocks():
    lines = ["A norm |r|^2 and ``a | b`` and :func:`x|y`.", "", "Python::", "", "    a = b | c", "", "After |D|.",
             ">>> 1 | 2"]
    assert escape_bars(lines) == [r"A norm \|r\|^2 and ``a | b`` and :func:`x|y`.", "", "Python::", "",
                                  "    a = b | c", "", r"After \|D\|.", ">>> 1 | 2"]
