"""Paper §1: precision floors (§1.1), the loss decomposition of Eq. (6) (§1.2) and scaling exponents (§1.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pml import equations, metrics, scaling
from pml.approx import piecewise
from pml.config import Config
from pml.data import central_box, sample_uniform
from pml.approx.decomposition import TERMS, decompose


# --- §1.1 precision floors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloorConfig(Config):
    equation: str = "cos2x"  # target whose values are rounded / evaluated
    n_points: int = 10_000
    seed: int = 0
    dtypes: tuple[str, ...] = ("float32", "float64")


@dataclass(frozen=True)
class FloorResult:
    dtypes: tuple[str, ...]
    eps: np.ndarray  # machine epsilon per dtype
    storage_floor: np.ndarray  # relative RMSE of storing exact targets in the dtype
    evaluation_floor: np.ndarray  # relative RMSE of evaluating the formula in the dtype


def run_floors(cfg: FloorConfig) -> FloorResult:
    """Measure, per dtype, how far exactly known targets move when stored in / computed with that dtype."""
    import mpmath
    import sympy

    eq = equations.get(cfg.equation)
    X = sample_uniform(eq.ranges, cfg.n_points, np.random.default_rng(cfg.seed))
    symbols = [sympy.Symbol(v, real=True) for v in eq.variables]
    expr = eq.sympy_expr.subs({s: sympy.Symbol(s.name, real=True) for s in eq.sympy_expr.free_symbols})
    exact_fn = sympy.lambdify(symbols, expr, modules="mpmath")
    with mpmath.workdps(40):
        exact = [exact_fn(*[mpmath.mpf(float(v)) for v in row]) for row in X]
        storage, evaluation = [], []
        for dtype in cfg.dtypes:
            storage.append(metrics.precision_floor(exact, dtype))
            computed = eq.func(X.astype(dtype)).astype(dtype)
            num = mpmath.fsum((mpmath.mpf(float(c)) - e) ** 2 for c, e in zip(computed, exact))
            den = mpmath.fsum(e**2 for e in exact)
            evaluation.append(float(mpmath.sqrt(num / den)))
    return FloorResult(
        dtypes=cfg.dtypes,
        eps=np.array([metrics.machine_epsilon(d) for d in cfg.dtypes]),
        storage_floor=np.array(storage),
        evaluation_floor=np.array(evaluation),
    )


# --- §1.2 loss decomposition --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecompositionConfig(Config):
    equation: str = "cos2x"
    degree: int = 3  # polynomial model class H
    n_gd_steps: int = 3  # budget of the imperfect optimiser A
    n_train: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    n_seeds: int = 200


@dataclass(frozen=True)
class DecompositionResult:
    n_train: np.ndarray
    terms: np.ndarray  # (n_sizes, n_seeds, 4) in the order of ``decomposition.TERMS``
    names: tuple[str, ...] = TERMS

    def mean(self) -> np.ndarray:
        return self.terms.mean(axis=1)

    def std(self) -> np.ndarray:
        return self.terms.std(axis=1)


def run_decomposition(cfg: DecompositionConfig) -> DecompositionResult:
    eq = equations.get(cfg.equation)
    if eq.dim != 1:
        raise ValueError(f"the decomposition study needs a 1D target, {cfg.equation} has d = {eq.dim}")
    (low, high), = eq.ranges

    def f(x):
        return eq.func(np.asarray(x).reshape(-1, 1))

    terms = np.empty((len(cfg.n_train), cfg.n_seeds, len(TERMS)))
    for i, n in enumerate(cfg.n_train):
        for seed in range(cfg.n_seeds):
            x = sample_uniform(eq.ranges, n, np.random.default_rng([seed, n]))[:, 0]
            terms[i, seed] = decompose(f, low, high, x, cfg.degree, cfg.n_gd_steps).as_array()
    return DecompositionResult(np.asarray(cfg.n_train), terms)


# --- §1.3 scaling exponents ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiecewiseConfig(Config):
    targets: tuple[str, ...] = ("cos2x", "exp_xy")  # one per dimension shown
    degrees: tuple[int, ...] = (1, 2, 3)
    n_cells: tuple[int, ...] = (4, 8, 16, 32, 64)
    n_test: int = 30_000
    seed: int = 0


@dataclass(frozen=True)
class PiecewiseResult:
    targets: tuple[str, ...]
    dims: tuple[int, ...]
    degrees: tuple[int, ...]
    n_params: np.ndarray  # (targets, degrees, sizes)
    rmse: np.ndarray  # absolute test RMSE, same shape
    exponent: np.ndarray  # fitted, (targets, degrees)
    exponent_stderr: np.ndarray

    def theory(self) -> np.ndarray:
        """-(n+1)/d for every (target, degree)."""
        return -(np.asarray(self.degrees)[None, :] + 1) / np.asarray(self.dims)[:, None]


def run_piecewise(cfg: PiecewiseConfig) -> PiecewiseResult:
    n_params = np.empty((len(cfg.targets), len(cfg.degrees), len(cfg.n_cells)))
    rmse = np.empty_like(n_params)
    exponent = np.empty(n_params.shape[:2])
    stderr = np.empty_like(exponent)
    dims = []
    for i, name in enumerate(cfg.targets):
        eq = equations.get(name)
        dims.append(eq.dim)
        X = sample_uniform(central_box(eq.ranges), cfg.n_test, np.random.default_rng(cfg.seed))
        y = eq.func(X)
        for j, degree in enumerate(cfg.degrees):
            for k, cells in enumerate(cfg.n_cells):
                model = piecewise.fit_piecewise_polynomial(eq.func, eq.ranges, cells, degree)
                n_params[i, j, k] = model.n_params
                rmse[i, j, k] = metrics.rmse(model(X), y)
            fit = scaling.fit_power_law(n_params[i, j], rmse[i, j])
            exponent[i, j], stderr[i, j] = fit.exponent, fit.exponent_stderr
    return PiecewiseResult(tuple(cfg.targets), tuple(dims), tuple(cfg.degrees), n_params, rmse, exponent, stderr)
