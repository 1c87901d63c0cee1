"""Linear simplex interpolation against |D| (paper Figs. 2, 3, 5, 6a): one task per (equation, |D|, seed).

:class:`SimplexTask` scores the test points inside the convex hull and records the fraction outside;
:class:`SimplexScalingSweep` assembles :class:`SimplexScalingResult`, whose N = |D|(d+1) is the parameter count the
networks are compared at."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pml import equations, scaling
from pml.approx.simplex import SimplexInterpolator
from pml.engine import Sweep, Task
from pml.experiments.sampling import interp_loglog, sample_split

__all__ = ["FIG2_EQUATIONS", "SIMPLEX_SECONDS", "SimplexScalingResult", "SimplexScalingSweep", "SimplexTask",
           "simplex_seconds"]

# d = 1..6 (configs feynman-simplex-4, feynman-network-8)
FIG2_EQUATIONS = ("Z.001", "II.8.31", "I.30.5", "I.8.14", "I.44.4", "II.6.15a")

# Cost model: CPU-seconds of one interpolant (triangulation and 30k test queries) ~ a_d |D|^p_d, a least-squares fit
# in log-log per input dimension d to timings on one core of the machine that built the book (|D| up to 262144 in
# 1-2D, 65536 in 3D, 16384 in 4D and 4096 in 5-6D; beyond that the power law is extrapolated).
SIMPLEX_SECONDS = {1: (1.84e-5, 0.626), 2: (1.84e-6, 1.164), 3: (8.5e-6, 1.164), 4: (2.3e-4, 1.017),
                   5: (3.3e-4, 1.215), 6: (1.49e-4, 1.627)}


# ---------------------------------------------------------------------------------------------------------------------
# Simplex scaling (Figs. 2, 3, 5, 6a)
# ---------------------------------------------------------------------------------------------------------------------


def simplex_seconds(dim: int, n_train: int) -> float:
    """Estimated CPU-seconds of one simplex interpolant of ``n_train`` points in ``dim`` dimensions (30k queries)."""
    a, p = SIMPLEX_SECONDS[int(dim)]
    return float(a * float(n_train) ** p)


@dataclass(frozen=True)
class SimplexTask(Task):
    """One simplex interpolant: |D| points of ``equation`` drawn with ``seed``, scored on ``n_test`` test points."""

    equation: str = "I.30.5"
    n_train: int = 64
    seed: int = 0
    n_test: int = 30_000
    rng: str = "legacy"
    threads: int = 1

    def run(self) -> dict:
        start = time.perf_counter()
        X, y, Xt, yt = sample_split(self.equation, self.n_train, self.n_test, self.seed, self.rng)
        res = SimplexInterpolator(X, y)(Xt)
        return {"rmse": float(res.rmse(yt)), "fraction_outside": float(res.fraction_outside),
                "mean_square": float(np.mean(yt**2)), "seconds": time.perf_counter() - start}

    def cost(self) -> float:
        return simplex_seconds(equations.get(self.equation).dim, self.n_train) * max(self.n_test, 1000) / 30_000


@dataclass(frozen=True)
class SimplexScalingSweep(Sweep):
    """Simplex RMSE against |D| for each equation: one task per (equation, |D|, seed)."""

    equations: tuple[str, ...] = FIG2_EQUATIONS
    sizes: tuple[int, ...] = (64, 256, 1024, 4096, 16384, 65536, 262144)  # |D| = 64 * 4^k (feynman-simplex-4)
    max_train_by_dim: tuple[int, ...] = (262144, 262144, 262144, 262144, 16384, 16384)  # |D| cap for d = 1..6
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    n_test: int = 30_000
    rng: str = "legacy"

    def sizes_of(self, equation: str) -> list[int]:
        d = equations.get(equation).dim
        return [int(n) for n in self.sizes if n <= self.max_train_by_dim[d - 1]]

    def tasks(self) -> list[SimplexTask]:
        return [SimplexTask(name, n, int(seed), self.n_test, self.rng)
                for name in self.equations for n in self.sizes_of(name) for seed in self.seeds]

    def assemble(self, results: Sequence[dict]) -> SimplexScalingResult:
        dims, n_train, rmse, outside, y_rms, seconds = [], [], [], [], [], []
        it = iter(results)
        for name in self.equations:
            sizes = self.sizes_of(name)
            shape = (len(sizes), len(self.seeds))
            parts = [next(it) for _ in range(shape[0] * shape[1])]
            dims.append(equations.get(name).dim)
            n_train.append(np.asarray(sizes))
            rmse.append(np.array([p["rmse"] for p in parts], dtype=np.float64).reshape(shape))
            outside.append(np.array([p["fraction_outside"] for p in parts], dtype=np.float64).reshape(shape))
            seconds.append(np.array([p["seconds"] for p in parts], dtype=np.float64).reshape(shape))
            y_rms.append(math.sqrt(float(np.mean([p["mean_square"] for p in parts]))))
        return SimplexScalingResult(tuple(self.equations), tuple(dims), tuple(n_train), tuple(rmse), tuple(outside),
                                    tuple(y_rms), tuple(seconds))


@dataclass(frozen=True)
class SimplexScalingResult:
    """Per equation: |D|, absolute RMSE (sizes, seeds) over the test points inside the hull, fraction outside."""

    equations: tuple[str, ...]
    dims: tuple[int, ...]
    n_train: tuple[np.ndarray, ...]
    rmse: tuple[np.ndarray, ...]
    fraction_outside: tuple[np.ndarray, ...]
    y_rms: tuple[float, ...]
    seconds: tuple[np.ndarray, ...]  # wall time per (size, seed)

    def index(self, equation: str) -> int:
        return self.equations.index(equation)

    def dim(self, equation: str) -> int:
        return self.dims[self.index(equation)]

    def n_params(self, equation: str) -> np.ndarray:
        """N = |D|(d+1) (paper §2)."""
        i = self.index(equation)
        return self.n_train[i] * (self.dims[i] + 1)

    def mean(self, equation: str) -> np.ndarray:
        return self.rmse[self.index(equation)].mean(axis=1)

    def std(self, equation: str) -> np.ndarray:
        return self.rmse[self.index(equation)].std(axis=1)  # population std, as the authors' np.std

    def fit(self, equation: str) -> scaling.PowerLawFit:
        """Power law fitted to the seed-mean RMSE against N over all sizes."""
        return scaling.fit_power_law(self.n_params(equation), self.mean(equation))

    def exponent_gap(self, equation: str) -> float:
        """|fitted exponent - (-2/d)|."""
        return abs(self.fit(equation).exponent - scaling.theoretical_exponent(self.dim(equation)))

    def at(self, equation: str, n_params) -> np.ndarray:
        """Seed-mean RMSE at N, interpolated log-log; NaN outside the computed sizes."""
        return interp_loglog(self.n_params(equation), self.mean(equation), n_params)
