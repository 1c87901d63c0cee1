"""Second-order training of paper §4.2: SciPy BFGS on a flat parameter vector and low-curvature subspace steps.

Paper: §4.2 "Optimization Tricks For Reducing Optimization Error"; reproduction-spec Figs. 8-9 and §11.

Everything works on one flat float64 vector ``theta`` holding every trainable parameter of an ``nn.Module``.
:class:`FlatModel` flattens the parameters once and evaluates the model with
``torch.func.functional_call`` on views of ``theta``, so the module is never rebuilt or copied into, and the
loss and its gradient come from one forward and one backward pass. The authors' scripts instead copied the
vector into the module and computed the loss and the gradient in separate passes (see
:mod:`pml.benchmarks.bfgs` for the timing difference).

The Adam baseline is not here: it is :mod:`pml.nn.training`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Literal

import numpy as np
import scipy.optimize
import torch
from torch import nn

from pml.threads import limit_threads
from torch.func import functional_call

__all__ = [
    "FlatModel",
    "OptimResult",
    "bfgs",
    "low_curvature_steps",
    "log_line_search",
    "low_curvature_direction",
]


def _as_tensor(a, dtype: torch.dtype, device: torch.device, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach().to(device=device, dtype=dtype)
    else:
        t = torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device)
    if t.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    return t


class FlatModel:
    """An ``nn.Module`` as a function of one flat parameter vector, bound to a data set.

    Paper: §4 (all second-order methods act on the flattened parameter vector theta).

    ``X`` is (n, d) (a 1-D array is read as (n, 1)); ``y`` is (n,) or (n, k) and is compared with the model
    output reshaped to (n, -1). The loss is the mean squared error over all points and outputs, as
    ``nn.MSELoss`` (paper §1.2). Every trainable parameter must be float64: precision work in float32 is
    meaningless here, so a float32 model is an error rather than a silent cast.

    The parameter order is ``model.named_parameters()`` order (the order of
    ``torch.nn.utils.parameters_to_vector``), so the first slice of ``theta`` is the first layer's weight.
    """

    def __init__(self, model: nn.Module, X, y, *, dtype: torch.dtype = torch.float64):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if dtype != torch.float64:
            raise ValueError("FlatModel works in float64 only (paper §1.1: the floor is set by float64 eps)")
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters")
        bad = [name for name, p in named if p.dtype != dtype]
        if bad:
            raise TypeError(
                f"parameters {bad} are not {dtype}; build the model with dtype=torch.float64 "
                "(e.g. pml.nn.networks.make_mlp(..., dtype=torch.float64)) or call model.double()"
            )
        devices = {p.device for _, p in named}
        if len(devices) != 1:
            raise ValueError(f"all parameters must live on one device, got {sorted(map(str, devices))}")
        self.model = model
        self.dtype = dtype
        self.device = devices.pop()
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.n_params = int(sum(self.sizes))
        self.X, self.y = self._data(X, y, "X", "y")
        self.n = self.X.shape[0]
        # One cheap forward on two points turns a shape mismatch into a clear error now, not mid-optimisation.
        with torch.no_grad():
            out = functional_call(self.model, self.unflatten(self.theta()), (self.X[:2],))
        n_out = out.reshape(min(2, self.n), -1).shape[1]
        if n_out != self.y.shape[1]:
            raise ValueError(f"model output has {n_out} values per point but y has {self.y.shape[1]}")

    # ----------------------------------------------------------------------------------------------- data
    def _data(self, X, y, xname: str, yname: str) -> tuple[torch.Tensor, torch.Tensor]:
        X = _as_tensor(X, self.dtype, self.device, xname)
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        y = _as_tensor(y, self.dtype, self.device, yname)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"{xname} has {X.shape[0]} points but {yname} has {y.shape[0]}")
        if X.shape[0] == 0:
            raise ValueError(f"{xname} holds no points")
        return X, y.reshape(X.shape[0], -1)

    def data(self, X, y) -> tuple[torch.Tensor, torch.Tensor]:
        """(X, y) as float64 tensors on the model's device, shaped as the bound training data."""
        return self._data(X, y, "X", "y")

    # ----------------------------------------------------------------------------------------- parameters
    def theta(self) -> torch.Tensor:
        """A detached float64 copy of the module's current parameters as one flat vector."""
        params = dict(self.model.named_parameters())
        return torch.cat([params[name].detach().reshape(-1) for name in self.names]).clone()

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``theta`` shaped like the parameters, keyed by name (for ``functional_call``)."""
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}")
        chunks = torch.split(theta, self.sizes)
        return {name: c.view(shape) for name, c, shape in zip(self.names, chunks, self.shapes)}

    def write_back(self, theta) -> None:
        """Copy ``theta`` into the module's parameters (in place, no autograd)."""
        theta = _as_tensor(theta, self.dtype, self.device, "theta").reshape(-1)
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self.unflatten(theta).items():
                params[name].copy_(value)

    def first_param_size(self) -> int:
        """Number of entries of the first parameter tensor (the first layer's weight of an MLP)."""
        return self.sizes[0]

    # ----------------------------------------------------------------------------------------- evaluation
    def predict(self, theta: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        """Model output at ``theta`` on ``X`` (default: the bound training inputs), shape (n, k)."""
        X = self.X if X is None else X
        out = functional_call(self.model, self.unflatten(theta), (X,))
        return out.reshape(X.shape[0], -1)

    def loss(self, theta: torch.Tensor, X: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error at ``theta`` (differentiable; default data: the bound training set)."""
        if (X is None) != (y is None):
            raise ValueError("pass both X and y, or neither")
        X, y = (self.X, self.y) if X is None else (X, y)
        return torch.mean((self.predict(theta, X) - y) ** 2)

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(MSE, d MSE / d theta) from one forward and one backward pass."""
        theta = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss(theta)
            (grad,) = torch.autograd.grad(loss, theta)
        return loss.detach(), grad

    def value(self, theta: torch.Tensor, X=None, y=None) -> float:
        """MSE as a Python float, without building a graph."""
        with torch.no_grad():
            return float(self.loss(theta, X, y))

    def rmse(self, theta: torch.Tensor, X=None, y=None) -> float:
        return math.sqrt(self.value(theta, X, y))

    def scipy_fun(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """``fun`` for ``scipy.optimize.minimize(..., jac=True)``: (loss, gradient) as float64 numpy."""
        theta = torch.from_numpy(np.array(x, dtype=np.float64, copy=True)).to(self.device)
        loss, grad = self.loss_and_grad(theta)
        return float(loss), grad.detach().cpu().numpy().astype(np.float64, copy=True)


# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class OptimResult:
    """What an optimiser did. RMSEs are absolute (sqrt of the MSE), as plotted in Figs. 8-9.

    ``history`` maps column names to equal-length numpy arrays; every optimiser writes at least ``step``,
    ``train_rmse``, ``test_rmse`` (NaN without a test set) and ``time_s``. ``message`` is the optimiser's
    own words (for BFGS, SciPy's message, e.g. "Desired error not necessarily achieved due to precision
    loss."); ``stop_reason`` is a short machine-readable key.
    """

    method: str
    theta: np.ndarray
    train_rmse: float
    test_rmse: float
    n_iter: int
    n_fev: int
    stop_reason: str
    message: str
    wall_s: float
    history: dict[str, np.ndarray]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"OptimResult(method={self.method!r}, train_rmse={self.train_rmse:.3e}, test_rmse={self.test_rmse:.3e}, "
            f"n_iter={self.n_iter}, n_fev={self.n_fev}, stop_reason={self.stop_reason!r}, wall_s={self.wall_s:.2f})"
        )


class _History:
    def __init__(self, extra: tuple[str, ...] = ()):
        self.cols: dict[str, list] = {k: [] for k in ("step", "train_rmse", "test_rmse", "time_s", *extra)}

    def add(self, **row) -> None:
        for key, col in self.cols.items():
            col.append(row.get(key, np.nan))

    def last_step(self) -> int | None:
        return self.cols["step"][-1] if self.cols["step"] else None

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(v, dtype=np.float64) for k, v in self.cols.items()}
        out["step"] = out["step"].astype(np.int64)
        return out


_BFGS_STOP = {0: "gtol", 1: "maxiter", 2: "precision_loss", 3: "nan", 99: "callback"}


class _Stop(Exception):
    pass


def _test_data(flat: FlatModel, X_test, y_test):
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    if X_test is None:
        return None, None
    return flat._data(X_test, y_test, "X_test", "y_test")


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

    Paper: §4.2 ("switching ... to second-order optimizers like BFGS can improve RMSE loss by multiple orders of
    magnitude"); spec Fig. 8 "Width-40 BFGS" and §11. The defaults are the authors' options (gtol 1e-60,
    maxiter 25,000): with so small a gtol BFGS normally stops on SciPy's "precision loss" message, which is
    recorded in ``message`` (``stop_reason="precision_loss"``).

    ``scipy.optimize.minimize(method="BFGS", jac=True)`` gets loss and gradient from one torch pass per
    evaluation (:class:`FlatModel`). Every ``log_every`` iterations the history records the train RMSE at
    the accepted point (SciPy already evaluated it; no extra pass) and, with a test set, the test RMSE
    (one forward pass on the test set). ``callback(row)`` receives each logged row as a dict and may return
    True to stop. ``target_test_rmse`` (or the train RMSE without a test set) and ``time_limit`` (seconds)
    stop early, with ``stop_reason`` "target" or "time_limit". ``num_threads`` runs the optimisation
    under :func:`pml.threads.limit_threads`.

    ``engine="scipy"`` calls ``scipy.optimize.minimize``, as the authors did. SciPy updates the inverse
    Hessian as A1 @ (H @ A2) + rho s s^T, two dense N x N products, O(N^3) per iteration: for N = 481
    (width 20) that already costs more than a loss+gradient on 10k points, and for N = 1761 (width 40) it
    dominates everything. ``engine="rank2"`` (:func:`_bfgs_rank2`) runs the same algorithm (SciPy's
    Wolfe line search, stopping rules and messages) with the algebraically identical O(N^2) rank-two update,
    so iterates agree with SciPy's up to rounding.
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
    stop = reason.get("key", _BFGS_STOP.get(int(res.status), f"status_{res.status}"))
    return OptimResult(
        method="bfgs",
        theta=np.asarray(res.x, dtype=np.float64).copy(),
        train_rmse=flat.rmse(theta),
        test_rmse=flat.rmse(theta, Xt, yt) if Xt is not None else math.nan,
        n_iter=n_iter,
        n_fev=int(res.nfev),
        stop_reason=stop,
        message=reason.get("msg", str(res.message)),
        wall_s=wall,
        history=hist.arrays(),
        info={"scipy_message": str(res.message), "scipy_status": int(res.status), "gtol": gtol, "maxiter": maxiter,
              "engine": engine},
    )


def _bfgs_rank2(fun_and_grad, x0: np.ndarray, *, gtol: float, maxiter: int, callback=None, c1: float = 1e-4,
                c2: float = 0.9) -> scipy.optimize.OptimizeResult:
    """SciPy's BFGS loop (``scipy.optimize._optimize._minimize_bfgs``, norm = inf, xrtol = 0) with an O(N^2)
    inverse-Hessian update.

    With A1 = I - rho s y^T, SciPy's H+ = A1 H A1^T + rho s s^T expands to
    H - rho (s (H^T y)^T + (H y) s^T) + (rho^2 y.(H y) + rho) s s^T, i.e. three rank-one updates. The line
    search is SciPy's own ``_line_search_wolfe12`` (MINPACK Wolfe search, then the pure-Python fallback), so
    the iterates, stopping rules, status codes and messages are SciPy's up to rounding.
    """
    from scipy.linalg.blas import dger
    from scipy.optimize._optimize import _LineSearchError, _line_search_wolfe12, _status_message

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
    """Logarithmic line search of spec Fig. 8: returns (alpha, f(alpha), number of evaluations of ``f``).

    Paper: §4.2 (low-curvature subspace training, "perform a line search"). Level 0 evaluates ``f`` on
    ``n_grid`` log-spaced alphas in [alpha_min, alpha_max]; each further level re-grids between the
    argmin's neighbours (one grid ratio beyond the edge when the argmin sits on an edge), ``zoom_levels``
    levels in all. The best alpha over all levels is kept.

    Unlike the authors' search (pitfall 8), alpha = 0 is a candidate with value ``f0``: unless
    ``allow_increase`` is true the result never has f(alpha) > f0, and (0, f0) is returned when no grid
    point beats ``f0``. Non-finite values count as +inf (so (0, f0) also when no grid value is finite).
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
    authors' code does (pitfall 7); ``rule="signed"`` selects lambda_i < tau as the paper writes, which also
    keeps every negative-curvature direction.
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
    :func:`log_line_search` (defaults: 15 log-spaced alphas in [1e-12, 1e12], 4 zoom levels; spec Fig. 8).

    The step never raises the training loss unless ``allow_increase=True`` reproduces the authors'
    always-take-the-step behaviour (pitfall 8, the spike in Fig. 9 bottom). When a step finds no decrease
    the parameters do not change, so every later step would repeat it: with ``stop_when_stuck`` the loop
    ends there (``stop_reason="stuck"``). The history has one row per step (step 0 = the start) with
    ``alpha``, ``n_directions`` and ``gnorm_hat`` = |g_hat| besides the RMSEs.

    ``num_threads`` runs the loop under :func:`pml.threads.limit_threads`. The authors used tau = 1e-15 for Figs. 8-9
    and 1e-16 for the "over 2x" claim (spec §11).
    """
    from pml.nn.hessian import hessian_matrix  # pml.nn.hessian imports FlatModel from this module

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
    with limit_threads(num_threads):
        for step in range(1, int(n_steps) + 1):
            _, grad = flat.loss_and_grad(theta)
            H = hessian_matrix(flat, theta, batch_size=hessian_batch_size, chunk_size=hessian_chunk_size)
            evals, evecs = torch.linalg.eigh(H)
            g_hat, n_dir = low_curvature_direction(grad, evals, evecs, tau, rule)

            def along(alpha: float, _th=theta, _d=g_hat) -> float:
                return flat.value(_th - alpha * _d)

            if n_dir == 0 or not bool(torch.any(g_hat != 0)):
                alpha, f_new, n_ls = 0.0, f0, 0
            else:
                alpha, f_new, n_ls = log_line_search(
                    along, f0, alpha_min=alpha_min, alpha_max=alpha_max, n_grid=n_grid,
                    zoom_levels=zoom_levels, allow_increase=allow_increase,
                )
            n_fev += n_ls + 1
            if alpha != 0.0:
                theta = theta - alpha * g_hat  # the same expression ``along`` evaluated: f(theta) = f_new
                f0 = f_new
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
        info={"tau": tau, "rule": rule, "alpha_min": alpha_min, "alpha_max": alpha_max, "n_grid": n_grid,
              "zoom_levels": zoom_levels, "allow_increase": allow_increase},
    )
