"""Figure 10 of the paper, the User's Guide to Precision, drawn from :data:`pml.fitting.guide.RULES` and nothing else."""

from __future__ import annotations

from typing import Sequence

from pml.fitting import guide
from pml.plotting import SMALL_PT, page_figure, styled

METHOD_COLORS = {"poly": "#4c72b0", "spline": "#55a868", "readout": "#dd8452", "simplex": "#8172b3",
                 "adam-relu": "#937860", "rbf": "#64b5cd", "lm-multistage": "#c44e52", "adam-tanh": "#da8bc3",
                 "kernel": "#8c8c8c", "deep-lm": "#1b7837"}


@styled
def plot_guide(rules: Sequence[guide.Rule] = guide.RULES, *, d_max: int = 8, n_max: float = 1e6,
               points: Sequence[dict] = ()):
    """Fig. 10: which method for d inputs and n data rows, for smooth (top) and non-smooth (bottom) targets.

    Each rule is a box coloured by its primary method and numbered; the key under each panel gives its label, its
    candidates and its promised relative RMSE. Rows below every rule's minimum are "too few rows". ``points`` marks
    applications: dicts with ``d``, ``n``, ``label`` (equation names, one per line) and optionally ``smooth``
    (default True), e.g. the equations a chapter fits.
    """
    from matplotlib.patches import Patch

    fig, axes = page_figure(nrows=2, height=3.6)
    number = 0
    for ax, smooth in zip(axes[:, 0], (True, False)):
        regions = guide.chart(smooth=smooth, d_max=d_max, n_max=n_max, rules=rules)
        ax.axhspan(1, n_max, color="0.93", zorder=0)
        ax.text(0.98, 0.02, "too few rows", transform=ax.transAxes, ha="right", va="bottom", fontsize=SMALL_PT,
                color="0.4")
        key = []
        for r in regions:
            number += 1
            color = METHOD_COLORS.get(r["methods"][0], "0.6")
            x0, x1 = r["d_lo"] - 0.5, r["d_hi"] + 0.5
            ax.fill_between([x0, x1], r["n_lo"], r["n_hi"], color=color, alpha=0.35, lw=0, zorder=1)
            ax.plot([x0, x1, x1, x0, x0], [r["n_lo"], r["n_lo"], r["n_hi"], r["n_hi"], r["n_lo"]], color=color,
                    lw=1.2, zorder=2)
            ax.text(x0 + 0.06, r["n_hi"] / 1.25, str(number), ha="left", va="top", fontsize=SMALL_PT,
                    fontweight="bold", zorder=3)
            promise = "no promise" if r["promise"] is None else f"rel. RMSE ≤ {r['promise']:.0e}"
            label = " ".join(r["label"].split())
            key.append(Patch(fc=color, alpha=0.6, ec=color,
                             label=f"{number}: {label}; {' / '.join(r['methods'])}; {promise}"))
        for p in points:
            if bool(p.get("smooth", True)) != smooth:
                continue
            ax.plot(p["d"], p["n"], "k*", ms=8, zorder=4)
            names = "\n".join(name.strip() for name in p.get("label", "").split(","))
            ax.annotate(names, (p["d"], p["n"]), xytext=(5, -2), textcoords="offset points", fontsize=SMALL_PT,
                        va="top", zorder=4)
        ax.set_yscale("log")
        ax.set_xlim(0.5, d_max + 0.5)
        ax.set_ylim(1, n_max)
        ax.set_xticks(range(1, d_max + 1))
        ax.set_xlabel("input dimension d")
        ax.set_ylabel("data rows n")
        ax.grid(False)
        ax.set_title("smooth target" if smooth else "target with kinks or steps (smooth=False)")
        ax.legend(handles=key, loc="upper left", bbox_to_anchor=(0.0, -0.22), ncol=1, handlelength=1.2)
    fig.suptitle("User's Guide to Precision (pml.fitting.guide.RULES; first matching rule wins)")
    return fig


METHOD_MARKERS = {"poly": "o", "spline": "s", "readout": "^", "simplex": "v", "lm-multistage": "D", "rbf": "P",
                  "kernel": "X", "deep-lm": "*",
                  "adam-tanh": "x", "adam-relu": "+"}


def _worst(cases, method):
    vals = [c["methods"][method]["test"] for c in cases if method in c["methods"]]
    return max(vals) if vals else float("nan")


@styled
def plot_applications(study, *, ncols: int = 2):
    """The chart applied: test relative RMSE against data rows n for each equation (one panel per equation), one
    marker per method fitted by name (the worst over the seeds), a large open circle for ``auto``'s model, the
    chart's promise as a red step over the bands where it makes one, and the float64 floor of the test targets.

    ``study`` is a :class:`pml.experiments.users_guide.StudyResult`.
    """
    import math

    from matplotlib.ticker import NullFormatter

    eq_ids = list(dict.fromkeys(c["equation"] for c in study.cases))
    nrows = max(1, math.ceil(len(eq_ids) / ncols))
    ncols = min(ncols, max(1, len(eq_ids)))
    fig, axes = page_figure(ncols=ncols, nrows=nrows, height=2.6)
    for k, ax in enumerate(axes.flat):
        if k >= len(eq_ids):
            ax.set_visible(False)
            continue
        eq_id = eq_ids[k]
        cases = [c for c in study.cases if c["equation"] == eq_id]
        d = cases[0]["dim"]
        ns = sorted({c["n"] for c in cases})
        for m in study.methods:
            ys = [_worst([c for c in cases if c["n"] == n], m) for n in ns]
            if all(math.isnan(v) for v in ys):
                continue
            ax.plot(ns, ys, marker=METHOD_MARKERS.get(m, "."), color=METHOD_COLORS.get(m, "0.5"), lw=0.8, ms=4,
                    label=m)
        auto = [max(c["auto"]["test"] for c in cases if c["n"] == n) for n in ns]
        ax.plot(ns, auto, "o", mfc="none", mec="k", ms=10, mew=1.2, label="auto (chosen)")
        lo, hi = ns[0] / 1.5, ns[-1] * 1.5
        for r in guide.chart(smooth=True, d_max=max(d, 1), n_max=hi):
            x0, x1 = max(r["n_lo"], lo), min(r["n_hi"], hi)
            if r["d_lo"] <= d <= r["d_hi"] and r["promise"] is not None and x0 < x1:
                ax.plot([x0, x1], [r["promise"]] * 2, color="tab:red", lw=2, alpha=0.7, label="chart's promise")
        floor = max(c["floor"] for c in cases)
        ax.axhline(floor, color="0.3", ls=":", lw=1, label="float64 floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels on short decades
        ax.set_title(f"{eq_id} (d = {d})")
        ax.set_xlabel("data rows n")
        if k % ncols == 0:
            ax.set_ylabel("test RMSE (relative)")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
               ncol=min(len(handles), 3))
    return fig
