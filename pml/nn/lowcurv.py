"""Low-curvature subspace steps (paper §4.2): project the gradient onto the Hessian's eigenvectors with
eigenvalue below tau, then line-search along it.

Paper: §4.2 "Low-Curvature Subspace Optimization"; Figs. 8-9 use it after BFGS stops on precision loss.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn

from pml.nn.flat import FlatModel, OptimResult, _History, _test_data
from pml.nn.hessian import hessian_matrix
from pml.threads import limit_threads

__all__ = ["log_line_search", "low_curvature_direction", "low_curvature_steps"]


def log_line_search(
    f: Callable[[float], float],
    f0: float,
    *,
    alpha_min: float = 1e-12,
    alpha_max: float = 1e12,
    n_grid: int = 15,
    zoom_levels: int = 4,
    allow_increase: bool = False,
) -> tuple[float, float, int]:
    """Logarithmic line search of the authors' Fig. 8-9 scripts: returns (alpha, f(alpha), evaluations of ``f``).

    Paper: §4.2 (low-curvature subspace training, "perform a line search"). Level 0 evaluates ``f`` on
    ``n_grid`` log-spaced alphas in [alpha_min, alpha_max]; each further level re-grids between the
    argmin's neighbours (one grid ratio beyond the edge when the argmin sits on an edge), ``zoom_levels``
    levels in all. The best alpha over all levels is kept.

    Unlike the authors' search (``logarithmic_line_search`` in ejmichaud/precision-ml,
    ``scripts/combined-techniques-eqn.py``, which never considers alpha = 0), alpha = 0 is a candidate with value
    ``f0``: unless ``allow_increase`` is true the result never has f(alpha) > f0, and (0, f0) is returned when no grid
    point beats ``f0``. Non-finite values count as +inf (so (0, f0) also when no grid value is finite).

    Parameters
    ----------
    f : callable
        The loss as a function of the step length alpha.
    f0 : float
        The loss at alpha = 0.
    alpha_min, alpha_max : float, optional
        The search range, 0 < alpha_min < alpha_max (default 1e-12 to 1e12).
    n_grid : int, optional
        Log-spaced points per level, at least 3 (default 15).
    zoom_levels : int, optional
        Levels, at least 1 (default 4).
    allow_increase : bool, optional
        Return the best grid point even when it is worse than ``f0`` (the authors' behaviour).

    Returns
    -------
    alpha : float
        The step length (0 when nothing beats ``f0``).
    value : float
        f(alpha).
    n_evaluations : int
        Calls of ``f``.

    Raises
    ------
    ValueError
        For a bad range, grid or number of levels.
    """
    if not (0 < alpha_min < alpha_max) or not math.isfinite(alpha_max):
        raise ValueError(f"need 0 < alpha_min < alpha_max < inf, got {alpha_min!r}, {alpha_max!r}")
    if n_grid < 3 or zoom_levels < 1:
        raise ValueError(f"need n_grid >= 3 and zoom_levels >= 1, got {n_grid}, {zoom_levels}")

    def safe(a: float) -> float:
        v = float(f(a))
        return v if math.isfinite(v) else math.inf

    lo, hi = math.log10(alpha_min), math.log10(alpha_max)
    best_a, best_f, n_eval = math.nan, math.inf, 0
    for _ in range(zoom_levels):
        grid = np.logspace(lo, hi, n_grid)
        vals = np.array([safe(a) for a in grid])
        n_eval += n_grid
        i = int(np.argmin(vals))
        if vals[i] < best_f:
            best_a, best_f = float(grid[i]), float(vals[i])
        step = (hi - lo) / (n_grid - 1)
        lg = np.log10(grid)
        lo = lg[i - 1] if i > 0 else lg[0] - step
        hi = lg[i + 1] if i < n_grid - 1 else lg[-1] + step
    if math.isfinite(best_f) and (allow_increase or best_f < f0):
        return best_a, best_f, n_eval
    return 0.0, float(f0), n_eval


def low_curvature_direction(
    grad: torch.Tensor, eigenvalues: torch.Tensor, eigenvectors: torch.Tensor, tau: float, rule: str = "abs"
) -> tuple[torch.Tensor, int]:
    """g_hat = sum over selected i of e_i (e_i . g), and the number of selected directions.

    Paper: §4.2, "Low-Curvature Subspace Optimization". ``rule="abs"`` selects |lambda_i| < tau, as the
    authors' code does (``np.abs(val) < curvature_threshold`` in ``scripts/combined-techniques-eqn.py``);
    ``rule="signed"`` selects lambda_i < tau as the paper writes, which also
    keeps every negative-curvature direction.

    Parameters
    ----------
    grad : torch.Tensor
        The gradient g (p,).
    eigenvalues : torch.Tensor
        (p,) Hessian eigenvalues.
    eigenvectors : torch.Tensor
        (p, p) eigenvectors as columns.
    tau : float
        The curvature threshold.
    rule : str, optional
        ``"abs"`` (default) or ``"signed"``.

    Returns
    -------
    g_hat : torch.Tensor
        The projected gradient.
    n_selected : int
        The number of selected directions.

    Raises
    ------
    ValueError
        For an unknown rule.
    """
    if rule == "abs":
        mask = eigenvalues.abs() < tau
    elif rule == "signed":
        mask = eigenvalues < tau
    else:
        raise ValueError(
            f"rule must be 'abs' (|lambda| < tau, the code) or 'signed' (lambda < tau, the paper), got {rule!r}"
        )
    E = eigenvectors[:, mask]
    return E @ (E.T @ grad), int(mask.sum())


def _step(flat: FlatModel, theta: torch.Tensor, f0: float, tau: float, rule: str, search: dict,
          hessian_batch_size: int | None, hessian_chunk_size: int | None):
    """One low-curvature step from ``theta`` (loss ``f0``), line search settings ``search`` -> (parameters, loss,
    alpha, selected directions, g_hat, line-search evaluations); alpha 0 and the same parameters where none helps."""
    _, grad = flat.loss_and_grad(theta)
    H = hessian_matrix(flat, theta, batch_size=hessian_batch_size, chunk_size=hessian_chunk_size)
    evals, evecs = torch.linalg.eigh(H)
    g_hat, n_dir = low_curvature_direction(grad, evals, evecs, tau, rule)

    def along(alpha: float) -> float:
        return flat.value(theta - alpha * g_hat)

    if n_dir == 0 or not bool(torch.any(g_hat != 0)):
        return theta, f0, 0.0, n_dir, g_hat, 0
    alpha, f_new, n_ls = log_line_search(along, f0, **search)
    if alpha != 0.0:
        return theta - alpha * g_hat, f_new, alpha, n_dir, g_hat, n_ls  # the expression ``along`` evaluated
    return theta, f0, alpha, n_dir, g_hat, n_ls


def low_curvature_steps(
    model: nn.Module,
    X,
    y,
    tau: float,
    n_steps: int,
    X_test=None,
    y_test=None,
    *,
    rule: Literal["abs", "signed"] = "abs",
    alpha_min: float = 1e-12,
    alpha_max: float = 1e12,
    n_grid: int = 15,
    zoom_levels: int = 4,
    allow_increase: bool = False,
    stop_when_stuck: bool = True,
    hessian_batch_size: int | None = None,
    hessian_chunk_size: int | None = None,
    callback: Callable[[dict], bool | None] | None = None,
    num_threads: int | None = None,
) -> OptimResult:
    """Low-curvature subspace training (paper §4.2); the final parameters are written into ``model``.

    Each step computes the full-batch gradient g and Hessian H (:func:`pml.nn.hessian.hessian_matrix`),
    eigendecomposes H with ``torch.linalg.eigh``, projects g onto the eigenvectors selected by ``rule`` and
    ``tau`` (:func:`low_curvature_direction`), and line-searches along -g_hat with
    :func:`log_line_search` (defaults: 15 log-spaced alphas in [1e-12, 1e12], 4 zoom levels, as the authors' scripts).

    The step never raises the training loss unless ``allow_increase=True`` reproduces the authors'
    always-take-the-step behaviour (the spike in the paper's Fig. 9 bottom). When a step finds no decrease
    the parameters do not change, so every later step would repeat it: with ``stop_when_stuck`` the loop
    ends there (``stop_reason="stuck"``). The history has one row per step (step 0 = the start) with
    ``alpha``, ``n_directions`` and ``gnorm_hat`` = |g_hat| besides the RMSEs.

    ``num_threads`` runs the loop under :func:`pml.threads.limit_threads`. The authors used tau = 1e-15 for Figs. 8-9
    and 1e-16 for the "over 2x" claim of §4.2 (``notebooks/low-curvature-subspace-training-mse.ipynb``).

    Used in :doc:`/book/04_optimization`.

    Parameters
    ----------
    model : torch.nn.Module
        A float64 network, trained in place.
    X, y : array_like
        The training set.
    tau : float
        The curvature threshold, positive.
    n_steps : int
        Steps to take.
    X_test, y_test : array_like, optional
        A test set.
    rule : str, optional
        ``"abs"`` (default) or ``"signed"`` (see :func:`low_curvature_direction`).
    alpha_min, alpha_max, n_grid, zoom_levels, allow_increase
        The line search's settings (see :func:`log_line_search`).
    stop_when_stuck : bool, optional
        End when a step finds no decrease (default True).
    hessian_batch_size, hessian_chunk_size : int, optional
        Memory settings of :func:`pml.nn.hessian.hessian_matrix`.
    callback : callable, optional
        Called with each history row; returning True stops.
    num_threads : int, optional
        Torch/BLAS threads for the loop.

    Returns
    -------
    pml.nn.flat.OptimResult
        The final parameters, RMSEs, stop reason and one history row per step.

    Raises
    ------
    ValueError
        For a non-positive ``tau`` or a negative ``n_steps``.
    """

    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau!r}")
    if n_steps < 0 or int(n_steps) != n_steps:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    low_curvature_direction(torch.zeros(1), torch.zeros(1), torch.eye(1), tau, rule)  # validates ``rule``
    flat = FlatModel(model, X, y)
    Xt, yt = _test_data(flat, X_test, y_test)
    hist = _History(("alpha", "n_directions", "gnorm_hat", "n_fev"))
    t0 = time.perf_counter()
    theta = flat.theta()
    f0 = flat.value(theta)
    n_fev = 1

    def test_rmse(th):
        return flat.rmse(th, Xt, yt) if Xt is not None else math.nan

    hist.add(step=0, train_rmse=math.sqrt(f0), test_rmse=test_rmse(theta), time_s=0.0, n_fev=n_fev)
    stop, message, done = "n_steps", f"completed {n_steps} steps", 0
    search = dict(alpha_min=alpha_min, alpha_max=alpha_max, n_grid=n_grid, zoom_levels=zoom_levels,
                  allow_increase=allow_increase)
    with limit_threads(num_threads):
        for step in range(1, int(n_steps) + 1):
            theta, f0, alpha, n_dir, g_hat, n_ls = _step(flat, theta, f0, tau, rule, search, hessian_batch_size,
                                                         hessian_chunk_size)
            n_fev += n_ls + 1
            done = step
            row = dict(
                step=step, train_rmse=math.sqrt(f0), test_rmse=test_rmse(theta), time_s=time.perf_counter() - t0,
                alpha=alpha, n_directions=n_dir, gnorm_hat=float(torch.linalg.vector_norm(g_hat)), n_fev=n_fev,
            )
            hist.add(**row)
            if callback is not None and callback(row):
                stop, message = "callback", "callback asked to stop"
                break
            if alpha == 0.0 and stop_when_stuck:
                stop = "stuck"
                message = (
                    f"no selected direction (|lambda| < {tau:g})" if n_dir == 0 else "line search found no decrease"
                )
                break
    flat.write_back(theta)
    return OptimResult(
        method="low_curvature",
        theta=theta.cpu().numpy().copy(),
        train_rmse=math.sqrt(f0),
        test_rmse=test_rmse(theta),
        n_iter=done,
        n_fev=n_fev,
        stop_reason=stop,
        message=message,
        wall_s=time.perf_counter() - t0,
        history=hist.arrays(),
        info={"tau": tau, "rule": rule, **search},
    )
