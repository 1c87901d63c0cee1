"""Markdown a chapter glues: :class:`MarkdownTable` wraps text that a notebook displays as Markdown.

The experiments build their chapters' tables as plain text; this wrapper lives with them, below the figures
(:mod:`pml.plotting` depends on the experiments, never the reverse).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MarkdownTable:
    """Text a notebook displays as Markdown: glue it with ``myst_nb.glue`` and show it with ``{glue:md}``."""

    text: str

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text
