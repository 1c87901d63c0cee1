"""Multi-stage residual fitting (Y. Wang & C.-Y. Lai, J. Comput. Phys. 504 (2024) 112865), trained stage by stage with
Levenberg-Marquardt: paper §4.2's boosting, with each stage's target the residual over its RMS (Wang & Lai's Algorithm
1; Michaud et al. divide by the mean absolute residual, :mod:`pml.nn.boosting`).

Later stages get a first layer scaled by 2 pi f_d, f_d the residual's dominant frequency (:func:`dominant_frequency`; in
d > 1 a plane-wave periodogram, our heuristic where their FFT needs a grid), tanh throughout so that the stages merge
(:func:`pml.nn.boosting.merge_stages`); with a ``sampler``, at least ``points_per_period`` points per period; optionally
a least-squares output layer to start from. Inputs are mapped to [-1, 1]^d and the maps folded into the first and last
layers, so every network takes raw inputs."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from pml.data import as_inputs
from pml.nn import lm
from pml.nn.boosting import merge_stages, predict_stages
from pml.nn.networks import count_params, make_mlp

__all__ = ["MultistageResult", "StageRecord", "dominant_frequency", "fit", "default_trainer", "affine_fold"]


def dominant_frequency(X, r, *, n_directions: int = 64, n_freqs: int = 128, seed: int = 0) -> float:
    """Dominant frequency of r_i = r(x_i) in cycles per unit of x: the FFT of r on a uniform grid in 1D, a plane-wave
    periodogram over random directions in d > 1; 0 for a constant residual."""
    X = as_inputs(X)
    r = np.asarray(r, dtype=np.float64).reshape(-1)
    if r.size != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} points but r has {r.size} values")
    r = r - r.mean()
    if not np.any(r):
        return 0.0
    n, dim = X.shape
    if dim == 1:
        x = X[:, 0]
        order = np.argsort(x, kind="stable")
        xs, rs = x[order], r[order]
        lo, hi = float(xs[0]), float(xs[-1])
        if hi <= lo:
            raise ValueError("all points coincide: no frequency can be estimated")
        n_grid = max(n, 256)
        grid = np.linspace(lo, hi, n_grid)
        spectrum = np.abs(np.fft.rfft(np.interp(grid, xs, rs)))
        freqs = np.fft.rfftfreq(n_grid, d=(hi - lo) / (n_grid - 1))
        return float(freqs[1 + int(np.argmax(spectrum[1:]))])
    extent = float(np.max(np.ptp(X, axis=0)))
    if extent <= 0:
        raise ValueError("all points coincide: no frequency can be estimated")
    f_nyq = 0.5 * n ** (1.0 / dim) / extent
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((int(n_directions), dim))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    freqs = np.linspace(f_nyq / n_freqs, f_nyq, int(n_freqs))
    proj = (X - X.mean(axis=0)) @ V.T  # (n, n_dir)
    best_f, best_p = 0.0, -1.0
    for f in freqs:
        phase = 2 * np.pi * f * proj
        power = (r @ np.cos(phase)) ** 2 + (r @ np.sin(phase)) ** 2
        j = int(np.argmax(power))
        if power[j] > best_p:
            best_f, best_p = float(f), float(power[j])
    return best_f


# ------------------------------------------------------------------------------------------ affine folding
def affine_fold(net: nn.Sequential, in_centre=None, in_half=None, out_scale: float = 1.0,
                out_offset: float = 0.0) -> nn.Sequential:
    """A copy of ``net`` that takes raw x instead of z = (x - in_centre) / in_half, and returns
    out_scale * net(z) + out_offset (first and last ``nn.Linear`` layers rewritten; exact up to rounding)."""
    net = copy.deepcopy(net)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    first, last = linears[0], linears[-1]
    with torch.no_grad():
        if in_centre is not None:
            c = torch.as_tensor(np.asarray(in_centre, dtype=np.float64), dtype=first.weight.dtype)
            h = torch.as_tensor(np.asarray(in_half, dtype=np.float64), dtype=first.weight.dtype)
            W = first.weight / h
            first.bias.copy_(first.bias - W @ c)
            first.weight.copy_(W)
        if out_scale != 1.0 or out_offset != 0.0:
            last.weight.mul_(out_scale)
            last.bias.mul_(out_scale).add_(out_offset)
    return net


def _box(X: np.ndarray, ranges) -> tuple[np.ndarray, np.ndarray]:
    if ranges is None:
        lo, hi = X.min(axis=0), X.max(axis=0)
    else:
        arr = np.asarray(ranges, dtype=np.float64)
        if arr.shape != (X.shape[1], 2):
            raise ValueError(f"ranges must be {X.shape[1]} (low, high) pairs, got shape {arr.shape}")
        lo, hi = arr[:, 0], arr[:, 1]
    half = (hi - lo) / 2
    if np.any(half <= 0):
        raise ValueError("each input needs a positive range (low < high)")
    return (lo + hi) / 2, half


def _hidden(net: nn.Sequential, Z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return nn.Sequential(*list(net)[:-1])(Z)


def _readout_init(net: nn.Sequential, Z: np.ndarray, target: np.ndarray, rcond: float = 1e-12) -> None:
    """Set the last layer to the least-squares fit of ``target`` on the net's last hidden features."""
    import scipy.linalg

    Zt = torch.from_numpy(Z)
    H = _hidden(net, Zt).numpy()
    A = np.column_stack([H, np.ones(H.shape[0])])
    coef = scipy.linalg.lstsq(A, target, cond=rcond, lapack_driver="gelsd", check_finite=False)[0]
    last = net[len(net) - 1]
    with torch.no_grad():
        last.weight.copy_(torch.from_numpy(coef[:-1]).reshape(1, -1))
        last.bias.copy_(torch.tensor([coef[-1]], dtype=torch.float64))


# -------------------------------------------------------------------------------------------------- trainer
def default_trainer(max_iter: int = 1000, time_limit: float | None = None, **options) -> Callable:
    """:func:`pml.nn.lm.train` with these options (``scaling="jac"`` unless given): the default stage trainer."""
    options.setdefault("scaling", "jac")
    return functools.partial(lm.train, max_iter=max_iter, time_limit=time_limit, **options)


@dataclasses.dataclass
class StageRecord:
    """One stage: eps_k (the scale), the frequency estimate, its data size and the combined model's RMSEs."""

    scale: float
    f_dominant: float
    kappa: float
    n_train: int
    n_params: int
    train_rmse: float  # combined model after this stage, absolute
    val_rmse: float  # NaN without validation data
    seconds: float
    result: Any  # the trainer's return value (an OptimResult for LM)


@dataclasses.dataclass
class MultistageResult:
    """Stage networks f_k (raw inputs) with scales eps_k; the model is F(x) = sum_k eps_k f_k(x)."""

    models: list[nn.Sequential]
    scales: list[float]
    stages: list[StageRecord]

    @property
    def n_params(self) -> int:
        return int(sum(count_params(m) for m in self.models))

    def network(self) -> nn.Sequential:
        """The stages merged into one ``nn.Sequential`` (:func:`pml.nn.boosting.merge_stages`)."""
        return merge_stages(self.models, self.scales)

    def predict(self, X) -> np.ndarray:
        """sum_k eps_k f_k(X) as float64 numpy of shape (n,) (:func:`pml.nn.boosting.predict_stages`)."""
        return predict_stages(self.models, self.scales, as_inputs(X))


def fit(
    X,
    y,
    *,
    n_stages: int = 3,
    width: int | Sequence[int] = 10,
    depth: int = 3,
    activation: str = "tanh",
    trainer: Callable | Sequence[Callable] | None = None,
    ranges=None,
    frequency_aware: bool = True,
    readout_init: bool = True,
    init_scale: float = 1.0,
    sampler: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]] | None = None,
    points_per_period: float = 16.0,
    max_train: int = 20_000,
    X_val=None,
    y_val=None,
    seed: int = 0,
) -> MultistageResult:
    """Fit ``n_stages`` tanh MLPs in sequence, each to the RMS-normalised residual of the ones before.

    Parameters
    ----------
    X, y : array_like
        (n, d) inputs and (n,) targets.
    n_stages, width, depth : int, optional
        Stages (default 3), their width or one width per stage (default 10) and ``nn.Linear`` layers (default 3).
    activation : str, optional
        Must be ``"tanh"`` (the default).
    trainer : callable or sequence of callable, optional
        ``trainer(model, X, y, X_val=None, y_val=None)`` fits a stage in place, or one per stage (default
        :func:`default_trainer`).
    ranges : sequence of (float, float), optional
        The input box mapped to [-1, 1]^d (default: the data's bounding box).
    frequency_aware, readout_init : bool, optional
        Scale later stages' first layers to the residual's dominant frequency; start each output layer at its
        least-squares solution (both default True).
    init_scale : float, optional
        Multiplies stage 1's first-layer weights (every stage's without ``frequency_aware``); default 1.
    sampler : callable, optional
        ``sampler(n, rng)`` returns n fresh pairs; a stage then gets ``points_per_period`` (default 16) points per
        period of the residual's frequency per axis, up to ``max_train`` (default 20,000).
    points_per_period, max_train : float, int, optional
        See ``sampler``.
    X_val, y_val : array_like, optional
        Validation data, only logged.
    seed : int, optional
        Seeds everything (default 0).

    Returns
    -------
    MultistageResult
        The stages, their scales and records.
    """
    if isinstance(n_stages, bool) or int(n_stages) != n_stages or n_stages < 1:
        raise ValueError(f"n_stages must be a positive integer, got {n_stages!r}")
    n_stages = int(n_stages)
    widths = [int(width)] * n_stages if np.ndim(width) == 0 else [int(w) for w in width]
    if len(widths) != n_stages:
        raise ValueError(f"width must be one integer or {n_stages} integers, got {width!r}")
    if not (init_scale > 0 and math.isfinite(init_scale)):
        raise ValueError(f"init_scale must be positive and finite, got {init_scale!r}")
    if activation != "tanh":
        raise ValueError(f"activation must be 'tanh' (the frequency-aware first layer assumes it), got {activation!r}")
    trainers = list(trainer) if isinstance(trainer, (list, tuple)) else [trainer] * n_stages
    if len(trainers) != n_stages:
        raise ValueError(f"trainer must be one callable or {n_stages}, got {len(trainers)}")
    trainers = [default_trainer() if t is None else t for t in trainers]
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither")
    X = as_inputs(X)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.size != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} points but y has {y.size}")
    dim = X.shape[1]
    centre, half = _box(X, ranges)
    Xv = None if X_val is None else as_inputs(X_val)
    yv = None if y_val is None else np.asarray(y_val, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng([seed, 7])
    mean, std = float(y.mean()), float(y.std())
    if std == 0:
        std = max(abs(mean), 1.0)
    models: list[nn.Sequential] = []
    scales: list[float] = []
    stages: list[StageRecord] = []
    for k in range(n_stages):
        t0 = time.perf_counter()
        f_d = kappa = math.nan
        if k == 0:
            scale, offset = std, mean
        else:
            resid = y - _predict(models, scales, X)
            scale, offset = float(np.sqrt(np.mean(resid**2))), 0.0
            if scale == 0:
                break  # exact fit: nothing left for later stages
            if frequency_aware or sampler is not None:
                f_d = dominant_frequency((X - centre) / half, resid, seed=seed + k)
                kappa = 2 * math.pi * f_d
            if sampler is not None and f_d > 0:
                per_axis = math.ceil(points_per_period * f_d * 2.0)  # normalised extent is 2
                n_want = min(int(max_train), per_axis**dim)
                if n_want > X.shape[0]:
                    X_new, y_new = sampler(n_want - X.shape[0], rng)
                    X = np.vstack([X, as_inputs(X_new)])
                    y = np.concatenate([y, np.asarray(y_new, dtype=np.float64).reshape(-1)])
                    resid = y - _predict(models, scales, X)
                    scale = float(np.sqrt(np.mean(resid**2)))
        Z = (X - centre) / half
        target = (y - offset) / scale if k == 0 else (y - _predict(models, scales, X)) / scale
        net = make_mlp(dim, widths[k], depth, activation, seed=seed + 1000 * k)
        if init_scale != 1.0 and (k == 0 or not frequency_aware):
            with torch.no_grad():
                net[0].weight.mul_(init_scale)
        if k > 0 and frequency_aware and kappa > 0:
            first = net[0]
            with torch.no_grad():
                first.weight.mul_(kappa)
                idx = rng.integers(0, Z.shape[0], size=first.out_features)
                first.bias.copy_(-(first.weight * torch.from_numpy(Z[idx])).sum(dim=1))
        if readout_init:
            _readout_init(net, Z, target)
        args = [Z, target]
        if Xv is not None:
            tv = (yv - offset) / scale if k == 0 else (yv - _predict(models, scales, Xv)) / scale
            args += [(Xv - centre) / half, tv]
        result = trainers[k](net, *args)
        raw = affine_fold(net, centre, half, 1.0, offset / scale)
        models.append(raw)
        scales.append(scale)
        train = float(np.sqrt(np.mean((_predict(models, scales, X) - y) ** 2)))
        val = math.nan if Xv is None else float(np.sqrt(np.mean((_predict(models, scales, Xv) - yv) ** 2)))
        stages.append(StageRecord(scale=scale, f_dominant=f_d, kappa=kappa, n_train=int(X.shape[0]),
                                  n_params=count_params(raw), train_rmse=train, val_rmse=val,
                                  seconds=time.perf_counter() - t0, result=result))
    return MultistageResult(models=models, scales=scales, stages=stages)


def _predict(models, scales, X: np.ndarray) -> np.ndarray:
    return MultistageResult(models, scales, []).predict(X) if models else np.zeros(X.shape[0])
