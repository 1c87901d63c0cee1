"""The prose statistics: what counts as running text, and how sentences and paragraphs are cut."""

from pml.book import prose

CHAPTER = """---
jupytext:
  format_name: myst
---

(sec-x)=
# 1. A title that is no paragraph

One short sentence here. A second one follows, e.g. with an abbreviation, and Fig. 2 inside it.

```{code-cell} ipython3
x = "This. Is. Code."
```

- A list item is a paragraph of its own.
- So is this one, with {glue:text}`some_value` and $N^{-2/d}$ as one word each.

$$
a = b. \\quad C = d.
$$

| table | row |
|---|---|
"""


def test_only_running_text_counts():
    paras = prose.paragraphs(CHAPTER)
    assert len(paras) == 3
    assert paras[0].startswith("One short sentence")
    assert not any("Code" in p or "title" in p or "table" in p for p in paras)


def test_sentences_split_at_full_stops_not_abbreviations():
    first = prose.paragraphs(CHAPTER)[0]
    assert [len(s.split()) for s in prose.sentences(first)] == [4, 13]


def test_stats_of_a_chapter():
    stats = prose.prose_stats(CHAPTER)
    assert stats.n_paragraphs == 3
    assert stats.paragraph_max == 17  # the first paragraph: 4 + 13 words
    assert stats.sentence_median == 10.5  # sentences of 4, 13, 9 and 12 words (roles and math one word each)
    assert prose.prose_stats("").n_paragraphs == 0
