"""A Sphinx extension for the book's API reference: docstrings written for a terminal read well as reStructuredText.

pml's docstrings write norms as ``|r|^2`` and sizes as ``|D|``; in reStructuredText ``|name|`` is a substitution
reference, which with ``-W`` fails the build. :func:`escape_bars` escapes every ``|`` outside inline literals, roles and
literal blocks before autodoc parses a docstring, so the source stays plain text for ``help()``. Listed in
``_config.yml`` (``sphinx: extra_extensions``)."""

from __future__ import annotations

import re

_INLINE = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`_?)")


def _escape_line(line: str) -> str:
    parts = _INLINE.split(line)
    return "".join(p if i % 2 else p.replace("|", r"\|") for i, p in enumerate(parts))


def escape_bars(lines: list[str]) -> list[str]:
    """``lines`` (one docstring) with ``|`` escaped outside ``literals``, `roles` and ``::`` literal blocks."""
    out = []
    literal_indent = None  # inside a literal block: lines indented deeper than the line that ended with '::'
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not line.strip() or indent > literal_indent:
                out.append(line)
                continue
            literal_indent = None
        if line.lstrip().startswith(">>>"):
            out.append(line)
            continue
        out.append(_escape_line(line))
        if line.rstrip().endswith("::"):
            literal_indent = indent
    return out


def _process(app, what, name, obj, options, lines):
    lines[:] = escape_bars(lines)


def setup(app):
    """Register the docstring hook with Sphinx (``autodoc-process-docstring``, after napoleon's)."""
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _process, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
