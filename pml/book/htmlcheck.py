"""Browser check of the rendered book: what a reader sees, in headless Chromium driven by Playwright.

Each page of ``_build/html`` is opened from its ``file://`` URL in the system Chromium (Debian's
``chromium``, found on PATH or given by ``--chromium``: Playwright downloads no browser). A page fails when

* it is missing from the HTML folder;
* an ``<img>`` shows nothing (the browser's ``naturalWidth`` is 0: a missing, empty or corrupt file), or the
  article shows fewer images than asked for (``min_images``);
* its math is not typeset: raw TeX (``$$..$$``, ``\\(..\\)``, ``\\[..\\]``) left in the text outside code, a
  MathJax error box, an undefined macro shown in red, or ``MathJax.startup.promise`` rejected;
* it requested anything outside the HTML folder (Playwright reports every request the page makes; host
  lookups are disabled, so the check itself never reaches the network);
* a file failed to load, or the page logged a JavaScript error (except :data:`KNOWN_CONSOLE_ERRORS`);
* an internal link is broken: a ``#fragment`` naming no element, or a local page that is missing;
* a "Show code cell source" toggle (a ``<details>`` element) does not show its content when clicked;
* a figure caption shows two numbers: Sphinx's own counter (a ``span.caption-number``, which ``numfig: false`` in
  ``_config.yml`` switches off) or text like "Fig. 6 Fig. 2: ..."; or it does not start with the paper's number
  ("Fig. 2", "Fig. 6(b)") or the book's own ("Figure B3"), see :func:`caption_problems`.

Usage: ``python -m pml.book.htmlcheck [_build/html] [--page book/01_introduction.html] [--screenshots]``
(pages from ``_toc.yml`` by default; ``--screenshots`` saves a full-page PNG of each under ``_build/screenshots/``).
Exit status: 0 pass, 1 problems (printed), 2 Chromium is not installed.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import sys
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

INSTALL_HINT = "Chromium is not installed: run `apt-get install -y chromium` (Debian) and retry."

#: Console errors of the Jupyter Book 1 theme stack, harmless for a reader, that are not reported:
#: sphinx-thebe's inline ``const THEBE_JS_URL`` script appears twice in each page (thebe is off in
#: ``_config.yml``), and pydata-sphinx-theme's ``setTheme`` complains once about the empty mode of a
#: first visit (empty localStorage) before it sets ``auto`` itself.
KNOWN_CONSOLE_ERRORS = re.compile(r"Identifier 'THEBE_JS_URL' has already been declared|Got invalid theme mode: \.")

#: Chromium flags: no host lookups at all (a page's remote request is still reported, then fails at once).
CHROMIUM_ARGS = ("--host-resolver-rules=MAP * ~NOTFOUND", "--disable-gpu", "--disable-dev-shm-usage")


class ChromiumMissing(RuntimeError):
    """No Chromium/Chrome executable was found."""


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium executable: ``explicit`` if given (a path or a name on PATH), else the first found."""
    if explicit:
        return explicit if Path(explicit).is_file() else shutil.which(explicit)
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


_RAW_TEX = re.compile(r"\$\$.+?\$\$|\\\(.+?\\\)|\\\[.+?\\\]", re.S)


def math_problems(text: str, errors: Sequence[str] = (), red: Sequence[str] = ()) -> list[str]:
    """What a reader sees of math that MathJax did not typeset, once it ran.

    ``text``: the page's text outside code, scripts and typeset math, where TeX delimiters (``$$..$$``,
    ``\\(..\\)``, ``\\[..\\]``) must not be left; ``errors``: MathJax's messages (its ``<mjx-merror>`` boxes, a
    failed start); ``red``: undefined macros, which MathJax 3 typesets as red text.
    """
    raw = _RAW_TEX.findall(text)
    problems = [f"{len(raw)} piece(s) of raw TeX left untypeset (MathJax missing or failed?), "
                f"e.g. {' '.join(raw[0].split())[:80]!r}"] if raw else []
    if errors:
        problems.append(f"MathJax reported {len(errors)} error(s), e.g. {errors[0]!r}")
    if red:
        problems.append(f"undefined TeX macro(s) shown in red: {', '.join(sorted(set(red))[:5])}")
    return problems


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.normpath(path)).is_relative_to(Path(os.path.normpath(os.path.abspath(folder))))


def outside_folder(url: str, html_dir: Path) -> bool:
    """Whether loading ``url`` leaves ``html_dir``: any network URL, a ``file://`` URL elsewhere (not ``data:``)."""
    parts = urlsplit(url)
    inside = parts.scheme == "file" and _inside(Path(unquote(parts.path)), html_dir)
    return not (inside or parts.scheme in ("data", "blob", "about"))


@functools.lru_cache(maxsize=256)
def _file_ids(path: Path, mtime: float) -> frozenset[str]:
    """``id`` and ``<a name>`` values of an HTML file (a page the browser did not open)."""
    from bs4 import BeautifulSoup  # installed with Jupyter Book

    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    return frozenset([t["id"] for t in soup.find_all(id=True)]
                     + [a["name"] for a in soup.find_all("a", {"name": True})])


def link_problems(page_path: Path, hrefs: Iterable[str], html_dir: Path,
                  ids: Mapping[Path, Collection[str]]) -> list[str]:
    """Broken internal links among ``hrefs`` (the ``<a href>`` values of the page at ``page_path``).

    A ``#fragment`` must name an element (``id``, or ``<a name>``) of the page it points at; a local page
    must exist inside ``html_dir``. ``ids`` holds the names of pages the browser opened (by absolute path);
    other pages are read from their files. Links with a scheme or host (``https:``, ``mailto:``) are not followed.
    """
    html_dir, page_path = Path(os.path.abspath(html_dir)), Path(os.path.abspath(page_path))
    problems = []
    for href in hrefs:
        parts = urlsplit(href.strip())
        fragment = unquote(parts.fragment)
        if parts.scheme or parts.netloc:
            continue
        target = Path(os.path.normpath(page_path.parent / unquote(parts.path))) if parts.path else page_path
        target = target / "index.html" if target.is_dir() else target
        if not _inside(target, html_dir):
            problems.append(f"link {href!r} leads outside the HTML folder")
        elif target not in ids and not target.is_file():
            problems.append(f"link {href!r}: {target.relative_to(html_dir)} is missing")
        elif fragment not in ("", "top") and target.suffix == ".html":
            names = ids[target] if target in ids else _file_ids(target, target.stat().st_mtime)
            if fragment not in names:
                where = "on this page" if target == page_path else f"in {target.name}"
                problems.append(f"link {href!r}: no element with id {fragment!r} {where}")
    return list(dict.fromkeys(problems))


#: The number a caption starts with: the paper's ("Fig. 1a", "Fig. 6(b)") or one of the book's own ("Figure B3").
_CAPTION_START = re.compile(r"(?:Fig\. \d+|Figure B\d+)(?!\d)")
#: A number right after another at the start of a caption: "Fig. 6 Fig. 2", "Figure 3 Fig. 2", "Fig. 7 Figure B4".
_DOUBLE_NUMBER = re.compile(r"(?:Fig\.|Figure)\s*[A-Z]?\d+[a-z]?[.:]?\s+(?:Fig\.|Figure)\s*[A-Z]?\d+")


def caption_problems(captions: Iterable[Sequence[str]]) -> list[str]:
    """Figure captions that show two numbers or do not start with a figure number of the book's convention.

    ``captions``: ``(figure id, counter, text)`` per figure of a page, where ``counter`` is the text of Sphinx's
    ``span.caption-number`` ("Fig. 6", empty when ``numfig`` is off) and ``text`` the caption as read, counter
    excluded. A caption must start with the paper's number ("Fig. 2", "Fig. 1a", "Fig. 6(b)") or "Figure B<n>"
    (a figure of ours), and show no second number before it.
    """
    problems = []
    for fig_id, counter, text in captions:
        counter, text = " ".join(counter.split()), " ".join(text.split())
        name = f"figure {fig_id!r}" if fig_id else "a figure"
        shown = f"{counter} {text}".strip()
        if counter or _DOUBLE_NUMBER.match(shown):
            what = "Sphinx's counter" if counter else "two numbers"
            problems.append(f"{name}: caption shows {what}, {shown[:50]!r} (set numfig: false, one number each)")
        elif not _CAPTION_START.match(text):
            problems.append(f"{name}: caption does not start with 'Fig. <paper number>' or 'Figure B<n>': "
                            f"{text[:50]!r}")
    return problems


def toc_pages(toc_path: Path) -> list[str]:
    """HTML pages of a Jupyter Book 1 ``_toc.yml``: ``root`` and every ``file:`` (not ``url:``/``glob:``) entry."""
    import yaml

    def files(obj):
        if isinstance(obj, dict):
            yield from (obj[k] for k in ("root", "file") if isinstance(obj.get(k), str))
            obj = list(obj.values())
        for item in obj if isinstance(obj, list) else ():
            yield from files(item)

    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8")) or {}
    return list(dict.fromkeys(re.sub(r"\.(md|ipynb|py|rst|myst)$", "", f.strip().lstrip("./")) + ".html"
                              for f in files(toc)))


#: Waits for MathJax's first typesetting and for every image (lazy ones too), then reads what the check needs.
_SETTLE_JS = r"""async () => {
  const all = sel => Array.from(document.querySelectorAll(sel)), failed = [];
  if (window.MathJax && MathJax.startup && MathJax.startup.promise)
    await MathJax.startup.promise.catch(e => failed.push(`MathJax failed to start: ${e}`));
  const images = Array.from(document.images);
  await Promise.all(images.map(i => { i.loading = "eager"; return i.decode().catch(() => null); }));
  const root = document.querySelector(".bd-article, .document") || document.querySelector("main") || document.body;
  const texts = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walker.nextNode());)
    if (!n.parentElement.closest("script, style, pre, code, textarea, mjx-container")) texts.push(n.data);
  return {
    text: texts.join(""),
    images: images.map(i => [i.getAttribute("src") || "", i.naturalWidth, root.contains(i)]),
    errors: failed.concat(all("mjx-merror").map(e => e.getAttribute("data-mjx-error") || e.textContent.trim())),
    red: all("mtext[mathcolor=red]").map(e => e.textContent.trim()).filter(t => t.startsWith("\\")),
    ids: all("[id]").map(e => e.id).concat(all("a[name]").map(e => e.name)),
    hrefs: all("a[href]").map(a => a.getAttribute("href")),
    captions: all("figure > figcaption, div.figure > p.caption").map(c => {
      const number = c.querySelector(".caption-number"), clone = c.cloneNode(true);
      clone.querySelectorAll(".caption-number, a.headerlink").forEach(e => e.remove());
      return [(c.closest("figure, div.figure") || c).id || "", number ? number.textContent : "", clone.textContent];
    }),
  };
}"""


def _toggle_problems(tab) -> list[str]:
    """Click every visible, closed ``<details>`` summary ("Show code cell source"): its content must appear."""
    problems = []
    for details in tab.locator("details:has(> summary)").all():
        if not details.is_visible() or details.get_attribute("open") is not None:
            continue
        summary, content = details.locator(":scope > summary"), details.locator(":scope > :not(summary)").first
        label = " ".join(summary.inner_text().split())[:40]
        summary.click()
        if not content.is_visible():
            problems.append(f"toggle {label!r}: its content stays hidden after a click")
    return problems


def _check_page(tab, path: Path, html_dir: Path, min_images: int, shot: Path | None):
    """(problems, settled page data) of one page; the data is None when the page did not open."""
    from playwright.sync_api import Error as PlaywrightError

    if not path.is_file():
        return [f"page missing from {html_dir}"], None
    problems, settled = [], None
    try:
        tab.goto(path.as_uri(), wait_until="load")
        settled = tab.evaluate(_SETTLE_JS)
        problems += math_problems(settled["text"], settled["errors"], settled["red"])
        problems += caption_problems(settled["captions"])
        problems += [f"image {src[:80]!r} shows nothing (missing, empty or corrupt file)"
                     for src, width, _ in settled["images"] if width == 0]
        n_content = sum(in_content for *_, in_content in settled["images"])
        if n_content < min_images:
            problems.append(f"expected at least {min_images} image(s) in the page content, found {n_content}")
        if shot is not None:
            tab.screenshot(path=shot, full_page=True)  # before the toggles: the page as it opens
        problems += _toggle_problems(tab)
    except PlaywrightError as exc:  # a timeout or a crashed page: report it and go on
        problems.append(f"the browser failed on this page: {str(exc).splitlines()[0]}")
    return problems, settled


def check_book(html_dir: Path, pages: list[str], chromium: str | None = None, timeout: float = 60,
               min_images: Mapping[str, int] | None = None, screenshots: Path | None = None) -> list[str]:
    """Open each page (relative to ``html_dir``, e.g. ``book/01_introduction.html``) and list its problems.

    Returns ``[]`` when every page passes; each problem starts with its page. Raises :class:`ChromiumMissing`
    when no Chromium is found. ``min_images`` maps a page to the least number of images its article must
    show. ``screenshots``: a folder to save a full-page PNG of each page into (``book/x.html`` -> ``book/x.png``).
    """
    exe = find_chromium(chromium)
    if exe is None:
        raise ChromiumMissing(INSTALL_HINT)
    html_dir = Path(os.path.abspath(html_dir))
    if not html_dir.is_dir():
        return [f"HTML folder {html_dir} does not exist (build the book first)"]
    if not pages:
        return ["no pages to check"]
    from playwright.sync_api import sync_playwright

    found: dict[str, list[str]] = {}
    opened: dict[str, dict] = {}  # page -> what _SETTLE_JS read
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=list(CHROMIUM_ARGS))
        tab, events, folder_url = browser.new_page(), [], html_dir.as_uri() + "/"  # one tab: a new one costs time
        tab.set_default_timeout(timeout * 1000)
        tab.on("request", lambda r: outside_folder(r.url, html_dir)
               and events.append(f"requested {r.url} (outside the HTML folder)"))
        tab.on("requestfailed", lambda r: not outside_folder(r.url, html_dir)
               and events.append(f"could not load {unquote(r.url.removeprefix(folder_url))} ({r.failure})"))
        tab.on("console", lambda m: m.type == "error" and not KNOWN_CONSOLE_ERRORS.search(m.text)
               and not m.text.startswith("Failed to load resource")  # requestfailed names the file
               and events.append(f"console error: {m.text}"))
        tab.on("pageerror", lambda e: not KNOWN_CONSOLE_ERRORS.search(str(e))
               and events.append(f"JavaScript error: {e}"))
        for page in pages:
            shot = None if screenshots is None else Path(screenshots) / Path(page).with_suffix(".png")
            events.clear()
            problems, settled = _check_page(tab, html_dir / page, html_dir, (min_images or {}).get(page, 0), shot)
            found[page] = events + problems
            if settled is not None:
                opened[page] = settled
        browser.close()
    # Links last, when the names (ids) of every opened page are known from its live DOM.
    ids = {html_dir / page: set(settled["ids"]) for page, settled in opened.items()}
    for page, settled in opened.items():
        found[page] += link_problems(html_dir / page, settled["hrefs"], html_dir, ids)
    return [f"{page}: {p}" for page in pages for p in dict.fromkeys(found[page])]


def main(argv: list[str] | None = None) -> int:
    from pml import paths

    parser = argparse.ArgumentParser(prog="python -m pml.book.htmlcheck", description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", type=Path, default=paths.html_dir(),
                        help="the built HTML folder (default: _build/html of the repository)")
    parser.add_argument("--page", action="append", default=[], help="page relative to html_dir, e.g. "
                        "book/01_introduction.html (repeatable; default: every root/file entry of --toc)")
    parser.add_argument("--toc", type=Path, default=None, help="table of contents (default: the repository's _toc.yml)")
    parser.add_argument("--min-images", action="append", default=[], metavar="PAGE=N",
                        help="require at least N images in PAGE's content (repeatable)")
    parser.add_argument("--chromium", default=None, help="Chromium executable (default: found on PATH)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per page (default 60)")
    parser.add_argument("--screenshots", nargs="?", type=Path, const=paths.build_dir() / "screenshots", default=None,
                        metavar="DIR", help="save a full-page PNG of each page (default DIR: _build/screenshots)")
    args = parser.parse_args(argv)

    exe = find_chromium(args.chromium)
    if exe is None:
        print(f"htmlcheck: {INSTALL_HINT}", file=sys.stderr)
        return 2
    min_images = {}
    for item in args.min_images:
        page, sep, n = item.rpartition("=")
        if not (sep and page and n.isdigit()):
            parser.error(f"--min-images expects PAGE=N with N a whole number, got {item!r}")
        min_images[page] = int(n)
    pages = args.page
    if not pages:
        toc = args.toc or (paths.repo_root() / "_toc.yml")
        if not toc.is_file():
            print(f"htmlcheck: no --page given and no table of contents at {toc}", file=sys.stderr)
            return 1
        pages = toc_pages(toc)
    start = time.monotonic()
    problems = check_book(args.html_dir, pages, exe, args.timeout, min_images, args.screenshots)
    if problems:
        print(f"htmlcheck: {len(problems)} problem(s) in {args.html_dir}:")
        print("\n".join(f"  - {p}" for p in problems))
        return 1
    shots = f"; screenshots in {args.screenshots}" if args.screenshots else ""
    print(f"htmlcheck: {len(pages)} page(s) OK in {time.monotonic() - start:.1f} s ({args.html_dir}){shots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
