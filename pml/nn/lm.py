"""Levenberg-Marquardt training of small networks in float64 (beyond the paper's BFGS, §4.2, which stalls at ~1e-7 on
"precision loss"; Hagan & Menhaj, IEEE Trans. Neural Netw. 5 (1994) 989; Nocedal & Wright, ch. 10).

Each step solves min |J delta + r|^2 + mu |D delta|^2. The Jacobian is exact and dense (``torch.func``, in chunks of
points); J^T J is never formed (that would square the condition number): the chunks are folded into the R factor of [J,
r] by a streaming QR, and each trial ``mu`` is solved by the SVD of R (``solver="svd"``) or a QR of [R; sqrt(mu) D]
(``solver="qr"``, MINPACK's way). Damping follows Nielsen's rule (Madsen, Nielsen & Tingleff 2004, §3.2) or Marquardt's
(``damping="marquardt"``). One iteration is one Jacobian; rejected trial steps reuse it.

A run's ``stop_reason``: ``ftol``, ``gtol``, ``xtol`` (MINPACK's tests), ``damping`` (mu past ``mu_max``),
``noise_floor`` (no decrease above the rounding noise of |r|^2: the fit is at float64 precision), ``zero_residual``,
``max_iter``, ``time_limit``, ``target`` or ``callback``. :func:`least_squares` is the generic solver; :func:`train`
applies it to an ``nn.Module`` with the trainer signature of :func:`pml.nn.boosting.boost`."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Iterable, Iterator, Literal

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from pml.nn.flat import OptimResult
from pml.threads import limit_threads

__all__ = [
    "DAMPING_RULES",
    "rounding_estimate",
    "SOLVERS",
    "LMOptions",
    "LMResult",
    "flat_params",
    "jacobian",
    "jacobian_chunks",
    "least_squares",
    "train",
]

SOLVERS = ("svd", "qr")
DAMPING_RULES = ("nielsen", "marquardt")
SCALINGS = ("identity", "jac")
DEFAULT_MAX_JACOBIAN_BYTES = 64 * 2**20  # one chunk of per-sample Jacobian rows holds at most this much
_EPS = float(np.finfo(np.float64).eps)
_MAX_TRIALS = 200  # trial steps per linearisation, a guard against endless damping updates


def _check_choice(value, valid: tuple[str, ...], name: str) -> str:
    if value not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
    return value


def _check_positive(value, name: str, allow_zero: bool = False) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'} and finite, got {value!r}")
    return v


# ------------------------------------------------------------------------------------------ flat parameters
@dataclasses.dataclass(frozen=True)
class _Layout:
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]

    @property
    def n_params(self) -> int:
        return int(sum(self.sizes))

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        chunks = torch.split(theta, list(self.sizes))
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}


def _layout(model: nn.Module) -> _Layout:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    bad = sorted({str(p.dtype) for _, p in named if p.dtype != torch.float64})
    if bad:
        raise TypeError(f"LM training needs float64 parameters, found {bad}: build the model with dtype=torch.float64")
    return _Layout(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named),
                   tuple(p.numel() for _, p in named))


def flat_params(model: nn.Module) -> np.ndarray:
    """The trainable parameters of ``model`` as one float64 vector (``named_parameters`` order)."""
    lay = _layout(model)
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1).cpu() for n in lay.names]).numpy().copy()


def _write_back(model: nn.Module, lay: _Layout, theta: np.ndarray) -> None:
    params = dict(model.named_parameters())
    t = torch.from_numpy(np.ascontiguousarray(theta, dtype=np.float64))
    with torch.no_grad():
        for name, value in lay.unflatten(t).items():
            params[name].copy_(value.to(params[name].device))


def _as_X(X, device) -> torch.Tensor:
    t = X.detach().to(dtype=torch.float64) if isinstance(X, torch.Tensor) else torch.as_tensor(
        np.asarray(X, dtype=np.float64))
    if t.ndim == 1:
        t = t.reshape(-1, 1)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"X must have shape (n, d) with n >= 1, got {tuple(t.shape)}")
    return t.to(device)


def _chunk_rows(n_out: int, n_params: int, chunk_size: int | None, max_bytes: int) -> int:
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        return int(chunk_size)
    # Per point: n_out Jacobian rows of n_params doubles, plus autograd temporaries of the same order.
    per_point = 8 * max(1, n_out) * n_params * 4
    return max(1, int(max_bytes // per_point))


class _NetJacobian:
    """Residuals and per-sample Jacobian rows of ``model`` on a fixed data set (flat parameter vector)."""

    def __init__(self, model: nn.Module, X, y=None):
        self.model = model
        self.lay = _layout(model)
        self.device = next(model.parameters()).device
        self.X = _as_X(X, self.device)
        theta = torch.from_numpy(flat_params(model)).to(self.device)
        with torch.no_grad():
            out = functional_call(model, self.lay.unflatten(theta), (self.X[:1],))
        self.n_out = int(out.reshape(1, -1).shape[1])
        if y is not None:
            yt = torch.as_tensor(np.asarray(y, dtype=np.float64)).to(self.device)
            if yt.shape[0] != self.X.shape[0]:
                raise ValueError(f"X has {self.X.shape[0]} points but y has {yt.shape[0]}")
            yt = yt.reshape(self.X.shape[0], -1)
            if yt.shape[1] != self.n_out:
                raise ValueError(f"model output has {self.n_out} values per point but y has {yt.shape[1]}")
            self.y = yt
        model_ = model
        lay = self.lay

        def one(theta_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return functional_call(model_, lay.unflatten(theta_t), (x.unsqueeze(0),)).reshape(-1)

        self._per_sample = vmap(jacrev(one), in_dims=(None, 0))

    def predict(self, theta: np.ndarray, X: torch.Tensor | None = None) -> torch.Tensor:
        X = self.X if X is None else X
        t = torch.from_numpy(np.ascontiguousarray(theta)).to(self.device)
        with torch.no_grad():
            return functional_call(self.model, self.lay.unflatten(t), (X,)).reshape(X.shape[0], -1)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return (self.predict(theta) - self.y).reshape(-1).cpu().numpy().astype(np.float64)

    def rounding(self, theta: np.ndarray, fallback: float) -> float:
        """Norm of the estimated rounding error of the outputs (:func:`rounding_estimate`), or eps * fallback."""
        t = torch.from_numpy(np.ascontiguousarray(theta)).to(self.device)
        est = _forward_error(self.model, self.lay.unflatten(t), self.X)
        if est is None:
            return _EPS * fallback
        return max(float(torch.linalg.vector_norm(est)), _EPS * fallback)

    def blocks(self, theta: np.ndarray, rows: int) -> Iterator[np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(theta)).to(self.device)
        for start in range(0, self.X.shape[0], rows):
            J = self._per_sample(t, self.X[start:start + rows])  # (c, n_out, p)
            yield J.reshape(-1, self.lay.n_params).detach().cpu().numpy()


_ELEMENTWISE_DERIVATIVES = {
    nn.Tanh: lambda h, a: 1.0 - a * a,
    nn.Sigmoid: lambda h, a: a * (1.0 - a),
    nn.ReLU: lambda h, a: (h > 0).to(h.dtype),
    nn.Identity: lambda h, a: torch.ones_like(h),
}


def _forward_error(model: nn.Module, params: dict[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor | None:
    """First-order rounding-error bound per output for an ``nn.Sequential`` of Linear / Tanh / Sigmoid / ReLU."""
    if not isinstance(model, nn.Sequential):
        return None
    h = X
    E = torch.zeros_like(X)
    with torch.no_grad():
        for i, m in enumerate(model):
            if isinstance(m, nn.Linear):
                W = params.get(f"{i}.weight", m.weight)
                b = params.get(f"{i}.bias", m.bias)
                absW = W.abs()
                mag = h.abs() @ absW.T + (b.abs() if b is not None else 0.0)
                h = h @ W.T + (b if b is not None else 0.0)
                E = E @ absW.T + _EPS * mag
            elif type(m) in _ELEMENTWISE_DERIVATIVES:
                a = m(h)
                E = E * _ELEMENTWISE_DERIVATIVES[type(m)](h, a).abs() + _EPS * a.abs()
                h = a
            else:
                return None
    return E.reshape(-1)


def rounding_estimate(model: nn.Module, X) -> float:
    """Estimated norm of the float64 rounding error in ``model(X)`` (first-order forward error bound)."""
    net = _NetJacobian(model, X)
    theta = flat_params(model)
    with torch.no_grad():
        f = float(torch.linalg.vector_norm(net.predict(theta)))
    return net.rounding(theta, f)


def jacobian_chunks(model: nn.Module, X, *, chunk_size: int | None = None,
                    max_bytes: int = DEFAULT_MAX_JACOBIAN_BYTES) -> Iterator[np.ndarray]:
    """Row blocks of the per-sample Jacobian d f(x_i) / d theta, in point order (float64 numpy)."""
    net = _NetJacobian(model, X)
    rows = _chunk_rows(net.n_out, net.lay.n_params, chunk_size, max_bytes)
    return net.blocks(flat_params(model), rows)


def jacobian(model: nn.Module, X, *, chunk_size: int | None = None,
             max_bytes: int = DEFAULT_MAX_JACOBIAN_BYTES) -> np.ndarray:
    """The dense Jacobian of the model outputs w.r.t. the flat parameters: shape (n * n_out, n_params)."""
    return np.concatenate(list(jacobian_chunks(model, X, chunk_size=chunk_size, max_bytes=max_bytes)), axis=0)


# ---------------------------------------------------------------------------------------------- the solver
@dataclasses.dataclass(frozen=True)
class LMOptions:
    """Options of :func:`least_squares` and :func:`train`; the stopping rules are the module's.

    ``geodesic`` adds the geodesic acceleration of Transtrum & Sethna (arXiv:1201.5885): one extra residual
    evaluation per step, with the iteration's Jacobian blocks kept in memory. Off by default: on tanh networks fitting
    x^2 it cost 4x the residual evaluations and ended at a slightly higher RMSE than plain LM.

    Parameters
    ----------
    max_iter : int, optional
        Iterations (Jacobians), default 500.
    solver : str, optional
        ``"svd"`` (default) or ``"qr"``.
    damping : str, optional
        ``"nielsen"`` (default) or ``"marquardt"``.
    scaling : str, optional
        ``"identity"`` (default, D = I) or ``"jac"`` (D = running maxima of J's column norms, MINPACK's).
    tau : float, optional
        Initial damping mu_0 = tau * s_max^2 (default 1e-3).
    ftol, gtol, xtol : float, optional
        Stopping tolerances (defaults 1e-15, 0, 0; 0 disables).
    mu_max, mu_min : float, optional
        Damping bounds (defaults 1e20, 1e-24).
    noise_factor, noise_patience : float, int, optional
        The rounding-noise rule of :func:`least_squares` (defaults 16, 20).
    geodesic : bool, optional
        Geodesic acceleration (default False).
    geodesic_h, geodesic_alpha : float, optional
        Its step and acceptance ratio (defaults 0.1, 0.75).
    time_limit, target_rmse : float, optional
        Stop after this many seconds, or once the RMSE reaches the target.
    """

    max_iter: int = 500
    solver: Literal["svd", "qr"] = "svd"
    damping: Literal["nielsen", "marquardt"] = "nielsen"
    scaling: Literal["identity", "jac"] = "identity"
    tau: float = 1e-3
    ftol: float = 1e-15
    gtol: float = 0.0
    xtol: float = 0.0
    mu_max: float = 1e20
    mu_min: float = 1e-24
    noise_factor: float = 16.0
    noise_patience: int = 20
    geodesic: bool = False
    geodesic_h: float = 0.1
    geodesic_alpha: float = 0.75
    time_limit: float | None = None
    target_rmse: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_iter, bool) or int(self.max_iter) != self.max_iter or self.max_iter < 0:
            raise ValueError(f"max_iter must be a non-negative integer, got {self.max_iter!r}")
        _check_choice(self.solver, SOLVERS, "solver")
        _check_choice(self.damping, DAMPING_RULES, "damping")
        _check_choice(self.scaling, SCALINGS, "scaling")
        _check_positive(self.tau, "tau")
        for name in ("ftol", "gtol", "xtol"):
            _check_positive(getattr(self, name), name, allow_zero=True)
        _check_positive(self.mu_max, "mu_max")
        _check_positive(self.mu_min, "mu_min")
        _check_positive(self.noise_factor, "noise_factor", allow_zero=True)
        if isinstance(self.noise_patience, bool) or int(self.noise_patience) != self.noise_patience \
                or self.noise_patience < 1:
            raise ValueError(f"noise_patience must be a positive integer, got {self.noise_patience!r}")
        _check_positive(self.geodesic_h, "geodesic_h")
        _check_positive(self.geodesic_alpha, "geodesic_alpha")
        if self.time_limit is not None:
            _check_positive(self.time_limit, "time_limit")
        if self.target_rmse is not None:
            _check_positive(self.target_rmse, "target_rmse", allow_zero=True)


@dataclasses.dataclass
class LMResult:
    """Outcome of :func:`least_squares`: the minimiser, its residual norm, counters and the per-iteration log."""

    theta: np.ndarray
    cost: float  # 1/2 |r|^2
    n_iter: int
    n_fev: int
    stop_reason: str
    message: str
    mu: float
    history: dict[str, np.ndarray]
    wall_s: float


class _Linearisation:
    """R and Q^T r of [J, r] (streaming QR over Jacobian row blocks), with per-mu step solves."""

    def __init__(self, blocks: Iterable[np.ndarray], r: np.ndarray, p: int, solver: str, d: np.ndarray | None,
                 factor: bool = True):
        R_aug = None
        start = 0
        col_sq = np.zeros(p)
        for J in blocks:
            J = np.asarray(J, dtype=np.float64)
            if J.ndim != 2 or J.shape[1] != p:
                raise ValueError(f"Jacobian block must have shape (rows, {p}), got {J.shape}")
            rb = r[start:start + J.shape[0]]
            if rb.shape[0] != J.shape[0]:
                raise ValueError(f"Jacobian blocks have more rows than the residual ({r.size})")
            start += J.shape[0]
            col_sq += np.einsum("ij,ij->j", J, J)
            A = np.column_stack([J, rb])
            if R_aug is not None:
                A = np.vstack([R_aug, A])
            R_aug = scipy.linalg.qr(A, mode="r", overwrite_a=True, check_finite=False)[0][: p + 1]
        if start != r.size:
            raise ValueError(f"Jacobian blocks cover {start} rows but the residual has {r.size}")
        if R_aug.shape[0] < p + 1:  # fewer rows than parameters + 1: pad with zero rows (still a valid R)
            R_aug = np.vstack([R_aug, np.zeros((p + 1 - R_aug.shape[0], p + 1))])
        self.col_norms = np.sqrt(col_sq)
        self.R = np.triu(R_aug[:p, :p])
        self.qtr = R_aug[:p, p].copy()
        self.p = p
        self.solver = solver
        self.g = self.R.T @ self.qtr  # J^T r
        if factor:
            self.scale(np.ones(p) if d is None else d)

    def scale(self, d: np.ndarray) -> None:
        """Factor R D^-1 for the scaling D = diag(d) (the step is solved for D delta)."""
        self.d = d
        self.Rs = self.R / d
        if self.solver == "svd":
            self.U, self.s, self.Vt = scipy.linalg.svd(self.Rs, full_matrices=False, check_finite=False,
                                                       lapack_driver="gesvd")
            self.b = self.U.T @ self.qtr
            self.s_max = float(self.s[0]) if self.s.size else 0.0
        else:
            self.s_max = float(np.linalg.norm(self.Rs, 2)) if self.p else 0.0

    def step(self, mu: float) -> np.ndarray:
        """delta minimising |J delta + r|^2 + mu |D delta|^2 (SVD filter factors or QR of [R D^-1; sqrt(mu) I])."""
        if self.solver == "svd":
            s = self.s
            return -(self.Vt.T @ (s / (s * s + mu) * self.b)) / self.d
        Q, Rm = self._qr(mu)
        z = scipy.linalg.solve_triangular(Rm, -(Q[: self.p].T @ self.qtr), check_finite=False)
        return z / self.d

    def _qr(self, mu: float) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self, "_qr_mu", None) != mu:
            self._qr_mu = mu
            self._qr_fac = np.linalg.qr(np.vstack([self.Rs, math.sqrt(mu) * np.eye(self.p)]))
        return self._qr_fac

    def solve_normal(self, mu: float, rhs: np.ndarray) -> np.ndarray:
        """-(J^T J + mu D^2)^-1 rhs from the same factorisation (used for the geodesic acceleration)."""
        w = rhs / self.d
        if self.solver == "svd":
            z = self.Vt.T @ ((self.Vt @ w) / (self.s * self.s + mu))
        else:
            _, Rm = self._qr(mu)
            z = scipy.linalg.solve_triangular(Rm, scipy.linalg.solve_triangular(Rm, w, trans="T",
                                                                                check_finite=False),
                                              check_finite=False)
        return -z / self.d

    def predicted_reduction(self, delta: np.ndarray, mu: float | None = None) -> float:
        """|r|^2 - |r + J delta|^2 from R (no J needed)."""
        Rd = self.R @ delta
        if mu is not None:
            Dd = self.d * delta
            return float(Rd @ Rd + 2.0 * mu * (Dd @ Dd))
        return float(-2.0 * delta @ self.g - Rd @ Rd)


def _stop_before_step(opt: LMOptions, cost2: float, m: int, it: int, t0: float) -> tuple[str, str] | None:
    """(reason, message) when the run ends before the next linearisation: an exact fit, the target RMSE reached,
    max_iter or the time limit; None to go on."""
    if cost2 == 0.0:
        return "zero_residual", "the residual is exactly zero"
    if opt.target_rmse is not None and math.sqrt(cost2 / m) <= opt.target_rmse:
        return "target", f"reached target RMSE {opt.target_rmse:g}"
    if it >= opt.max_iter:
        return "max_iter", f"reached max_iter = {opt.max_iter}"
    if opt.time_limit is not None and time.perf_counter() - t0 >= opt.time_limit:
        return "time_limit", f"time limit {opt.time_limit:g} s reached"
    return None


def _stop_at_gradient(opt: LMOptions, lin: _Linearisation, cost2: float) -> tuple[str, str] | None:
    """(reason, message) when the gradient vanishes: a zero Jacobian, or MINPACK's orthogonality test (the cosine
    between r and every column of J at most gtol); None to go on."""
    if lin.s_max == 0.0:
        return "gtol", "the Jacobian is zero"
    col = lin.col_norms
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.where(col > 0, np.abs(lin.g) / (col * math.sqrt(cost2)), 0.0)
    if opt.gtol > 0 and float(np.max(cosines)) <= opt.gtol:
        return "gtol", f"max cosine(r, J_j) = {float(np.max(cosines)):.2e} <= gtol = {opt.gtol:g}"
    return None


def _stop_after_step(opt: LMOptions, actual: float, pred: float, rho: float, old: float, dnorm: float,
                     lin: _Linearisation, theta: np.ndarray) -> tuple[str, str] | None:
    """(reason, message) after an accepted step: MINPACK's ftol (actual and predicted relative reductions both
    tiny) and xtol (a step tiny relative to the scaled parameters); None to go on."""
    if actual <= opt.ftol * old and pred <= opt.ftol * old and rho <= 2.0:
        return "ftol", f"relative reduction {actual / old:.2e} <= ftol = {opt.ftol:g}"
    if dnorm <= opt.xtol * (float(np.linalg.norm(lin.d * theta)) + opt.xtol):
        return "xtol", f"step {dnorm:.2e} <= xtol * |theta| (xtol = {opt.xtol:g})"
    return None


def _noise_level(opt: LMOptions, rounding, theta: np.ndarray, cost2: float) -> float:
    """The smallest change of |r|^2 that rounding lets us judge: noise_factor * 2 |r| |delta r|, with |delta r| from
    ``rounding`` (a number or a function of theta; default eps |r|)."""
    if rounding is None:
        dr = _EPS * math.sqrt(cost2)
    else:
        dr = float(rounding(theta)) if callable(rounding) else float(rounding)
    return opt.noise_factor * 2.0 * math.sqrt(cost2) * dr


def _geodesic_step(opt: LMOptions, lin: _Linearisation, blocks, theta: np.ndarray, r: np.ndarray,
                   delta: np.ndarray, mu: float, evaluate) -> tuple[np.ndarray, bool]:
    """Transtrum & Sethna (2012): second directional derivative by a finite difference along delta, acceleration
    a = -(J^T J + mu D^2)^-1 J^T r_vv; returns (delta + a / 2, True) if |a| <= alpha |delta| / 2, else (delta, False)."""
    h = opt.geodesic_h
    r_h, _ = evaluate(theta + h * delta)
    Jv = np.concatenate([B @ delta for B in blocks])
    r_vv = (2.0 / h) * ((r_h - r) / h - Jv)
    if np.all(np.isfinite(r_vv)):
        g_vv = np.zeros(theta.size)
        start = 0
        for B in blocks:
            g_vv += B.T @ r_vv[start:start + B.shape[0]]
            start += B.shape[0]
        acc = lin.solve_normal(mu, g_vv)
        if 2.0 * np.linalg.norm(lin.d * acc) <= opt.geodesic_alpha * np.linalg.norm(lin.d * delta):
            return delta + 0.5 * acc, True
    return delta, False


@dataclasses.dataclass
class _Trial:
    """Outcome of the damped-step search at one linearisation (:func:`_damped_step`)."""

    mu: float
    nu: float
    n_invisible: int  # accepted steps in a row whose decrease was below the rounding noise
    accepted: bool = False
    floor: bool = False  # the steps that reduce |r|^2 are below its rounding noise and larger steps fail
    rho: float = math.nan
    delta: np.ndarray | None = None
    used_accel: bool = False
    pred: float = math.nan
    actual: float = math.nan
    theta: np.ndarray | None = None
    r: np.ndarray | None = None
    cost2: float = math.inf


def _damped_step(opt: LMOptions, lin: _Linearisation, blocks, theta: np.ndarray, r: np.ndarray, cost2: float,
                 mu: float, nu: float, n_invisible: int, noise: float, evaluate) -> _Trial:
    """Search the damping mu for a step that lowers |r|^2 (Nielsen's or Marquardt's update), judging the gain
    ratio only where the predicted reduction exceeds the rounding ``noise`` (:func:`least_squares`)."""
    t = _Trial(mu=mu, nu=nu, n_invisible=n_invisible)
    mu_invisible = mu_reject = None
    n_trials = 0
    while t.mu <= opt.mu_max * lin.s_max**2:
        n_trials += 1
        delta = lin.step(t.mu)
        used_accel = False
        if opt.geodesic:
            delta, used_accel = _geodesic_step(opt, lin, blocks, theta, r, delta, t.mu, evaluate)
        pred = lin.predicted_reduction(delta, None if used_accel else t.mu)
        theta_new = theta + delta
        r_new, cost2_new = evaluate(theta_new)
        actual = cost2 - cost2_new
        rho = actual / pred if pred > 0 else -math.inf
        t.delta, t.used_accel, t.pred, t.actual, t.rho = delta, used_accel, pred, actual, rho
        t.theta, t.r, t.cost2 = theta_new, r_new, cost2_new
        if cost2_new < cost2:
            t.accepted = True
            if pred <= noise:  # a decrease, but below what rounding lets us judge: take it, widen the step
                t.mu /= 3.0
                t.n_invisible += 1
            elif opt.damping == "nielsen":
                t.mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                t.n_invisible = 0
            else:
                t.mu /= 10.0
                t.n_invisible = 0
            t.nu = 2.0
            return t
        if pred <= noise:
            # The model promises less than the rounding noise of |r|^2, so this rejection says nothing about
            # mu: try a larger step (smaller mu), bisecting (geometrically) towards a mu already rejected for
            # real; when that bracket is narrower than a factor 4, we are at the floor.
            mu_invisible = t.mu if mu_invisible is None else min(mu_invisible, t.mu)
            if t.mu < opt.mu_min * lin.s_max**2 or n_trials >= _MAX_TRIALS:
                t.floor = True
                return t
            if mu_reject is not None:
                if mu_invisible / mu_reject < 4.0:
                    t.floor = True
                    return t
                t.mu = math.sqrt(mu_invisible * mu_reject)
            else:
                t.mu /= 10.0
            t.nu = 2.0
            continue
        mu_reject = t.mu if mu_reject is None else max(mu_reject, t.mu)
        if mu_invisible is not None or n_trials >= _MAX_TRIALS:
            if mu_invisible is None:
                return t
            if mu_invisible / mu_reject < 4.0:
                t.floor = True
                return t
            t.mu = math.sqrt(mu_invisible * mu_reject)
            continue
        if opt.damping == "nielsen":
            t.mu *= t.nu
            t.nu *= 2.0
        else:
            t.mu *= 10.0
    return t


def least_squares(
    residual: Callable[[np.ndarray], np.ndarray],
    jacobian: Callable[[np.ndarray], np.ndarray | Iterable[np.ndarray]],
    theta0,
    options: LMOptions | None = None,
    *,
    callback: Callable[[dict], bool | None] | None = None,
    rounding: float | Callable[[np.ndarray], float] | None = None,
    **kwargs,
) -> LMResult:
    """Minimise 1/2 |residual(theta)|^2 by Levenberg-Marquardt (the module's rules); pure numpy, float64.

    A change of |r|^2 below ``noise_factor`` * 2 |r| |delta r| (``rounding`` = |delta r|, the rounding error of the
    residual) cannot be judged: such steps are taken when they decrease |r|^2, a rejected one makes mu smaller, and
    when they stay invisible while larger ones fail the run stops with "noise_floor".

    Parameters
    ----------
    residual : callable
        theta -> (m,) residual vector.
    jacobian : callable
        theta -> (m, p) Jacobian or an iterable of its row blocks in order (it need not exist whole).
    theta0 : array_like
        (p,) starting point.
    options : LMOptions, optional
        The options (or pass its fields as keywords).
    callback : callable, optional
        Called with each iteration's row (and ``theta``); returning True stops.
    rounding : float or callable, optional
        |delta r|, a number or a function of theta (default eps |r|; :func:`train` passes
        :func:`rounding_estimate`).
    **kwargs
        Fields of :class:`LMOptions`.

    Returns
    -------
    LMResult
        The minimiser, cost, counters, stop reason and a history row per iteration.
    """
    if options is None:
        options = LMOptions(**kwargs)
    elif kwargs:
        options = dataclasses.replace(options, **kwargs)
    opt = options
    t0 = time.perf_counter()
    theta = np.array(theta0, dtype=np.float64).reshape(-1)
    p = theta.size
    r = np.asarray(residual(theta), dtype=np.float64).reshape(-1)
    n_fev = 1
    if not np.all(np.isfinite(r)):
        raise ValueError("the residual at the starting point is not finite")
    cost2 = float(r @ r)  # |r|^2
    m = r.size
    keys = ("step", "cost", "mu", "rho", "step_norm", "accel", "n_fev", "time_s")
    hist: dict[str, list] = {k: [] for k in keys}

    def log(step: int, mu: float, rho: float, step_norm: float, accel: bool) -> dict:
        row = dict(step=step, cost=0.5 * cost2, mu=mu, rho=rho, step_norm=step_norm, accel=float(accel),
                   n_fev=n_fev, time_s=time.perf_counter() - t0)
        for k, v in row.items():
            hist[k].append(v)
        return row

    def evaluate(th: np.ndarray) -> tuple[np.ndarray, float]:
        nonlocal n_fev
        rr = np.asarray(residual(th), dtype=np.float64).reshape(-1)
        n_fev += 1
        return rr, (float(rr @ rr) if np.all(np.isfinite(rr)) else math.inf)

    mu, nu = math.nan, 2.0
    n_invisible = 0
    d = None
    log(0, mu, math.nan, 0.0, False)
    it = 0
    while True:
        ended = _stop_before_step(opt, cost2, m, it, t0)
        if ended:
            break
        jac = jacobian(theta)
        blocks = [jac] if isinstance(jac, np.ndarray) else jac
        if opt.geodesic:
            blocks = [np.asarray(B, dtype=np.float64) for B in blocks]  # kept for J v and J^T r_vv
        lin = _Linearisation(blocks, r, p, opt.solver, None, factor=opt.scaling == "identity")
        if opt.scaling == "jac":
            d = lin.col_norms if d is None else np.maximum(d, lin.col_norms)
            lin.scale(np.where(d > 0, d, 1.0))
        it += 1
        ended = _stop_at_gradient(opt, lin, cost2)
        if ended:
            break
        if math.isnan(mu):
            mu = opt.tau * lin.s_max**2
        noise = _noise_level(opt, rounding, theta, cost2)
        t = _damped_step(opt, lin, blocks, theta, r, cost2, mu, nu, n_invisible, noise, evaluate)
        mu, nu, n_invisible = t.mu, t.nu, t.n_invisible
        if t.floor or (t.accepted and n_invisible >= opt.noise_patience):
            if t.accepted:
                theta, r, cost2 = t.theta, t.r, t.cost2
            log(it, mu, t.rho, 0.0, False)
            ended = "noise_floor", ("the steps that reduce |r|^2 are below its rounding noise "
                                    f"(~{noise:.2e}) and larger steps fail: converged to float64 precision")
            break
        if not t.accepted:
            log(it, mu, t.rho, 0.0, False)
            ended = "damping", (f"no decrease for damping up to mu_max * s_max^2 "
                                f"({opt.mu_max:g} * {lin.s_max**2:.3g}): the loss is at its rounding floor")
            break
        dnorm = float(np.linalg.norm(lin.d * t.delta))
        old = cost2
        theta, r, cost2 = t.theta, t.r, t.cost2
        row = log(it, mu, t.rho, dnorm, t.used_accel)
        if callback is not None and callback({**row, "theta": theta}):
            ended = "callback", "callback asked to stop"
            break
        ended = _stop_after_step(opt, t.actual, t.pred, t.rho, old, dnorm, lin, theta)
        if ended:
            break
    stop, message = ended
    return LMResult(theta=theta, cost=0.5 * cost2, n_iter=it, n_fev=n_fev, stop_reason=stop, message=message,
                    mu=mu, history={k: np.asarray(v, dtype=np.int64 if k in ("step", "n_fev") else np.float64)
                                    for k, v in hist.items()},
                    wall_s=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- networks
def train(
    model: nn.Module,
    X,
    y,
    X_test=None,
    y_test=None,
    *,
    options: LMOptions | None = None,
    chunk_size: int | None = None,
    max_jacobian_bytes: int = DEFAULT_MAX_JACOBIAN_BYTES,
    log_every: int = 1,
    callback: Callable[[dict], bool | None] | None = None,
    num_threads: int | None = 1,
    **kwargs,
) -> OptimResult:
    """Train ``model`` (float64) by Levenberg-Marquardt on the full-batch squared error; parameters are written back.

    The second-order training the paper does with BFGS (§4.2), with the trainer signature of
    :func:`pml.nn.boosting.boost`. The Jacobian is computed in chunks folded into a streaming QR, so memory is O(chunk *
    p + p^2).

    Parameters
    ----------
    model : torch.nn.Module
        The network to train, float64.
    X, y : array_like
        The training points and targets.
    X_test, y_test : array_like, optional
        A test set (both or neither).
    options : LMOptions, optional
        The options (or pass its fields as keywords).
    chunk_size : int, optional
        Points per Jacobian block (default: as many as fit in ``max_jacobian_bytes``).
    max_jacobian_bytes : int, optional
        Memory per block when ``chunk_size`` is None.
    log_every : int, optional
        Iterations between test evaluations (default 1).
    callback : callable, optional
        Called with each logged row; returning True stops.
    num_threads : int or None, optional
        Torch/BLAS threads (default 1).
    **kwargs
        Fields of :class:`LMOptions`.

    Returns
    -------
    pml.nn.flat.OptimResult
        ``method="lm"``: absolute RMSEs, stop reason and a history with ``mu``, ``rho``, ``step_norm`` and ``n_fev``.
    """
    if options is None:
        options = LMOptions(**kwargs)
    elif kwargs:
        options = dataclasses.replace(options, **kwargs)
    if log_every < 1 or int(log_every) != log_every:
        raise ValueError(f"log_every must be a positive integer, got {log_every!r}")
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    net = _NetJacobian(model, X, y)
    rows = _chunk_rows(net.n_out, net.lay.n_params, chunk_size, max_jacobian_bytes)
    Xt = yt = None
    if X_test is not None:
        Xt = _as_X(X_test, net.device)
        yt = torch.as_tensor(np.asarray(y_test, dtype=np.float64)).to(net.device).reshape(Xt.shape[0], -1)
    n_train = net.y.numel()
    keys = ("step", "train_rmse", "test_rmse", "time_s", "mu", "rho", "step_norm", "accel", "n_fev")
    hist: dict[str, list] = {k: [] for k in keys}

    def test_rmse(theta) -> float:
        if Xt is None:
            return math.nan
        return float(torch.sqrt(torch.mean((net.predict(theta, Xt) - yt) ** 2)))

    def on_iteration(row: dict) -> bool:
        step = row["step"]
        if step % log_every == 0:
            _add(hist, row, math.sqrt(2 * row["cost"] / n_train), test_rmse(row["theta"]))
        return bool(callback(row)) if callback is not None else False

    theta0 = flat_params(model)
    _add(hist, dict(step=0, time_s=0.0, mu=math.nan, rho=math.nan, step_norm=0.0, n_fev=1),
         float(np.sqrt(np.mean(net.residual(theta0) ** 2))), test_rmse(theta0))
    with limit_threads(num_threads):
        res = least_squares(net.residual, lambda th: net.blocks(th, rows), theta0, options, callback=on_iteration,
                            rounding=lambda th: net.rounding(th, float(torch.linalg.vector_norm(net.y))))
    _write_back(model, net.lay, res.theta)
    train_rmse = math.sqrt(2 * res.cost / n_train)
    final_test = test_rmse(res.theta)
    if hist["step"][-1] != res.history["step"][-1]:
        last = {k: res.history[k][-1] for k in ("step", "time_s", "mu", "rho", "step_norm", "accel", "n_fev")}
        _add(hist, last, train_rmse, final_test)
    return OptimResult(
        method="lm",
        theta=res.theta.copy(),
        train_rmse=train_rmse,
        test_rmse=final_test,
        n_iter=res.n_iter,
        n_fev=res.n_fev,
        stop_reason=res.stop_reason,
        message=res.message,
        wall_s=res.wall_s,
        history={k: np.asarray(v, dtype=np.int64 if k in ("step", "n_fev") else np.float64) for k, v in hist.items()},
        info={"options": dataclasses.asdict(options), "chunk_points": rows, "n_params": net.lay.n_params,
              "final_mu": res.mu},
    )


def _add(hist: dict[str, list], row: dict, train: float, test: float) -> None:
    hist["step"].append(int(row["step"]))
    hist["train_rmse"].append(train)
    hist["test_rmse"].append(test)
    for k in ("time_s", "mu", "rho", "step_norm", "accel", "n_fev"):
        hist[k].append(row.get(k, math.nan))
