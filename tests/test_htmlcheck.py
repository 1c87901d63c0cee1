"""Tests of pml.book.htmlcheck: pure helpers on small strings/files, plus one real run in headless Chromium."""

from __future__ import annotations

import base64
import importlib.util
import json
import struct
import zlib
from pathlib import Path

import pytest

from pml.book import htmlcheck
from pml.book.htmlcheck import (
    check_image_bytes,
    external_requests,
    image_problems,
    local_ref_problems,
    raw_tex_problems,
    static_external_refs,
    toc_pages,
)

# --------------------------------------------------------------------------- fixtures


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid greyscale PNG built by hand (no image library needed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + bytes([128] * width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'

THEBE_INLINE = (
    '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"; '
    'const thebe_selector = ".thebe,.cell"</script>'
)


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"


# --------------------------------------------------------------------------- math


def test_raw_tex_detected():
    dom = page('<p>x <span class="math notranslate nohighlight">\\(E = mc^2\\)</span></p>'
               '<div class="math notranslate nohighlight">\n\\[a^2\\]</div>')
    problems = raw_tex_problems(dom)
    assert any("2 math element(s) still raw TeX" in p for p in problems)
    assert any("no <mjx-container>" in p for p in problems)


def test_dollar_dollar_left_raw():
    problems = raw_tex_problems(page('<div class="math">$$x$$</div><mjx-container></mjx-container>'))
    assert len(problems) == 1 and "raw TeX" in problems[0]


def test_typeset_math_passes():
    dom = page(
        '<span class="math notranslate nohighlight"><mjx-container class="MathJax" jax="CHTML">'
        '<mjx-math><mjx-mi><mjx-c class="mjx-c1D438"></mjx-c></mjx-mi></mjx-math>'
        '<mjx-assistive-mml><math><mi>E</mi></math></mjx-assistive-mml></mjx-container></span>'
        '<div class="math notranslate nohighlight" id="equation-x"><span class="eqno">(1)</span>'
        '<mjx-container class="MathJax" display="true"></mjx-container></div>'
    )
    assert raw_tex_problems(dom) == []


def test_page_without_math_passes():
    assert raw_tex_problems(page("<p>No math, just \\(escaped text outside math elements.</p>")) == []


def test_mathjax_errors_reported():
    dom = page(
        '<span class="math"><mjx-container><mjx-merror data-mjx-error="Missing close brace">'
        "x</mjx-merror></mjx-container></span>"
        '<span class="math"><mjx-container><mjx-assistive-mml><math>'
        '<mtext mathcolor="red">\\foo</mtext></math></mjx-assistive-mml></mjx-container></span>'
    )
    problems = raw_tex_problems(dom)
    assert any("Missing close brace" in p for p in problems)
    assert any("\\foo" in p for p in problems)


# --------------------------------------------------------------------------- images


def test_check_image_bytes_formats():
    good = png_bytes(3, 2)
    assert check_image_bytes(good) is None
    assert check_image_bytes(SVG) is None
    assert check_image_bytes(b"GIF89a\x02\x00\x02\x00" + b"\x00" * 10) is None
    assert "empty" in check_image_bytes(b"")
    assert "truncated" in check_image_bytes(good[:40])
    assert "zero size" in check_image_bytes(png_bytes(0, 2))
    assert "CRC" in check_image_bytes(good[:24] + b"\x07" + good[25:])
    assert "not a recognised image" in check_image_bytes(b"hello world")
    assert "not well-formed" in check_image_bytes(b"<svg><rect></svg>")


def test_check_image_bytes_jpeg(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "x.jpg"
    pil.new("RGB", (5, 3), (200, 10, 10)).save(path)
    data = path.read_bytes()
    assert check_image_bytes(data) is None
    assert check_image_bytes(data[: len(data) // 3]) is not None


def test_image_problems(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "ok.png").write_bytes(png_bytes())
    (tmp_path / "_images" / "empty.png").write_bytes(b"")
    (tmp_path / "_images" / "text.png").write_text("not an image")
    (tmp_path / "_images" / "fig.svg").write_bytes(SVG)
    data_ok = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    data_bad = "data:image/png;base64," + base64.b64encode(b"garbage").decode()
    dom = page(
        '<article class="bd-article">'
        '<img src="../_images/ok.png"><img src="../_images/fig.svg?v=1">'
        '<img src="../_images/missing.png"><img src="../_images/empty.png"><img src="../_images/text.png">'
        f'<img src="{data_ok}"><img src="{data_bad}"><img src="https://example.com/remote.png">'
        "</article>"
    )
    problems = image_problems(tmp_path / "book" / "p.html", dom)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert "missing.png'>: file missing" in text
    assert "empty.png'>: empty image" in text
    assert "text.png'>: not a recognised image" in text
    assert "data: URI" in text
    assert "ok.png" not in text and "fig.svg" not in text and "remote.png" not in text


def test_min_images(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    dom = page('<nav><img src="a.png"></nav><article class="bd-article"><p>no figure</p></article>')
    assert image_problems(tmp_path / "p.html", dom) == []
    problems = image_problems(tmp_path / "p.html", dom, min_images=1)
    assert problems == ["expected at least 1 image(s) in the page content, found 0"]
    dom2 = dom.replace("<p>no figure</p>", '<img src="a.png">')
    assert image_problems(tmp_path / "p.html", dom2, min_images=1) == []


# --------------------------------------------------------------------------- references


def test_static_external_refs():
    html = page(
        '<a href="https://arxiv.org/abs/2210.13447">paper</a>'
        '<img src="//cdn.example.org/x.png"><iframe src="http://example.com/embed"></iframe>'
        '<img src="../_images/local.png">' + THEBE_INLINE,
        head='<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
        '<link rel="stylesheet" href="http://fonts.example.com/a.css">'
        '<link rel="canonical" href="https://example.org/book/p.html">'
        '<script src="../_static/local.js"></script>',
    )
    problems = static_external_refs(html)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    for url in ("cdn.jsdelivr.net", "fonts.example.com", "//cdn.example.org/x.png", "http://example.com/embed"):
        assert url in text
    assert "arxiv" not in text and "canonical" not in text and "thebe" not in text


def test_local_ref_problems(tmp_path):
    html_dir = tmp_path / "html"
    (html_dir / "book").mkdir(parents=True)
    (html_dir / "_static").mkdir()
    (html_dir / "_static" / "ok.js").write_text("1")
    (tmp_path / "outside.js").write_text("1")
    html = page(
        '<a href="../../outside.html">a link is fine</a>',
        head='<script src="../_static/ok.js?v=1"></script><script src="../_static/gone.js"></script>'
        '<script src="../../outside.js"></script><link rel="index" href="../genindex.html">'
        '<link rel="stylesheet" href="/etc/x.css">',
    )
    problems = local_ref_problems(html_dir / "book" / "p.html", html, html_dir)
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "gone.js'>: file missing" in text
    assert "outside.js'> loads a file outside" in text
    assert "/etc/x.css'> loads a file outside" in text


def _netlog(events: list[dict]) -> str:
    constants = {"logEventTypes": {"URL_REQUEST_START_JOB": 1, "HOST_RESOLVER_MANAGER_REQUEST": 2, "OTHER": 3}}
    lines = ['{"constants":' + json.dumps(constants) + ",", '"events": [']
    lines += [json.dumps(e) + "," for e in events]
    lines += ["{}", "],", '"polledData": {}', "}"]
    return "\n".join(lines)


def _request(url: str, initiator: str = "null", nik: str = "file:// [internally: file://] file://") -> dict:
    return {"type": 1, "phase": 1, "source": {"id": 1, "type": 1},
            "params": {"url": url, "initiator": initiator, "network_isolation_key": nik, "method": "GET"}}


def test_external_requests(tmp_path):
    html_dir = tmp_path / "html"
    events = [
        _request("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"),
        _request("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"),  # reported once
        _request("data:image/png;base64,AAAA"),
        _request("about:blank"),
        _request((html_dir / "_static" / "x.js").as_uri()),
        _request((tmp_path / "elsewhere.js").as_uri()),
        # Chromium's own traffic (clock sync, account lookup): not the page's.
        _request("http://clients2.google.com/time/1/current", initiator="not an origin", nik="null null"),
        _request("https://accounts.google.com/ListAccounts", initiator="not an origin",
                 nik="https://google.com https://google.com"),
        {"type": 2, "params": {"host": "https://fonts.example.org",
                               "network_anonymization_key": "file:// [internally: file://] same_site"}},
        {"type": 2, "params": {"host": "https://cdn.jsdelivr.net",
                               "network_anonymization_key": "file:// [internally: file://] same_site"}},
        {"type": 2, "params": {"host": "https://www.google.com", "network_anonymization_key": "null"}},
        {"type": 3, "params": {"url": "https://ignored.example.com/"}},
    ]
    text = _netlog(events)
    problems = external_requests(text, html_dir)
    assert problems == [
        "requested https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js (outside the HTML folder)",
        f"requested {(tmp_path / 'elsewhere.js').as_uri()} (outside the HTML folder)",
        "looked up host https://fonts.example.org (network access)",
    ]
    # A log cut off mid-write (Chromium killed) is still read event by event.
    cut = text[: text.index("clients2")]
    assert external_requests(cut, html_dir)[:2] == problems[:2]
    assert external_requests(_netlog([]), html_dir) == []


# --------------------------------------------------------------------------- toc and CLI


def test_toc_pages(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/00_intro\nparts:\n"
        "- caption: A\n  chapters:\n  - file: book/01_introduction\n  - file: book/02_x.md\n"
        "    sections:\n    - file: book/02a_y\n    - url: https://example.com\n      title: ext\n"
        "- caption: B\n  chapters:\n  - file: book/01_introduction\n"
    )
    assert toc_pages(toc) == [
        "book/00_intro.html",
        "book/01_introduction.html",
        "book/02_x.html",
        "book/02a_y.html",
    ]


def test_main_without_chromium(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(htmlcheck.shutil, "which", lambda name: None)
    assert htmlcheck.main([str(tmp_path), "--page", "book/x.html"]) == 2
    assert "apt-get install" in capsys.readouterr().err
    with pytest.raises(htmlcheck.ChromiumMissing):
        htmlcheck.check_book(tmp_path, ["book/x.html"])


# --------------------------------------------------------------------------- real browser


def _mathjax_dir() -> Path | None:
    """MathJax 3 shipped by the sphinx-mathjax-offline package, if installed."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    return path if (path / "tex-chtml.js").is_file() else None


def test_check_book_in_chromium(tmp_path, capsys):
    if htmlcheck.find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    html_dir = tmp_path / "html"
    (html_dir / "book").mkdir(parents=True)
    (html_dir / "_images").mkdir()
    (html_dir / "_images" / "fig.png").write_bytes(png_bytes(8, 6))
    mathjax = _mathjax_dir()
    math_head, math_body = "", ""
    if mathjax is not None:
        (html_dir / "_static").mkdir()
        (html_dir / "_static" / "mathjax").symlink_to(mathjax, target_is_directory=True)
        math_head = (
            '<script>window.MathJax = {"options": {"processHtmlClass": "math"}}</script>'
            '<script defer src="../_static/mathjax/tex-chtml.js"></script>'
        )
        math_body = ('<p>Inline <span class="math notranslate nohighlight">\\(E = mc^2\\)</span></p>'
                     '<div class="math notranslate nohighlight">\n\\[\\int_0^1 x^2\\,dx\\]</div>')
    good = page(
        f'<article class="bd-article"><h1>Good</h1>{math_body}<img alt="fig" src="../_images/fig.png">'
        '<a href="https://arxiv.org/abs/2210.13447">paper</a></article>' + THEBE_INLINE,
        head=math_head,
    )
    (html_dir / "book" / "good.html").write_text(good)
    bad = page(
        '<article class="bd-article"><span class="math notranslate nohighlight">\\(x^2\\)</span>'
        '<img src="../_images/missing.png"></article>'
        '<script>fetch("https://api.example.invalid/data").catch(function () {})</script>',
        head='<script src="https://cdn.example.invalid/lib.js"></script>',
    )
    (html_dir / "book" / "bad.html").write_text(bad)

    assert htmlcheck.check_book(html_dir, ["book/good.html"], min_images={"book/good.html": 1}) == []

    problems = htmlcheck.check_book(html_dir, ["book/bad.html", "book/absent.html"])
    text = "\n".join(problems)
    assert all(p.startswith(("book/bad.html: ", "book/absent.html: ")) for p in problems), text
    assert "book/absent.html: page missing" in text
    assert "missing.png'>: file missing" in text
    assert "still raw TeX" in text and "no <mjx-container>" in text
    assert "requested https://api.example.invalid/data" in text  # only visible in the NetLog
    assert "requested https://cdn.example.invalid/lib.js" in text
    assert "<script src='https://cdn.example.invalid/lib.js'> loads a remote resource" in text

    assert htmlcheck.main([str(html_dir), "--page", "book/good.html"]) == 0
    assert htmlcheck.main([str(html_dir), "--page", "book/bad.html"]) == 1
    assert "book/bad.html:" in capsys.readouterr().out
