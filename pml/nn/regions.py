"""Linear-region maps of piecewise-linear models on a 1D or 2D grid (paper §2, Fig. 1b).

Each grid point gets the label of the linear piece it lies in (0..k-1, -1 outside): for a ReLU network the on/off
pattern of every ReLU (``method="pattern"``, exact) or the input gradient, as the authors coloured Fig. 1b
(``method="jacobian"``, equal gradients merge); for simplex interpolation the simplex index (the authors used rounded
finite differences, which merge coplanar neighbours; the index is exact)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["METHODS", "count_regions", "grid", "relu_regions", "simplex_regions"]

METHODS = ("pattern", "jacobian")


def grid(ranges: Sequence[Sequence[float]], n: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """An n-per-axis grid on the box ``ranges`` (1 or 2 axes): points (n**d, d) and the map shape (n,)*d."""
    arr = np.asarray(ranges, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] not in (1, 2):
        raise ValueError(f"ranges must be 1 or 2 (low, high) pairs, got {arr.tolist()}")
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    axes = [np.linspace(lo, hi, int(n)) for lo, hi in arr]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1), (int(n),) * len(axes)


def _relabel(keys: np.ndarray) -> np.ndarray:
    """Consecutive labels 0..k-1 for the distinct rows of ``keys`` (n, m)."""
    if keys.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def relu_regions(model: nn.Module, X, input_mean=None, input_std=None, method: str = "pattern",
                 decimals: int | None = None, chunk_size: int = 65536) -> np.ndarray:
    """Integer region label of each point X (n, d) for a ReLU network (any module built from ``nn.ReLU`` layers).

    Parameters
    ----------
    model : torch.nn.Module
        A ReLU network.
    X : array_like
        (n, d) points.
    input_mean, input_std : array_like, optional
        The run's input standardisation (``TrainResult.input_mean`` ...), applied first.
    method : str, optional
        ``"pattern"`` (default) or ``"jacobian"`` (the module's two labellings).
    decimals : int, optional
        Round the gradients first (``"jacobian"`` only).
    chunk_size : int, optional
        Points per pass (default 65536).

    Returns
    -------
    numpy.ndarray
        (n,) labels 0..k-1.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {list(METHODS)}")
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the model has no nn.ReLU layers: linear regions are defined for ReLU networks only")
    param = next(model.parameters())
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64), dtype=param.dtype, device=param.device)
    if Xt.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {tuple(Xt.shape)}")
    if input_mean is not None:
        Xt = (Xt - torch.as_tensor(input_mean, dtype=param.dtype, device=param.device)) / torch.as_tensor(
            input_std, dtype=param.dtype, device=param.device)
    keys = []
    for start in range(0, Xt.shape[0], chunk_size):
        xb = Xt[start:start + chunk_size]
        if method == "pattern":
            pattern: list[torch.Tensor] = []
            hooks = [m.register_forward_hook(lambda _m, inp, _out: pattern.append(inp[0] > 0))  # noqa: B023
                     for m in relus]  # (removed below, within this iteration)
            try:
                with torch.no_grad():
                    model(xb)
            finally:
                for h in hooks:
                    h.remove()
            keys.append(torch.cat([p.reshape(p.shape[0], -1) for p in pattern], dim=1).cpu().numpy())
        else:
            xb = xb.clone().requires_grad_(True)
            with torch.enable_grad():
                out = model(xb).sum()  # output i depends on input i only: d(sum)/dx_i = the Jacobian at x_i
                (jac,) = torch.autograd.grad(out, xb)
            jac = jac.detach().cpu().numpy().astype(np.float64)
            keys.append(np.round(jac, decimals) if decimals is not None else jac)
    if not keys:
        return np.zeros(0, dtype=np.int64)
    return _relabel(np.concatenate(keys, axis=0))


def simplex_regions(interpolator, X) -> np.ndarray:
    """Simplex (d >= 2) or interval (d = 1) index of each point for a :class:`pml.approx.simplex.SimplexInterpolator`,
    relabelled 0..k-1 in order of index; -1 outside the convex hull."""
    cell = np.asarray(interpolator.find(X))
    labels = np.full(cell.shape, -1, dtype=np.int64)
    inside = cell >= 0
    if inside.any():
        labels[inside] = _relabel(cell[inside, None])
    return labels


def count_regions(labels) -> int:
    """Number of distinct regions (labels >= 0; -1 marks points outside any region)."""
    labels = np.asarray(labels).reshape(-1)
    return int(np.unique(labels[labels >= 0]).size)
