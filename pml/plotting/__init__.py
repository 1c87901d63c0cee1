"""Figures: one ``plot_<figure>(result) -> Figure`` per book figure, in a module per chapter.

Only this package imports matplotlib. The house style applies itself where figures are made and saved: every
``plot_<figure>`` function is decorated with :func:`styled` (it builds its figure inside the :func:`style` context)
and :func:`savefig` saves inside it too, so a chapter needs no style call; nothing is changed at import.
:func:`savefig` writes ``_build/figures/<profile>/<name>.png``.

Stored builds (``pml run/book --stored``, :mod:`pml.engine.partial`): a ``plot_<figure>`` function given a step that
is not stored (a :class:`pml.engine.NotComputed`) returns a figure that says so (:func:`not_computed_figure`),
unless it is marked :func:`draws_partial` and draws what it can itself; partial results are drawn with their
missing points marked (:func:`mark_missing`).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from pml import paths

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
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
            return func(*args, **kwargs)

    return wrapper


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
            fontsize=9, wrap=True, transform=ax.transAxes, color="0.3")
    return fig


def note_missing(ax, text: str, loc: str = "upper right") -> None:
    """A grey note in a corner of ``ax`` (what a partial panel lacks)."""
    x, ha = (0.98, "right") if loc.endswith("right") else (0.02, "left")
    y, va = (0.98, "top") if loc.startswith("upper") else (0.02, "bottom")
    note = ax.text(x, y, text, ha=ha, va=va, fontsize=6.5, color="0.35", style="italic", transform=ax.transAxes,
                   bbox=dict(fc="white", ec="0.7", lw=0.5, alpha=0.85, pad=2))
    note.set_in_layout(False)  # inside the axes: the layout must not shrink them for it


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
                   va="center", fontsize=7.5, color="0.3", transform=ax.transAxes)
    text.set_in_layout(False)
    ax.set_xticks([])
    ax.set_yticks([])


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4, **kwargs):
    """A figure that is never shown on screen or registered with pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


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
