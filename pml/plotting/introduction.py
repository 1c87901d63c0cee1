"""Figures of the Section 1 chapter."""

from __future__ import annotations

import numpy as np

from pml.plotting import new_figure, page_figure, styled


@styled
def plot_floors(result):
    """Measured precision floors per dtype against machine epsilon (§1.1)."""
    fig, axes = new_figure(width=5.0)
    ax = axes[0, 0]
    x = np.arange(len(result.dtypes))
    ax.bar(x - 0.25, result.eps, width=0.25, label=r"machine epsilon $\epsilon$", color="0.6")
    ax.bar(x, result.storage_floor, width=0.25, label="storing exact targets", color="tab:blue")
    ax.bar(x + 0.25, result.evaluation_floor, width=0.25, label="evaluating the formula", color="tab:orange")
    ax.set_xticks(x, result.dtypes)
    ax.set_yscale("log")
    ax.set_ylabel(r"relative RMSE $\ell_{\rm rms}$")
    ax.set_title("Precision floors")
    ax.legend()
    return fig


@styled
def plot_decomposition(result):
    """Mean of each term of Eq. (6) against |D|, with the spread of the sampling luck."""
    fig, axes = page_figure(ncols=2, height=3.2)
    left, right = axes[0]
    mean, std = result.mean(), result.std()
    for k, name in enumerate(result.names):
        values = np.abs(mean[:, k])
        left.plot(result.n_train, values, "o-", label=name.replace("_", " ") + (" (|mean|)" if k == 1 else ""))
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("|D|")
    left.set_ylabel(r"term of Eq. (6), relative RMS")
    left.set_title("Loss decomposition\n(mean over seeds)")
    left.legend()
    right.loglog(result.n_train, std[:, 1], "o-", color="tab:orange", label="std of sampling luck")
    ref = std[0, 1] * (result.n_train / result.n_train[0]) ** -0.5
    right.loglog(result.n_train, ref, "k--", label=r"$\propto |D|^{-1/2}$")
    right.set_xlabel("|D|")
    right.set_title("Sampling luck shrinks\nas $|D|^{-1/2}$")
    right.legend()
    return fig


@styled
def plot_piecewise(result, floor: float | None = None):
    """Piecewise-polynomial error against N with the N^(-(n+1)/d) law (§1.3)."""
    fig, axes = page_figure(ncols=len(result.targets), height=3.4)
    for i, (name, d) in enumerate(zip(result.targets, result.dims)):
        ax = axes[0, i]
        for j, n in enumerate(result.degrees):
            N, err = result.n_params[i, j], result.rmse[i, j]
            line, = ax.loglog(N, err, "o-", label=f"n = {n}: slope {result.exponent[i, j]:.2f}")
            ax.loglog(N, err[0] * (N / N[0]) ** result.theory()[i, j], "--", color=line.get_color(), alpha=0.5)
        if floor is not None:
            ax.axhline(floor, color="k", lw=0.8, ls=":", label="float64 floor")
        ax.set_xlabel("parameters N")
        ax.set_ylabel("test RMSE")
        ax.set_title(f"{name} (d = {d})\ndashed: $N^{{-(n+1)/d}}$")
        ax.legend()
    return fig
