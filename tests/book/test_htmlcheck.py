"""Tests of pml.book.htmlcheck: pure helpers on small strings and files, then one small generated site checked
in the system Chromium (through Playwright), one page per defect the check must find."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

import pytest

from pml.book import htmlcheck
from pml.book.htmlcheck import caption_problems, link_problems, math_problems, outside_folder, toc_pages

# --------------------------------------------------------------------------- pure helpers


def test_math_problems_raw_tex():
    for text in ("Energy $$E = mc^2$$ here", "inline \\(x^2\\) left", "display \\[\n\\int_0^1 x\\,dx\n\\] left"):
        problems = math_problems(text)
        assert len(problems) == 1 and "raw TeX left untypeset" in problems[0], text
    assert "2 piece(s)" in math_problems("$$a$$ and $$b$$")[0]
    for text in ("No math here.", "It costs $5, or $$ in slang", "a lone \\( without its end"):
        assert math_problems(text) == [], text


def test_math_problems_mathjax_errors():
    problems = math_problems("typeset text", errors=["Missing close brace"], red=["\\foo", "\\bar", "\\foo"])
    assert problems == ["MathJax reported 1 error(s), e.g. 'Missing close brace'",
                        "undefined TeX macro(s) shown in red: \\bar, \\foo"]


def test_caption_problems_good_captions():
    good = [("fig-2", "", "Fig. 2: absolute test RMSE against N"), ("fig-1a", "", "Fig. 1a: y = cos 2x fitted"),
            ("fig-6b", "", "Fig. 6(b), drawn and measured: the gadget"), ("b3", "", "Figure B3: piecewise fits"),
            ("b12", "", " Figure B12:\n  wrapped  caption"), ("fig-9", "", "Fig. 9: as Fig. 8, for z = xy")]
    assert caption_problems(good) == []


def test_caption_problems_doubled_numbers():
    problems = caption_problems([
        ("fig-2", "Fig. 6 ", "Fig. 2: absolute test RMSE"),  # Sphinx's counter in its span (numfig on)
        ("", "Fig. 7", "Measured floors"),  # a counter, and no number of its own
        ("fig-3", "", "Fig. 7 Fig. 3: dense and modular"),  # counters read as text
        ("fig-b4", "", "Figure 15 Fig. 4: splines"),
        ("fig-b5", "", "Fig. 15 Figure B5: the chart applied"),
        ("fig-b6", "", "Figure 3: Figure B6: stages"),
    ])
    assert problems == [
        "figure 'fig-2': caption shows Sphinx's counter, 'Fig. 6 Fig. 2: absolute test RMSE' (set numfig: false, "
        "one number each)",
        "a figure: caption shows Sphinx's counter, 'Fig. 7 Measured floors' (set numfig: false, one number each)",
        "figure 'fig-3': caption shows two numbers, 'Fig. 7 Fig. 3: dense and modular' (set numfig: false, "
        "one number each)",
        "figure 'fig-b4': caption shows two numbers, 'Figure 15 Fig. 4: splines' (set numfig: false, one number "
        "each)",
        "figure 'fig-b5': caption shows two numbers, 'Fig. 15 Figure B5: the chart applied' (set numfig: false, "
        "one number each)",
        "figure 'fig-b6': caption shows two numbers, 'Figure 3: Figure B6: stages' (set numfig: false, one number "
        "each)",
    ]


def test_caption_problems_captions_without_their_number():
    bad = [("fig-1", "", "Measured precision floors. Storing exact values"),
           ("fig-4", "", "The paper's Fig. 4, redrawn"), ("fig-x", "", "Figure 3: a number of the old counter"),
           ("fig-y", "", "Fig.2: no space"), ("fig-z", "", "Figure B: no number"), ("fig-w", "", "")]
    problems = caption_problems(bad)
    assert [p.split(":")[0] for p in problems] == [f"figure {name!r}" for name, _, _ in bad]
    assert all("caption does not start with 'Fig. <paper number>' or 'Figure B<n>'" in p for p in problems)
    assert "'Measured precision floors. Storing exact values'" in problems[0]


def test_outside_folder(tmp_path):
    html = tmp_path / "html"
    assert outside_folder("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js", html)
    assert outside_folder("http://localhost:8000/x.js", html)
    assert outside_folder((tmp_path / "elsewhere.js").as_uri(), html)
    assert outside_folder((html / ".." / "escape.js").as_uri(), html)
    assert not outside_folder((html / "_static" / "x.js").as_uri(), html)
    assert not outside_folder("data:image/png;base64,AAAA", html)
    assert not outside_folder("about:blank", html)


def test_link_problems(tmp_path):
    html = tmp_path / "html"
    (html / "book" / "sub").mkdir(parents=True)
    (html / "book" / "other.html").write_text('<html><body><h1 id="known">x</h1><a name="old"></a></body></html>')
    (html / "book" / "sub" / "index.html").write_text("<html></html>")
    (tmp_path / "outside.html").write_text("<html></html>")
    page = html / "book" / "p.html"
    hrefs = [
        "#here", "#", "#top", "https://arxiv.org/abs/2210.13447#x", "mailto:a@b.c",  # fine
        "other.html", "other.html#known", "other.html#old", "sub/",  # fine
        "#nowhere", "gone.html", "other.html#unknown", "../../outside.html",  # broken
    ]
    problems = link_problems(page, hrefs, html, {page: {"here"}})
    assert problems == [
        "link '#nowhere': no element with id 'nowhere' on this page",
        "link 'gone.html': book/gone.html is missing",
        "link 'other.html#unknown': no element with id 'unknown' in other.html",
        "link '../../outside.html' leads outside the HTML folder",
    ]
    # Names of an opened page come from its live DOM (``ids``), not from its file.
    other = html / "book" / "other.html"
    assert link_problems(page, ["other.html#added-by-a-script"], html, {other: {"added-by-a-script"}}) == []


def test_toc_pages(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/00_intro\nparts:\n"
        "- caption: A\n  chapters:\n  - file: book/01_introduction\n  - file: book/02_x.md\n"
        "    sections:\n    - file: book/02a_y\n    - url: https://example.com\n      title: ext\n"
        "- caption: B\n  chapters:\n  - file: book/01_introduction\n"
    )
    assert toc_pages(toc) == ["book/00_intro.html", "book/01_introduction.html", "book/02_x.html", "book/02a_y.html"]


def test_main_without_chromium(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(htmlcheck.shutil, "which", lambda name: None)
    assert htmlcheck.main([str(tmp_path), "--page", "book/x.html"]) == 2
    assert "apt-get install" in capsys.readouterr().err
    with pytest.raises(htmlcheck.ChromiumMissing):
        htmlcheck.check_book(tmp_path, ["book/x.html"])


# --------------------------------------------------------------------------- a small site in Chromium


def png_bytes(width: int = 8, height: int = 6) -> bytes:
    """A valid greyscale PNG built by hand (no image library needed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + bytes([128] * width) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _mathjax_dir() -> Path | None:
    """MathJax 3 shipped by the sphinx-mathjax-offline package (installed with the book extra), if present."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    return path if (path / "tex-chtml.js").is_file() else None


MATHJAX_HEAD = ('<script>window.MathJax = {"options": {"processHtmlClass": "math"}}</script>'
                '<script defer src="../_static/mathjax/tex-chtml.js"></script>')
MATH = ('<p>Inline <span class="math notranslate nohighlight">\\(E = mc^2\\)</span></p>'
        '<div class="math notranslate nohighlight">\n\\[\\int_0^1 x^2\\,dx\\]</div>')
TOGGLE = ('<details class="admonition hide above-input"><summary>Show code cell source</summary>'
          '<div class="cell_input"><pre>import numpy as np  # "$$" and \\( in code are not math</pre></div></details>')


#: A figure as Sphinx writes it (sphinx-book-theme), with its caption's counter span (numfig on) or none.
FIGURE = ('<figure class="align-default" id="{id}"><img alt="fig" src="../_images/fig.png"><figcaption><p>{number}'
          '<span class="caption-text">{text}</span><a class="headerlink" href="#{id}" title="Link">#</a></p>'
          '</figcaption></figure>')


def html_page(body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>"
            f'<main><article class="bd-article"><h1 id="top-title">A page</h1>{body}</article></main></body></html>')


#: One page per defect the check must find, and the problem it must report there (a substring).
DEFECTS = {
    "missing_image": ('<img alt="fig" src="../_images/missing.png">',
                      ["image '../_images/missing.png' shows nothing", "could not load", "missing.png"]),
    "corrupt_png": ('<img alt="fig" src="../_images/corrupt.png">', ["image '../_images/corrupt.png' shows nothing"]),
    "remote_script": ('<script src="https://cdn.example.invalid/lib.js"></script>',
                      ["requested https://cdn.example.invalid/lib.js (outside the HTML folder)"]),
    "raw_tex": ("<p>Left as typed: $$x^2 + y^2$$</p>", ["1 piece(s) of raw TeX left untypeset", "$$x^2 + y^2$$"]),
    "broken_anchor": ('<p>See <a href="#no-such-section">below</a>.</p>',
                      ["link '#no-such-section': no element with id 'no-such-section' on this page"]),
    "console_error": ('<script>console.error("the figure data did not arrive")</script>',
                      ["console error: the figure data did not arrive"]),
    "script_exception": ("<script>undefinedFunction()</script>",
                         ["JavaScript error: undefinedFunction is not defined"]),
    "broken_link": ('<p><a href="gone.html">next chapter</a></p>', ["link 'gone.html': book/gone.html is missing"]),
    "stuck_toggle": ("<style>details[open] > div { display: none }</style>" + TOGGLE,
                     ["toggle 'Show code cell source': its content stays hidden after a click"]),
    "figure_counter": (FIGURE.format(id="fig-2", number='<span class="caption-number">Fig. 6 </span>',
                                     text="Fig. 2: scaling"),
                       ["figure 'fig-2': caption shows Sphinx's counter, 'Fig. 6 Fig. 2: scaling'"]),
    "figure_unnumbered": (FIGURE.format(id="fig-b1", number="", text="Measured precision floors"),
                          ["figure 'fig-b1': caption does not start with 'Fig. <paper number>' or 'Figure B<n>': "
                           "'Measured precision floors'"]),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A small book: a clean page, one page per defect, the problems the check found, and the HTML folder."""
    if htmlcheck.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium); the browser check needs it")
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -c constraints.txt -e .[test])")
    html = tmp_path_factory.mktemp("site") / "html"
    (html / "book").mkdir(parents=True)
    (html / "_images").mkdir()
    (html / "_images" / "fig.png").write_bytes(png_bytes())
    good = png_bytes()
    (html / "_images" / "corrupt.png").write_bytes(good[:33] + bytes(len(good) - 33))  # header kept, data zeroed
    mathjax = _mathjax_dir()
    if mathjax is not None:
        (html / "_static").mkdir()
        (html / "_static" / "mathjax").symlink_to(mathjax, target_is_directory=True)
    head, math = (MATHJAX_HEAD, MATH) if mathjax is not None else ("", "")
    clean = (f'{math}<img alt="fig" src="../_images/fig.png">{TOGGLE}'
             '<p><a href="#top-title">top</a>, <a href="defect_raw_tex.html#top-title">another page</a>, '
             '<a href="https://arxiv.org/abs/2210.13447">the paper</a> (a link, not a load)</p>'
             # Jupyter Book 1 puts this script in twice (a harmless console error the check knows); the URL is no load.
             + '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>' * 2)
    (html / "book" / "clean.html").write_text(html_page(clean, head))
    (html / "book" / "figures.html").write_text(html_page(
        FIGURE.format(id="fig-b3", number="", text="Figure B3: a figure of ours")
        + FIGURE.format(id="fig-6b", number="", text="Fig. 6(b), drawn: <em>the paper's</em>")))
    for name, (body, _) in DEFECTS.items():
        (html / "book" / f"defect_{name}.html").write_text(html_page(body))
    pages = ["book/clean.html", "book/figures.html", *[f"book/defect_{name}.html" for name in DEFECTS], "book/absent.html"]
    shots = html.parent / "screenshots"
    problems = htmlcheck.check_book(html, pages, min_images={"book/clean.html": 1}, screenshots=shots)
    return problems, html, mathjax is not None


def _of(problems: list[str], page: str) -> list[str]:
    return [p.split(": ", 1)[1] for p in problems if p.startswith(f"book/{page}.html: ")]


def test_clean_page_passes(site):
    problems, html, _ = site
    assert _of(problems, "clean") == []
    assert _of(problems, "figures") == []  # captions that start with their own number
    shot = html.parent / "screenshots" / "book" / "clean.png"
    assert shot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_found(site, name):
    found = _of(site[0], f"defect_{name}")
    text = "\n".join(found)
    for expected in DEFECTS[name][1]:
        assert expected in text, text
    # Nothing but the defect: each page fails for its own reason only.
    assert all(any(e in p for e in DEFECTS[name][1]) for p in found), text


def test_missing_page_found(site):
    assert _of(site[0], "absent") == [f"page missing from {site[1]}"]


def test_mathjax_error_found(site):
    if not site[2]:
        pytest.skip("MathJax 3 is not installed (pip install sphinx-mathjax-offline)")
    html = site[1]
    body = ('<span class="math">\\(\\frac{1}\\)</span> and <span class="math">\\(\\notamacro x\\)</span>')
    (html / "book" / "mathjax_error.html").write_text(html_page(body, MATHJAX_HEAD))
    problems = htmlcheck.check_book(html, ["book/mathjax_error.html"])
    text = "\n".join(problems)
    assert "MathJax reported 1 error(s)" in text and "\\frac" in text, text
    assert "undefined TeX macro(s) shown in red: \\notamacro" in text, text


def test_main_exit_status(site, capsys):
    html = site[1]
    assert htmlcheck.main([str(html), "--page", "book/clean.html", "--min-images", "book/clean.html=1"]) == 0
    assert htmlcheck.main([str(html), "--page", "book/clean.html", "--min-images", "book/clean.html=2"]) == 1
    out = capsys.readouterr().out
    assert "book/clean.html: expected at least 2 image(s) in the page content, found 1" in out
