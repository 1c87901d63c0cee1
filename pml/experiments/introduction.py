"""Paper §1: precision floors (§1.1), the loss decomposition of Eq. (6) (§1.2) and scaling exponents (§1.3).

Each study is a :class:`pml.engine.Sweep` of small tasks (one float type, one dataset size, one curve) whose assembled
result is what ``book/01_introduction.md`` draws; :func:`steps` builds them from the chapter's parameters. Every task
takes well under a second to a few seconds on one core, so the costs below are rough constants measured on the machine
that wrote this (a shared 2-core x86-64 VM)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from pml import equations, metrics, scaling
from pml.approx import piecewise
from pml.approx.decomposition import TERMS, decompose
from pml.data import central_box, sample_uniform
from pml.engine import Sweep, Task

# CPU-seconds on one core: the floors per point (mpmath at 40 digits dominates), the decomposition per dataset (fixed
# part, per training point) and one piecewise fit (fixed part, per test point, input and unit of degree + 1).
FLOOR_COST_PER_POINT = 3.3e-5
DECOMPOSITION_COST = (6e-3, 1e-7)
PIECEWISE_COST = (5e-4, 2e-8)


# --- §1.1 precision floors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloorTask(Task):
    """Storage and evaluation floors of one float type on ``n_points`` points of ``equation`` (see :func:`floors`)."""

    equation: str
    n_points: int
    seed: int
    dtype: str

    def run(self) -> dict:
        storage, evaluation = floors(self.equation, self.n_points, self.seed, self.dtype)
        return {"storage": storage, "evaluation": evaluation}

    def cost(self) -> float:
        return 0.02 + FLOOR_COST_PER_POINT * self.n_points


@dataclass(frozen=True)
class FloorSweep(Sweep):
    """§1.1: one :class:`FloorTask` per float type."""

    equation: str = "cos2x"  # target whose values are rounded / evaluated
    n_points: int = 10_000
    seed: int = 0
    dtypes: tuple[str, ...] = ("float32", "float64")

    def tasks(self) -> list[FloorTask]:
        return [FloorTask(self.equation, int(self.n_points), int(self.seed), str(d)) for d in self.dtypes]

    def assemble(self, results: Sequence[dict]) -> "FloorResult":
        return FloorResult(
            dtypes=tuple(self.dtypes),
            eps=np.array([metrics.machine_epsilon(d) for d in self.dtypes]),
            storage_floor=np.array([r["storage"] for r in results]),
            evaluation_floor=np.array([r["evaluation"] for r in results]),
        )


@dataclass(frozen=True)
class FloorResult:
    dtypes: tuple[str, ...]
    eps: np.ndarray  # machine epsilon per dtype
    storage_floor: np.ndarray  # relative RMSE of storing exact targets in the dtype
    evaluation_floor: np.ndarray  # relative RMSE of evaluating the formula in the dtype


def floors(equation: str, n_points: int, seed: int, dtype: str) -> tuple[float, float]:
    """How far exactly known targets move (relative RMSE) when stored in / computed with ``dtype``."""
    import mpmath
    import sympy

    eq = equations.get(equation)
    X = sample_uniform(eq.ranges, n_points, np.random.default_rng(seed))
    symbols = [sympy.Symbol(v, real=True) for v in eq.variables]
    expr = eq.sympy_expr.subs({s: sympy.Symbol(s.name, real=True) for s in eq.sympy_expr.free_symbols})
    exact_fn = sympy.lambdify(symbols, expr, modules="mpmath")
    with mpmath.workdps(40):
        exact = [exact_fn(*[mpmath.mpf(float(v)) for v in row]) for row in X]
        storage = metrics.precision_floor(exact, dtype)
        computed = eq.func(X.astype(dtype)).astype(dtype)
        num = mpmath.fsum((mpmath.mpf(float(c)) - e) ** 2 for c, e in zip(computed, exact))
        den = mpmath.fsum(e**2 for e in exact)
        evaluation = float(mpmath.sqrt(num / den))
    return float(storage), evaluation


# --- §1.2 loss decomposition --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecompositionTask(Task):
    """The four terms of Eq. (6) on ``n_seeds`` datasets of ``n`` points (dataset ``seed`` drawn from
    ``numpy.random.default_rng([seed, n])``)."""

    equation: str
    degree: int
    n_gd_steps: int
    n: int
    n_seeds: int

    def run(self) -> dict:
        eq = equations.get(self.equation)
        if eq.dim != 1:
            raise ValueError(f"the decomposition study needs a 1D target, {self.equation} has d = {eq.dim}")
        (low, high), = eq.ranges

        def f(x):
            return eq.func(np.asarray(x).reshape(-1, 1))

        terms = np.empty((self.n_seeds, len(TERMS)))
        for seed in range(self.n_seeds):
            x = sample_uniform(eq.ranges, self.n, np.random.default_rng([seed, self.n]))[:, 0]
            terms[seed] = decompose(f, low, high, x, self.degree, self.n_gd_steps).as_array()
        return {"terms": terms}

    def cost(self) -> float:
        fixed, per_point = DECOMPOSITION_COST
        return self.n_seeds * (fixed + per_point * self.n)


@dataclass(frozen=True)
class DecompositionSweep(Sweep):
    """§1.2: one :class:`DecompositionTask` per dataset size."""

    equation: str = "cos2x"
    degree: int = 3  # polynomial model class H
    n_gd_steps: int = 3  # budget of the imperfect optimiser A
    n_train: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    n_seeds: int = 200

    def tasks(self) -> list[DecompositionTask]:
        return [DecompositionTask(self.equation, int(self.degree), int(self.n_gd_steps), int(n), int(self.n_seeds))
                for n in self.n_train]

    def assemble(self, results: Sequence[dict]) -> "DecompositionResult":
        terms = np.stack([np.asarray(r["terms"], dtype=np.float64) for r in results])
        return DecompositionResult(np.asarray(self.n_train), terms)


@dataclass(frozen=True)
class DecompositionResult:
    n_train: np.ndarray
    terms: np.ndarray  # (n_sizes, n_seeds, 4) in the order of ``decomposition.TERMS``
    names: tuple[str, ...] = TERMS

    def mean(self) -> np.ndarray:
        return self.terms.mean(axis=1)

    def std(self) -> np.ndarray:
        return self.terms.std(axis=1)


# --- §1.3 scaling exponents ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiecewiseTask(Task):
    """One curve of §1.3: piecewise degree-``degree`` polynomials of ``target`` on grids of ``n_cells`` cells per axis,
    absolute RMSE on ``n_test`` points uniform on the central 80% box (``numpy.random.default_rng(seed)``)."""

    target: str
    degree: int
    n_cells: tuple[int, ...]
    n_test: int
    seed: int

    def run(self) -> dict:
        eq = equations.get(self.target)
        X = sample_uniform(central_box(eq.ranges), self.n_test, np.random.default_rng(self.seed))
        y = eq.func(X)
        n_params, rmse = [], []
        for cells in self.n_cells:
            model = piecewise.fit_piecewise_polynomial(eq.func, eq.ranges, cells, self.degree)
            n_params.append(model.n_params)
            rmse.append(metrics.rmse(model(X), y))
        return {"dim": eq.dim, "n_params": np.array(n_params, dtype=np.float64), "rmse": np.array(rmse)}

    def cost(self) -> float:
        fixed, per = PIECEWISE_COST
        dim = equations.get(self.target).dim
        return len(self.n_cells) * (fixed + per * self.n_test * dim * (self.degree + 1))


@dataclass(frozen=True)
class PiecewiseSweep(Sweep):
    """§1.3: one :class:`PiecewiseTask` per (target, degree)."""

    targets: tuple[str, ...] = ("cos2x", "exp_xy")  # one per dimension shown
    degrees: tuple[int, ...] = (1, 2, 3)
    n_cells: tuple[int, ...] = (4, 8, 16, 32, 64)
    n_test: int = 30_000
    seed: int = 0

    def tasks(self) -> list[PiecewiseTask]:
        cells = tuple(int(c) for c in self.n_cells)
        return [PiecewiseTask(name, int(degree), cells, int(self.n_test), int(self.seed))
                for name in self.targets for degree in self.degrees]

    def assemble(self, results: Sequence[dict]) -> "PiecewiseResult":
        """The curves and their power-law fits, (targets, degrees, sizes)."""
        shape = (len(self.targets), len(self.degrees))
        n_params = np.array([r["n_params"] for r in results], dtype=np.float64).reshape(*shape, len(self.n_cells))
        rmse = np.array([r["rmse"] for r in results], dtype=np.float64).reshape(n_params.shape)
        exponent, stderr = np.empty(shape), np.empty(shape)
        for i in range(shape[0]):
            for j in range(shape[1]):
                fit = scaling.fit_power_law(n_params[i, j], rmse[i, j])
                exponent[i, j], stderr[i, j] = fit.exponent, fit.exponent_stderr
        dims = tuple(int(results[i * shape[1]]["dim"]) for i in range(shape[0]))
        return PiecewiseResult(tuple(self.targets), dims, tuple(self.degrees), n_params, rmse, exponent, stderr)


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


def steps(params: Mapping[str, Any]) -> dict[str, Sweep]:
    """The chapter's sweeps: ``"floors"`` (§1.1), ``"decomposition"`` (§1.2) and ``"piecewise"`` (§1.3)."""
    p = params
    seed = int(p["seed"])
    return {
        "floors": FloorSweep(equation=p["floor_equation"], n_points=int(p["n_floor_points"]), seed=seed),
        "decomposition": DecompositionSweep(equation=p["decomposition_equation"], degree=int(p["degree"]),
                                             n_gd_steps=int(p["n_gd_steps"]),
                                             n_train=tuple(int(n) for n in p["n_train"]), n_seeds=int(p["n_seeds"])),
        "piecewise": PiecewiseSweep(targets=tuple(p["piecewise_targets"]),
                                     degrees=tuple(int(d) for d in p["piecewise_degrees"]),
                                     n_cells=tuple(int(c) for c in p["n_cells"]), n_test=int(p["n_test"]), seed=seed),
    }
