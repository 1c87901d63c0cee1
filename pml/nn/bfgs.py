"""SciPy's BFGS on a network's flat parameter vector (paper §4.2, Figs. 8-9).

Paper: §4.2 "Optimization Tricks For Reducing Optimization Error": second-order methods with a line search improve on
Adam by orders of magnitude until precision loss stops them."""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Literal

import numpy as np
import scipy.optimize
import torch
from torch import nn

from pml.nn.flat import FlatModel, OptimResult, _History, _test_data
from pml.threads import limit_threads

__all__ = ["bfgs"]


_BFGS_STOP = {0: "gtol", 1: "maxiter", 2: "precision_loss", 3: "nan", 99: "callback"}


class _Stop(Exception):
    pass


def bfgs(
    model: nn.Module,
    X,
    y,
    X_test=None,
    y_test=None,
    *,
    gtol: float = 1e-60,
    maxiter: int = 25_000,
    log_every: int = 1,
    callback: Callable[[dict], bool | None] | None = None,
    target_test_rmse: float | None = None,
    time_limit: float | None = None,
    num_threads: int | None = None,
    engine: Literal["scipy", "rank2"] = "scipy",
) -> OptimResult:
    """Train ``model`` with SciPy's BFGS on the full-batch MSE; the final parameters are written into ``model``.

    Paper §4.2 and Fig. 8's "width-40 BFGS" (ejmichaud/precision-ml, ``scripts/non-seml/compare-bfgs-*.py``), with the
    authors' options: with gtol 1e-60 BFGS normally stops on SciPy's "precision loss"
    (``stop_reason="precision_loss"``). ``engine="rank2"`` runs SciPy's algorithm with an O(N^2) instead of O(N^3)
    inverse-Hessian update (the same iterates up to rounding), which matters from width 20.

    Parameters
    ----------
    model : torch.nn.Module
        A float64 network, trained in place.
    X, y : array_like
        Training inputs (n, d) and targets (n,).
    X_test, y_test : array_like, optional
        A test set (both or neither), evaluated at every logged row.
    gtol, maxiter : float, int, optional
        Gradient-norm tolerance and iteration limit (defaults 1e-60 and 25,000, the authors').
    log_every : int, optional
        Iterations between history rows (default 1).
    callback : callable, optional
        Called with each logged row (a dict); returning True stops.
    target_test_rmse, time_limit : float, optional
        Stop once the test RMSE (train RMSE without a test set) reaches the target, or after this many seconds.
    num_threads : int, optional
        Torch/BLAS threads for the run (:func:`pml.threads.limit_threads`).
    engine : str, optional
        ``"scipy"`` (default) or ``"rank2"``.

    Returns
    -------
    pml.nn.flat.OptimResult
        The final parameters, RMSEs, stop reason, SciPy's message and the learning curve.
    """
    if engine not in ("scipy", "rank2"):
        raise ValueError(f"engine must be 'scipy' or 'rank2', got {engine!r}")
    if maxiter < 0 or int(maxiter) != maxiter:
        raise ValueError(f"maxiter must be a non-negative integer, got {maxiter!r}")
    if log_every < 1 or int(log_every) != log_every:
        raise ValueError(f"log_every must be a positive integer, got {log_every!r}")
    flat = FlatModel(model, X, y)
    Xt, yt = _test_data(flat, X_test, y_test)
    hist = _History(("n_fev",))
    counter = {"nfev": 0}
    reason: dict[str, str] = {}

    def fun(x):
        counter["nfev"] += 1
        return flat.scipy_fun(x)

    t0 = time.perf_counter()

    def row_at(step: int, x: np.ndarray, train_mse: float | None = None) -> dict:
        theta = torch.from_numpy(np.asarray(x, dtype=np.float64)).to(flat.device)
        train = math.sqrt(train_mse) if train_mse is not None else flat.rmse(theta)
        test = flat.rmse(theta, Xt, yt) if Xt is not None else math.nan
        return dict(step=step, train_rmse=train, test_rmse=test, time_s=time.perf_counter() - t0, n_fev=counter["nfev"])

    theta0 = flat.theta().cpu().numpy()
    hist.add(**row_at(0, theta0))
    state = {"it": 0}

    def stop(key: str, msg: str):
        reason["key"], reason["msg"] = key, msg
        raise StopIteration  # SciPy (and _bfgs_rank2) end the run cleanly on StopIteration from a callback

    def on_iteration(intermediate_result: scipy.optimize.OptimizeResult):
        state["it"] += 1
        it = state["it"]
        on_grid = it % log_every == 0
        if on_grid or target_test_rmse is not None:
            row = row_at(it, intermediate_result.x, float(intermediate_result.fun))
            if on_grid:
                hist.add(**row)
                if callback is not None and callback(row):
                    stop("callback", "pml: callback asked to stop")
            metric = row["test_rmse"] if Xt is not None else row["train_rmse"]
            if target_test_rmse is not None and metric <= target_test_rmse:
                stop("target", f"pml: reached target RMSE {target_test_rmse:g}")
        if time_limit is not None and time.perf_counter() - t0 >= time_limit:
            stop("time_limit", f"pml: time limit {time_limit:g} s reached")

    with limit_threads(num_threads):
        if engine == "scipy":
            res = scipy.optimize.minimize(
                fun,
                theta0,
                method="BFGS",
                jac=True,
                callback=on_iteration,
                options={"gtol": gtol, "maxiter": int(maxiter)},
            )
        else:
            res = _bfgs_rank2(fun, theta0, gtol=gtol, maxiter=int(maxiter), callback=on_iteration)
    wall = time.perf_counter() - t0
    flat.write_back(res.x)
    theta = torch.from_numpy(np.asarray(res.x, dtype=np.float64)).to(flat.device)
    n_iter = int(res.nit)
    if hist.last_step() != n_iter:
        hist.add(**row_at(n_iter, res.x, float(res.fun)))
    stop_reason = reason.get("key", _BFGS_STOP.get(int(res.status), f"status_{res.status}"))
    return OptimResult(
        method="bfgs",
        theta=np.asarray(res.x, dtype=np.float64).copy(),
        train_rmse=flat.rmse(theta),
        test_rmse=flat.rmse(theta, Xt, yt) if Xt is not None else math.nan,
        n_iter=n_iter,
        n_fev=int(res.nfev),
        stop_reason=stop_reason,
        message=reason.get("msg", str(res.message)),
        wall_s=wall,
        history=hist.arrays(),
        info={"scipy_message": str(res.message), "scipy_status": int(res.status), "gtol": gtol, "maxiter": maxiter,
              "engine": engine},
    )


def _bfgs_rank2(fun_and_grad, x0: np.ndarray, *, gtol: float, maxiter: int, callback=None, c1: float = 1e-4,
                c2: float = 0.9) -> scipy.optimize.OptimizeResult:
    """SciPy's BFGS loop (``_minimize_bfgs``, norm = inf, xrtol = 0) with its line search and messages, but with SciPy's
    H+ = A1 H A1^T + rho s s^T (A1 = I - rho s y^T) done as three rank-one updates: O(N^2), same iterates."""
    from scipy.linalg.blas import dger
    from scipy.optimize._optimize import _line_search_wolfe12, _LineSearchError, _status_message

    memo: dict[str, Any] = {"x": None}
    counts = {"nfev": 0, "ngev": 0}

    def evaluate(x):
        if memo["x"] is None or not np.array_equal(x, memo["x"]):
            memo["x"] = np.array(x, dtype=np.float64, copy=True)
            memo["f"], memo["g"] = fun_and_grad(memo["x"])
            counts["nfev"] += 1

    def f(x):
        evaluate(x)
        return memo["f"]

    def fprime(x):
        evaluate(x)
        counts["ngev"] += 1
        return memo["g"].copy()

    xk = np.asarray(x0, dtype=np.float64).reshape(-1).copy()
    old_fval = f(xk)
    gfk = fprime(xk)
    N = xk.size
    Hk = np.asfortranarray(np.eye(N))
    old_old_fval = old_fval + np.linalg.norm(gfk) / 2  # SciPy: initial step guess dx ~ 1
    k, warnflag, halted = 0, 0, False
    gnorm = np.max(np.abs(gfk))
    while gnorm > gtol and k < maxiter:
        pk = -(Hk @ gfk)
        try:
            alpha_k, _, _, old_fval, old_old_fval, gfkp1 = _line_search_wolfe12(
                f, fprime, xk, pk, gfk, old_fval, old_old_fval, amin=1e-100, amax=1e100, c1=c1, c2=c2
            )
        except _LineSearchError:
            warnflag = 2
            break
        sk = alpha_k * pk
        xk = xk + sk
        if gfkp1 is None:
            gfkp1 = fprime(xk)
        yk = gfkp1 - gfk
        gfk = gfkp1
        k += 1
        if callback is not None:
            try:
                callback(intermediate_result=scipy.optimize.OptimizeResult(x=xk, fun=old_fval))
            except StopIteration:
                halted = True
                break
        gnorm = np.max(np.abs(gfk))
        if gnorm <= gtol:
            break
        if alpha_k * np.linalg.norm(pk) <= 0.0:  # SciPy's xrtol test with xrtol = 0
            break
        if not np.isfinite(old_fval):
            warnflag = 2
            break
        rhok_inv = float(np.dot(yk, sk))
        rhok = 1000.0 if rhok_inv == 0.0 else 1.0 / rhok_inv
        Hy = Hk @ yk
        yH = yk @ Hk
        coef = rhok * rhok * float(yk @ Hy) + rhok
        # In-place BLAS rank-one updates (Hk is Fortran-ordered): no N x N temporaries.
        Hk = dger(-rhok, sk, yH, a=Hk, overwrite_a=True)
        Hk = dger(-rhok, Hy, sk, a=Hk, overwrite_a=True)
        Hk = dger(coef, sk, sk, a=Hk, overwrite_a=True)
    if halted:
        warnflag, msg = 99, "`callback` raised `StopIteration`."
    elif warnflag == 2:
        msg = _status_message["pr_loss"]
    elif k >= maxiter:
        warnflag, msg = 1, _status_message["maxiter"]
    elif np.isnan(gnorm) or np.isnan(old_fval) or np.isnan(xk).any():
        warnflag, msg = 3, _status_message["nan"]
    else:
        msg = _status_message["success"]
    return scipy.optimize.OptimizeResult(
        fun=old_fval, jac=gfk, x=xk, nit=k, nfev=counts["nfev"], njev=counts["ngev"], status=warnflag,
        success=warnflag == 0, message=msg,
    )


# ----------------------------------------------------------------------------------------------------------
