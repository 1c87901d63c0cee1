"""The papermill runner on a throwaway book: failures name the chapter, the cell and the error."""

import pytest

from pml import paths
from pml.book import params, runner

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
:tags: [parameters]

profile = "paper"
n = 3
```
"""


@pytest.fixture
def fake_book(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    (tmp_path / "book" / "_params").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/index\nchapters:\n  - file: book/01_fake\n")
    (tmp_path / "book" / "index.md").write_text("# Index\n")
    return tmp_path


def write_chapter(root, body):
    (root / "book" / "01_fake.md").write_text(HEADER + "\n```{code-cell} ipython3\n" + body + "\n```\n")
    params._chapters_cached.cache_clear()


@pytest.mark.chapters
def test_raising_cell_names_chapter_cell_and_error(fake_book):
    write_chapter(fake_book, "x = n / 0")
    with pytest.raises(params.BookError, match=r"chapter 01_fake \(smoke\) failed in cell \d+.*ZeroDivisionError"):
        runner.run_chapter("01_fake", "smoke")


@pytest.mark.chapters
def test_stderr_is_an_error(fake_book):
    write_chapter(fake_book, "import sys\nprint('careful', file=sys.stderr)")
    with pytest.raises(params.BookError, match="wrote to stderr in cell .*careful"):
        runner.run_chapter("01_fake", "smoke")


@pytest.mark.chapters
def test_parameters_are_injected(fake_book):
    write_chapter(fake_book, "assert n == 5 and profile == 'smoke'")
    result = runner.run_chapter("01_fake", "smoke", {"n": 5})
    assert result.notebook == fake_book / "_build" / "executed" / "smoke+n=5" / "book" / "01_fake.ipynb"
    assert result.notebook.exists() and result.claims is None
