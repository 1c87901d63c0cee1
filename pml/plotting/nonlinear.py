"""Figures of the Section 3 chapter (nonlinear methods): Figs. 4, 5, 6a and 6b.

In a stored build (:mod:`pml.engine.partial`) the figures draw what is stored: a step that is not stored leaves
its panels with a note, and the network and grid sizes not computed are hollow markers along the bottom of their
panel, named with their cost in a note under the figure.
"""

from __future__ import annotations

import numpy as np

from pml import equations
from pml.engine.partial import hours_text, is_missing
from pml.plotting import (
    FONT_PT,
    SMALL_PT,
    draws_partial,
    empty_log_axes,
    figure_legend,
    figure_notes,
    legend,
    mark_missing,
    missing_networks,
    new_figure,
    not_computed_panel,
    page_figure,
    styled,
)

EPS0 = 2.0**-52
DEPTH_COLORS = {2: "tab:blue", 3: "tab:orange", 4: "tab:red"}
ORDER_COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green", 4: "tab:olive", 5: "tab:red", 6: "tab:brown",
                7: "tab:purple"}


def _theory_line(ax, n, err, window, exponent, color):
    """Dashed n**exponent guide through the first point of the fit window (or the first point)."""
    if not np.size(n):
        return
    k = int(np.flatnonzero(window)[0]) if window.any() else 0
    ax.loglog(n, err[k] * (n / n[k]) ** exponent, "--", color=color, lw=0.9, alpha=0.6)


def _spline_panel(ax, curves, title: str, xlabel: str):
    for c in curves:
        color = ORDER_COLORS.get(c.order, "k")
        n = c.n_nominal.astype(float)
        ax.loglog(n, c.rel_rmse, "o-", ms=2.5, lw=1, color=color,
                  label=f"order {c.order}: slope {c.fit.exponent:.2f} (theory {c.theory:.2f})")
        ax.loglog(n[c.fit.window], c.rel_rmse[c.fit.window], "o", ms=5, mfc="none", color=color)
        _theory_line(ax, n, c.rel_rmse, c.fit.window, c.theory, color)
    ax.axhline(EPS0, color="k", lw=0.8, ls=":", label=r"$\epsilon_0 = 2^{-52}$")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"relative test RMSE $\ell_{\rm rms}$")
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.set_ylim(1e-17, 10)


@styled
@draws_partial
def plot_splines(splines_result, grid_result):
    """Fig. 4: (a) 1D splines on e^x, (b) 2D splines on e^(xy) (relative RMSE), (c) 3D on I.30.5 (absolute RMSE),
    and (d) the high orders on a steeper target (our diagnostic), one panel per row with its legend on the right.
    Either result may be a step a stored build lacks (its panels say so) and the grid result may be partial (its
    missing sizes marked, and named in a note under the panels)."""
    fig, axes = page_figure(nrows=4, height=2.5)
    (a, b, c, d) = axes[:, 0]
    if is_missing(splines_result):
        for ax, what in ((a, "(a) splines on $e^x$"), (b, "(b) splines on $e^{xy}$"),
                         (d, "(d) high orders on $e^{ax}$")):
            not_computed_panel(ax, splines_result, what)
    else:
        curves = splines_result.curves
        _spline_panel(a, [c for c in curves if c.dim == 1], r"(a) $y = e^x$, $d = 1$", "training points |D|")
        _spline_panel(b, [c for c in curves if c.dim == 2], r"(b) $z = e^{xy}$, $d = 2$",
                      r"nominal |D| ($\lfloor\sqrt{n}\rfloor^2$ nodes used)")
        rate = f"{splines_result.stiff_rate:g}"
        _spline_panel(d, splines_result.stiff, f"(d) ours: high orders on $y = e^{{{rate}x}}$",
                      "training points |D|")
    if is_missing(grid_result):
        not_computed_panel(c, grid_result, "(c) regular grids in 3D")
        return fig
    figure_notes(fig, [("(c)", _grid_panel(c, grid_result))])
    return fig


def _grid_panel(ax, grid_result) -> list[str]:
    """Fig. 4c: the three regular-grid curves, the missing sizes of a partial result marked; returns the lines of
    its note (the sizes not computed)."""
    from pml.approx.splines import grid_points_per_axis

    styles = ((grid_result.tricubic, "tab:purple", "o-"), (grid_result.tricubic_exact, "0.5", "s--"),
              (grid_result.simplex, "tab:blue", "^-"))
    notes = []
    for curve, color, fmt in styles:
        n = curve.n_train.astype(float)
        slope = f"slope {curve.fit.exponent:.2f}" if not curve.missing else "partial: no fit"
        ax.errorbar(n, curve.rmse_mean, yerr=curve.rmse_std, fmt=fmt, ms=3, lw=1, color=color, capsize=2,
                    label=f"{curve.method}: {slope}")
        ax.loglog(n[curve.fit.window], curve.rmse_mean[curve.fit.window], "o", ms=6, mfc="none", color=color)
        if curve.missing:
            mark_missing(ax, [grid_points_per_axis(int(tp)) ** 3 for tp in curve.missing], color)
            notes.append(f"{curve.method}: TP {', '.join(str(int(tp)) for tp in curve.missing)} "
                         f"({hours_text(curve.missing_cpu_hours)})")
    tri = grid_result.tricubic_exact
    _theory_line(ax, tri.n_train.astype(float), tri.rmse_mean, tri.fit.window, -4 / 3, "0.3")
    sim = grid_result.simplex
    _theory_line(ax, sim.n_train.astype(float), sim.rmse_mean, sim.fit.window, -2 / 3, "tab:blue")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("grid points |D| (true count)")
    ax.set_ylabel(r"absolute test RMSE $L_{\rm rms}$")
    ax.set_title(f"(c) {grid_result.equation}, $d = 3$; dashed: $D^{{-4/3}}$, $D^{{-2/3}}$")
    legend(ax, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return notes


def _network_panel(ax, nets, simplex, equation, activations=("tanh", "relu")) -> list[str]:
    """Scatter + median lines per depth (tanh solid, ReLU dotted), the simplex band and its N^(-2/d) line; in a
    stored build, the network shapes not computed marked (hollow, at the bottom). Returns the lines of the panel's
    note: the shapes not computed and a simplex step that is not stored."""
    notes = []
    if is_missing(simplex):
        notes.append(f"simplex: {simplex.short}")
    elif simplex is not None and equation in simplex.equations:
        N = simplex.n_params(equation).astype(float)
        mean, std = simplex.mean(equation), simplex.std(equation)
        ax.fill_between(N, np.maximum(mean - std, mean * 1e-3), mean + std, color="0.6", alpha=0.3, lw=0)
        ax.loglog(N, mean, "k-", lw=1.2, label="simplex (mean ± std)")
        d = simplex.dims[simplex.index(equation)]
        n_all = np.concatenate([N, nets.n_params[nets.equation == equation].astype(float),
                                [float(m["n_params"]) for m in nets.missing_shapes(equation)]])
        grid = np.geomspace(n_all.min(), n_all.max(), 50)
        ax.loglog(grid, mean[-1] * (grid / N[-1]) ** (-2 / d), "--", color="limegreen", lw=1.2,
                  label=r"linear-method scaling $N^{-2/d}$")
    for act in activations:
        for depth in sorted(set(nets.depth[nets.rows(equation, act)].tolist())):
            mask = nets.rows(equation, act, depth)
            color = DEPTH_COLORS.get(depth, "k")
            N, med = nets.median_curve(equation, act, depth)
            if act == "tanh":
                ax.loglog(nets.n_params[mask], nets.rmse[mask], "o", ms=3, alpha=0.45, color=color)
                ax.loglog(N, med, "-", lw=1.6, color=color, label=f"tanh depth {depth} (median)")
            else:
                ax.loglog(N, med, ":", lw=1.6, color=color, label=f"{act} depth {depth} (median)")
    for act in activations:
        notes += missing_networks(ax, nets, equation, act, DEPTH_COLORS)
    empty_log_axes(ax)
    ax.set_xlabel("parameters N")
    ax.set_ylabel(r"absolute test RMSE $L_{\rm rms}$")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    return notes


@styled
@draws_partial
def plot_tanh_scaling(nets, simplex):
    """Fig. 5: tanh MLPs vs simplex interpolation (ReLU medians dotted), one panel per equation, two per row, one
    legend above them; partial networks (:func:`_network_panel`) and a simplex step that is not stored are named in a
    note under the panels."""
    eqs = list(dict.fromkeys(nets.equation.tolist() + [m["equation"] for m in nets.missing]))
    ncols = min(len(eqs), 2)
    fig, axes = page_figure(ncols=ncols, nrows=int(np.ceil(len(eqs) / 2)), height=2.8)
    flat = axes.reshape(-1)
    notes = []
    for k, (ax, equation) in enumerate(zip(flat, eqs)):
        notes.append((equation, _network_panel(ax, nets, simplex, equation)))
        d = equations.get(equation).dim
        ax.set_title(f"{equation} (d = {d})")
        if k % ncols:
            ax.set_ylabel("")
        if k + ncols < len(eqs):
            ax.set_xlabel("")
    for ax in flat[len(eqs):]:
        ax.set_visible(False)
    figure_legend(fig, flat[:len(eqs)], ncol=3, loc="outside upper center")
    figure_notes(fig, notes)
    return fig


@styled
@draws_partial
def plot_dot_product(nets, simplex, gadget_result, equation: str = "I.11.19"):
    """Fig. 6a: tanh scaling on x1 y1 + x2 y2 + x3 y3 against the exact width-12 network's error (what a stored
    build lacks marked, :func:`_network_panel`; without the gadget step, no exact network)."""
    fig, axes = new_figure(width=6.0, height=4.2)
    ax = axes[0, 0]
    notes = _network_panel(ax, nets, simplex, equation, activations=("tanh",))
    if is_missing(gadget_result):
        figure_notes(fig, [("", [*notes, f"exact network: {gadget_result.text}"])], title="not computed")
        ax.set_title(f"{equation}: $x_1y_1 + x_2y_2 + x_3y_3$ (d = 6)")
        return fig
    exact = gadget_result.dot_curve(1)
    ax.axhline(exact.best_rmse, color="tab:green", lw=1.2,
               label=f"exact width-{exact.width} network, float64 (N = {exact.n_params})")
    ax.plot([exact.n_params], [exact.best_rmse], "*", ms=12, color="tab:green")
    ax.axhline(EPS0 * gadget_result.dot_y_rms, color="k", lw=0.8, ls=":",
               label=r"float64 floor $\epsilon_0 y_{\rm rms}$")
    ax.set_title(f"{equation}: $x_1y_1 + x_2y_2 + x_3y_3$ (d = 6)")
    legend(ax, loc="center right")
    figure_notes(fig, [("", notes)])
    return fig


def _draw_gadget(ax):
    """The 4-neuron multiplication network of Lin, Tegmark & Rolnick (2017), as in the paper's Fig. 6(b)."""
    inputs = {"x": (0.0, 0.68), "y": (0.0, 0.32)}
    hidden = [(0.5, 0.88), (0.5, 0.63), (0.5, 0.38), (0.5, 0.13)]
    out = (1.0, 0.5)
    w_in = [("+λ", "+λ"), ("−λ", "−λ"), ("+λ", "−λ"), ("−λ", "+λ")]
    w_out = ["+μ", "+μ", "−μ", "−μ"]
    for (hx, hy), (wx, wy), wo in zip(hidden, w_in, w_out):
        for (name, (ix, iy)), w in zip(inputs.items(), (wx, wy)):
            color = "tab:blue" if w.startswith("+") else "tab:red"
            ax.plot([ix, hx], [iy, hy], color=color, lw=1, zorder=1)
            t = 0.72 if name == "x" else 0.28
            ax.text(ix + t * (hx - ix), iy + t * (hy - iy), w, fontsize=SMALL_PT, color=color, ha="center", va="center",
                    bbox=dict(fc="white", ec="none", pad=0.3))
        color = "tab:blue" if wo.startswith("+") else "tab:red"
        ax.plot([hx, out[0]], [hy, out[1]], color=color, lw=1, zorder=1)
        ax.text(hx + 0.3 * (out[0] - hx), hy + 0.3 * (out[1] - hy), wo, fontsize=SMALL_PT, color=color, ha="center",
                va="center", bbox=dict(fc="white", ec="none", pad=0.3))
    for name, (x, y) in inputs.items():
        ax.add_patch(_circle((x, y), "0.85"))
        ax.text(x, y, f"${name}$", ha="center", va="center", fontsize=FONT_PT)
    for x, y in hidden:
        ax.add_patch(_circle((x, y), "lightyellow"))
        ax.text(x, y, r"$\sigma$", ha="center", va="center", fontsize=FONT_PT)
    ax.add_patch(_circle(out, "0.85", radius=0.1))
    ax.text(*out, r"$\approx xy$", ha="center", va="center", fontsize=SMALL_PT)
    ax.text(0.5, -0.07, r"$\mu = 1/(4\lambda^2\sigma''(0))$; exact as $\lambda \to 0$", ha="center",
            fontsize=SMALL_PT)
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.12, 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("the multiplication gadget\n(Lin, Tegmark & Rolnick)")


def _circle(xy, color, radius: float = 0.065):
    from matplotlib.patches import Circle

    return Circle(xy, radius, fc=color, ec="k", lw=0.8, zorder=2)


@styled
def plot_gadget(gadget_result):
    """Fig. 6b: the gadget drawn, and its relative error against lambda in float64 and in exact arithmetic (legend
    under both)."""
    fig, axes = page_figure(ncols=2, height=4.4, gridspec_kw={"width_ratios": [1.1, 1]})
    _draw_gadget(axes[0, 0])
    ax = axes[0, 1]
    for k, (curve, order) in enumerate(zip(gadget_result.curves, gadget_result.orders)):
        color = ORDER_COLORS.get(2 * order - 1, "k")
        label = f"{order} scale{'s' if order > 1 else ''} ({curve.width} neurons), float64"
        ax.loglog(curve.lambdas, curve.rel_rmse, "o-", ms=2.5, lw=1, color=color, label=label)
        ax.loglog(gadget_result.truncation_lambdas, gadget_result.truncation[k], "--", lw=1.2, color=color,
                  label=rf"exact arithmetic: slope {gadget_result.truncation_exponent[k]:.2f}")
    ax.axhline(EPS0, color="k", lw=0.8, ls=":", label=r"$\epsilon_0$")
    ax.set_xlabel(r"scale $\lambda$")
    ax.set_ylabel(r"relative RMSE of $xy$ on $[-1, 1]^2$")
    ax.set_title("gadget error\nagainst its scale λ")
    figure_legend(fig, [ax], ncol=2)
    return fig
