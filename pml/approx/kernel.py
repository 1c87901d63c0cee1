"""Gaussian-process (kernel) interpolation in float64 with one learned length scale per input.

The posterior mean of a Gaussian process with a constant mean and an anisotropic stationary kernel
(C. E. Rasmussen & C. K. I. Williams, *Gaussian Processes for Machine Learning*, MIT Press 2006, ch. 2, 4 and 5):

    f(x) = m + s * sum_i alpha_i k(x, x_i),   (K + g I) alpha = (y - m) / s,

with inputs scaled to [-1, 1] by the data's box, ``m``/``s`` the targets' mean and standard deviation, ``k`` the
squared exponential ("rbf") or Matern 5/2 ("matern52") kernel of r^2 = sum_j ((x_j - x'_j) / l_j)^2, and ``g`` a
nugget relative to the unit kernel diagonal.

* **Length scales** maximise the log marginal likelihood with the signal variance profiled out (its maximiser is
  y^T K^-1 y / n), with the analytic gradient (Rasmussen & Williams Eq. 5.9), by L-BFGS-B on log l_j from a few
  starts, on a subsample of the rows (an n^3 solve per evaluation). Lower bounds relative to the box guard against
  the collapse of a length scale to the data spacing (e.g. near a singular corner), and the starts are compared on
  an inner validation split, not on the likelihood alone.
* **The nugget** starts at the data's float64 floor (about 1e-13 of the kernel diagonal) and grows by 10 until the
  Cholesky factorisation succeeds; the smallest few that succeed are compared on the validation split.
* **The final solve** is an exact Cholesky solve on all rows, up to ``max_rows`` (a seeded subsample beyond: a
  stated approximation; n = 12,000 rows need 1.2 GB and a few BLAS seconds).
* **A time limit** covers the whole fit: one timed solve on up to 1,000 rows gives the cost of a solve on m rows
  (m^3) and of predicting with it (m per row); the final solve, and the prediction of ``predict_rows`` rows with it,
  get at most ``FINAL_SHARE`` of the limit (fewer rows, a seeded subsample, where the time is short), the validation
  solves that compare the candidates at most ``SELECT_SHARE``, and the likelihood searches stop in time for them.

Pure NumPy/SciPy (no scikit-learn): the benchmark ``pml bench fit`` compares it with scikit-learn's
``GaussianProcessRegressor``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import scipy.linalg
import scipy.optimize

__all__ = ["KERNELS", "KernelModel", "fit", "kernel_matrix", "log_marginal_likelihood"]

KERNELS = ("rbf", "matern52")
_SQ5 = math.sqrt(5.0)
FINAL_SHARE = 0.3  # of a time limit, at most, for the final solve and the predictions that follow it
SELECT_SHARE = 0.3  # of a time limit, at most, for the validation solves that compare the candidates
_PROBE_ROWS = 1000


def _check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {list(KERNELS)}, got {kernel!r}")
    return kernel


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of A and B (>= 0, exact zeros on identical rows)."""
    d2 = np.sum(A * A, axis=1)[:, None] + np.sum(B * B, axis=1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d2, 0.0)


def kernel_matrix(kernel: str, A: np.ndarray, B: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """k(a_i, b_j) for rows of A and B (unit variance), length scale ``lengths[j]`` on input j.

    Parameters
    ----------
    kernel : str
        A name of ``KERNELS``.
    A, B : numpy.ndarray
        (n, d) and (m, d) points.
    lengths : numpy.ndarray
        (d,) length scales.

    Returns
    -------
    numpy.ndarray
        (n, m) kernel values.

    Raises
    ------
    ValueError
        For an unknown kernel.
    """
    kernel = _check_kernel(kernel)
    ls = np.asarray(lengths, dtype=np.float64)
    r2 = _sqdist(A / ls, B / ls)
    if kernel == "rbf":
        return np.exp(-0.5 * r2)
    r = np.sqrt(r2)
    return (1.0 + _SQ5 * r + (5.0 / 3.0) * r2) * np.exp(-_SQ5 * r)


def _cholesky(K: np.ndarray, nugget: float, max_nugget: float = 1e-2) -> tuple[np.ndarray, float]:
    """Cholesky factor of K + g I, growing g by 10 from ``nugget`` until it succeeds."""
    g = float(nugget)
    n = K.shape[0]
    while True:
        try:
            return scipy.linalg.cholesky(K + g * np.eye(n), lower=True, check_finite=False), g
        except np.linalg.LinAlgError:
            if g >= max_nugget:
                raise
            g *= 10.0


def log_marginal_likelihood(kernel: str, X: np.ndarray, y: np.ndarray, log_lengths: np.ndarray,
                            nugget: float = 1e-10) -> tuple[float, np.ndarray]:
    """(log marginal likelihood, its gradient in log l_j) with the signal variance profiled out.

    With C = K + g I (unit-variance kernel) and s^2 = y^T C^-1 y / n, the profile likelihood is
    -n/2 log(s^2) - 1/2 log|C| - n/2 (1 + log 2 pi); its derivative in theta is
    1/2 alpha^T dC alpha / s^2 - 1/2 tr(C^-1 dC), alpha = C^-1 y (Rasmussen & Williams Eq. 5.9).
    Returns (-inf, 0) where the factorisation fails even with a grown nugget.

    Parameters
    ----------
    kernel : str
        A name of ``KERNELS``.
    X : numpy.ndarray
        (n, d) scaled inputs.
    y : numpy.ndarray
        (n,) targets.
    log_lengths : numpy.ndarray
        (d,) log length scales.
    nugget : float, optional
        Relative nugget g (default 1e-10).

    Returns
    -------
    value : float
        The profile log marginal likelihood.
    gradient : numpy.ndarray
        Its (d,) gradient in the log length scales.
    """
    n = X.shape[0]
    ls = np.exp(np.asarray(log_lengths, dtype=np.float64))
    Z = X / ls
    r2 = _sqdist(Z, Z)
    if kernel == "rbf":
        K = np.exp(-0.5 * r2)
        base = K  # dK/dlog l_j = K * D_j^2 / l_j^2
    else:
        r = np.sqrt(r2)
        e = np.exp(-_SQ5 * r)
        K = (1.0 + _SQ5 * r + (5.0 / 3.0) * r2) * e
        base = (5.0 / 3.0) * (1.0 + _SQ5 * r) * e
    try:
        L, _ = _cholesky(K, nugget)
    except np.linalg.LinAlgError:
        return -math.inf, np.zeros(ls.size)
    alpha = scipy.linalg.cho_solve((L, True), y, check_finite=False)
    s2 = float(y @ alpha) / n
    if not s2 > 0:
        return -math.inf, np.zeros(ls.size)
    logdet = 2.0 * float(np.sum(np.log(np.diag(L))))
    lml = -0.5 * n * math.log(s2) - 0.5 * logdet - 0.5 * n * (1.0 + math.log(2.0 * math.pi))
    Cinv = scipy.linalg.cho_solve((L, True), np.eye(n), check_finite=False)
    W = np.outer(alpha, alpha) / s2 - Cinv  # grad_j = 1/2 sum(W * dC_j)
    grad = np.empty(ls.size)
    for j in range(ls.size):
        Dj = (Z[:, j][:, None] - Z[:, j][None, :]) ** 2
        grad[j] = 0.5 * float(np.sum(W * base * Dj))
    return lml, grad


@dataclasses.dataclass
class KernelModel:
    """A fitted kernel interpolant: ``predict(X)`` on raw inputs; arrays for saving in ``state()``.

    Used by :func:`pml.fitting.fit` (method ``"kernel"``).

    Parameters
    ----------
    kernel : str
        The kernel.
    lengths : numpy.ndarray
        Length scale per input, in the scaled [-1, 1] coordinates.
    nugget : float
        The relative nugget used.
    centre, half : numpy.ndarray
        The input scaling, Z = (X - centre) / half.
    X : numpy.ndarray
        The scaled training inputs of the solve.
    alpha : numpy.ndarray
        The solved weights.
    y_mean, y_scale : float
        The target scaling.
    info : dict, optional
        How the hyper-parameters were chosen.
    """

    kernel: str
    lengths: np.ndarray  # per input, in the scaled [-1, 1] coordinates
    nugget: float
    centre: np.ndarray
    half: np.ndarray
    X: np.ndarray  # the scaled training inputs the solve used
    alpha: np.ndarray
    y_mean: float
    y_scale: float
    info: dict = dataclasses.field(default_factory=dict)

    def predict(self, X, chunk: int = 2000) -> np.ndarray:
        """Predictions on raw inputs.

        Parameters
        ----------
        X : array_like
            (m, d) inputs.
        chunk : int, optional
            Rows evaluated at once (default 2000).

        Returns
        -------
        numpy.ndarray
            (m,) predictions.
        """
        Z = (np.asarray(X, dtype=np.float64).reshape(-1, self.centre.size) - self.centre) / self.half
        out = np.empty(Z.shape[0])
        for s in range(0, Z.shape[0], chunk):
            out[s:s + chunk] = kernel_matrix(self.kernel, Z[s:s + chunk], self.X, self.lengths) @ self.alpha
        return self.y_mean + self.y_scale * out

    def state(self) -> dict[str, np.ndarray]:
        return {"lengths": self.lengths, "centre": self.centre, "half": self.half, "X": self.X, "alpha": self.alpha,
                "scalars": np.array([self.nugget, self.y_mean, self.y_scale])}

    @classmethod
    def from_state(cls, kernel: str, state: dict[str, np.ndarray]) -> "KernelModel":
        nugget, y_mean, y_scale = (float(v) for v in state["scalars"])
        return cls(kernel, state["lengths"], nugget, state["centre"], state["half"], state["X"], state["alpha"],
                   y_mean, y_scale)


def _solve(kernel: str, Z: np.ndarray, t: np.ndarray, lengths: np.ndarray, nugget: float
           ) -> tuple[np.ndarray, float]:
    K = kernel_matrix(kernel, Z, Z, lengths)
    L, g = _cholesky(K, nugget)
    del K
    return scipy.linalg.cho_solve((L, True), t, check_finite=False), g


class _OutOfTime(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class _SolveCost:
    """Seconds of a solve on m rows (m^2 kernel entries, an m^3 factorisation) and of predictions with it, scaled
    from one timed solve on ``rows`` rows."""

    rows: int
    factor: float  # seconds of the timed solve's factorisation and back-substitution
    matrix: float  # seconds of its kernel matrix

    @classmethod
    def measure(cls, kernel: str, Z: np.ndarray, t: np.ndarray, nugget: float) -> "_SolveCost":
        lengths = np.full(Z.shape[1], 0.5)
        start = time.perf_counter()
        kernel_matrix(kernel, Z, Z, lengths)
        matrix = time.perf_counter() - start
        start = time.perf_counter()
        try:
            _solve(kernel, Z, t, lengths, nugget)
        except np.linalg.LinAlgError:  # the time it took still measures the machine
            pass
        return cls(Z.shape[0], max(time.perf_counter() - start - matrix, 0.0), matrix)

    def solve(self, m: int) -> float:
        return self.factor * (m / self.rows) ** 3 + self.matrix * (m / self.rows) ** 2

    def predict(self, rows: int, m: int) -> float:
        return self.matrix * rows * m / self.rows**2

    def validate(self, m: int, rows: int) -> float:
        return self.solve(m) + self.predict(rows, m)


def _optimise(kernel: str, Z: np.ndarray, t: np.ndarray, start: np.ndarray, bounds, nugget: float,
              max_iter: int, deadline: float | None = None) -> np.ndarray:
    """Log length scales maximising the likelihood from ``start`` (the best point so far at ``deadline``)."""
    best = {"f": math.inf, "x": np.asarray(start, dtype=np.float64)}

    def objective(theta):
        if deadline is not None and time.perf_counter() > deadline and math.isfinite(best["f"]):
            raise _OutOfTime
        lml, g = log_marginal_likelihood(kernel, Z, t, theta, nugget)
        if not math.isfinite(lml):
            return 1e300, np.zeros_like(theta)
        if -lml < best["f"]:
            best.update(f=-lml, x=np.array(theta, dtype=np.float64))
        return -lml, -g

    try:
        scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"maxiter": int(max_iter)})
    except _OutOfTime:
        pass
    return best["x"]


def _scaled_rows(X: np.ndarray, y: np.ndarray, box, X_val, y_val):
    """The training rows, then any given validation rows, with inputs scaled to [-1, 1] by ``box`` (default: the
    training rows' ranges) -> (scaled inputs, targets, centre, half)."""
    d = X.shape[1]
    if box is None:
        lo, hi = X.min(axis=0), X.max(axis=0)
    else:
        lo, hi = np.asarray(box, dtype=np.float64).T
    centre, half = (lo + hi) / 2, np.where(hi > lo, (hi - lo) / 2, 1.0)
    if X_val is not None:  # given validation rows go after the training rows
        X = np.concatenate([X, np.asarray(X_val, dtype=np.float64).reshape(-1, d)])
        y = np.concatenate([y, np.asarray(y_val, dtype=np.float64).reshape(-1)])
    return (X - centre) / half, y, centre, half


def _time_plan(cost: _SolveCost, tr: np.ndarray, n_va: int, n_all: int, final_rows: int, *, time_limit: float,
               n_checks: int, n_nuggets: int, predict_rows: int, t0: float):
    """The rows of the validation solves and of the final solve within their shares of ``time_limit``, and when the
    nugget checks and the searches must end -> (validation solves' training rows, final rows, end, search end)."""
    sel = tr.size
    while sel > 10 and n_checks * cost.validate(sel, n_va) > SELECT_SHARE * time_limit:
        sel = int(0.9 * sel)
    tr = tr[:sel]
    # the final solve: at least the rows that the validation solves had (their error is the model's score)
    while final_rows > max(sel, 10) and cost.solve(final_rows) + cost.predict(int(predict_rows), final_rows) > (
            FINAL_SHARE * time_limit):
        final_rows = max(int(0.9 * final_rows), min(sel, n_all))
    end = t0 + time_limit - cost.solve(final_rows) - cost.predict(int(predict_rows), final_rows)
    return tr, final_rows, end, end - (n_nuggets - 1) * cost.validate(tr.size, n_va)


@dataclasses.dataclass
class _Validation:
    """Scaled rows and their split: a candidate is solved on the ``tr`` rows and scored on the ``va`` rows."""

    Z: np.ndarray
    t: np.ndarray  # the scaled targets
    y: np.ndarray
    y_mean: float
    y_scale: float
    tr: np.ndarray
    va: np.ndarray
    score: Callable[[np.ndarray], float] | None
    y_rms: float  # of the validation rows' targets (the relative RMSE's scale)

    def error(self, kernel: str, lengths: np.ndarray, nugget: float) -> tuple[float, float]:
        """(validation error, nugget used) of a candidate; inf where it cannot be factorised."""
        Z, tr, va = self.Z, self.tr, self.va
        try:
            alpha, g = _solve(kernel, Z[tr], self.t[tr], lengths, nugget)
        except np.linalg.LinAlgError:
            return math.inf, nugget
        pred = self.y_mean + self.y_scale * (kernel_matrix(kernel, Z[va], Z[tr], lengths) @ alpha)
        err = (float(self.score(pred)) if self.score is not None else
               float(np.sqrt(np.mean((pred - self.y[va]) ** 2))) / self.y_rms)
        return (err if math.isfinite(err) else math.inf), g


def _search_lengths(val: _Validation, kernels, n_restarts: int, hyper: np.ndarray, bounds, nuggets, max_iter: int,
                    rng: np.random.Generator, cost: _SolveCost | None, search_end: float | None, callback):
    """Length scales by likelihood from ``n_restarts`` starts per kernel, each scored on the validation rows with
    the smallest nugget -> (best candidate, every candidate tried); the searches stop in time for ``search_end``."""
    d = val.Z.shape[1]
    tried: list[dict] = []
    best = None
    for kernel in kernels:
        for k in range(int(n_restarts)):
            deadline = None if cost is None else search_end - cost.validate(val.tr.size, val.va.size)
            if deadline is not None and tried and time.perf_counter() > deadline:
                break
            start = np.full(d, math.log(0.5)) if k == 0 else rng.uniform(math.log(0.2), math.log(3.0), d)
            theta = _optimise(kernel, val.Z[hyper], val.t[hyper], start, bounds, nuggets[-1], max_iter, deadline)
            lengths = np.exp(theta)
            err, g = val.error(kernel, lengths, nuggets[0])
            tried.append({"kernel": kernel, "lengths": lengths, "nugget": g, "val": err})
            if callback is not None:
                callback(f"{kernel} start {k + 1}", err)
            if best is None or err < best["val"]:
                best = tried[-1]
    return best, tried


def _best_nugget(val: _Validation, best: dict, tried: list, nuggets, cost: _SolveCost | None, end: float | None):
    """The best candidate's larger nuggets scored too (appended to ``tried``) -> the best candidate."""
    for g in nuggets[1:]:  # the smallest nugget is not always the most precise (rounding in the solve)
        if g <= best["nugget"]:
            continue
        if cost is not None and time.perf_counter() + cost.validate(val.tr.size, val.va.size) > end:
            break
        err, g_used = val.error(best["kernel"], best["lengths"], g)
        tried.append({"kernel": best["kernel"], "lengths": best["lengths"], "nugget": g_used, "val": err})
        if err < best["val"]:
            best = tried[-1]
    return best


def fit(X, y, *, box=None, kernels=KERNELS, n_restarts: int = 3, hyper_rows: int = 1000, select_rows: int = 3000,
        max_rows: int = 8000,
        min_length: float = 0.05, max_length: float = 100.0, nuggets=(1e-13, 1e-12, 1e-11, 1e-10),
        validation: float = 0.2, max_iter: int = 100, seed: int = 0, time_limit: float | None = None,
        callback: Callable[[str, float], None] | None = None, X_val=None, y_val=None,
        score: Callable[[np.ndarray], float] | None = None, predict_rows: int = 0) -> KernelModel:
    """Fit a kernel interpolant (module docstring) to (X, y); hyper-parameters chosen on a validation split.

    ``box``: (d, 2) input ranges for the [-1, 1] scaling (default: the data's). ``kernels``: the kernels tried.
    ``n_restarts``: likelihood maximisations per kernel (the first from length 0.5 everywhere, others random in
    log space). ``hyper_rows``: rows of the likelihood subsample; ``select_rows``: training rows of the solves that
    compare candidates on the validation rows. ``min_length``/``max_length``: bounds on each length scale in scaled
    coordinates (the box is 2 wide). ``nuggets``: relative nuggets tried (each grown until
    the factorisation succeeds). ``max_rows``: the final exact solve uses at most this many rows. ``time_limit``:
    seconds for the whole fit and the prediction of ``predict_rows`` rows after it (module docstring): fewer rows for
    the final and the validation solves where a timed solve says they would not fit, no start after the time for
    the searches, and a running likelihood search stops at its best point so far. ``callback(label, val_rel_rmse)``
    is called after each candidate (for progress bars). ``X_val``, ``y_val``: validation rows to choose on instead
    of a ``validation`` fraction of (X, y) (then every row of X is a training row). ``score(pred)``: the error of
    predictions at the given validation rows that chooses (default: their relative RMSE; a transformed fit scores
    on the target as given, :mod:`pml.fitting.transforms`).

    Parameters
    ----------
    X, y : array_like
        (n, d) inputs and (n,) targets, at least 4 rows.
    box : array_like, optional
        (d, 2) input ranges.
    kernels : sequence of str, optional
        Kernels tried (default ``KERNELS``).
    n_restarts, hyper_rows, select_rows, max_rows : int, optional
        As above (defaults 3, 1000, 3000, 8000).
    min_length, max_length : float, optional
        Length-scale bounds (defaults 0.05, 100).
    nuggets : sequence of float, optional
        Relative nuggets tried.
    validation : float, optional
        Validation fraction (default 0.2).
    max_iter : int, optional
        Iterations per likelihood maximisation (default 100).
    seed : int, optional
        The seed (default 0).
    time_limit : float, optional
        Seconds for the whole fit and the prediction of ``predict_rows`` rows (None: no limit).
    callback : callable, optional
        ``callback(label, val_rel_rmse)`` after each candidate.
    X_val, y_val : array_like, optional
        Validation rows.
    score : callable, optional
        Maps predictions at ``X_val`` to the error that chooses (needs ``X_val``).
    predict_rows : int, optional
        Rows the caller will predict with the model, whose time counts in ``time_limit`` (default 0).

    Returns
    -------
    KernelModel
        The fitted interpolant.

    Raises
    ------
    ValueError
        With fewer than 4 rows.
    numpy.linalg.LinAlgError
        If no candidate could be factorised.
    """
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(-1, 1) if X.ndim == 1 else X
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n, d = X.shape
    if n < 4:
        raise ValueError(f"kernel fit needs at least 4 rows, got {n}")
    if score is not None and X_val is None:
        raise ValueError("score needs the validation rows X_val, y_val")
    for k in kernels:
        _check_kernel(k)
    Z, y, centre, half = _scaled_rows(X, y, box, X_val, y_val)
    y_mean, y_scale = float(np.mean(y[:n])), float(np.std(y[:n])) or 1.0
    t = (y - y_mean) / y_scale
    rng = np.random.default_rng([seed, 23])
    perm = rng.permutation(n)
    if X_val is None:
        n_va = max(1, int(round(validation * n)))
        va, tr = perm[:n_va], perm[n_va:]
    else:
        va, tr = np.arange(n, Z.shape[0]), perm
    tr = tr[:select_rows]
    n_all = Z.shape[0]  # the final solve uses the validation rows too (given or split off)
    final_rows = min(int(max_rows), n_all)
    search_end = end = cost = None
    if time_limit is not None:  # the validation solves and the final solve get their shares: fewer rows if need be
        cost = _SolveCost.measure(kernels[0], Z[tr[:_PROBE_ROWS]], t[tr[:_PROBE_ROWS]], nuggets[-1])
        # validation solves to plan for: a few starts (a short limit cuts the others) and the nuggets
        n_checks = min(len(kernels) * int(n_restarts), 3) + len(nuggets) - 1
        tr, final_rows, end, search_end = _time_plan(cost, tr, va.size, n_all, final_rows, time_limit=time_limit,
                                                     n_checks=n_checks, n_nuggets=len(nuggets),
                                                     predict_rows=predict_rows, t0=t0)
    val = _Validation(Z, t, y, y_mean, y_scale, tr, va, score, float(np.sqrt(np.mean(y[va] ** 2))) or 1.0)
    bounds = [(math.log(min_length), math.log(max_length))] * d
    best, tried = _search_lengths(val, kernels, n_restarts, tr[:hyper_rows], bounds, nuggets, max_iter, rng, cost,
                                  search_end, callback)
    if best is None or not math.isfinite(best["val"]):
        raise np.linalg.LinAlgError("no kernel candidate could be factorised")
    best = _best_nugget(val, best, tried, nuggets, cost, end)
    rows = (np.random.default_rng([seed, 31]).permutation(n_all)[:final_rows] if n_all > final_rows else
            np.arange(n_all))
    alpha, g = _solve(best["kernel"], Z[rows], t[rows], best["lengths"], best["nugget"])
    info = {"val_rel_rmse": best["val"], "n_candidates": len(tried), "rows": int(rows.size),
            "subsampled": bool(n_all > final_rows), "seconds": time.perf_counter() - t0}
    return KernelModel(best["kernel"], best["lengths"], g, centre, half, Z[rows], alpha, y_mean, y_scale, info)
