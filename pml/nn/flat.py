"""Neural networks as functions of one flat float64 parameter vector (paper §4), and what an optimiser reports.

:class:`FlatModel` evaluates a module with ``torch.func.functional_call`` on views of ``theta``: no copies, and loss and
gradient from one forward and one backward pass. The authors' scripts copied the vector into the module and computed
loss and gradient in separate passes (:mod:`pml.benchmarks.bfgs` times the difference)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

__all__ = ["FlatModel", "OptimResult"]


def _as_tensor(a, dtype: torch.dtype, device: torch.device, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach().to(device=device, dtype=dtype)
    else:
        t = torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device)
    if t.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    return t


class FlatModel:
    """An ``nn.Module`` as a function of one flat parameter vector, bound to a data set; the loss is ``nn.MSELoss``'s
    over all points and outputs. A float32 parameter is an error, not a silent cast."""

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
    """What an optimiser did. RMSEs are absolute (sqrt of the MSE), as plotted in Figs. 8-9."""

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


def _test_data(flat: FlatModel, X_test, y_test):
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    if X_test is None:
        return None, None
    return flat._data(X_test, y_test, "X_test", "y_test")
