"""Figures of the Section 2 chapter (piecewise linear methods): Figs. 1(a), 1(b), 2 and 3.

In a stored build (:mod:`pml.engine.partial`) Figs. 2 and 3 draw the networks that are stored and mark the others
(hollow, at the bottom of their panel, named with their cost in a note under the figure); a Fig. 1 panel that is
not stored is a figure that says so.
"""

from __future__ import annotations

import numpy as np

from pml import equations, scaling
from pml.engine.partial import combine, is_missing
from pml.plotting import (
    SMALL_PT,
    draws_partial,
    empty_log_axes,
    figure_legend,
    figure_notes,
    legend,
    missing_networks,
    not_computed_figure,
    page_figure,
    styled,
)

_DEPTH_COLORS = {2: "tab:blue", 3: "tab:orange", 4: "tab:green", 6: "tab:red", 9: "tab:purple"}
_TITLES = {"raw": "ReLU net, raw inputs", "normalized": "ReLU net, standardised inputs", "simplex": "linear simplex"}


@styled
def plot_linear_regions_1d(result):
    """Fig. 1(a): the fits of the raw-input net, the standardised-input net and the simplex, with their kinks.

    All panels use the raw x axis (the paper drew the standardised net against standardised x).
    """
    fig, axes = page_figure(ncols=3, height=2.7)
    x = result.grid[:, 0]
    for ax, key in zip(axes[0], ("raw", "normalized", "simplex")):
        labels = result.labels[key]
        kinks = x[1:][(labels[1:] != labels[:-1]) & (labels[1:] >= 0) & (labels[:-1] >= 0)]
        for k in kinks:
            ax.axvline(k, color="0.85", lw=0.8, zorder=0)
        ax.plot(x, result.y_grid, color="0.5", lw=1.0, ls="--", label="target")
        ax.plot(x, result.pred[key], color="tab:blue" if key != "simplex" else "tab:red", lw=1.4, label="fit")
        ax.plot(result.X_train[:, 0], result.y_train, "k.", ms=5, label=f"|D| = {result.n_train}")
        ax.set_title(f"{_TITLES[key]}\nRMSE {result.rmse[key]:.2e}\n{result.n_regions(key)} pieces", fontsize=SMALL_PT)
        ax.set_xlabel("x")
    axes[0, 0].set_ylabel("y")
    figure_legend(fig, axes[0, :1], ncol=3)
    return fig


def _region_colors(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """An RGBA image: one random colour per region label, white where the label is -1 (outside the hull)."""
    rng = np.random.default_rng(seed)
    n = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    palette = np.concatenate([rng.uniform(0.15, 0.95, size=(max(n, 1), 3)), np.ones((max(n, 1), 1))], axis=1)
    img = np.ones(labels.shape + (4,))
    inside = labels >= 0
    img[inside] = palette[labels[inside]]
    return img


@styled
def plot_linear_regions_2d(result):
    """Fig. 1(b): linear-region maps (one random colour per region) of the two nets and of the simplex."""
    fig, axes = page_figure(ncols=3, height=3.0)
    x0, x1 = result.grid[:, 0].min(), result.grid[:, 0].max()
    y0, y1 = result.grid[:, 1].min(), result.grid[:, 1].max()
    for ax, key in zip(axes[0], ("raw", "normalized", "simplex")):
        labels = result.labels[key].reshape(result.grid_shape)
        ax.imshow(_region_colors(labels).transpose(1, 0, 2), origin="lower", extent=(x0, x1, y0, y1),
                  interpolation="nearest")
        ax.plot(result.X_train[:, 0], result.X_train[:, 1], "k.", ms=2)
        ax.set_title(f"{_TITLES[key]}\nRMSE {result.rmse[key]:.2e}\n{result.n_regions(key)} regions", fontsize=SMALL_PT)
        ax.set_xlabel("x")
        ax.grid(False)
    axes[0, 0].set_ylabel("y")
    return fig


def _log_axes(ax) -> None:
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _relative_axis(ax, y_rms: float, label: bool = True) -> None:
    """A right-hand axis with the relative RMSE ell_rms = RMSE / y_rms (Eq. 1), named when ``label``."""
    sec = ax.secondary_yaxis("right", functions=(lambda v: v / y_rms, lambda v: v * y_rms))
    if label:
        sec.set_ylabel(r"relative $\ell_{\rm rms}$")
    from matplotlib.ticker import NullFormatter

    sec.yaxis.set_minor_formatter(NullFormatter())


def _simplex_band(ax, simplex, equation: str) -> None:
    N, mean, std = simplex.n_params(equation), simplex.mean(equation), simplex.std(equation)
    d = simplex.dim(equation)
    ax.fill_between(N, np.maximum(mean - std, mean * 1e-3), mean + std, color="0.6", alpha=0.35, lw=0)
    ax.plot(N, mean, color="k", lw=1.4, label="simplex (mean ± std)")
    ref_n = np.geomspace(N[0], N[-1], 20)
    ax.plot(ref_n, scaling.reference_line(ref_n, scaling.theoretical_exponent(d), N[-1], mean[-1]), "k--", lw=0.8,
            label="simplex theory $N^{-2/d}$")


def _equations_of(nets) -> list[str]:
    """The equations of a network table, the missing shapes' included, in order."""
    return list(dict.fromkeys([str(e) for e in nets.equation] + [m["equation"] for m in nets.missing]))


@styled
@draws_partial
def plot_relu_scaling(simplex, relu, dstar_line: bool = True):
    """Fig. 2: simplex (mean ± std over seeds, N^(-2/d) line anchored at its last point) vs ReLU nets of each depth
    (every seed as a dot, the median as a line), absolute RMSE on the left axis, relative on the right.

    The lime "d* = 2" N^(-1) line (d >= 3) is anchored at the first depth-4 point (x2 for II.6.15a), as upstream.
    Two panels per row, one legend above them; in a stored build, missing networks are marked (hollow) and named,
    with a simplex step that is not stored, in a note under the panels.
    """
    has_simplex = not is_missing(simplex)
    eqs = ([e for e in simplex.equations if e in set(_equations_of(relu))] if has_simplex else _equations_of(relu))
    if not eqs:
        return not_computed_figure(combine(simplex, relu.not_computed), "Fig. 2")
    ncols = 2 if len(eqs) > 1 else 1
    nrows = (len(eqs) + ncols - 1) // ncols
    fig, axes = page_figure(ncols=ncols, nrows=nrows, height=2.6)
    for ax in axes.flat[len(eqs):]:
        ax.set_visible(False)
    notes = []
    for k, (ax, eq) in enumerate(zip(axes.flat, eqs)):
        panel_notes = [] if has_simplex else [f"simplex: {simplex.short}"]
        if has_simplex:
            _simplex_band(ax, simplex, eq)
        d = equations.get(eq).dim
        for depth in relu.depths_of(eq):
            m = (relu.equation == eq) & (relu.depth == depth) & (relu.kind == "dense")
            color = _DEPTH_COLORS.get(depth)
            ax.scatter(relu.n_params[m], relu.rmse[m], s=8, color=color, alpha=0.45, lw=0)
            N, med = relu.curve(eq, depth)
            ax.plot(N, med, "o-", ms=3, color=color, lw=1.2, label=f"ReLU depth {depth}")
        depths = relu.depths_of(eq)
        if dstar_line and d >= 3 and depths:
            N, med = relu.curve(eq, max(depths))
            ref_n = np.geomspace(N[0], relu.n_params[relu.equation == eq].max(), 10)
            scale = 2.0 if eq == "II.6.15a" else 1.0
            ax.plot(ref_n, scaling.reference_line(ref_n, -1.0, N[0], med[0], scale), "--", color="lime", lw=1.2,
                    label="$N^{-2/d^*}$, $d^* = 2$ (d ≥ 3)")
        panel_notes += missing_networks(ax, relu, eq, None, _DEPTH_COLORS, label="ReLU")
        notes.append((f"{eq}", panel_notes))
        empty_log_axes(ax)
        _log_axes(ax)
        ax.set_title(f"{eq} (d = {d})")
        if k + ncols >= len(eqs):  # the lowest panel of its column
            ax.set_xlabel("parameters N")
        if k % ncols == 0:
            ax.set_ylabel("test RMSE (absolute)")
        y_rms = relu.y_rms.get(eq, simplex.y_rms[simplex.index(eq)] if has_simplex else None)
        if y_rms is not None:
            _relative_axis(ax, y_rms, label=k % ncols == ncols - 1 or k == len(eqs) - 1)
    figure_legend(fig, axes.flat[:len(eqs)], ncol=3, loc="outside upper center")
    figure_notes(fig, notes)
    return fig


@styled
@draws_partial
def plot_modular(simplex, modular):
    """Fig. 3: dense (light, solid) vs modular (dark, dashed) ReLU nets of the same depths, with the simplex band, one
    row per equation, its legend on the right; in a stored build, missing networks marked (hollow) and named, with a
    simplex step that is not stored, in a note under the panels."""
    eqs = _equations_of(modular)
    if not eqs:
        return not_computed_figure(combine(simplex, modular.not_computed), "Fig. 3")
    fig, axes = page_figure(nrows=len(eqs), height=2.9)
    light = {0: "lightskyblue", 1: "lightsalmon"}
    dark = {0: "navy", 1: "darkred"}
    notes = []
    for ax, eq in zip(axes[:, 0], eqs):
        panel_notes = [f"simplex: {simplex.short}"] if is_missing(simplex) else []
        if not is_missing(simplex) and eq in simplex.equations:
            _simplex_band(ax, simplex, eq)
        for k, depth in enumerate(modular.depths_of(eq, "dense")):
            for kind, color, ls in (("dense", light[k % 2], "-"), ("modular", dark[k % 2], "--")):
                m = (modular.equation == eq) & (modular.depth == depth) & (modular.kind == kind)
                if not m.any():
                    continue
                ax.scatter(modular.n_params[m], modular.rmse[m], s=8, color=color, alpha=0.5, lw=0)
                N, med = modular.curve(eq, depth, kind)
                ax.plot(N, med, ls, color=color, marker="o", ms=3, lw=1.3, label=f"{kind} depth {depth}")
        for kind in ("dense", "modular"):
            panel_notes += missing_networks(ax, modular, eq, None, _DEPTH_COLORS, kind=kind)
        notes.append((eq, panel_notes))
        empty_log_axes(ax)
        _log_axes(ax)
        ax.set_title(f"{eq} (d = {equations.get(eq).dim}): modular vs dense")
        ax.set_xlabel("parameters N")
        ax.set_ylabel("test RMSE (absolute)")
        if eq in modular.y_rms:
            _relative_axis(ax, modular.y_rms[eq])
        legend(ax, loc="center left", bbox_to_anchor=(1.2, 0.5))
    figure_notes(fig, notes)
    return fig
