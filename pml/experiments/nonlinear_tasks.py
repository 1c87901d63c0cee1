"""The tasks of paper §3 that are not networks: Fig. 4's spline curves and regular-grid points, Fig. 6b's gadget.

They live in a module of their own so that their cache keys depend only on what they run (the splines, the simplex, the
gadget and the equations), not on the network code or the chapter's summaries: at the paper's sizes the regular-grid
simplex alone costs hours."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pml import data, equations, metrics
from pml.approx import splines
from pml.engine import Task
from pml.nn import gadget

__all__ = [
    "DotProductTask",
    "GADGET_COST",
    "GRID_COST",
    "GRID_LABELS",
    "GRID_METHODS",
    "GadgetCurveTask",
    "GadgetTruncationTask",
    "GridPointTask",
    "SIMPLEX_QUERY",
    "SPLINE_COST",
    "SPLINE_LINEAR_1D",
    "SplineCurveTask",
    "YRmsTask",
]

# ---------------------------------------------------------------------------------------------------------------------
# Fig. 4a, 4b: one spline curve
# ---------------------------------------------------------------------------------------------------------------------


# CPU-seconds of one spline fit and evaluation on one core of the machine that wrote this (a shared 2-core x86-64 VM),
# measured on the paper's Fig. 4a/4b sizes: per dimension (fixed, per node, per node and unit of order + 1, per test
# point). SciPy's linear 1D spline has a fast path: per node SPLINE_LINEAR_1D instead.
SPLINE_COST = {1: (3e-4, 1e-7, 3e-8, 1e-8), 2: (3e-4, 3e-8, 1e-8, 1e-8)}
SPLINE_LINEAR_1D = 2e-8


@dataclass(frozen=True)
class SplineCurveTask(Task):
    """One Fig. 4a/4b curve: relative RMSE of the order-``order`` spline at every size (1D: e^(rate x); 2D: e^(xy))."""

    dim: int
    order: int
    sizes: tuple[int, ...]
    n_test: int
    rate: float = 1.0  # 1D target e^(rate x); 1 is the paper's e^x

    def run(self) -> dict:
        if self.dim == 1:
            rate = float(self.rate)
            target = np.exp if rate == 1.0 else (lambda x: np.exp(rate * x))
            sc = splines.spline_scaling_1d(self.order, self.sizes, self.n_test, target=target)
        elif self.dim == 2:
            if self.rate != 1.0:
                raise ValueError(f"the 2D target is e^(xy); rate must be 1, got {self.rate}")
            sc = splines.spline_scaling_2d(self.order, self.sizes, self.n_test)
        else:
            raise ValueError(f"splines are 1D or 2D, got dim = {self.dim}")
        return {"n_nominal": sc.n_nominal, "n_train": sc.n_train, "rel_rmse": sc.rel_rmse}

    def cost(self) -> float:
        """CPU-seconds: per size, a fixed part, a part proportional to the nodes and one to the test points."""
        base, per_node, per_order, per_test = SPLINE_COST[self.dim]
        per_node = SPLINE_LINEAR_1D if (self.dim, self.order) == (1, 1) else per_node + per_order * (self.order + 1)
        nodes = [int(n) if self.dim == 1 else math.isqrt(int(n)) ** 2 for n in self.sizes]
        n_test = self.n_test if self.dim == 1 else self.n_test**2
        return sum(base + per_node * n + per_test * n_test for n in nodes)


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 4c: one method on one regular grid, scored on one test set
# ---------------------------------------------------------------------------------------------------------------------


GRID_METHODS = ("tricubic", "tricubic_exact", "simplex")
GRID_LABELS = {"tricubic": "tricubic (finite differences)", "tricubic_exact": "tricubic (exact derivatives)",
               "simplex": "simplex (Delaunay)"}

# CPU-seconds on one core of the machine that wrote this (a shared 2-core x86-64 VM), measured on I.30.5's grids of
# P = 27 to 64,000 points with 10,000-30,000 test points: per method (fixed, per test point, per grid point: the
# interpolant, or the simplex's Delaunay triangulation), and for the simplex, locating one test point on a P-point
# grid, SIMPLEX_QUERY[0] * P ** SIMPLEX_QUERY[1]: the regular grid's degenerate triangulation makes SciPy's walk slow
# (7.5e-6 s per point at P = 1,000, 7.8e-4 s at P = 15,625, 8.8e-3 s at P = 64,000; the paper's largest grid,
# P = 250,047, is extrapolated).
GRID_COST = {"tricubic": (0.01, 1e-6, 2.5e-7), "tricubic_exact": (0.04, 1e-6, 2e-7),
             "simplex": (0.01, 5e-7, 1e-4)}
SIMPLEX_QUERY = (5.8e-11, 1.7)


@dataclass(frozen=True)
class GridPointTask(Task):
    """One Fig. 4c point: ``method`` ("tricubic", "tricubic_exact" or "simplex") on a regular grid of about
    ``n_nominal`` points; the RMSE over the defined predictions, the undefined count and the points per axis."""

    equation: str
    method: str
    n_nominal: int
    seed: int
    n_test: int
    grid_rule: str = "authors"

    def run(self) -> dict:
        if self.method not in GRID_METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid: {list(GRID_METHODS)}")
        eq = equations.get(self.equation)
        if eq.dim != 3:
            raise ValueError(f"Fig. 4c needs a 3-variable equation; {self.equation} has {eq.dim}")
        m = splines.grid_points_per_axis(self.n_nominal, 3, self.grid_rule)
        if self.method == "tricubic":
            fd = splines.tricubic_scaling((self.n_nominal,), (self.seed,), self.n_test, self.equation, "nan",
                                          self.grid_rule)
            return {"rmse": float(fd.rmse[0, 0]), "n_bad": int(fd.n_nan[0, 0]), "points_per_axis": m}
        X = data.sample_test(eq.ranges, self.n_test, np.random.default_rng(self.seed))
        y = eq(X)
        if self.method == "tricubic_exact":
            with np.errstate(invalid="ignore", over="ignore"):
                rmse, bad = metrics.finite_rmse(_exact_tricubic(eq, m)(X), y)
            return {"rmse": rmse, "n_bad": bad, "points_per_axis": m}
        from pml.approx.simplex import SimplexInterpolator

        _, grid = splines.regular_grid(eq.ranges, m)
        res = SimplexInterpolator(grid, eq(grid))(X)
        rmse = float(np.sqrt(np.mean((res.values[res.inside] - y[res.inside]) ** 2)))
        return {"rmse": rmse, "n_bad": res.n_outside, "points_per_axis": m}

    def cost(self) -> float:
        """CPU-seconds from the grid and test sizes (``GRID_COST``, ``SIMPLEX_QUERY``)."""
        fixed, per_test, per_point = GRID_COST[self.method]
        P = float(math.floor(self.n_nominal ** (1 / 3) + 1e-9) ** 3)  # about the grid size, without mpmath
        seconds = fixed + per_test * self.n_test + per_point * P
        if self.method == "simplex":
            seconds += SIMPLEX_QUERY[0] * P ** SIMPLEX_QUERY[1] * self.n_test
        return seconds


@dataclass(frozen=True)
class YRmsTask(Task):
    """y_rms of ``equation`` over the test sets of the given seeds together (the absolute floor of Fig. 4c)."""

    equation: str
    seeds: tuple[int, ...]
    n_test: int

    def run(self) -> dict:
        eq = equations.get(self.equation)
        truths = [eq(data.sample_test(eq.ranges, self.n_test, np.random.default_rng(s))) for s in self.seeds]
        return {"y_rms": float(np.sqrt(np.mean(np.concatenate(truths) ** 2)))}

    def cost(self) -> float:
        return 0.005 + 1e-7 * self.n_test * len(self.seeds)


def _exact_tricubic(eq, m: int) -> splines.Tricubic:
    """Tricubic interpolant of ``eq`` on the m^3 grid with exact (sympy) derivatives; I.30.5's square-root singularity
    at a corner of its box makes that node's derivatives infinite, so its cell is undefined (NaN)."""
    import sympy

    axes, X = splines.regular_grid(eq.ranges, m)
    x, y, z = eq.symbols
    expr = eq.sympy_expr
    parts = [expr, sympy.diff(expr, x), sympy.diff(expr, y), sympy.diff(expr, z), sympy.diff(expr, x, y),
             sympy.diff(expr, x, z), sympy.diff(expr, y, z), sympy.diff(expr, x, y, z)]
    values = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for part in parts:
            fn = sympy.lambdify((x, y, z), part, modules="numpy")
            v = np.broadcast_to(np.asarray(fn(X[:, 0], X[:, 1], X[:, 2]), dtype=np.float64), (X.shape[0],))
            values.append(np.where(np.isfinite(v), v, np.nan).reshape(m, m, m))
    return splines.Tricubic.from_derivatives(axes, *values)


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 6b: one gadget curve
# ---------------------------------------------------------------------------------------------------------------------


# CPU-seconds on one core of the machine that wrote this (a shared 2-core x86-64 VM), per scale lambda and point:
# the float64 gadget (torch; times (order + 1) / 2), the gadget in mpmath at 60 digits (times the order) and the
# dot-product network (times order^1.5: its width and depth of arithmetic grow with the order).
GADGET_COST = {"base": 0.01, "float64": 7e-8, "truncation": 1.1e-4, "dot": 2e-7}


@dataclass(frozen=True)
class GadgetCurveTask(Task):
    """Fig. 6b in float64: relative RMSE of the ``order``-scale gadget (:func:`pml.nn.gadget.gadget_error_curve`)
    at ``n_lambdas`` scales log-spaced over ``log10_lambda``, on ``n_points`` points of [-1, 1]^2."""

    order: int
    log10_lambda: tuple[float, float]
    n_lambdas: int
    n_points: int
    seed: int

    def run(self) -> dict:
        curve = gadget.gadget_error_curve(np.logspace(*self.log10_lambda, self.n_lambdas), self.n_points, self.seed,
                                          self.order)
        return {"lambdas": curve.lambdas, "rel_rmse": curve.rel_rmse, "width": curve.width}

    def cost(self) -> float:
        return GADGET_COST["base"] + GADGET_COST["float64"] * (self.order + 1) / 2 * self.n_lambdas * self.n_points


@dataclass(frozen=True)
class GadgetTruncationTask(Task):
    """Fig. 6b in ``dps``-digit arithmetic: the gadget's truncation error alone
    (:func:`pml.nn.gadget.gadget_truncation_error`) at ``n_lambdas`` scales log-spaced over ``log10_lambda``."""

    order: int
    log10_lambda: tuple[float, float]
    n_lambdas: int
    n_points: int
    seed: int
    dps: int

    def run(self) -> dict:
        lambdas = np.logspace(*self.log10_lambda, self.n_lambdas)
        errors = gadget.gadget_truncation_error(lambdas, self.order, self.n_points, self.seed, dps=self.dps)
        return {"lambdas": lambdas, "rel_rmse": errors}

    def cost(self) -> float:
        per = GADGET_COST["truncation"] * self.dps / 60
        return GADGET_COST["base"] + per * self.order * self.n_lambdas * self.n_points


@dataclass(frozen=True)
class DotProductTask(Task):
    """The exact dot-product network of ``order``-scale gadgets on ``equation`` (I.11.19) in float64
    (:func:`pml.nn.gadget.dot_product_error_curve`), and the test set's y_rms."""

    order: int
    equation: str
    log10_lambda: tuple[float, float]
    n_lambdas: int
    n_test: int
    seed: int

    def run(self) -> dict:
        curve = gadget.dot_product_error_curve(np.logspace(*self.log10_lambda, self.n_lambdas), self.n_test,
                                               self.seed, self.order, self.equation)
        eq = equations.get(self.equation)
        X = data.sample_test(eq.ranges, self.n_test, np.random.default_rng(self.seed))
        return {"lambdas": curve.lambdas, "rel_rmse": curve.rel_rmse, "rmse": curve.rmse, "width": curve.width,
                "n_params": curve.n_params, "y_rms": float(np.sqrt(np.mean(eq(X) ** 2)))}

    def cost(self) -> float:
        return GADGET_COST["base"] + GADGET_COST["dot"] * self.order**1.5 * self.n_lambdas * self.n_test
