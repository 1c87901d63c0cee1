"""Figures: one ``plot_<figure>(result) -> Figure`` per book figure, in a module per chapter.

Only this package imports matplotlib. The house style is applied explicitly with the :func:`style` context
manager, never at import; :func:`savefig` writes ``_build/figures/<profile>/<name>.png``.
"""

from __future__ import annotations

import contextlib
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
    """Apply the book's matplotlib style inside a ``with`` block (or for a whole chapter with ``__enter__``)."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


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
    out = paths.figures_dir(profile) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def publish(fig, name: str, profile: str):
    """Save ``fig`` (see :func:`savefig`) and return it as a PNG image object for ``myst_nb.glue``.

    Going through the saved PNG makes the rendered figure independent of the kernel's matplotlib backend.
    """
    from IPython.display import Image

    return Image(filename=str(savefig(fig, name, profile)))
