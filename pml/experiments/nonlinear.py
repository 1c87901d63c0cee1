"""Paper §3 ("Nonlinear Methods"): splines (Fig. 4), tanh networks (Fig. 5), the dot product (Fig. 6a) and the
multiplication gadget (Fig. 6b).

:func:`steps` builds the chapter's sweeps (tasks in :mod:`pml.experiments.nonlinear_tasks`); the summaries the chapter
reports are tested code here. Pre-floor fits (:func:`fit_prefloor`): a spline curve falls as a power law until it meets
the float64 floor; the exponent is fitted on the last decade of sizes whose error is still at least ``floor_margin``
(100) times the floor, with at least ``min_points`` (3) points. The networks follow the authors' protocol
(:mod:`pml.experiments.network_sweep`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from pml import scaling
from pml.approx import splines
from pml.engine import Sweep, Task, partial
from pml.experiments.network_sweep import PAPER_WIDTHS, NetworkRuns, NetworkSweep
from pml.experiments.nonlinear_tasks import (
    GRID_LABELS,
    GRID_METHODS,
    DotProductTask,
    GadgetCurveTask,
    GadgetTruncationTask,
    GridPointTask,
    SplineCurveTask,
    YRmsTask,
)
from pml.experiments.simplex_sweep import SimplexScalingResult, SimplexScalingSweep
from pml.experiments.tables import Table
from pml.nn import gadget

EPS0 = 2.0**-52  # float64 machine epsilon, the paper's eps_0 (§1.1)

__all__ = [
    "DotProductTask",
    "EPS0",
    "GadgetSweep",
    "GadgetCurveTask",
    "GadgetResult",
    "GadgetTruncationTask",
    "GridCurve",
    "GridPointTask",
    "BATCH_SIZE",
    "PrefloorFit",
    "RegularGridSweep",
    "RegularGridResult",
    "SplineSweep",
    "SplineCurve",
    "SplineCurveTask",
    "SplineResult",
    "Table",
    "YRmsTask",
    "DOT_KEYS",
    "HIGH_ORDERS",
    "LOW_ORDERS",
    "beats_simplex",
    "beats_table",
    "best_beat",
    "claim_values",
    "dot_numbers",
    "dot_product_gap",
    "exponent_table",
    "fit_prefloor",
    "gadget_numbers",
    "grid_numbers",
    "network_sweep",
    "networks_trained",
    "paper_hours",
    "prefloor_window",
    "scaling_scatter",
    "scatter_ratio",
    "spline_numbers",
    "steps",
    "tanh_numbers",
]


# ---------------------------------------------------------------------------------------------------------------------
# Pre-floor power-law fits
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefloorFit:
    """A power law fitted on the asymptotic, pre-floor part of a curve; ``window`` marks the points used."""

    exponent: float
    exponent_stderr: float
    prefactor: float
    window: np.ndarray  # bool mask over the curve's points
    n_points: int


def prefloor_window(n, err, floor: float, margin: float = 100.0, decades: float = 1.0,
                    min_points: int = 3) -> np.ndarray:
    """Mask of the points a pre-floor fit uses (see the module docstring)."""
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    err = np.asarray(err, dtype=np.float64).reshape(-1)
    if n.shape != err.shape:
        raise ValueError(f"n has {n.size} values but err has {err.size}")
    if not (floor > 0 and margin > 0 and decades > 0) or int(min_points) != min_points or min_points < 2:
        raise ValueError("need floor > 0, margin > 0, decades > 0 and an integer min_points >= 2")
    pre = np.isfinite(err) & (err >= margin * floor) & np.isfinite(n) & (n > 0)
    window = np.zeros(n.size, dtype=bool)
    if pre.sum() < 2:
        return window
    idx = np.flatnonzero(pre)
    idx = idx[np.argsort(n[idx], kind="stable")]
    top = n[idx[-1]]
    inside = idx[n[idx] >= top / 10.0**decades]
    if inside.size < min_points:
        inside = idx[-min(int(min_points), idx.size):]
    window[inside] = True
    return window


def fit_prefloor(n, err, floor: float, margin: float = 100.0, decades: float = 1.0,
                 min_points: int = 3) -> PrefloorFit:
    """Power law err ~ prefactor * n**exponent on :func:`prefloor_window`; NaN exponent if < 2 points qualify."""
    window = prefloor_window(n, err, floor, margin, decades, min_points)
    if window.sum() < 2:
        return PrefloorFit(float("nan"), float("nan"), float("nan"), window, int(window.sum()))
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    err = np.asarray(err, dtype=np.float64).reshape(-1)
    fit = scaling.fit_power_law(n[window], err[window])
    return PrefloorFit(fit.exponent, fit.exponent_stderr, fit.prefactor, window, fit.n_points)


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 4a, 4b: 1D and 2D splines
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplineSweep(Sweep):
    """Fig. 4a/4b: one :class:`SplineCurveTask` per curve (1D orders, 2D orders, then the e^(a x) diagnostic)."""

    orders_1d: tuple[int, ...] = (1, 2, 3, 5, 7)  # Fig. 4a
    i_range_1d: tuple[int, int] = (6, 36)  # n = int(1.5**i): 11 ... 2,184,164 nodes
    n_test_1d: int = 2000  # equally spaced on [-0.9, 0.9]
    orders_2d: tuple[int, ...] = (1, 3, 5)  # Fig. 4b: linear, cubic, quintic
    i_range_2d: tuple[int, int] = (9, 35)  # nominal n = int(1.5**i): 38 ... 1,456,109
    n_test_per_axis: int = 121  # 121 x 121 grid on [-0.8, 0.8]^2
    floor_margin: float = 100.0  # pre-floor: error >= margin * eps_0
    fit_decades: float = 1.0  # fit on the last decade of pre-floor sizes ...
    fit_min_points: int = 3  # ... with at least this many points
    stiff_rate: float = 8.0  # diagnostic target e^(a x): pushes the floor to larger n (not in the paper)
    stiff_orders: tuple[int, ...] = (5, 7)

    def tasks(self) -> list[SplineCurveTask]:
        sizes_1d = tuple(splines.fig4a_sizes(*self.i_range_1d))
        sizes_2d = tuple(splines.fig4b_sizes(*self.i_range_2d))
        return ([SplineCurveTask(1, int(p), sizes_1d, int(self.n_test_1d)) for p in self.orders_1d]
                + [SplineCurveTask(2, int(p), sizes_2d, int(self.n_test_per_axis)) for p in self.orders_2d]
                + [SplineCurveTask(1, int(p), sizes_1d, int(self.n_test_1d), float(self.stiff_rate))
                   for p in self.stiff_orders])

    def assemble(self, results: Sequence[dict]) -> "SplineResult":
        """Fig. 4a (e^x), 4b (e^(xy)) and the e^(a x) diagnostic, each curve with its pre-floor fit."""
        n_1d, n_main = len(self.orders_1d), len(self.orders_1d) + len(self.orders_2d)
        curves = []
        for i, (task, r) in enumerate(zip(self.tasks(), results)):
            rel = np.asarray(r["rel_rmse"], dtype=np.float64)
            n_train = np.asarray(r["n_train"])
            fit = fit_prefloor(n_train, rel, EPS0, self.floor_margin, self.fit_decades, self.fit_min_points)
            target = "exp(x)" if i < n_1d else "exp(xy)" if i < n_main else f"exp({float(self.stiff_rate):g}x)"
            curves.append(SplineCurve(task.dim, task.order, target, np.asarray(r["n_nominal"]), n_train, rel, fit))
        return SplineResult(tuple(curves[:n_main]), tuple(curves[n_main:]), float(self.stiff_rate))


@dataclass(frozen=True)
class SplineCurve:
    """One Fig. 4a/4b curve: relative RMSE against the node count, and its pre-floor fit against the true |D|."""

    dim: int
    order: int
    target: str
    n_nominal: np.ndarray  # the figure's x axis
    n_train: np.ndarray  # nodes actually used (s^2 in 2D)
    rel_rmse: np.ndarray
    fit: PrefloorFit

    @property
    def theory(self) -> float:
        """-(n+1)/d."""
        return scaling.theoretical_exponent(self.dim, self.order)

    @property
    def gap(self) -> float:
        """|fitted exponent - theory| (NaN without a fit)."""
        return abs(self.fit.exponent - self.theory)

    def floor_level(self, last: int = 5) -> float:
        """Median relative RMSE over the ``last`` largest sizes: the level the curve levels out at."""
        return float(np.median(self.rel_rmse[-int(last):]))


@dataclass(frozen=True)
class SplineResult:
    curves: tuple[SplineCurve, ...]
    stiff: tuple[SplineCurve, ...]  # the diagnostic on e^(a x)
    stiff_rate: float

    def curve(self, dim: int, order: int) -> SplineCurve:
        for c in self.curves:
            if (c.dim, c.order) == (dim, order):
                return c
        raise KeyError(f"no {dim}D order-{order} curve; have {[(c.dim, c.order) for c in self.curves]}")

    def max_gap(self, orders: Sequence[int]) -> float:
        """Largest |fitted - theory| over the curves of the given orders (any dimension)."""
        gaps = [c.gap for c in self.curves if c.order in orders]
        if not gaps or not np.all(np.isfinite(gaps)):
            return float("nan")  # a curve without a fit cannot confirm the law
        return float(max(gaps))

    def best_floor(self, dim: int) -> float:
        """Floor level of the highest order shown in ``dim`` dimensions."""
        top = max(c.order for c in self.curves if c.dim == dim)
        return self.curve(dim, top).floor_level()


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 4c: tricubic and simplex interpolation on regular 3D grids
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegularGridSweep(Sweep):
    """Fig. 4c: one :class:`GridPointTask` per method, grid size and test seed, and the test sets' y_rms."""

    equation: str = "I.30.5"
    tricubic_sizes: tuple[int, ...] = splines.FIG4C_SIZES  # nominal TP, config feynman-cubic-1
    simplex_sizes: tuple[int, ...] = (64, 256, 1024, 4096, 16384, 65536, 262144)  # feynman-simplex-3ds-2
    seeds: tuple[int, ...] = (0, 1, 2, 3)  # test sets
    n_test: int = 30_000  # uniform on the central 80% box
    grid_rule: str = "authors"  # int(TP ** (1/3)) as the authors computed it (splines.grid_points_per_axis)
    floor_margin: float = 100.0
    fit_decades: float = 1.0
    fit_min_points: int = 3

    def _sizes(self, method: str) -> tuple[int, ...]:
        return tuple(int(n) for n in (self.simplex_sizes if method == "simplex" else self.tricubic_sizes))

    def tasks(self) -> list[Task]:
        points = [GridPointTask(self.equation, method, n, int(s), int(self.n_test), self.grid_rule)
                  for method in GRID_METHODS for n in self._sizes(method) for s in self.seeds]
        return [YRmsTask(self.equation, tuple(int(s) for s in self.seeds), int(self.n_test)), *points]

    def assemble(self, results: Sequence[dict]) -> "RegularGridResult":
        """The three curves (absolute RMSE per size and seed, their pre-floor fits against the true grid size)."""
        return self._assemble(results)

    def assemble_partial(self, results: Sequence[dict | None]) -> "RegularGridResult | None":
        """What a stored build has (None: a task not stored): each curve over the sizes whose every test seed is
        stored, the others in :attr:`GridCurve.missing`; None without the test sets' y_rms (no floor, no fit)."""
        if results[0] is None:
            return None
        return self._assemble(results, partial.shortfall(self, results))

    def _assemble(self, results, not_computed=None) -> "RegularGridResult":
        y_rms = float(results[0]["y_rms"])
        floor = EPS0 * y_rms
        S, rest = len(self.seeds), list(results[1:])
        tasks = self.tasks()[1:]
        curves = {}
        for method in GRID_METHODS:
            sizes = self._sizes(method)
            block, rest = rest[: len(sizes) * S], rest[len(sizes) * S:]
            costs, tasks = [t.cost() for t in tasks[: len(sizes) * S]], tasks[len(sizes) * S:]
            done = [a for a in range(len(sizes)) if all(r is not None for r in block[a * S:(a + 1) * S])]
            absent = [a for a in range(len(sizes)) if a not in done]
            block = [r for a in done for r in block[a * S:(a + 1) * S]]
            rmse = np.array([r["rmse"] for r in block], dtype=np.float64).reshape(len(done), S)
            bad = np.array([r["n_bad"] for r in block]).reshape(len(done), S)
            n_train = np.array([block[a * S]["points_per_axis"] for a in range(len(done))], dtype=int) ** 3
            undefined = bad.sum(axis=1) / (S * self.n_test)  # fraction of all test points, every seed together
            curves[method] = _grid_curve(GRID_LABELS[method], tuple(sizes[a] for a in done), n_train, rmse, undefined,
                                         floor, self)
            if absent:
                hours = sum(sum(costs[a * S:(a + 1) * S]) for a in absent) / 3600
                curves[method] = dataclasses.replace(curves[method], missing=tuple(sizes[a] for a in absent),
                                                     missing_cpu_hours=hours)
        return RegularGridResult(self.equation, y_rms, curves["tricubic"], curves["tricubic_exact"],
                                 curves["simplex"], not_computed)


@dataclass(frozen=True)
class GridCurve:
    """Absolute test RMSE (mean and population std over the test seeds) against the true grid size."""

    method: str
    n_nominal: np.ndarray
    n_train: np.ndarray  # true grid size m^3
    rmse: np.ndarray  # (sizes, seeds)
    nan_fraction: np.ndarray  # (sizes,), mean over seeds: test points left undefined (and out of the RMSE)
    fit: PrefloorFit
    missing: tuple[int, ...] = ()  # a stored build's partial curve: nominal sizes not computed
    missing_cpu_hours: float = 0.0  # ... and their tasks' cost-model CPU-hours

    # mean and population std over the seeds, as for the Fig. 4c curve of pml.approx.splines
    rmse_mean = splines.TricubicScaling.rmse_mean
    rmse_std = splines.TricubicScaling.rmse_std


@dataclass(frozen=True)
class RegularGridResult:
    equation: str
    y_rms: float  # of the test box: the absolute floor is eps_0 * y_rms
    tricubic: GridCurve  # finite-difference derivatives, ARBInterp's convention (the paper's)
    tricubic_exact: GridCurve  # exact derivatives (Lekien & Marsden with analytic data; not in the paper)
    simplex: GridCurve  # Delaunay-linear on the same grids
    not_computed: Any = None  # a stored build's partial result: what is missing (pml.engine.NotComputed)


def _grid_curve(method, nominal, n_train, rmse, nan_fraction, floor, cfg) -> GridCurve:
    mean = rmse.mean(axis=1)
    fit = fit_prefloor(n_train, mean, floor, cfg.floor_margin, cfg.fit_decades, cfg.fit_min_points)
    return GridCurve(method, np.asarray(nominal), np.asarray(n_train), rmse, np.asarray(nan_fraction), fit)


# ---------------------------------------------------------------------------------------------------------------------
# Figs. 5, 6a: network scaling (tanh, with ReLU for comparison) and the simplex baseline
# ---------------------------------------------------------------------------------------------------------------------



BATCH_SIZE = {"tanh": 30_000, "relu": 10_000}  # batch cap B per activation (configs feynman-network-5, -8)


def network_sweep(equations_: Sequence[str], activations: Sequence[str] = ("tanh", "relu"),
                  depths: Sequence[int] = (2, 3, 4),
                  widths: Sequence[Sequence[int]] = (PAPER_WIDTHS[2], PAPER_WIDTHS[3], PAPER_WIDTHS[4]),
                  **protocol) -> NetworkSweep:
    """Figs. 5, 6a: dense networks of every (equation, depth, width, activation) with Fig. 2's protocol and, unless
    ``protocol`` says otherwise, ``rng="pcg64"`` data."""
    protocol.setdefault("rng", "pcg64")
    return NetworkSweep.grid(equations_, depths, widths, activations, "dense", BATCH_SIZE, **protocol)


def network_steps(p: Mapping[str, Any]) -> dict[str, Sweep]:
    """The steps of Figs. 5 and 6a: ``"fig5_simplex"``, ``"fig5_networks"`` and ``"fig6_networks"``."""
    depths = tuple(int(d) for d in p["depths"])
    widths = tuple(tuple(int(w) for w in p[f"widths_depth{d}"]) for d in depths)
    protocol = dict(depths=depths, widths=widths, seeds=tuple(int(s) for s in p["seeds"]), n_steps=int(p["n_steps"]),
                    n_test=int(p["net_n_test"]), device=str(p["device"]), threads=int(p["threads"]))
    simplex = SimplexScalingSweep(equations=tuple(p["fig5_equations"]) + (p["dot_equation"],),
                                  sizes=tuple(int(n) for n in p["simplex_sizes"]),
                                  max_train_by_dim=tuple(int(n) for n in p["simplex_max_train_by_dim"]),
                                  seeds=protocol["seeds"], n_test=int(p["net_n_test"]), rng="pcg64")
    return {"fig5_simplex": simplex,
            "fig5_networks": network_sweep(tuple(p["fig5_equations"]), ("tanh", "relu"), **protocol),
            "fig6_networks": network_sweep((p["dot_equation"],), ("tanh",), **protocol)}


def beats_simplex(nets: NetworkRuns, simplex: SimplexScalingResult, equation: str,
                  activation: str = "tanh") -> tuple[float, float, float]:
    """How far the network beats the simplex at equal N on ``equation``."""
    n_simplex = simplex.n_params(equation)
    mask = nets.rows(equation, activation)
    Ns = np.unique(nets.n_params[mask])
    Ns = Ns[(Ns >= n_simplex[0]) & (Ns <= n_simplex[-1])] if n_simplex.size else Ns[:0]
    if not Ns.size:
        return float("nan"), float("nan"), float("nan")
    N = float(Ns.max())
    best = float("inf")
    for depth in np.unique(nets.depth[mask]):
        n_d, med = nets.median_curve(equation, activation, int(depth))
        ok = n_d <= N
        if ok.any():
            best = min(best, float(np.min(med[ok])))
    return N, float(np.log10(simplex.at(equation, N) / best)), best


def scaling_scatter(nets: NetworkRuns, equation: str, activation: str, depth: int) -> float:
    """RMS residual (in log10 units) of a power-law fit to one median curve: how clean the scaling is."""
    N, med = nets.median_curve(equation, activation, depth)
    ok = np.isfinite(med) & (med > 0)
    if ok.sum() < 3:
        return float("nan")
    fit = scaling.fit_power_law(N[ok], med[ok])
    resid = np.log10(med[ok]) - np.log10(fit.predict(N[ok]))
    return float(np.sqrt(np.mean(resid**2)))


def scatter_ratio(nets: NetworkRuns, equations_: Sequence[str] | None = None,
                  depths: Sequence[int] | None = None) -> float:
    """Median over (equation, depth) of scaling_scatter(tanh) / scaling_scatter(relu); NaN if none computable."""
    eqs = list(equations_) if equations_ is not None else list(dict.fromkeys(nets.equation.tolist()))
    ds = list(depths) if depths is not None else sorted(set(nets.depth.tolist()))
    ratios = []
    for name in eqs:
        for depth in ds:
            t, r = scaling_scatter(nets, name, "tanh", depth), scaling_scatter(nets, name, "relu", depth)
            if np.isfinite(t) and np.isfinite(r) and r > 0:
                ratios.append(t / r)
    return float(np.median(ratios)) if ratios else float("nan")


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 6b: the multiplication gadget, and the exact width-12 network for I.11.19
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GadgetSweep(Sweep):
    """Fig. 6b: per order a :class:`GadgetCurveTask`, a :class:`GadgetTruncationTask` and a :class:`DotProductTask`."""

    log10_lambda: tuple[float, float] = (-6.0, 0.0)  # range of the scale lambda for the float64 curves
    n_lambdas: int = 49
    orders: tuple[int, ...] = (1, 2, 3)  # Richardson scales: 1 = the paper's 4-neuron gadget
    n_points: int = 10_000  # (x, y) uniform on [-1, 1]^2
    seed: int = 0
    truncation_log10_lambda: tuple[float, float] = (-3.0, -1.0)  # exact arithmetic (mpmath), small lambda
    truncation_n_lambdas: int = 5
    truncation_points: int = 32
    truncation_dps: int = 60  # mpmath digits
    dot_equation: str = "I.11.19"
    dot_log10_lambda: tuple[float, float] = (-6.0, -1.0)
    n_test: int = 30_000  # I.11.19 test points on the central box [1.4, 4.6]^6

    def lambdas(self) -> np.ndarray:
        return np.logspace(*self.log10_lambda, self.n_lambdas)

    def truncation_lambdas(self) -> np.ndarray:
        return np.logspace(*self.truncation_log10_lambda, self.truncation_n_lambdas)

    def dot_lambdas(self) -> np.ndarray:
        return np.logspace(*self.dot_log10_lambda, self.n_lambdas)

    def tasks(self) -> list[Task]:
        orders = [int(o) for o in self.orders]
        return ([GadgetCurveTask(o, tuple(self.log10_lambda), int(self.n_lambdas), int(self.n_points), int(self.seed))
                 for o in orders]
                + [GadgetTruncationTask(o, tuple(self.truncation_log10_lambda), int(self.truncation_n_lambdas),
                                        int(self.truncation_points), int(self.seed), int(self.truncation_dps))
                   for o in orders]
                + [DotProductTask(o, self.dot_equation, tuple(self.dot_log10_lambda), int(self.n_lambdas),
                                  int(self.n_test), int(self.seed)) for o in orders])

    def assemble(self, results: Sequence[dict]) -> "GadgetResult":
        """The float64 curves, the truncation errors with their fitted slopes, the dot-product curves."""
        orders = tuple(int(o) for o in self.orders)
        k = len(orders)
        curves = tuple(gadget.GadgetCurve(np.asarray(r["lambdas"]), np.asarray(r["rel_rmse"]), o, int(r["width"]))
                       for o, r in zip(orders, results[:k]))
        lam = self.truncation_lambdas()
        trunc = np.array([np.asarray(r["rel_rmse"]) for r in results[k:2 * k]])
        exponents = np.array([scaling.fit_power_law(lam, t).exponent if np.all(t > 0) else float("nan")
                              for t in trunc])
        dots = tuple(gadget.DotProductCurve(np.asarray(r["lambdas"]), np.asarray(r["rel_rmse"]),
                                            np.asarray(r["rmse"]), o, int(r["width"]), int(r["n_params"]))
                     for o, r in zip(orders, results[2 * k:]))
        return GadgetResult(curves, lam, trunc, exponents, dots, float(results[2 * k]["y_rms"]), orders)


@dataclass(frozen=True)
class GadgetResult:
    curves: tuple[gadget.GadgetCurve, ...]  # float64, one per order
    truncation_lambdas: np.ndarray
    truncation: np.ndarray  # (orders, lambdas): relative RMSE in exact arithmetic
    truncation_exponent: np.ndarray  # fitted slope of the truncation error vs lambda, per order
    dot: tuple[gadget.DotProductCurve, ...]  # the exact dot-product network, one per order
    dot_y_rms: float
    orders: tuple[int, ...]

    def floor(self, order: int) -> float:
        return self.curves[self.orders.index(order)].best_rel_rmse

    def dot_curve(self, order: int = 1) -> gadget.DotProductCurve:
        return self.dot[self.orders.index(order)]


def dot_product_gap(nets: NetworkRuns, gadget_result: GadgetResult, equation: str = "I.11.19",
                    activation: str = "tanh") -> dict[str, float]:
    """Best trained network vs the exact width-12 network (absolute RMSE) and vs the float64 floor (relative)."""
    N, best = nets.best_median(equation, activation)
    exact = gadget_result.dot_curve(1)
    y_rms = nets.y_rms.get(equation, gadget_result.dot_y_rms)
    return {
        "best_N": N,
        "best_rmse": best,
        "best_rel_rmse": best / y_rms,
        "exact_rmse": exact.best_rmse,
        "exact_rel_rmse": exact.best_rel_rmse,
        "exact_width": float(exact.width),
        "exact_n_params": float(exact.n_params),
        "log10_gap_to_exact": math.log10(best / exact.best_rmse),
        "log10_gap_to_floor": math.log10(best / y_rms / EPS0),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Summaries for the chapter
# ---------------------------------------------------------------------------------------------------------------------


def _exponent_text(fit: PrefloorFit) -> str:
    if not np.isfinite(fit.exponent):
        return "-"
    return f"{fit.exponent:.2f}" + (f" ± {fit.exponent_stderr:.2f}" if np.isfinite(fit.exponent_stderr) else "")


def _window_text(n: np.ndarray, window: np.ndarray) -> str:
    if not window.any():
        return "-"
    sel = n[window]
    return f"{int(sel.min()):,} - {int(sel.max()):,}"


@partial.needs_complete
def exponent_table(spline_result: SplineResult, grid_result: RegularGridResult) -> Table:
    """Every Fig. 4 curve: fitted exponent, the paper's (n+1)/d, the fit window and the level reached (a
    :class:`pml.engine.NotComputed` when a step is not, or not all, stored)."""
    rows = []
    for c in spline_result.curves + spline_result.stiff:
        rows.append((c.target, str(c.dim), str(c.order), _exponent_text(c.fit),
                     f"{c.theory:.2f}", _window_text(c.n_train, c.fit.window),
                     f"{float(np.min(c.rel_rmse)):.1e} (rel)"))
    for curve, order in ((grid_result.tricubic, 3), (grid_result.tricubic_exact, 3), (grid_result.simplex, 1)):
        rows.append((f"{grid_result.equation}, {curve.method}", "3", str(order), _exponent_text(curve.fit),
                     f"{scaling.theoretical_exponent(3, order):.2f}", _window_text(curve.n_train, curve.fit.window),
                     f"{float(np.nanmin(curve.rmse_mean)):.1e} (abs)"))
    return Table(("target", "d", "order n", "fitted exponent", "theory", "fit window |D|", "lowest error"), rows)


@partial.needs_complete
def beats_table(nets: NetworkRuns, simplex: SimplexScalingResult, activations=("tanh", "relu")) -> Table:
    """Per equation and activation: the equal-N comparison of :func:`beats_simplex` and the scaling scatter (a
    :class:`pml.engine.NotComputed` when a step is not, or not all, stored)."""
    rows = []
    for name in dict.fromkeys(nets.equation.tolist()):
        for act in activations:
            if not nets.rows(name, act).any():
                continue
            N, gain, best = beats_simplex(nets, simplex, name, act)
            scatter = [scaling_scatter(nets, name, act, int(d)) for d in np.unique(nets.depth[nets.rows(name, act)])]
            scatter = [s for s in scatter if np.isfinite(s)]
            rows.append((name, act, f"{N:,.0f}" if np.isfinite(N) else "-", f"{best:.2e}",
                         f"{simplex.at(name, N):.2e}" if np.isfinite(N) else "-",
                         f"{gain:+.2f}" if np.isfinite(gain) else "-",
                         f"{np.median(scatter):.3f}" if scatter else "-"))
    return Table(("equation", "activation", "N", "network RMSE", "simplex RMSE", "log10(simplex / network)",
                  "power-law scatter (log10)"), rows)


def best_beat(nets: NetworkRuns, simplex: SimplexScalingResult, activation: str = "tanh") -> tuple[str, float]:
    """(equation, log10 margin) where the network beats the simplex by most at equal N; ("-", NaN) if none."""
    best = ("-", float("nan"))
    for name in dict.fromkeys(nets.equation.tolist()):
        gain = beats_simplex(nets, simplex, name, activation)[1]
        if np.isfinite(gain) and not gain <= best[1]:
            best = (name, gain)
    return best


# ---------------------------------------------------------------------------------------------------------------------
# The chapter's steps
# ---------------------------------------------------------------------------------------------------------------------


def steps(params: Mapping[str, Any]) -> dict[str, Sweep]:
    """The chapter's sweeps: ``"fig4_splines"``, ``"fig4_grid"``, ``"gadget"`` and those of :func:`network_steps`."""
    p = params
    ints = lambda values: tuple(int(v) for v in values)  # noqa: E731 - parameters may arrive as lists
    return {
        "fig4_splines": SplineSweep(orders_1d=ints(p["spline_orders_1d"]), i_range_1d=ints(p["spline_i_range_1d"]),
                                     orders_2d=ints(p["spline_orders_2d"]), i_range_2d=ints(p["spline_i_range_2d"]),
                                     floor_margin=float(p["floor_margin"]), stiff_rate=float(p["stiff_rate"])),
        "fig4_grid": RegularGridSweep(equation=p["grid_equation"], tricubic_sizes=ints(p["tricubic_sizes"]),
                                       simplex_sizes=ints(p["grid_simplex_sizes"]), seeds=ints(p["grid_seeds"]),
                                       n_test=int(p["n_test"]), floor_margin=float(p["floor_margin"])),
        "gadget": GadgetSweep(n_lambdas=int(p["gadget_n_lambdas"]), truncation_points=int(p["truncation_points"]),
                               dot_equation=p["dot_equation"], n_test=int(p["net_n_test"])),
        **network_steps(p),  # "fig5_simplex", "fig5_networks", "fig6_networks"
    }


# ---------------------------------------------------------------------------------------------------------------------
# What the chapter reports, complete or not (a stored build: pml.engine.partial)
# ---------------------------------------------------------------------------------------------------------------------

LOW_ORDERS = (1, 2, 3)  # C3.1: the orders whose exponents follow (n+1)/d
HIGH_ORDERS = (5, 7)  # C3.2: the high orders


def _or_missing(compute, *inputs):
    """``compute()``, or what the inputs lack (a :class:`pml.engine.NotComputed`) when one is missing or partial."""
    missing = partial.combine(*(partial.missing_part(value) for value in inputs))
    return missing if missing is not None else compute()


def _all_missing(keys, *inputs) -> dict[str, Any] | None:
    missing = partial.combine(*(partial.missing_part(value) for value in inputs))
    return None if missing is None else {key: missing for key in keys}


def spline_numbers(spline_result: SplineResult) -> dict[str, Any]:
    """The Fig. 4a/4b numbers the chapter quotes (gaps to theory, slopes, floors); the same keys with the step's
    :class:`pml.engine.NotComputed` when it is not stored."""
    if partial.is_missing(spline_result):
        cfg = spline_result.sweep if isinstance(spline_result.sweep, SplineSweep) else SplineSweep()
        keys = ["gap_low", "gap_high", *(f"slope_1d_{o}" for o in cfg.orders_1d),
                *(f"slope_2d_{o}" for o in cfg.orders_2d), *(f"slope_stiff_{o}" for o in cfg.stiff_orders),
                "floor_1d", "floor_2d"]
        return {key: spline_result for key in keys}
    out: dict[str, Any] = {"gap_low": spline_result.max_gap(LOW_ORDERS),
                           "gap_high": spline_result.max_gap(HIGH_ORDERS)}
    for c in spline_result.curves:
        out[f"slope_{c.dim}d_{c.order}"] = float(c.fit.exponent)
    for c in spline_result.stiff:
        out[f"slope_stiff_{c.order}"] = float(c.fit.exponent)
    out["floor_1d"], out["floor_2d"] = spline_result.best_floor(1), spline_result.best_floor(2)
    return out


def grid_numbers(grid_result: RegularGridResult) -> dict[str, Any]:
    """The Fig. 4c numbers the chapter quotes (exponents, the gain from exact derivatives, the undefined fraction), or
    NotComputed values when the step is not all stored."""
    keys = ("tricubic_slope", "tricubic_exact_slope", "tricubic_ratio", "grid_simplex_slope", "tricubic_nan",
            "tricubic_nan_n")
    missing = _all_missing(keys, grid_result)
    if missing is not None:
        return missing
    tri, exact = grid_result.tricubic, grid_result.tricubic_exact
    return {"tricubic_slope": float(tri.fit.exponent), "tricubic_exact_slope": float(exact.fit.exponent),
            "tricubic_ratio": float(tri.rmse_mean[-1] / exact.rmse_mean[-1]),
            "grid_simplex_slope": float(grid_result.simplex.fit.exponent),
            "tricubic_nan": float(tri.nan_fraction[0]), "tricubic_nan_n": int(tri.n_train[0])}


def tanh_numbers(nets: NetworkRuns, simplex: SimplexScalingResult) -> dict[str, Any]:
    """Fig. 5's numbers: ``beat_eq``/``beat`` (:func:`best_beat` of tanh), ``relu_beat`` (ReLU's margin on that
    equation) and ``scatter_ratio`` (:func:`scatter_ratio`); NotComputed values unless both steps are complete."""
    missing = _all_missing(("beat_eq", "beat", "relu_beat", "scatter_ratio"), nets, simplex)
    if missing is not None:
        return missing
    beat_eq, beat = best_beat(nets, simplex, "tanh")
    relu_beat = beats_simplex(nets, simplex, beat_eq, "relu")[1] if beat_eq != "-" else float("nan")
    return {"beat_eq": beat_eq, "beat": beat, "relu_beat": relu_beat, "scatter_ratio": scatter_ratio(nets)}


def gadget_numbers(gadget_result: GadgetResult) -> dict[str, Any]:
    """Fig. 6b's numbers per Richardson order (floors, best lambdas, truncation slopes, the dot-product network's
    error), or NotComputed values when the step is not stored."""
    if partial.is_missing(gadget_result):
        cfg = gadget_result.sweep if isinstance(gadget_result.sweep, GadgetSweep) else GadgetSweep()
        keys = [f"{name}_{o}" for o in cfg.orders
                for name in ("gadget_floor", "gadget_lambda", "trunc_slope", "dot_rel", "dot_width")]
        return {key: gadget_result for key in [*keys, "dot_short"]}
    out: dict[str, Any] = {}
    for k, order in enumerate(gadget_result.orders):
        dot = gadget_result.dot_curve(order)
        out.update({f"gadget_floor_{order}": gadget_result.floor(order),
                    f"gadget_lambda_{order}": gadget_result.curves[k].best_lambda,
                    f"trunc_slope_{order}": float(gadget_result.truncation_exponent[k]),
                    f"dot_rel_{order}": dot.best_rel_rmse, f"dot_width_{order}": dot.width})
    out["dot_short"] = float(np.log10(gadget_result.dot_curve(1).best_rel_rmse / EPS0))
    return out


DOT_KEYS = ("best_N", "best_rmse", "best_rel_rmse", "exact_rmse", "exact_rel_rmse", "exact_width", "exact_n_params",
            "log10_gap_to_exact", "log10_gap_to_floor")


def dot_numbers(nets: NetworkRuns, gadget_result: GadgetResult, equation: str = "I.11.19") -> dict[str, Any]:
    """:func:`dot_product_gap` (its keys, :data:`DOT_KEYS`), or NotComputed values unless both steps are complete."""
    missing = _all_missing(DOT_KEYS, nets, gadget_result)
    return missing if missing is not None else dot_product_gap(nets, gadget_result, equation)


def paper_hours(paper_steps: Mapping[str, Sweep]) -> dict[str, float]:
    """Cost-model CPU-hours of the paper profile's steps: ``hours`` (the networks of Figs. 5 and 6a),
    ``simplex_hours`` (their simplex curves) and ``fig4_hours`` (splines, the regular grids and the gadget)."""
    def hours(names):
        return float(sum(t.cost() for name in names for t in paper_steps[name].tasks()) / 3600)

    return {"hours": hours(("fig5_networks", "fig6_networks")), "simplex_hours": hours(("fig5_simplex",)),
            "fig4_hours": hours(("fig4_splines", "fig4_grid", "gadget"))}


def networks_trained(*runs: NetworkRuns) -> Any:
    """How many networks (counting seeds) the tables hold; NotComputed unless every one is complete."""
    return _or_missing(lambda: int(sum(len(r.rmse) for r in runs)), *runs)


def claim_values(spline_result, grid_result, nets, simplex, gadget_result, dot_nets,
                 dot_equation: str = "I.11.19") -> dict[str, Any]:
    """The measured value of every claim C3.1-C3.10 (see ``pml/book/claimsets/03_nonlinear.yaml``); a claim whose
    inputs are not (all) stored gets their :class:`pml.engine.NotComputed` instead."""
    sp, grid, gad = spline_result, grid_result, gadget_result
    gap = dot_numbers(dot_nets, gad, dot_equation)
    return {
        "C3.1": _or_missing(lambda: sp.max_gap(LOW_ORDERS), sp),
        "C3.2": _or_missing(lambda: sp.max_gap(HIGH_ORDERS), sp),
        "C3.3": _or_missing(lambda: max(sp.best_floor(1), sp.best_floor(2)), sp),
        "C3.4": _or_missing(lambda: grid.tricubic.fit.exponent, grid),
        "C3.5": tanh_numbers(nets, simplex)["beat"],
        "C3.6": _or_missing(lambda: scatter_ratio(nets), nets),
        "C3.7": gap["log10_gap_to_exact"],
        "C3.8": gap["log10_gap_to_floor"],
        "C3.9": _or_missing(lambda: gad.truncation_exponent[gad.orders.index(1)], gad),
        "C3.10": _or_missing(lambda: gad.dot_curve(1).best_rel_rmse, gad),
    }
