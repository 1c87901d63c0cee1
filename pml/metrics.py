"""Losses of paper §1.1-1.2: relative RMSE (Eq. 1), RMSE, MSE, and the precision floors."""

from __future__ import annotations

import numpy as np


def _pair(y_pred, y) -> tuple[np.ndarray, np.ndarray]:
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred has {y_pred.size} values but y has {y.size}")
    if y.size == 0:
        raise ValueError("cannot compute a loss on zero points")
    return y_pred, y


def mse(y_pred, y) -> float:
    """Mean squared error, L_mse = mean((f(x_i) - y_i)^2): the loss the paper trains on (§1.2)."""
    y_pred, y = _pair(y_pred, y)
    return float(np.mean((y_pred - y) ** 2))


def rmse(y_pred, y) -> float:
    """Root mean squared error, L_rms = sqrt(L_mse): the absolute RMSE most of the paper's figures plot.

    Parameters
    ----------
    y_pred, y : array_like
        Predictions and targets, the same number of values.

    Returns
    -------
    float
        The RMSE.

    Raises
    ------
    ValueError
        If the sizes differ or there are no values.
    """
    return float(np.sqrt(mse(y_pred, y)))


def relative_rmse(y_pred, y) -> float:
    """Relative RMSE, l_rms = RMSE / y_rms, paper Eq. (1).

    Parameters
    ----------
    y_pred, y : array_like
        As :func:`rmse`.

    Returns
    -------
    float
        The RMSE divided by the root mean square of ``y``.

    Raises
    ------
    ValueError
        If the sizes differ, there are no values or ``y`` is all zero.
    """
    y_pred, y = _pair(y_pred, y)
    y_rms = float(np.sqrt(np.mean(y**2)))
    if y_rms == 0.0:
        raise ValueError("relative RMSE is undefined for an all-zero target (y_rms = 0)")
    return rmse(y_pred, y) / y_rms


def finite_rmse(y_pred, y, relative: bool = False) -> tuple[float, int]:
    """RMSE, or relative RMSE (Eq. 1), over the points whose prediction is finite."""
    y_pred, y = _pair(y_pred, y)
    ok = np.isfinite(y_pred)
    n_nonfinite = int(y.size - np.count_nonzero(ok))
    if n_nonfinite == y.size:
        return float("nan"), n_nonfinite
    return (relative_rmse if relative else rmse)(y_pred[ok], y[ok]), n_nonfinite


def max_abs_err(y_pred, y) -> float:
    """The largest absolute error, max(abs(f(x_i) - y_i))."""
    y_pred, y = _pair(y_pred, y)
    return float(np.max(np.abs(y_pred - y)))


def machine_epsilon(dtype="float64") -> float:
    """The machine epsilon eps_0: 2^-52 for float64 and 2^-23 for float32 (§1.1), the spacing of floats just above 1."""
    return float(np.finfo(np.dtype(dtype)).eps)


def precision_floor(y_exact, dtype="float64") -> float:
    """The relative RMSE left by storing exact targets in ``dtype``: the floor no fit in that dtype can beat.

    Round-to-nearest leaves each value a relative error of at most eps/2, so the floor is a fraction of eps_0 (about
    eps/(2 sqrt 3) when mantissas are spread evenly).

    Parameters
    ----------
    y_exact : array_like
        Values wider than ``dtype`` (``mpmath.mpf``, or floats: float64 is exact for ``dtype="float32"``).
    dtype : str or numpy.dtype, optional
        The storage type (default ``"float64"``).

    Returns
    -------
    float
        sqrt(sum (rounded - exact)^2 / sum exact^2), computed at 256-bit precision.
    """
    import mpmath  # a sympy dependency; imported here to keep ``import pml.metrics`` light

    with mpmath.workprec(256):
        exact = [mpmath.mpf(v) for v in np.asarray(y_exact, dtype=object).reshape(-1)]
        if not exact:
            raise ValueError("cannot compute a precision floor on zero points")
        rounded = np.array([float(v) for v in exact], dtype=np.float64).astype(np.dtype(dtype))
        num = mpmath.fsum((mpmath.mpf(float(r)) - e) ** 2 for r, e in zip(rounded, exact))
        den = mpmath.fsum(e**2 for e in exact)
        if den == 0:
            raise ValueError("relative error is undefined for an all-zero target")
        return float(mpmath.sqrt(num / den))
