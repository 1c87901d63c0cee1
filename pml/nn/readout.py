"""Exact least-squares output layers (variable projection) for one-hidden-layer tanh networks.

The paper (§4) trains all parameters by BFGS/Adam. For fixed hidden parameters the best output weights solve a linear
least-squares problem; solving it exactly and optimising only the hidden ones is variable projection (Golub & Pereyra,
SIAM J. Numer. Anal. 10 (1973) 413; Kaufman, BIT 15 (1975) 49; Newman et al., SIMODS 2021). :func:`solve_readout` solves
by truncated SVD, never the normal equations; :func:`uniform_geometry` (1D, the layout of samlayton99/precision-mlps)
and :func:`random_geometry` (any d) place the hidden units; :func:`fit` chooses them and ``rcond`` on a validation
split; :func:`refine` optimises the hidden layer by Levenberg-Marquardt with Kaufman's Jacobian. Every result is a
float64 ``nn.Sequential(Linear(d, M), Tanh(), Linear(M, 1))``."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Sequence

import numpy as np
import scipy.linalg
import torch
from torch import nn

from pml.data import as_inputs
from pml.nn import lm
from pml.nn.networks import count_params
from pml.threads import limit_threads

__all__ = [
    "ReadoutFit",
    "feature_matrix",
    "fit",
    "fit_readout",
    "make_network",
    "random_geometry",
    "refine",
    "solve_readout",
    "uniform_geometry",
]


def _ranges(ranges, dim: int | None = None) -> np.ndarray:
    arr = np.asarray(ranges, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or (dim is not None and arr.shape[0] != dim):
        raise ValueError(f"ranges must be {dim or 'd'} (low, high) pairs, got shape {arr.shape}")
    if np.any(arr[:, 1] <= arr[:, 0]):
        raise ValueError(f"every range needs low < high, got {arr.tolist()}")
    return arr


# ------------------------------------------------------------------------------------------------ geometries
def uniform_geometry(low: float, high: float, n_units: int, *, lam: float = 0.5, halo: int = 3
                     ) -> tuple[np.ndarray, np.ndarray]:
    """1D hidden layer tanh(gamma (x - t_j)), gamma = lam / h, with M centres spaced h apart over [low - halo h, high +
    halo h]: the halo keeps the ends accurate. Returns (W (M, 1), b)."""
    n_units = int(n_units)
    if n_units < 2 * int(halo) + 2:
        raise ValueError(f"n_units must be at least 2 * halo + 2 = {2 * int(halo) + 2}, got {n_units}")
    if not high > low:
        raise ValueError(f"need low < high, got {low}, {high}")
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam}")
    h = (high - low) / (n_units - 1 - 2 * int(halo))
    centres = low - halo * h + h * np.arange(n_units)
    gamma = lam / h
    return np.full((n_units, 1), gamma), -gamma * centres


def random_geometry(ranges, n_units: int, *, scale: float = 1.0, bias_range: float = 1.0, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Random tanh features on inputs mapped to [-1, 1]^d (returned in raw coordinates): w ~ N(0, scale^2 I), biases
    that put steep units' transitions in the box; a small ``scale`` gives near-flat units spanning low-degree
    polynomials."""
    box = _ranges(ranges)
    dim = box.shape[0]
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    rng = np.random.default_rng(seed)
    Wz = scale * rng.standard_normal((int(n_units), dim))
    zc = rng.uniform(-1.0, 1.0, size=(int(n_units), dim))
    bz = rng.uniform(-bias_range, bias_range, size=int(n_units)) - np.einsum("ij,ij->i", Wz, zc)
    centre, half = box.mean(axis=1), (box[:, 1] - box[:, 0]) / 2
    W = Wz / half
    return W, bz - W @ centre


# --------------------------------------------------------------------------------------------------- network
def make_network(W, b, coef=None, bias: float = 0.0) -> nn.Sequential:
    """``nn.Sequential(Linear(d, M), Tanh(), Linear(M, 1))`` in float64 with the given hidden layer (W, b) and output
    weights ``coef`` (zeros if None) and output bias (no random initialisation: the global RNG is untouched)."""
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if W.ndim != 2 or b.shape[0] != W.shape[0]:
        raise ValueError(f"W must be (M, d) and b (M,), got {W.shape} and {b.shape}")
    M, d = W.shape
    first = nn.utils.skip_init(nn.Linear, d, M, dtype=torch.float64)
    last = nn.utils.skip_init(nn.Linear, M, 1, dtype=torch.float64)
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(W))
        first.bias.copy_(torch.from_numpy(b))
        last.weight.copy_(torch.zeros(1, M, dtype=torch.float64) if coef is None
                          else torch.from_numpy(np.asarray(coef, dtype=np.float64).reshape(1, M)))
        last.bias.fill_(float(bias))
    return nn.Sequential(first, nn.Tanh(), last)


def feature_matrix(W, b, X) -> np.ndarray:
    """H = tanh(X W^T + b), computed by the same torch modules as the network's first two layers."""
    net = make_network(W, b)
    with torch.no_grad():
        return net[1](net[0](torch.from_numpy(as_inputs(X)))).numpy()


# ---------------------------------------------------------------------------------------------------- solves
@dataclasses.dataclass
class _SVD:
    U: np.ndarray
    s: np.ndarray
    Vt: np.ndarray
    col_scale: np.ndarray

    @classmethod
    def of(cls, H: np.ndarray) -> "_SVD":
        A = np.column_stack([H, np.ones(H.shape[0])])
        scale = np.linalg.norm(A, axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        U, s, Vt = scipy.linalg.svd(A / scale, full_matrices=False, check_finite=False, lapack_driver="gesdd")
        return cls(U, s, Vt, scale)

    def coef(self, y: np.ndarray, rcond: float) -> np.ndarray:
        keep = self.s > rcond * self.s[0]
        c = self.Vt[keep].T @ ((self.U[:, keep].T @ y) / self.s[keep])
        return c / self.col_scale

    def refined(self, H: np.ndarray, y: np.ndarray, rcond: float, steps: int) -> np.ndarray:
        """``coef`` plus ``steps`` rounds of iterative refinement: c += coef(y - [H, 1] c)."""
        c = self.coef(y, rcond)
        for _ in range(steps):
            c = c + self.coef(y - (H @ c[:-1] + c[-1]), rcond)
        return c


def solve_readout(H, y, rcond: float = 1e-14, refine_steps: int = 1) -> tuple[np.ndarray, float, int]:
    """Output weights and bias minimising |H c + c0 - y| by truncated SVD of [H, 1] (columns scaled to unit norm)."""
    H = np.asarray(H, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if H.ndim != 2 or H.shape[0] != y.size:
        raise ValueError(f"H must be (n, M) with n = len(y) = {y.size}, got {H.shape}")
    if not 0 < rcond < 1:
        raise ValueError(f"rcond must lie in (0, 1), got {rcond}")
    if isinstance(refine_steps, bool) or int(refine_steps) != refine_steps or refine_steps < 0:
        raise ValueError(f"refine_steps must be a non-negative integer, got {refine_steps!r}")
    svd = _SVD.of(H)
    coef = svd.refined(H, y, rcond, int(refine_steps))
    return coef[:-1], float(coef[-1]), int(np.sum(svd.s > rcond * svd.s[0]))


@dataclasses.dataclass
class ReadoutFit:
    """A solved one-hidden-layer network and how it was chosen."""

    network: nn.Sequential
    geometry: str
    params: dict
    rcond: float
    rank: int
    n_train: int
    train_rmse: float
    val_rmse: float  # the validation RMSE that chose ``params`` and ``rcond`` (NaN if nothing was chosen)
    seconds: float
    candidates: list[dict] = dataclasses.field(default_factory=list)

    @property
    def n_params(self) -> int:
        return count_params(self.network)

    def predict(self, X) -> np.ndarray:
        """The network's output."""
        with torch.no_grad():
            return self.network(torch.from_numpy(as_inputs(X))).reshape(-1).numpy()


def fit_readout(X, y, W, b, *, rcond: float = 1e-14, refine_steps: int = 1) -> ReadoutFit:
    """Solve the output layer for the hidden layer (W, b) on (X, y); return the network."""
    t0 = time.perf_counter()
    X = as_inputs(X)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    H = feature_matrix(W, b, X)
    coef, c0, rank = solve_readout(H, y, rcond, refine_steps)
    net = make_network(W, b, coef, c0)
    fitted = ReadoutFit(net, "given", {}, rcond, rank, X.shape[0], math.nan, math.nan, 0.0)
    fitted.train_rmse = float(np.sqrt(np.mean((fitted.predict(X) - y) ** 2)))
    fitted.seconds = time.perf_counter() - t0
    return fitted


GEOMETRIES = ("uniform", "random")


def _geometry(kind: str, ranges: np.ndarray, params: dict, seed: int):
    if kind == "uniform":
        if ranges.shape[0] != 1:
            raise ValueError(f"the 'uniform' geometry is 1D; for d = {ranges.shape[0]} use 'random'")
        return uniform_geometry(ranges[0, 0], ranges[0, 1], params["n_units"], lam=params.get("lam", 0.5),
                                halo=params.get("halo", 3))
    if kind == "random":
        return random_geometry(ranges, params["n_units"], scale=params.get("scale", 1.0),
                               bias_range=params.get("bias_range", 1.0), seed=seed)
    raise ValueError(f"geometry must be one of {list(GEOMETRIES)}, got {kind!r}")


def fit(
    X,
    y,
    ranges,
    *,
    geometry: str = "uniform",
    grid: dict[str, Sequence] | None = None,
    rconds: Sequence[float] = (1e-12, 1e-13, 1e-14, 1e-15),
    val_fraction: float = 0.2,
    refine_steps: int = 1,
    seed: int = 0,
    num_threads: int | None = 1,
) -> ReadoutFit:
    """Choose hidden geometry and ``rcond`` on a validation split of the training data, refit the winner on all of it.

    Parameters
    ----------
    X, y : array_like
        (n, d) inputs and (n,) targets.
    ranges : sequence of (float, float)
        The input box.
    geometry : str, optional
        ``"uniform"`` (1D, default; ``n_units``, ``lam``, ``halo``) or ``"random"`` (``n_units``, ``scale``,
        ``bias_range``).
    grid : dict, optional
        Candidate values per geometry parameter; must include ``n_units``.
    rconds : sequence of float, optional
        Candidate SVD cutoffs (default 1e-12 to 1e-15).
    val_fraction : float, optional
        Fraction held out to choose (default 0.2).
    refine_steps : int, optional
        Rounds of iterative refinement (default 1).
    seed : int, optional
        Seed of the split and the random geometry (default 0).
    num_threads : int or None, optional
        BLAS threads (default 1).

    Returns
    -------
    ReadoutFit
        The refitted winner and every candidate's score.
    """
    t0 = time.perf_counter()
    X = as_inputs(X)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.size != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} points but y has {y.size}")
    box = _ranges(ranges, X.shape[1])
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {list(GEOMETRIES)}, got {geometry!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    grid = dict(grid or ({"n_units": [61], "lam": [0.5]} if geometry == "uniform" else
                         {"n_units": [400], "scale": [1.0]}))
    if "n_units" not in grid:
        raise ValueError("grid must include 'n_units'")
    keys = sorted(grid)
    rng = np.random.default_rng([seed, 3])
    perm = rng.permutation(X.shape[0])
    n_val = max(1, int(round(val_fraction * X.shape[0])))
    val, tr = perm[:n_val], perm[n_val:]
    candidates = []
    with limit_threads(num_threads):
        for values in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, values))
            W, b = _geometry(geometry, box, params, seed)
            H = feature_matrix(W, b, X)
            svd = _SVD.of(H[tr])
            for rc in rconds:
                coef = svd.refined(H[tr], y[tr], rc, refine_steps)
                pred = H[val] @ coef[:-1] + coef[-1]
                candidates.append({**params, "rcond": rc, "val_rmse": float(np.sqrt(np.mean((pred - y[val]) ** 2)))})
        best = min(candidates, key=lambda c: c["val_rmse"])
        params = {k: best[k] for k in keys}
        W, b = _geometry(geometry, box, params, seed)
        fitted = fit_readout(X, y, W, b, rcond=best["rcond"], refine_steps=refine_steps)
    fitted.geometry, fitted.params, fitted.val_rmse = geometry, params, best["val_rmse"]
    fitted.candidates = candidates
    fitted.seconds = time.perf_counter() - t0
    return fitted


# ------------------------------------------------------------------------------------------------------ VarPro
def refine(X, y, W, b, *, rcond: float = 1e-14, max_iter: int = 50, num_threads: int | None = 1,
           **lm_options) -> tuple[ReadoutFit, lm.LMResult]:
    """Optimise the hidden layer (W, b) of the reduced problem min_theta |(I - P(theta)) y| (VarPro)."""
    X = as_inputs(X)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    W = np.asarray(W, dtype=np.float64)
    M, d = W.shape
    theta0 = np.concatenate([W.reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)])
    cache: dict = {}

    def state(theta):
        key = theta.tobytes()
        if cache.get("key") != key:
            Wt, bt = theta[: M * d].reshape(M, d), theta[M * d:]
            H = np.tanh(X @ Wt.T + bt)
            svd = _SVD.of(H)
            keep = svd.s > rcond * svd.s[0]
            Ur = svd.U[:, keep]
            coef = svd.refined(H, y, rcond, 1)
            r = (H @ coef[:-1] + coef[-1]) - y
            cache.update(key=key, H=H, Ur=Ur, coef=coef, r=r)
        return cache

    def residual(theta):
        return state(theta)["r"].copy()

    def jacobian(theta):
        st = state(theta)
        c = st["coef"][:-1]
        S = (1.0 - st["H"] ** 2) * c  # (n, M): c_j sech^2
        D = np.concatenate([(S[:, :, None] * X[:, None, :]).reshape(X.shape[0], M * d), S], axis=1)
        return D - st["Ur"] @ (st["Ur"].T @ D)

    def rounding(theta):  # forward error of H c + c0: eps (|H| |c| + |c0|)
        st = state(theta)
        mag = np.abs(st["H"]) @ np.abs(st["coef"][:-1]) + abs(st["coef"][-1])
        return float(np.finfo(np.float64).eps * np.linalg.norm(mag))

    with limit_threads(num_threads):
        res = lm.least_squares(residual, jacobian, theta0, max_iter=max_iter, rounding=rounding, **lm_options)
        Wn, bn = res.theta[: M * d].reshape(M, d), res.theta[M * d:]
        fitted = fit_readout(X, y, Wn, bn, rcond=rcond, refine_steps=1)
    fitted.geometry = "refined"
    return fitted, res
