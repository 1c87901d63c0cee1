"""Sampling rules of paper §2 and of the authors' scripts (ejmichaud/precision-ml, ``scripts/feynman-*.py``).

Training inputs are uniform on each variable's range; test inputs are uniform on the *central box*, each side shrunk to
80% so every test point lies at least 10% of the range from the training boundary (paper footnote 3). Every sampler
takes an explicit ``numpy.random.Generator``: nothing here touches global random state."""

from __future__ import annotations

from typing import Sequence

import numpy as np

TEST_COMPACTIFICATION = 0.8  # central-box fraction for test points (the authors' `TEST_COMPACTIFICATION`)


def _bounds(ranges: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(ranges, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"ranges must be a sequence of (low, high) pairs, got shape {arr.shape}")
    low, high = arr[:, 0], arr[:, 1]
    if np.any(~np.isfinite(arr)) or np.any(high <= low):
        raise ValueError(f"every range needs finite low < high, got {arr.tolist()}")
    return low, high


def as_inputs(X) -> np.ndarray:
    """Inputs as a float64 (n, d) array; a 1-D array is n points in one dimension."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n, d) with n >= 1, got {X.shape}")
    return X


def central_box(ranges: Sequence[Sequence[float]], fraction: float = TEST_COMPACTIFICATION) -> np.ndarray:
    """The box with the same centre and each side scaled by ``fraction``; shape (d, 2)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    low, high = _bounds(ranges)
    centre, half = (low + high) / 2, (high - low) / 2 * fraction
    return np.stack([centre - half, centre + half], axis=1)


def sample_uniform(ranges: Sequence[Sequence[float]], n: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniform on the box ``ranges``; shape (n, d), float64."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError("pass a numpy.random.Generator, e.g. numpy.random.default_rng(seed)")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    low, high = _bounds(ranges)
    return rng.uniform(low, high, size=(int(n), low.size))


def sample_train(ranges, n_train: int, rng: np.random.Generator) -> np.ndarray:
    """Training inputs: uniform on the full ranges."""
    return sample_uniform(ranges, n_train, rng)


def sample_test(ranges, n_test: int, rng: np.random.Generator, fraction: float = TEST_COMPACTIFICATION) -> np.ndarray:
    """Test inputs: uniform on the central box (80% by default; Figs. 8-9 use the full box, fraction=1)."""
    return sample_uniform(central_box(ranges, fraction), n_test, rng)


def train_test_split(target, ranges, n_train: int, n_test: int, seed: int, fraction: float = TEST_COMPACTIFICATION):
    """(X_train, y_train, X_test, y_test) for ``target(X)`` from one seeded stream, training points first."""
    rng = np.random.default_rng(seed)
    X_train = sample_train(ranges, n_train, rng)
    X_test = sample_test(ranges, n_test, rng, fraction)
    return X_train, np.asarray(target(X_train), dtype=np.float64), X_test, np.asarray(target(X_test), dtype=np.float64)
