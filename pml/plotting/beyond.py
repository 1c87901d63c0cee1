"""Figures of the "beyond the paper" chapter: error against stage and error against wall time (relative RMSE)."""

from __future__ import annotations

import math

import numpy as np

from pml.plotting import figure_legend, page_figure, styled

TRAIN_COLOR = "tab:blue"
START_COLOR = "tab:gray"
TEST_COLOR = "tab:red"
FLOOR_COLOR = "0.35"
TARGET_COLOR = "tab:green"
PAPER_COLOR = "black"
BFGS_COLOR = "tab:purple"
METHOD_MARKERS = {"readout": ("D", "tab:orange"), "chebyshev": ("s", "tab:brown"), "rbf": ("^", "tab:olive"),
                  "poly-lsq": ("v", "tab:cyan")}
PAPER_STYLES = ("-.", "--", ":")
MIN_SECONDS = 1e-3  # methods that took less are drawn here on the log time axis


def _grid(n: int, ncols: int = 2, height: float = 2.8):
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = page_figure(ncols=min(ncols, max(n, 1)), nrows=nrows, height=height)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _label(problem: str) -> str:
    from pml.experiments.beyond import LABELS

    return LABELS.get(problem, problem)


@styled
def plot_stages(result, eps: float = float(np.finfo(np.float64).eps)):
    """Relative RMSE of the LM multi-stage model after each stage, on its training points (blue) and on the
    benchmark's 10^4 test points (red), one panel per problem; grey triangles: each stage's start (the combined
    model with the stage's least-squares output layer, before LM; train); dashed: float64 eps = 2^-52; green dotted:
    pml's target for a trained network; black dash-dot: the paper's best (its absolute value / y_rms)."""
    problems = list(result.traces)
    fig, axes = _grid(len(problems))
    for ax, problem in zip(axes, problems):
        tr = result.traces[problem]
        stages = np.arange(1, tr.n_stages + 1)
        starts = tr.start_rel
        for k in range(tr.n_stages):
            ax.semilogy([k + 0.7, k + 1], [starts[k], tr.train_rel[k]], color=START_COLOR, lw=0.8, ls=":")
        ax.semilogy(stages - 0.3, starts, ">", color=START_COLOR, ms=5, mfc="white",
                    label="stage start: least-squares output layer, before LM (train)")
        ax.semilogy(stages, tr.train_rel, "o-", color=TRAIN_COLOR, label="after LM (train)")
        ax.semilogy(stages, tr.test_rel, "s--", color=TEST_COLOR, label="after LM (test)")
        ax.axhline(eps, color=FLOOR_COLOR, ls="--", lw=0.9, label=r"float64 $\epsilon_0 = 2^{-52}$")
        row = result.best(problem, "trained")
        if row is not None and row["target_rel_rmse"] is not None:
            ax.axhline(row["target_rel_rmse"], color=TARGET_COLOR, ls=":", lw=1.2, label="target (trained net)")
        paper = next((r["paper_rel_rmse"] for r in result.rows if r["problem"] == problem), None)
        if paper is not None:
            ax.axhline(paper, color=PAPER_COLOR, ls="-.", lw=0.9, label="paper's best")
        ax.set_xticks(stages)
        ax.set_xlabel("stage")
        ax.set_ylabel("relative RMSE")
        ax.set_title(f"{_label(problem)}:\n{tr.n_stages} stages of {tr.n_params[0]} parameters")
        ax.set_ylim(bottom=min(eps, float(np.min(tr.train_rel))) / 4)
    figure_legend(fig, axes)
    return fig


@styled
def plot_time(result, bfgs=None, paper_curves=None):
    """Relative RMSE against wall time, one panel per problem: the LM multi-stage fit's training curve (blue; dots:
    the combined model's test RMSE at the end of each stage), the other methods' test RMSE at the time they took
    (markers; times below 1 ms drawn at 1 ms), our width-40 BFGS's test curve where ``bfgs`` ran (purple), and the
    paper's end points (horizontal black lines, absolute values / y_rms; they carry no time)."""
    from pml.experiments.beyond import PAPER_CURVES

    paper_curves = PAPER_CURVES if paper_curves is None else paper_curves
    problems = list(result.traces)
    fig, axes = _grid(len(problems))
    for ax, problem in zip(axes, problems):
        tr = result.traces[problem]
        ax.loglog(np.maximum(tr.curve_time, MIN_SECONDS), tr.curve_rel, color=TRAIN_COLOR, lw=1.2,
                  label="LM multi-stage (train)")
        ends = np.cumsum(tr.seconds)
        ax.loglog(np.maximum(ends, MIN_SECONDS), tr.test_rel, "o", color=TRAIN_COLOR, ms=4, mfc="white",
                  label="after each stage (test)")
        for r in result.rows:
            if r["problem"] == problem and r["method"] in METHOD_MARKERS:
                marker, color = METHOD_MARKERS[r["method"]]
                ax.loglog(max(r["seconds"], MIN_SECONDS), r["rel_rmse"], marker, color=color, ms=5,
                          label=r["method"])
        if bfgs is not None and bfgs.problem == problem:
            ax.loglog(np.maximum(bfgs.time_s, MIN_SECONDS), bfgs.test_rel, color=BFGS_COLOR, lw=1.2,
                      label=f"BFGS, width 40 (test, {bfgs.n_train} pts)")
        for (name, value), ls in zip(paper_curves.get(problem, {}).items(), PAPER_STYLES):
            ax.axhline(value / tr.y_rms, color=PAPER_COLOR, ls=ls, lw=0.8, label=f"paper: {name}")
        ax.set_xlabel("wall time (s, one thread)")
        ax.set_ylabel("relative RMSE")
        ax.set_title(_label(problem))
    figure_legend(fig, axes)
    return fig
