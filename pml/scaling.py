"""Power-law fits of error against N or |D| (paper §1.3): err ~ prefactor * n^exponent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLawFit:
    exponent: float
    exponent_stderr: float
    prefactor: float
    n_points: int

    def __call__(self, n):
        return self.prefactor * np.asarray(n, dtype=np.float64) ** self.exponent


def fit_power_law(n, err, last: int | None = None) -> PowerLawFit:
    """Least squares of log(err) on log(n); ``last`` fits only the last k points. Stderr from the regression."""
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    err = np.asarray(err, dtype=np.float64).reshape(-1)
    if n.shape != err.shape:
        raise ValueError(f"n has {n.size} values but err has {err.size}")
    keep = np.isfinite(n) & np.isfinite(err) & (n > 0) & (err > 0)
    n, err = n[keep], err[keep]
    if last is not None:
        n, err = n[-last:], err[-last:]
    if n.size < 2:
        raise ValueError("a power-law fit needs at least 2 positive, finite points")
    x, y = np.log(n), np.log(err)
    A = np.stack([x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    stderr = 0.0
    if n.size > 2:
        resid = y - A @ coef
        sigma2 = resid @ resid / (n.size - 2)
        stderr = float(np.sqrt(sigma2 / np.sum((x - x.mean()) ** 2)))
    return PowerLawFit(float(coef[0]), stderr, float(np.exp(coef[1])), int(n.size))
