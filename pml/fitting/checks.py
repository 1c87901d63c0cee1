"""Input checks of :func:`pml.fitting.fit` and :meth:`pml.fitting.FittedModel.predict`, and the seeded row split.

Every check raises :class:`FitError` with a message that says what is wrong and where (column, row).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class FitError(ValueError):
    """Bad input to :func:`pml.fitting.fit` or :meth:`pml.fitting.FittedModel.predict`: the message says what is wrong
    and where."""


def split_rows(n: int, fraction: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row indices: a seeded permutation, the held-out part ``round(fraction * n)`` rows."""
    perm = np.random.default_rng(seed).permutation(n)
    n_out = int(round(fraction * n))
    if fraction > 0:
        n_out = max(1, n_out)
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


def check_inputs(X, names: Sequence[str] | None, what: str) -> np.ndarray:
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise FitError(f"{what} is not an array of numbers: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise FitError(f"{what} must be numeric, got values of type {arr.dtype}") from None
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise FitError(f"{what} must have shape (n, d) with n >= 1 rows, got shape {arr.shape}")
    if names is not None and arr.shape[1] != len(names):
        raise FitError(f"{what} has {arr.shape[1]} columns; the model takes {len(names)} inputs ({', '.join(names)})")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        col = names[j] if names is not None else f"column {j}"
        raise FitError(f"{what} has {int(bad.sum())} NaN or infinite values (first: {arr[i, j]} in {col}, row {i})")
    return arr


def check_target(y, n: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise FitError(f"the target {name!r} must be numeric") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or arr.size != n:
        raise FitError(f"the target must have one value per row ({n}), got shape {np.shape(y)}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise FitError(f"the target {name!r} has {int(bad.sum())} NaN or infinite values (first: {arr[i]} at row {i})")
    if np.all(arr == arr[0]):
        raise FitError(f"the target {name!r} is constant (every value is {arr[0]!r}): there is nothing to fit, and "
                       "relative errors are undefined" if arr[0] == 0 else
                       f"the target {name!r} is constant (every value is {arr[0]!r}): there is nothing to fit")
    return arr
