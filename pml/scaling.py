"""Power-law fits of error vs parameter count, the slopes of the scaling figures (paper §1.3, §2, Figs. 2-6).

``fit_power_law`` is ordinary least squares of log(err) on log(n): err ~ prefactor * n**exponent, with the exponent's
standard error from the regression. ``reference_line`` draws guide lines such as the N^(-2/d) simplex line and the lime
"d* = 2" line; those are anchored, never fitted (the paper's own guide lines are anchored by hand, see
:func:`reference_line`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["PowerLawFit", "fit_power_law", "reference_line", "theoretical_exponent"]


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """err ~ prefactor * n**exponent, fitted in log-log space on ``n_points`` points."""

    exponent: float
    exponent_stderr: float  # NaN with only 2 points (no residual degrees of freedom)
    prefactor: float
    intercept_stderr: float  # standard error of log(prefactor)
    r_squared: float
    n_points: int
    n_min: float
    n_max: float

    def predict(self, n) -> np.ndarray:
        return self.prefactor * np.asarray(n, dtype=np.float64) ** self.exponent


def fit_power_law(n, err, last: int | None = None) -> PowerLawFit:
    """Least-squares fit of log(err) = log(prefactor) + exponent * log(n), on the ``last`` largest n if given;
    non-finite or non-positive points are an error, not dropped."""
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    err = np.asarray(err, dtype=np.float64).reshape(-1)
    if n.shape != err.shape:
        raise ValueError(f"n has {n.size} values but err has {err.size}")
    bad = ~(np.isfinite(n) & np.isfinite(err) & (n > 0) & (err > 0))
    if bad.any():
        raise ValueError(f"power-law fits need finite positive values; bad at indices {np.flatnonzero(bad).tolist()}")
    order = np.argsort(n, kind="stable")
    n, err = n[order], err[order]
    if last is not None:
        if int(last) != last or last < 2:
            raise ValueError(f"last must be an integer >= 2, got {last!r}")
        n, err = n[-int(last):], err[-int(last):]
    k = n.size
    if k < 2 or np.unique(n).size < 2:
        raise ValueError(f"need at least 2 distinct n values to fit a power law, got {np.unique(n).size}")
    x, y = np.log(n), np.log(err)
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    intercept = float(ym - slope * xm)
    resid = y - (intercept + slope * x)
    ss_res = float(np.sum(resid**2))
    ss_tot = float(np.sum((y - ym) ** 2))
    if k > 2:
        sigma2 = ss_res / (k - 2)
        slope_se = math.sqrt(sigma2 / sxx)
        intercept_se = math.sqrt(sigma2 * (1.0 / k + xm**2 / sxx))
    else:
        slope_se = intercept_se = float("nan")
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return PowerLawFit(exponent=slope, exponent_stderr=slope_se, prefactor=math.exp(intercept),
                       intercept_stderr=intercept_se, r_squared=r2, n_points=k, n_min=float(n[0]),
                       n_max=float(n[-1]))


def reference_line(n, exponent: float, anchor_n: float, anchor_err: float, scale: float = 1.0) -> np.ndarray:
    """Guide line err = scale * anchor_err * (n / anchor_n)**exponent through (anchor_n, anchor_err), as the authors'
    Fig. 2 notebook anchors its lines (``relu-scaling-1d-to-6d-with-normalization.ipynb``). Purely visual."""
    if not (anchor_n > 0 and anchor_err > 0 and scale > 0):
        raise ValueError("anchor_n, anchor_err and scale must be positive")
    return scale * anchor_err * (np.asarray(n, dtype=np.float64) / anchor_n) ** exponent


def theoretical_exponent(dim: int, order: int = 1) -> float:
    """The exponent -(order+1)/d of a degree-``order`` piecewise polynomial in d dimensions (paper §1.3, Eq. 3);
    order 1 (linear simplex / ReLU) gives -2/d."""
    if int(dim) != dim or dim < 1 or int(order) != order or order < 0:
        raise ValueError(f"dim must be an integer >= 1 and order an integer >= 0, got {dim!r}, {order!r}")
    return -(order + 1) / dim
