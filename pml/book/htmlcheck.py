"""Browser check of the rendered book: figures, typeset math, no network.

Each chapter page of ``_build/html`` is opened in headless Chromium from a
``file://`` URL. ``--dump-dom`` gives the DOM *after* the page's scripts
(MathJax) ran, ``--log-net-log`` records every request that went through the
network stack. A page fails when

* it is missing from the HTML folder;
* an ``<img>`` points at a missing, empty or undecodable file (PNG, JPEG, GIF,
  WebP, SVG or a ``data:`` URI), or the page has fewer content images than
  asked for (``min_images``);
* math is still raw TeX after MathJax ran, MathJax reported a TeX error, or
  the page has math but no ``<mjx-container>`` at all;
* the page asked for anything outside the HTML folder: a non-``file://`` URL
  in the NetLog that the page (not the browser itself) requested, a
  ``<script src>``/``<link href>``/``<img src>``/``<iframe src>``... that is
  ``http(s)://`` in the HTML (before or after scripts ran), or a local
  reference that resolves outside the folder or to a missing file.

Links (``<a href>``) are not loads and are never reported; the THEBE URL that
Jupyter Book 1 puts in inline JS is only fetched on a click, so it is neither
in the NetLog nor in an attribute.

Usage::

    python -m pml.book.htmlcheck _build/html                       # pages from _toc.yml
    python -m pml.book.htmlcheck _build/html --page book/01_introduction.html
    python -m pml.book.htmlcheck _build/html --min-images book/02_x.html=1

Exit status: 0 pass, 1 problems (printed), 2 Chromium is not installed.

The helpers :func:`raw_tex_problems`, :func:`image_problems`,
:func:`external_requests`, :func:`static_external_refs` and
:func:`local_ref_problems` are pure (no browser) and tested on small strings.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

__all__ = [
    "CHROMIUM_FLAGS",
    "ChromiumMissing",
    "check_book",
    "check_image_bytes",
    "check_page",
    "external_requests",
    "find_chromium",
    "image_problems",
    "local_ref_problems",
    "main",
    "parse_html",
    "raw_tex_problems",
    "render_page",
    "static_external_refs",
    "toc_pages",
]

#: Flags for Chromium as root on a machine without network (--no-sandbox is needed as root):
#: without the background-networking ones, Chromium keeps trying Google's hosts.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
)

#: Virtual time (ms) that a page gets to run its scripts before the DOM is dumped.
VIRTUAL_TIME_BUDGET_MS = 10000

INSTALL_HINT = "Chromium is not installed: run `apt-get install -y chromium` (Debian) and retry."


class ChromiumMissing(RuntimeError):
    """No Chromium/Chrome executable was found."""


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium executable: ``explicit`` if given (a path or a name on PATH), else the first found."""
    if explicit:
        return explicit if Path(explicit).is_file() else shutil.which(explicit)
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# --------------------------------------------------------------------------- HTML parsing

_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()
)


@dataclass
class Node:
    """A tiny DOM element: enough for class lookups and text content."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def text(self) -> str:
        out: list[str] = []
        stack: list[Node | str] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
            else:
                stack.extend(reversed(item.children))
        return "".join(out)

    def iter(self) -> Iterable[Node]:
        """All elements below (and including) this one, document order."""
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed([c for c in node.children if isinstance(c, Node)]))

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
        ]

    def ancestors(self) -> Iterable[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)

    def handle_endtag(self, tag):
        # Pop to the matching open element; ignore stray end tags.
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_html(html: str) -> Node:
    """Parse HTML into a :class:`Node` tree (stdlib only; tolerant of sloppy markup)."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def _tree(html: str | Node) -> Node:
    return html if isinstance(html, Node) else parse_html(html)


def _body(root: Node) -> Node:
    bodies = root.find_all("body")
    return bodies[0] if bodies else root


def _content(root: Node) -> Node:
    """The article part of a Sphinx/JB page (where figures live), else <main>, else <body>."""
    for cls in ("bd-article", "document"):
        found = [n for n in root.iter() if cls in n.classes]
        if found:
            return found[0]
    mains = root.find_all("main")
    return mains[0] if mains else _body(root)


# --------------------------------------------------------------------------- math

_RAW_TEX = ("\\(", "\\[", "$$")


def raw_tex_problems(dom_html: str | Node) -> list[str]:
    """Problems with math in a DOM dumped *after* MathJax ran.

    Sphinx wraps math in ``<span class="math ...">\\(..\\)</span>`` and
    ``<div class="math ...">\\[..\\]</div>``; MathJax replaces the TeX with an
    ``<mjx-container>``. Reported: a ``math`` element whose text still holds
    ``\\(``, ``\\[`` or ``$$``; math elements but no ``<mjx-container>``;
    MathJax error boxes (``<mjx-merror>``, e.g. an undefined control sequence).
    """
    root = _tree(dom_html)
    maths = [n for n in root.iter() if "math" in n.classes and n.tag != "mjx-container"]
    containers = root.find_all("mjx-container")
    problems: list[str] = []
    raw = []
    for node in maths:
        # Ignore nested math elements already counted through an ancestor.
        if any("math" in a.classes for a in node.ancestors()):
            continue
        text = node.text()
        if any(marker in text for marker in _RAW_TEX):
            raw.append(" ".join(text.split())[:80])
    if raw:
        problems.append(
            f"{len(raw)} math element(s) still raw TeX after MathJax ran (MathJax missing or failed?), "
            f"e.g. {raw[0]!r}"
        )
    if maths and not containers:
        problems.append(
            f"{len(maths)} math element(s) but no <mjx-container>: MathJax did not typeset this page"
        )
    # MathJax 3 (noundefined) typesets an unknown macro as red text: <mtext mathcolor="red">\foo</mtext>
    # in the assistive MathML.
    undefined = sorted({
        n.text().strip()
        for n in root.find_all("mtext")
        if n.attrs.get("mathcolor", "").lower() == "red" and n.text().strip().startswith("\\")
    })
    if undefined:
        problems.append(f"undefined TeX macro(s) shown in red: {', '.join(undefined[:5])}")
    errors = root.find_all("mjx-merror")
    if errors:
        msg = errors[0].attrs.get("data-mjx-error") or " ".join(errors[0].text().split())[:80]
        problems.append(f"MathJax reported {len(errors)} TeX error(s), e.g. {msg!r}")
    return problems


# --------------------------------------------------------------------------- images

_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _check_png(data: bytes) -> str | None:
    if len(data) < 33 or not data.startswith(_PNG_SIG):
        return "not a PNG (bad signature)"
    pos, first, idat, saw_end = 8, True, bytearray(), False
    width = height = 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            return f"truncated PNG (chunk {ctype!r} cut off)"
        if zlib.crc32(ctype + body) != struct.unpack(">I", crc)[0]:
            return f"corrupt PNG (bad CRC in chunk {ctype!r})"
        if first:
            if ctype != b"IHDR" or length != 13:
                return "corrupt PNG (first chunk is not IHDR)"
            width, height = struct.unpack(">II", body[:8])
            first = False
        if ctype == b"IDAT":
            idat += body
        if ctype == b"IEND":
            saw_end = True
            break
        pos += 12 + length
    if first:
        return "corrupt PNG (no IHDR)"
    if width == 0 or height == 0:
        return f"PNG has zero size ({width}x{height})"
    if not saw_end:
        return "truncated PNG (no IEND)"
    if not idat:
        return "PNG has no image data (no IDAT)"
    try:
        dec = zlib.decompressobj()
        dec.decompress(bytes(idat))
        if not dec.eof:
            return "truncated PNG (image data stream incomplete)"
    except zlib.error as exc:
        return f"corrupt PNG image data ({exc})"
    return None


def _check_jpeg(data: bytes) -> str | None:
    if not data.startswith(b"\xff\xd8\xff"):
        return "not a JPEG"
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return "corrupt JPEG (bad marker)"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (seglen,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return "truncated JPEG"
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if width == 0 or height == 0:
                return f"JPEG has zero size ({width}x{height})"
            if b"\xff\xd9" not in data[pos:]:
                return "truncated JPEG (no end-of-image marker)"
            return None
        pos += 2 + seglen
    return "corrupt or truncated JPEG (no frame header)"


def _check_gif(data: bytes) -> str | None:
    if len(data) < 10:
        return "truncated GIF"
    width, height = struct.unpack("<HH", data[6:10])
    return None if width and height else f"GIF has zero size ({width}x{height})"


def _check_svg(data: bytes) -> str | None:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return f"SVG is not well-formed XML ({exc})"
    if not root.tag.rsplit("}", 1)[-1] == "svg":
        return f"not an SVG (root element <{root.tag}>)"
    if len(root) == 0:
        return "SVG has no content"
    return None


def check_image_bytes(data: bytes) -> str | None:
    """``None`` when ``data`` is a plausible, complete image (PNG, JPEG, GIF, WebP, SVG), else why not."""
    if not data:
        return "empty image"
    if data.startswith(_PNG_SIG):
        return _check_png(data)
    if data.startswith(b"\xff\xd8"):
        return _check_jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _check_gif(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return None if len(data) >= 20 else "truncated WebP"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")):
        return _check_svg(data)
    return f"not a recognised image format (starts with {data[:8]!r})"


def _decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ValueError("no comma in data: URI")
    if header.endswith(";base64"):
        return base64.b64decode(urllib.parse.unquote(payload).strip(), validate=False)
    return urllib.parse.unquote_to_bytes(payload)


_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)


def _is_remote(url: str) -> bool:
    """http(s)://, ws(s)://, ftp://... and protocol-relative ``//host``; not file://."""
    u = url.strip()
    return bool(_REMOTE.match(u)) and not u.lower().startswith("file:")


def _local_path(page_path: Path, url: str) -> Path | None:
    """Filesystem path a (non-remote, non-data) URL in ``page_path`` points at, or None."""
    u = url.strip()
    if not u or u.startswith("#"):
        return None
    scheme = urllib.parse.urlsplit(u).scheme.lower()
    if scheme == "file":
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(u).path))
    if scheme:  # data:, about:, javascript:, mailto:, blob:, http...
        return None
    path = urllib.parse.unquote(urllib.parse.urlsplit(u).path)
    if not path:
        return None
    if path.startswith("/"):
        return Path(path)
    return page_path.parent / path


def image_problems(page_path: Path, dom_html: str | Node, min_images: int = 0) -> list[str]:
    """Problems with the ``<img>`` elements in the body of ``dom_html`` (a page at ``page_path``).

    Each local ``src`` must be an existing, non-empty, decodable image; each
    ``data:`` URI must decode to one. Remote ``src`` are left to
    :func:`static_external_refs`. ``min_images``: the least number of images
    the page's article (``.bd-article``, else ``<main>``, else ``<body>``) must hold.
    """
    root = _tree(dom_html)
    problems: list[str] = []
    for img in _body(root).find_all("img"):
        src = img.attrs.get("src", "").strip()
        if not src:
            problems.append(f"<img> without src (alt={img.attrs.get('alt', '')!r})")
            continue
        if src.lower().startswith("data:"):
            try:
                why = check_image_bytes(_decode_data_uri(src))
            except (ValueError, binascii.Error) as exc:
                why = f"undecodable data: URI ({exc})"
            if why:
                problems.append(f"<img> data: URI ({src[:40]}...): {why}")
            continue
        if _is_remote(src):
            continue
        path = _local_path(page_path, src)
        if path is None:
            problems.append(f"<img src={src!r}>: not an image URL")
            continue
        path = Path(os.path.normpath(path))
        if not path.is_file():
            problems.append(f"<img src={src!r}>: file missing ({path})")
            continue
        why = check_image_bytes(path.read_bytes())
        if why:
            problems.append(f"<img src={src!r}>: {why} ({path})")
    if min_images:
        n = len(_content(root).find_all("img"))
        if n < min_images:
            problems.append(f"expected at least {min_images} image(s) in the page content, found {n}")
    return problems


# --------------------------------------------------------------------------- references

#: (tag, attribute) pairs that make the browser load something. ``<a href>`` is absent on purpose.
_LOADING_ATTRS = (
    ("script", "src"),
    ("link", "href"),
    ("img", "src"),
    ("iframe", "src"),
    ("frame", "src"),
    ("embed", "src"),
    ("object", "data"),
    ("source", "src"),
    ("video", "src"),
    ("video", "poster"),
    ("audio", "src"),
    ("track", "src"),
    ("input", "src"),
)

#: <link rel> values that do not load anything.
_NAVIGATIONAL_RELS = frozenset(
    "canonical alternate author bookmark help index license me next prev previous search "
    "first last up contents copyright glossary chapter section subsection appendix start top".split()
)


def _loading_refs(html: str | Node) -> list[tuple[str, str, str]]:
    """(tag, attribute, url) of every reference in ``html`` that the browser would load."""
    refs = []
    for node in _tree(html).iter():
        for tag, attr in _LOADING_ATTRS:
            if node.tag != tag or attr not in node.attrs:
                continue
            if tag == "link":
                rels = set(node.attrs.get("rel", "").lower().split())
                if rels and rels <= _NAVIGATIONAL_RELS:
                    continue
            if tag == "input" and node.attrs.get("type", "").lower() != "image":
                continue
            refs.append((tag, attr, node.attrs[attr]))
        srcset = node.attrs.get("srcset") if node.tag in ("img", "source") else None
        if srcset:
            for part in srcset.split(","):
                url = part.strip().split(" ")[0]
                if url:
                    refs.append((node.tag, "srcset", url))
    return refs


def static_external_refs(html: str | Node) -> list[str]:
    """Remote (``http(s)://``, ``//host``...) URLs in loading attributes of ``html``.

    Scans ``<script src>``, ``<link href>`` (except navigational rels such as
    canonical), ``<img src/srcset>``, ``<iframe src>``, media and embeds.
    ``<a href>`` links and URLs inside inline scripts (JB1's THEBE URL) are not loads.
    """
    return [
        f"<{tag} {attr}={url!r}> loads a remote resource"
        for tag, attr, url in _loading_refs(html)
        if _is_remote(url)
    ]


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.normpath(path)).relative_to(Path(os.path.normpath(folder)))
        return True
    except ValueError:
        return False


def local_ref_problems(page_path: Path, html: str | Node, html_dir: Path) -> list[str]:
    """Local loading references of ``html`` that leave ``html_dir`` or point at a missing file.

    ``<img>`` files are left to :func:`image_problems` (which also decodes them);
    here they are only checked for leaving ``html_dir``.
    """
    html_dir = Path(os.path.abspath(html_dir))
    page_path = Path(os.path.abspath(page_path))
    problems = []
    for tag, attr, url in _loading_refs(html):
        if _is_remote(url):
            continue
        path = _local_path(page_path, url)
        if path is None:
            continue
        if not _inside(path, html_dir):
            problems.append(f"<{tag} {attr}={url!r}> loads a file outside the HTML folder ({os.path.normpath(path)})")
        elif tag not in ("img", "source") and not path.exists():
            problems.append(f"<{tag} {attr}={url!r}>: file missing ({os.path.normpath(path)})")
    return problems


_IGNORED_SCHEMES = frozenset(
    "data about chrome chrome-extension chrome-untrusted chrome-search devtools blob javascript".split()
)


def _netlog_events(text: str) -> tuple[dict, list[dict]]:
    """(constants, events) of a NetLog file; tolerates a log cut off mid-write."""
    try:
        doc = json.loads(text)
        return doc.get("constants", {}), doc.get("events", [])
    except json.JSONDecodeError:
        pass
    # Chromium writes the constants on line 1 and one event per line after it.
    constants: dict = {}
    events: list[dict] = []
    lines = text.splitlines()
    if lines:
        first = lines[0].strip()
        if first.startswith('{"constants":'):
            try:
                constants = json.loads(first[len('{"constants":') :].rstrip(","))
            except json.JSONDecodeError:
                constants = {}
    for line in lines[1:]:
        line = line.strip().rstrip(",")
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return constants, events


def external_requests(netlog_json_text: str, html_dir: Path) -> list[str]:
    """URLs the *page* requested outside ``html_dir``, from a Chromium NetLog (``--log-net-log``).

    ``file://`` loads do not go through the network stack, so normally only
    network URLs appear; a ``file://`` URL that does appear must be under
    ``html_dir``. Browser-internal traffic (Chromium's clock sync, account
    and Google lookups, which start even with ``--disable-background-networking``)
    is recognised by ``initiator == "not an origin"`` and a network isolation
    key that is not the ``file://`` page, and ignored, as are ``data:``,
    ``about:``, ``chrome:``, ``blob:`` URLs. Host lookups made on the page's
    behalf (``<link rel=dns-prefetch>``) are reported too.
    """
    html_dir = Path(os.path.abspath(html_dir))
    constants, events = _netlog_events(netlog_json_text)
    names = {v: k for k, v in constants.get("logEventTypes", {}).items()}
    found: dict[str, None] = {}
    hosts: dict[str, None] = {}
    for ev in events:
        params = ev.get("params") or {}
        name = names.get(ev.get("type"), "")
        if name == "URL_REQUEST_START_JOB" or (not names and "url" in params and "initiator" in params):
            url = params.get("url", "")
            initiator = str(params.get("initiator", ""))
            nik = str(params.get("network_isolation_key", ""))
            if initiator == "not an origin" and "file://" not in nik:
                continue  # Chromium's own traffic, not the page's
        elif name == "HOST_RESOLVER_MANAGER_REQUEST":
            if "file://" not in str(params.get("network_anonymization_key", "")):
                continue
            host = str(params.get("host", ""))
            if host:
                hosts.setdefault(host, None)
            continue
        else:
            continue
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if not url or scheme in _IGNORED_SCHEMES:
            continue
        if scheme == "file":
            if _inside(Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)), html_dir):
                continue
        found.setdefault(url, None)
    out = [f"requested {url} (outside the HTML folder)" for url in found]
    # A host lookup with no request after it (e.g. <link rel=dns-prefetch>, or a request cut short).
    origins = {"{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(u)) for u in found}
    out += [f"looked up host {h} (network access)" for h in hosts if h not in origins]
    return out


# --------------------------------------------------------------------------- browser


@dataclass
class Rendered:
    dom: str
    netlog: str
    seconds: float
    returncode: int
    stderr: str


def _stderr_tail(stderr: str, n: int = 5) -> str:
    noise = ("dbus", "unexpected operator", "Fontconfig", "libva", "sandbox")
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not any(x in ln for x in noise)]
    return " | ".join(lines[-n:])


def render_page(
    page_path: Path,
    chromium: str,
    timeout: float = 60,
    budget_ms: int = VIRTUAL_TIME_BUDGET_MS,
) -> Rendered:
    """Open ``page_path`` in headless Chromium; the DOM after scripts ran, and the NetLog text.

    Raises ``subprocess.TimeoutExpired`` after killing Chromium's process group.
    """
    with tempfile.TemporaryDirectory(prefix="pml-htmlcheck-") as tmp:
        netlog = Path(tmp) / "netlog.json"
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--virtual-time-budget={budget_ms}",
            f"--log-net-log={netlog}",
            "--net-log-capture-mode=Default",
            "--dump-dom",
            Path(os.path.abspath(page_path)).as_uri(),
        ]
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: a timeout kills the renderer children too
            cwd=tmp,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise
        seconds = time.monotonic() - start
        text = netlog.read_text(errors="replace") if netlog.exists() else ""
        return Rendered(
            dom=out.decode("utf-8", errors="replace"),
            netlog=text,
            seconds=seconds,
            returncode=proc.returncode,
            stderr=err.decode("utf-8", errors="replace"),
        )


def check_page(
    html_dir: Path,
    page: str,
    chromium: str,
    timeout: float = 60,
    min_images: int = 0,
) -> list[str]:
    """Problems of one page (already prefixed with the page name)."""
    html_dir = Path(os.path.abspath(html_dir))
    page_path = html_dir / page
    if not page_path.is_file():
        return [f"{page}: page missing from {html_dir}"]
    source = page_path.read_text(encoding="utf-8", errors="replace")
    try:
        rendered = render_page(page_path, chromium, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"{page}: Chromium did not finish within {timeout:g} s"]
    problems: list[str] = []
    dom_tree = None
    if rendered.returncode != 0 or "<html" not in rendered.dom[:2000].lower():
        problems.append(
            f"Chromium failed to render the page (exit {rendered.returncode}): {_stderr_tail(rendered.stderr)}"
        )
    else:
        dom_tree = parse_html(rendered.dom)
        problems += image_problems(page_path, dom_tree, min_images=min_images)
        problems += raw_tex_problems(dom_tree)
    if not rendered.netlog:
        problems.append("Chromium wrote no NetLog, so requests could not be checked")
    else:
        problems += external_requests(rendered.netlog, html_dir)
    source_tree = parse_html(source)
    static = static_external_refs(source_tree) + local_ref_problems(page_path, source_tree, html_dir)
    problems += static
    if dom_tree is not None:
        # Elements that scripts added (e.g. a CDN script injected at run time).
        after = static_external_refs(dom_tree) + local_ref_problems(page_path, dom_tree, html_dir)
        problems += [p + " (added by a script)" for p in after if p not in set(static)]
    unique = list(dict.fromkeys(problems))
    return [f"{page}: {p}" for p in unique]


def check_book(
    html_dir: Path,
    pages: list[str],
    chromium: str | None = None,
    timeout: float = 60,
    min_images: Mapping[str, int] | None = None,
) -> list[str]:
    """Render each page (relative to ``html_dir``, e.g. ``book/01_introduction.html``) and list its problems.

    Returns an empty list when every page passes. Raises :class:`ChromiumMissing`
    when no Chromium is found. ``min_images`` maps a page to the least number
    of images its article must show (pages not named need none).
    """
    exe = find_chromium(chromium)
    if exe is None:
        raise ChromiumMissing(INSTALL_HINT)
    html_dir = Path(html_dir)
    if not html_dir.is_dir():
        return [f"HTML folder {html_dir} does not exist (build the book first)"]
    if not pages:
        return ["no pages to check"]
    minimum = dict(min_images or {})
    problems: list[str] = []
    for page in pages:
        problems += check_page(html_dir, page, exe, timeout=timeout, min_images=minimum.get(page, 0))
    return problems


# --------------------------------------------------------------------------- table of contents


def toc_pages(toc_path: Path) -> list[str]:
    """HTML pages of a Jupyter Book 1 ``_toc.yml``: ``root`` and every ``file:`` entry, ``book/x`` -> ``book/x.html``.

    ``url:`` and ``glob:`` entries are skipped.
    """
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8")) or {}
    files: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            for key in ("root", "file"):
                if isinstance(obj.get(key), str):
                    files.append(obj[key])
            for value in obj.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(obj, list):
            for item in obj:
                walk(item)

    walk(toc)
    pages = []
    for f in files:
        stem = re.sub(r"\.(md|ipynb|py|rst|myst)$", "", f.strip().lstrip("./"))
        pages.append(stem + ".html")
    return list(dict.fromkeys(pages))


# --------------------------------------------------------------------------- CLI


def _parse_min_images(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        page, sep, n = item.rpartition("=")
        if not sep or not page:
            raise argparse.ArgumentTypeError(f"--min-images expects PAGE=N, got {item!r}")
        out[page] = int(n)
    return out


def main(argv: list[str] | None = None) -> int:
    from pml import paths

    parser = argparse.ArgumentParser(
        prog="python -m pml.book.htmlcheck",
        description="Check the rendered book in headless Chromium: figures, typeset math, no network requests.",
    )
    parser.add_argument("html_dir", nargs="?", type=Path, default=paths.html_dir(),
                        help="the built HTML folder (default: _build/html of the repository)")
    parser.add_argument("--page", action="append", default=[],
                        help="page relative to html_dir, e.g. book/01_introduction.html (repeatable; "
                             "default: every root/file entry of _toc.yml)")
    parser.add_argument("--toc", type=Path, default=None,
                        help="table of contents to take the pages from (default: _toc.yml at the repository root)")
    parser.add_argument("--min-images", action="append", default=[], metavar="PAGE=N",
                        help="require at least N images in PAGE (repeatable)")
    parser.add_argument("--chromium", default=None, help="Chromium executable (default: found on PATH)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per page (default 60)")
    args = parser.parse_args(argv)

    exe = find_chromium(args.chromium)
    if exe is None:
        print(f"htmlcheck: {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        min_images = _parse_min_images(args.min_images)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))
    pages = args.page
    if not pages:
        toc = args.toc or (paths.repo_root() / "_toc.yml")
        if not toc.is_file():
            print(f"htmlcheck: no --page given and no table of contents at {toc}", file=sys.stderr)
            return 1
        pages = toc_pages(toc)
    start = time.monotonic()
    problems = check_book(args.html_dir, pages, chromium=exe, timeout=args.timeout, min_images=min_images)
    took = time.monotonic() - start
    if problems:
        print(f"htmlcheck: {len(problems)} problem(s) in {args.html_dir}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"htmlcheck: {len(pages)} page(s) OK in {took:.1f} s ({args.html_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
