"""Prose statistics of a MyST chapter: sentence and paragraph lengths in words, as a reader meets them.

Only the running text counts: the front matter, code cells, directives (figures, admonitions' options), math
blocks, tables, headings and HTML comments are left out. A paragraph is a block of text lines between blank
lines; each list item is a paragraph of its own. Inline roles (``{glue:text}`name```, ``{doc}`x```) and inline
math count as one word each. Run ``python -m pml.book.prose book/*.md`` for the table of every chapter.
"""

from __future__ import annotations

import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProseStats", "paragraphs", "prose_stats", "sentences"]

_FENCE = re.compile(r"^(`{3,}|:{3,})")
_LABEL = re.compile(r"^\(.*\)=$")
_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s+")
_ROLE = re.compile(r"\{[\w:.-]+\}`[^`]*`")
_MATH = re.compile(r"\$[^$]+\$")
_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
# A sentence ends at . ! or ? followed by a space and a capital, a digit, a bracket or a quote (not "e.g. x").
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bFig)(?<!\bEq)(?<!\bSec)(?<!\bEqs)(?<!\bFigs)"
                           r"[.!?]\s+(?=[A-Z0-9(\"'*])")


def _text_blocks(markdown: str) -> list[list[str]]:
    """Runs of running-text lines (list items split apart), with code, directives, math, tables and headings out."""
    lines = markdown.splitlines()
    if lines and lines[0].strip() == "---":  # front matter
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
        lines = lines[end + 1:]
    blocks: list[list[str]] = [[]]
    fence = None
    in_math = in_comment = False
    for line in lines:
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence) and stripped.rstrip("`:") == "":
                fence = None
            continue
        if in_comment:
            in_comment = "-->" not in stripped
            continue
        if in_math:
            in_math = not stripped.endswith("$$")
            continue
        match = _FENCE.match(stripped)
        if match:
            fence = match.group(1)
            blocks.append([])
            continue
        if stripped.startswith("<!--"):
            in_comment = "-->" not in stripped
            blocks.append([])
            continue
        if stripped.startswith("$$"):
            in_math = not (len(stripped) > 2 and stripped.endswith("$$"))
            blocks.append([])
            continue
        if not stripped or stripped.startswith(("#", "|", "+++")) or _LABEL.match(stripped):
            blocks.append([])
            continue
        if _ITEM.match(line):
            blocks.append([_ITEM.sub("", line, count=1)])
            continue
        blocks[-1].append(stripped)
    return [b for b in blocks if b]


def _plain(text: str) -> str:
    text = _ROLE.sub("X", text)
    text = _MATH.sub("X", text)
    text = _CODE.sub("X", text)
    return _LINK.sub(r"\1", text).replace("**", "")


def paragraphs(markdown: str) -> list[str]:
    """The running-text paragraphs of a chapter (one per list item), roles, math and code as single words."""
    return [_plain(" ".join(block)) for block in _text_blocks(markdown)]


def sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph."""
    return [s for s in _SENTENCE_END.split(paragraph) if s.strip()]


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class ProseStats:
    """Word counts of one chapter's prose: sentences and paragraphs (median, 90th percentile, maximum)."""

    n_paragraphs: int
    sentence_median: float
    sentence_p90: float
    paragraph_median: float
    paragraph_p90: float
    paragraph_max: int

    def row(self, name: str) -> str:
        return (f"{name:<28} {self.n_paragraphs:>5} {self.sentence_median:>7.0f} {self.sentence_p90:>6.0f} "
                f"{self.paragraph_median:>7.0f} {self.paragraph_p90:>6.0f} {self.paragraph_max:>6}")


HEADER = f"{'chapter':<28} {'paras':>5} {'sent50':>7} {'sent90':>6} {'para50':>7} {'para90':>6} {'paramax':>6}"


def _quantile(values: list[int], q: float) -> float:
    return float(statistics.quantiles(values, n=10, method="inclusive")[int(q * 10) - 1]) if len(values) > 1 \
        else float(values[0])


def prose_stats(markdown: str) -> ProseStats:
    """Sentence and paragraph lengths, in words, of a MyST chapter's running text.

    Parameters
    ----------
    markdown : str
        The chapter's MyST Markdown source.

    Returns
    -------
    ProseStats
        Paragraph count, median and 90th percentile sentence and paragraph lengths, the longest paragraph.
    """
    paras = paragraphs(markdown)
    if not paras:
        return ProseStats(0, 0.0, 0.0, 0.0, 0.0, 0)
    para_words = [_words(p) for p in paras]
    sent_words = [_words(s) for p in paras for s in sentences(p)]
    return ProseStats(len(paras), float(statistics.median(sent_words)), _quantile(sent_words, 0.9),
                      float(statistics.median(para_words)), _quantile(para_words, 0.9), max(para_words))


def main(argv: list[str] | None = None) -> int:
    """Print the table of ``prose_stats`` for each chapter file named."""
    files = argv if argv is not None else sys.argv[1:]
    print(HEADER)
    for name in files:
        print(prose_stats(Path(name).read_text(encoding="utf-8")).row(Path(name).stem))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
