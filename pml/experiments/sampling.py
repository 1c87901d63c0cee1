"""The data streams and curve helpers shared by the network and simplex sweeps (kept apart from the training code,
so that a simplex task's key does not depend on how networks are trained)."""

from __future__ import annotations

import numpy as np

from pml import data, equations

__all__ = ["RNGS", "interp_loglog", "sample_split"]

RNGS = ("legacy", "pcg64")


def sample_split(equation: str, n_train: int, n_test: int, seed: int, rng: str = "legacy"):
    """(X_train, y_train, X_test, y_test) for a registry equation: ``rng="legacy"`` bit-identical to the authors'
    ``np.random.seed`` + ``uniform`` stream (test points in the central 80% box), ``rng="pcg64"`` NumPy's default."""
    eq = equations.get(equation)
    if rng == "pcg64":
        return data.train_test_split(eq.func, eq.ranges, n_train, n_test, seed)
    if rng != "legacy":
        raise ValueError(f"unknown rng {rng!r}; valid: {list(RNGS)}")
    gen = np.random.RandomState(seed)
    ranges = np.asarray(eq.ranges, dtype=np.float64)
    box = data.central_box(eq.ranges)
    X_train = gen.uniform(ranges[:, 0], ranges[:, 1], size=(int(n_train), eq.dim))
    X_test = gen.uniform(box[:, 0], box[:, 1], size=(int(n_test), eq.dim))
    return X_train, eq.func(X_train), X_test, eq.func(X_test)


def interp_loglog(n, err, at) -> np.ndarray:
    """err interpolated linearly in log-log space at ``at``; NaN outside [min n, max n] (never extrapolated)."""
    n, err, at = (np.asarray(a, dtype=np.float64) for a in (n, err, at))
    order = np.argsort(n)
    n, err = n[order], err[order]
    out = np.exp(np.interp(np.log(at), np.log(n), np.log(err)))
    return np.where((at >= n[0]) & (at <= n[-1]), out, np.nan)
