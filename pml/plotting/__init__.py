"""Figures: one ``plot_<figure>(result) -> Figure`` per book figure, in a module per chapter.

Only this package imports matplotlib. The house style applies itself where figures are made and saved: every
``plot_<figure>`` function is decorated with :func:`styled` (it builds its figure inside the :func:`style` context)
and :func:`savefig` saves inside it too, so a chapter needs no style call; nothing is changed at import.
:func:`savefig` writes ``_build/figures/<profile>/<name>.png``.

Stored builds (``pml run/book --stored``, :mod:`pml.engine.partial`): a ``plot_<figure>`` function given a step that
is not stored (a :class:`pml.engine.NotComputed`) returns a figure that says so (:func:`not_computed_figure`),
unless it is marked :func:`draws_partial` and draws what it can itself; partial results are drawn with their
missing points marked (:func:`mark_missing`).

Sizes: the book shows a figure at the width of its text column, :data:`CONTENT_PX` CSS pixels in a 1280-px browser
window, so a figure :data:`PAGE_WIDTH` inches wide shows its text at the point sizes it was drawn with (96 CSS px per
inch). Figures are at most that wide (:func:`page_figure` lays panels out in it) and draw no text smaller than
:data:`SMALL_PT`; :func:`styled` checks every figure it returns (:func:`smallest_text`, at least :data:`MIN_TEXT_PX`
on screen).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from pml import paths

#: Width of the book's text column in CSS px: sphinx-book-theme's article (752 px, 32 px padding on each side)
#: in a 1280-px-wide browser window, as measured in the rendered book; every figure image is scaled to it.
CONTENT_PX = 672
#: CSS pixels per inch: at this scale a figure's points are the page's points.
CSS_PX_PER_IN = 96
#: The widest figure (inches): as wide as the text column, so that its text shows at the size it was drawn.
PAGE_WIDTH = CONTENT_PX / CSS_PX_PER_IN
#: The smallest text a reader must be able to read in the page, in CSS px (about 9 pt).
MIN_TEXT_PX = 12
#: Font sizes (points) of every figure: axis labels and titles; tick labels, legends, notes and labels inside plots.
FONT_PT = 10
SMALL_PT = 9

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "legend.fontsize": SMALL_PT,
    "legend.title_fontsize": SMALL_PT,
    "figure.titlesize": FONT_PT,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
}


@contextlib.contextmanager
def style():
    """Apply the book's matplotlib style inside a ``with`` block (:func:`styled` and :func:`savefig` use it)."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def styled(func):
    """Decorator: ``func`` (a ``plot_<figure>`` function) builds its figure inside :func:`style`.

    Matplotlib reads its settings when an artist is made, so the figure keeps the book's style wherever it is
    made and saved afterwards. Given a :class:`pml.engine.NotComputed` (a step a stored build lacks), it returns
    :func:`not_computed_figure` instead, unless ``func`` is marked :func:`draws_partial`.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with style():
            if not getattr(func, "draws_partial", False):
                from pml.engine import partial

                missing = partial.combine(*args, *kwargs.values())
                if missing is not None:
                    return not_computed_figure(missing, func.__name__.removeprefix("plot_").replace("_", " "))
            fig = func(*args, **kwargs)
        check_legible(fig, func.__name__)
        return fig

    return wrapper


def text_px(fontsize_pt: float, width_in: float, dpi: float | None = None) -> float:
    """On-screen height (CSS px) of ``fontsize_pt`` text in a figure ``width_in`` inches wide, in the book's page.

    The image (``width_in * dpi`` px, at ``savefig.dpi`` of :data:`STYLE` by default) is shown at its own width, or
    scaled down to the text column (:data:`CONTENT_PX`) when wider.
    """
    dpi = STYLE["savefig.dpi"] if dpi is None else dpi
    return fontsize_pt * min(CONTENT_PX, width_in * dpi) / (72.0 * width_in)


def smallest_text(fig) -> tuple[float, str]:
    """``(on-screen px, text)`` of the smallest visible text of ``fig`` (:func:`text_px`): tick labels, axis labels,
    titles, legends, notes; ``(inf, "")`` when it has none."""
    from matplotlib.text import Text

    fig.draw_without_rendering()  # tick labels get their text when drawn
    found = (float("inf"), "")
    for text in fig.findobj(Text):
        if not text.get_text().strip() or not _shown(text):
            continue
        px = text_px(text.get_fontsize(), fig.get_figwidth())
        if px < found[0]:
            found = (px, text.get_text())
    return found


def figure_texts(fig) -> list[str]:
    """The visible texts of ``fig`` that are not tick labels: titles, axis labels, texts in panels, legend entries
    and the notes under the figure (:func:`figure_notes`), each with its white space collapsed to single spaces."""
    from matplotlib.axis import Tick
    from matplotlib.text import Text

    ticks = {id(t) for tick in fig.findobj(Tick) for t in (tick.label1, tick.label2)}
    return [" ".join(t.get_text().split()) for t in fig.findobj(Text)
            if t.get_text().strip() and _shown(t) and id(t) not in ticks]


def _shown(artist) -> bool:
    """Whether ``artist`` and its axes (if any) are visible."""
    return artist.get_visible() and (artist.axes is None or artist.axes.get_visible())


def check_legible(fig, what: str = "figure") -> None:
    """Raise ValueError when the smallest text of ``fig`` shows below :data:`MIN_TEXT_PX` in the page."""
    px, text = smallest_text(fig)
    if px < MIN_TEXT_PX - 0.05:
        raise ValueError(f"{what}: text {text[:40]!r} shows {px:.1f} px high in the book's page (at least "
                         f"{MIN_TEXT_PX} px: draw at most {PAGE_WIDTH:g} in wide, with fonts of at least {SMALL_PT} pt)")


def draws_partial(func):
    """Mark a ``plot_<figure>`` function that draws what is stored itself when given a
    :class:`pml.engine.NotComputed` (see :func:`styled`)."""
    func.draws_partial = True
    return func


def not_computed_figure(missing, what: str = "figure", width: float = 6.0, height: float = 2.0):
    """A figure that says which step it lacks: ``missing`` is the :class:`pml.engine.NotComputed`."""
    fig, axes = new_figure(width=width, height=height)
    ax = axes[0, 0]
    ax.axis("off")
    ax.text(0.5, 0.5, f"{what}: not computed in this build\n{missing.text}", ha="center", va="center",
            fontsize=SMALL_PT, wrap=True, transform=ax.transAxes, color="0.3")
    return fig


def mark_missing(ax, xs, color="0.4", label: str | None = None) -> None:
    """Hollow markers along the bottom of ``ax`` at the x positions of points not computed."""
    import numpy as np
    from matplotlib.transforms import blended_transform_factory

    xs = np.asarray(list(xs), dtype=float)
    if xs.size:
        transform = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot(xs, np.full(xs.size, 0.03), "o", mfc="none", mec=color, ms=6, mew=1.2, transform=transform,
                clip_on=False, label=label)


def legend(ax, **kwargs) -> None:
    """``ax.legend(**kwargs)`` when something in ``ax`` has a label (a partial panel may have none)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def missing_networks(ax, nets, equation: str, activation: str | None, colors, kind: str | None = None,
                     label: str | None = None) -> list[str]:
    """Mark the network shapes a partial table lacks (``nets.missing_shapes(...)``, hollow at the bottom of ``ax`` in
    the colour of their depth); returns the lines of the panel's note: all of them at once when none is there, else
    the widths per depth, with their cost-model CPU-hours."""
    from pml.engine.partial import hours_text

    shapes = nets.missing_shapes(equation, activation, kind=kind)
    if not shapes:
        return []
    name = label or activation or kind or "networks"
    for depth in sorted({int(m["depth"]) for m in shapes}):
        mark_missing(ax, [m["n_params"] for m in shapes if m["depth"] == depth], colors.get(depth, "k"))
    if not nets.rows(equation, activation, kind=kind).any():
        return [f"{name}: all {len(shapes)} networks ({hours_text(sum(m['cpu_hours'] for m in shapes))})"]
    lines = []
    for depth in sorted({int(m["depth"]) for m in shapes}):
        mine = [m for m in shapes if m["depth"] == depth]
        widths = [str(m["width"]) for m in mine]
        text = " and ".join(widths) if len(widths) <= 2 else ", ".join(widths)
        lines.append(f"{name} depth {depth}: width{'s' if len(mine) > 1 else ''} {text} "
                     f"({hours_text(sum(m['cpu_hours'] for m in mine))})")
    return lines


def empty_log_axes(ax, low: float = 1e-8, high: float = 1.0) -> None:
    """Log axes; y from ``low`` to ``high`` when nothing was drawn (a panel whose networks are all missing)."""
    import numpy as np

    ax.set_xscale("log")
    ax.set_yscale("log")
    if not np.isfinite(ax.dataLim.y0) or ax.dataLim.height == 0:
        ax.set_ylim(low, high)


def not_computed_panel(ax, missing, what: str) -> None:
    """An empty panel that says which step it lacks."""
    text = ax.text(0.5, 0.5, f"{what}: not computed\n{missing.short}\n({missing.step})", ha="center",
                   va="center", fontsize=SMALL_PT, color="0.3", transform=ax.transAxes)
    text.set_in_layout(False)
    ax.set_xticks([])
    ax.set_yticks([])


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4, **kwargs):
    """A figure that is never shown on screen or registered with pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def page_figure(ncols: int = 1, nrows: int = 1, height: float = 2.8, width: float = PAGE_WIDTH, **kwargs):
    """A figure ``width`` inches wide in all (the text column by default) with ``nrows`` x ``ncols`` panels, each row
    ``height`` inches high (:func:`new_figure`)."""
    return new_figure(ncols, nrows, width / max(ncols, 1), height, **kwargs)


def figure_legend(fig, axes, ncol: int = 2, loc: str = "outside lower center") -> None:
    """One legend for all ``axes`` of ``fig``, outside them (each label once, in the order first drawn)."""
    entries: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc=loc, ncol=min(ncol, len(entries)))


def figure_notes(fig, notes, title: str = "not computed (hollow markers)") -> None:
    """What the panels of a partial figure lack, as one note under the figure, wrapped to its width: ``notes`` is a
    sequence of ``(panel name or "", lines)``; nothing is drawn when every panel has all it needs."""
    import textwrap

    parts = [(f"{name}: " if name else "") + "; ".join(lines) for name, lines in notes if lines]
    if not parts:
        return
    width = int(fig.get_figwidth() * 72 / (0.55 * SMALL_PT))  # characters per line at SMALL_PT
    wrapped = [textwrap.fill(part, width, subsequent_indent="    ") for part in [f"{title}:", *parts]]
    n_lines = sum(text.count("\n") + 1 for text in wrapped)
    fig.set_figheight(fig.get_figheight() + n_lines * 1.3 * SMALL_PT / 72)  # the note's room, not the panels'
    fig.supxlabel("\n".join(wrapped), fontsize=SMALL_PT, color="0.35", style="italic", ha="left", x=0.01)


def savefig(fig, name: str, profile: str) -> Path:
    """Save ``fig`` as ``_build/figures/<profile>/<name>.png`` (names follow the paper: ``fig02_relu_scaling``)."""
    if not name or "/" in name or name.endswith(".png"):
        raise ValueError(f"figure name must be a plain stem like 'fig02_relu_scaling', got {name!r}")
    out = paths.output_dir("figures", profile) / f"{name}.png"  # the runner's staging folder during a run
    out.parent.mkdir(parents=True, exist_ok=True)
    with style():  # the book's savefig resolution
        fig.savefig(out)
    return out


def publish(fig, name: str, profile: str):
    """Save ``fig`` (see :func:`savefig`) and return it as a PNG image object for ``myst_nb.glue``.

    Going through the saved PNG makes the rendered figure independent of the kernel's matplotlib backend.
    """
    from IPython.display import Image

    return Image(filename=str(savefig(fig, name, profile)))
