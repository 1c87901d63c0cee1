"""Input checks of :func:`pml.fitting.fit` and :meth:`pml.fitting.FittedModel.predict`, and the seeded row split.

Every check raises :class:`FitError` with a message that says what is wrong and where (column, row)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Sequence

import numpy as np

MAX_SEED = 2**32 - 1  # seeds are 0 .. 2**32 - 1, a range every seeded generator used by the methods accepts
# Column values whose mean square overflows (or underflows to zero) break every method's float64 arithmetic (norms,
# least squares, relative errors): |values| up to about 1e150 are safe, and so are values down to about 1e-150.


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


def check_seed(seed) -> int:
    """``seed`` as an int in 0 .. :data:`MAX_SEED`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise FitError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def check_scale(values: np.ndarray, what: str) -> None:
    """Refuse finite values whose scale float64 arithmetic cannot handle: a mean square that overflows to inf (values
    near 1e308: every norm and relative error is inf) or underflows to 0 (values near 1e-308)."""
    with np.errstate(all="ignore"):
        mean_square = float(np.mean(np.square(values)))
    big = float(np.max(np.abs(values)))
    if not np.isfinite(mean_square):
        raise FitError(f"{what} has values up to {big:.3g} in magnitude: their squares overflow float64 (max "
                       f"{np.finfo(np.float64).max:.3g}), so no error can be computed; rescale it (divide by a "
                       f"power of ten, e.g. 1e{int(np.log10(big))}) and fit again")
    if mean_square < np.finfo(np.float64).tiny and big > 0:
        raise FitError(f"{what} has values of at most {big:.3g} in magnitude: their squares underflow float64 (min "
                       f"{np.finfo(np.float64).tiny:.3g}), so no error can be computed; rescale it (multiply by a "
                       f"power of ten, e.g. 1e{-int(np.log10(big))}) and fit again")


def check_rows(n: int, need: int, d: int) -> None:
    """At least ``need`` rows (checked before any per-column test, so that 1 row is not 'a constant column')."""
    if n < need:
        raise FitError(f"too few rows: {n} row{'s' if n != 1 else ''} with d = {d} input{'s' if d != 1 else ''}; a "
                       f"fit needs at least {need} rows")


def check_predictions(pred: np.ndarray, rows: str, nan_allowed: bool = False) -> None:
    """Refuse a model whose predictions at the data's own rows are not finite (an overflow in the fit); ``nan_allowed``:
    the method returns NaN where it has no prediction (simplex, outside the convex hull)."""
    bad = np.isinf(pred) if nan_allowed else ~np.isfinite(pred)
    if bad.any():
        raise FitError(f"the fitted model gives {int(bad.sum())} non-finite predictions (nan or inf) on {rows}: the "
                       f"fit overflowed float64, no model was saved; rescale the inputs or the target (to "
                       f"values of order 1) or try another method")


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def not_a_regular_file(path: str | Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a folder", "a FIFO", "a symbolic link to ..."), else
    None; links are not followed (an atomic rename would replace them, not write through them)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # nothing there (or an unreadable folder on the way: the write reports that)
        return None
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    if stat.S_ISLNK(mode):
        kind += f" (to {os.readlink(path)})"
    return kind


def distinct_rows(X: np.ndarray, y: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) without repeated rows (same inputs and same target: the first is kept); :class:`FitError` naming how
    many rows and the first pair when the same inputs have different targets, which no interpolant can honour."""
    _, first, inverse = np.unique(X, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if first.size == X.shape[0]:
        return X, y
    clash = y != y[first[inverse]]  # a row whose target differs from the first row with the same inputs
    if clash.any():
        i = int(np.argmax(clash))
        j = int(first[inverse[i]])
        groups = np.unique(inverse[clash])
        n_rows = int(np.isin(inverse, groups).sum())
        point = ", ".join(repr(float(v)) for v in X[i])
        raise FitError(f"{method}: {n_rows} rows at {groups.size} repeated input points have conflicting targets "
                       f"(first: inputs ({point}) with targets {float(y[j])!r} and {float(y[i])!r}); an interpolant passes through every row, so it needs one target per input "
                       "point: average the repeats or use a least-squares method ('poly', 'readout')")
    keep = np.sort(first)
    return X[keep], y[keep]


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
        raise FitError(f"{what} has {int(bad.sum())} NaN or infinite values (first: {float(arr[i, j])} in {col}, "
                       f"row {i})")
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
        raise FitError(f"the target {name!r} has {int(bad.sum())} NaN or infinite values (first: {float(arr[i])} at "
                       f"row {i})")
    if np.all(arr == arr[0]):
        raise FitError(f"the target {name!r} is constant (every value is {float(arr[0])!r}): there is nothing to fit, "
                       "and relative errors are undefined" if arr[0] == 0 else
                       f"the target {name!r} is constant (every value is {float(arr[0])!r}): there is nothing to fit")
    check_scale(arr, f"the target {name!r}")
    return arr
