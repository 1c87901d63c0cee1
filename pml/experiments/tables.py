"""The one table type of the book: :class:`Table`, columns and rows of strings, rendered as HTML in a notebook, as
Markdown where a chapter glues it (``{glue:md}``) and as aligned text in a terminal. It lives with the experiments,
below the figures and the book machinery. :class:`MarkdownText` wraps Markdown that is not a table."""

from __future__ import annotations

import dataclasses
import html
from typing import Sequence

__all__ = ["MarkdownText", "Table"]


@dataclasses.dataclass(frozen=True, init=False)
class Table:
    """Columns and rows of strings that render as HTML, Markdown or aligned text."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    css_class: str = "pml-table"

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[str]], css_class: str = "pml-table"):
        columns = tuple(str(c) for c in columns)
        rows = tuple(tuple(str(c) for c in row) for row in rows)
        bad = [i for i, row in enumerate(rows) if len(row) != len(columns)]
        if bad:
            raise ValueError(f"row {bad[0]} has {len(rows[bad[0]])} cells; every row needs one per column "
                             f"({len(columns)}: {', '.join(columns)})")
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "css_class", css_class)

    def html(self) -> str:
        """The table as HTML, every heading and cell escaped."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f'<table class="{html.escape(self.css_class)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def markdown(self) -> str:
        """The table as a Markdown pipe table; cells are Markdown (``|`` inside a cell is escaped)."""
        def line(cells):
            return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"

        return "\n".join([line(self.columns), "|" + "---|" * len(self.columns), *map(line, self.rows)])

    def text(self) -> str:
        """The table as aligned plain text: a heading line, a rule, then one line per row."""
        widths = [max(len(x) for x in col) for col in zip(self.columns, *self.rows)]

        def line(cells):
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        return "\n".join([line(self.columns), "  ".join("-" * w for w in widths), *map(line, self.rows)])

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__


@dataclasses.dataclass(frozen=True)
class MarkdownText:
    """Markdown that is not a table (a command transcript in a code block): glue it and show it with
    ``{glue:md}``; ``str`` gives the text itself."""

    text: str

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text
