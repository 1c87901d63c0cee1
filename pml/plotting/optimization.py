"""Figures of the Section 4 chapter (optimisation): Fig. 7's spectrum, Figs. 8-9's learning curves, §4.2's quintic."""

from __future__ import annotations

import numpy as np

from pml.engine.partial import combine
from pml.plotting import not_computed_figure, page_figure, styled

EIG_COLOR = "darkgreen"
PROJ_COLOR = "tab:red"
BFGS_COLOR = "black"
COMBINED_COLOR = "tab:red"


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _spectrum_panel(ax, eigenvalues, projections, n_nonneg, title):
    idx = np.arange(eigenvalues.size)
    ax.semilogy(idx, np.abs(eigenvalues), color=EIG_COLOR, lw=2, label=r"$|\lambda_i|$")
    ax.axvline(n_nonneg - 0.5, color="0.4", ls=":", lw=1)
    ax.set_xlabel(r"eigenvalue index (descending $\lambda$; dotted: $\lambda = 0$)")
    ax.set_ylabel(r"$|\lambda_i|$", color=EIG_COLOR)
    ax.set_title(title)
    twin = ax.twinx()
    twin.semilogy(idx, np.maximum(projections, 1e-300), color=PROJ_COLOR, lw=0.5, label=r"$|g\cdot e_i|$")
    twin.set_ylabel(r"$|g \cdot e_i|$", color=PROJ_COLOR)
    twin.grid(False)
    return twin


@styled
def plot_spectrum(spectrum):
    """Fig. 7: |eigenvalues| of the loss Hessian after Adam (descending) and the gradient's projections on the
    eigenvectors: over all parameters (top) and over the first layer's weights only, as the authors' notebook
    computed them (bottom; its helper returned from inside its loop)."""
    fig, axes = page_figure(nrows=2, height=2.8)
    evals, full, first = spectrum.descending()
    n_nonneg = spectrum.counts()["nonnegative"]
    _spectrum_panel(axes[0, 0], evals, full, n_nonneg, r"projection of the full gradient $g$ (all $N$ parameters)")
    _spectrum_panel(axes[1, 0], evals, first, n_nonneg, "first-layer weights only (the authors' notebook)")
    return fig


def _learning_panel(ax, title, adam, bfgs, combined):
    colors = [_cmap("viridis")(v) for v in np.linspace(0.0, 0.9, max(len(adam.curves), 1))]
    for curve, color in zip(adam.curves, colors):
        ax.plot(curve.step, curve.rmse, color=color, lw=0.8, label=curve.label)
    if bfgs is not None:
        ax.plot(bfgs.curve.step, bfgs.curve.rmse, color=BFGS_COLOR, lw=1.2, label=bfgs.curve.label)
    if combined is not None:
        ax.plot(combined.curve.step, combined.curve.rmse, color=COMBINED_COLOR, lw=1.4, label=combined.curve.label)
        for start, _name in combined.boundaries[1:]:
            ax.axvline(start, color=COMBINED_COLOR, lw=0.5, ls=":", alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("optimisation steps (Adam steps, BFGS iterations, low-curvature steps)")
    ax.set_ylabel("test RMSE (absolute)")
    ax.set_title(title)
    ax.legend(ncol=2)


@styled
def plot_combined_techniques(panels):
    """Figs. 8-9: test RMSE (absolute) against optimisation steps for Adam at each learning rate, BFGS alone
    (width 40; may be None) and BFGS + low-curvature steps + boosting (width 20 + 20, dotted lines between stages).

    ``panels`` is a sequence of ``(title, AdamResult, BFGSResult | None, CombinedResult)``, one row each; in a
    stored build where one is not stored (a :class:`pml.engine.NotComputed`), a figure that says so.
    """
    panels = list(panels)
    missing = combine(*(x for panel in panels for x in panel[1:]))
    if missing is not None:
        return not_computed_figure(missing, "combined techniques")
    fig, axes = page_figure(nrows=len(panels), height=3.4)
    for ax, (title, adam, bfgs, combined) in zip(axes[:, 0], panels):
        _learning_panel(ax, title, adam, bfgs, combined)
    return fig


@styled
def plot_quintic(result):
    """§4.2's text claims: BFGS on a random quintic until precision loss (left), then low-curvature steps from that
    solution at each tau (right); training RMSE (absolute)."""
    fig, axes = page_figure(ncols=2, height=3.2)
    left, right = axes[0]
    left.semilogy(result.bfgs_curve.step, result.bfgs_curve.rmse, color=BFGS_COLOR)
    left.set_xlabel("BFGS iteration")
    left.set_ylabel("train RMSE (absolute)")
    left.set_title(f"BFGS, stopped by:\n{result.bfgs_stop}")
    colors = [_cmap("plasma")(v) for v in np.linspace(0.0, 0.85, max(len(result.taus), 1))]
    for curve, color in zip(result.lc_curves, colors):
        right.semilogy(curve.step, curve.rmse, color=color, label=curve.label)
    right.axhline(result.bfgs_rmse / 2, color="0.4", ls="--", lw=0.8, label="BFGS RMSE / 2")
    right.set_xlabel("low-curvature step")
    right.set_ylabel("train RMSE (absolute)")
    right.set_title("Low-curvature steps\nfrom the BFGS solution")
    right.legend()
    return fig
