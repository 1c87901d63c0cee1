"""Figures: one ``plot_<figure>(result) -> Figure`` per book figure, in a module per chapter.

Only this package imports matplotlib. The house style applies itself where figures are made and saved: every
``plot_<figure>`` function is decorated with :func:`styled` (it builds its figure inside the :func:`style` context)
and :func:`savefig` saves inside it too, so a chapter needs no style call; nothing is changed at import.
:func:`savefig` writes ``_build/figures/<profile>/<name>.png``.
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
    made and saved afterwards.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with style():
            return func(*args, **kwargs)

    return wrapper


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
