"""The multiplication gadget of Lin, Tegmark & Rolnick (2017): a 4-neuron network computing x*y (paper §3, Fig. 6b).

x y ~= [S(l(x+y)) - S(l(x-y))] / (4 l^2 sigma''(0)) with S(t) = sigma(t) + sigma(-t); with softplus the truncation error
is -l^2 (x^3 y + x y^3) / 12 + O(l^4) while float64 rounding grows as eps/l^2, so the error bottoms out near sqrt(eps)
(:func:`gadget_error_curve`). Beyond the paper: Richardson extrapolation over p scales (:func:`richardson_weights`)
lowers the floor to about eps^(p/(p+1)). :func:`make_dot_product_network` builds the exact width-12 network for I.11.19.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from pml import metrics

__all__ = [
    "ACTIVATION",
    "DotProductCurve",
    "GadgetCurve",
    "SOFTPLUS_D2",
    "dot_product_error_curve",
    "evaluate_numpy",
    "gadget_error_curve",
    "gadget_truncation_error",
    "gadget_weights",
    "make_dot_product_network",
    "make_multiplication_network",
    "multiply",
    "richardson_weights",
    "softplus",
]

ACTIVATION = "softplus"  # sigma(t) = log(1 + e^t)
SOFTPLUS_D2 = 0.25  # sigma''(0) for softplus
BACKENDS = ("torch", "numpy")


def _check_lambda(lam) -> float:
    lam = float(lam)
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"the scale lambda must be a positive finite number, got {lam!r}")
    return lam


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def richardson_weights(order: int = 1, ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Scales ratio^i and weights w_i (sum w_i = 1) that cancel the first ``order - 1`` terms of the gadget's error
    series in l^2 (Richardson extrapolation); order 2, ratio 2: (4/3, -1/3)."""
    order = _check_positive_int(order, "order")
    ratio = float(ratio)
    if not ratio > 1:
        raise ValueError(f"ratio must be > 1, got {ratio!r}")
    scales = ratio ** np.arange(order, dtype=np.float64)
    vandermonde = np.array([scales ** (2 * m) for m in range(order)])
    rhs = np.zeros(order)
    rhs[0] = 1.0
    return scales, np.linalg.solve(vandermonde, rhs)


def gadget_weights(lam: float, order: int = 1, ratio: float = 2.0) -> tuple[np.ndarray, ...]:
    """Weights (W1, b1, W2, b2) of the ``order``-scale multiplication network: per scale mu the units see +-mu(x+y) and
    +-mu(x-y) with output weights w_i (+1, +1, -1, -1) / (4 mu^2 sigma''(0)); zero biases (the sigma(0) terms cancel).
    """
    lam = _check_lambda(lam)
    scales, weights = richardson_weights(order, ratio)
    pattern_in = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    pattern_out = np.array([1.0, 1.0, -1.0, -1.0])
    W1 = np.concatenate([lam * s * pattern_in for s in scales])
    W2 = np.concatenate([w / (4 * (lam * s) ** 2 * SOFTPLUS_D2) * pattern_out for s, w in zip(scales, weights)])
    return W1, np.zeros(W1.shape[0]), W2[None, :], np.zeros(1)


def softplus(t) -> np.ndarray:
    """sigma(t) = log(1 + e^t), evaluated stably as ``logaddexp(0, t)``."""
    return np.logaddexp(0.0, np.asarray(t, dtype=np.float64))


def evaluate_numpy(weights: Sequence[np.ndarray], X) -> np.ndarray:
    """Evaluate a Linear-softplus-Linear network given as numpy weights (W1, b1, W2, b2) on X (n, d); shape (n,)."""
    W1, b1, W2, b2 = (np.asarray(w, dtype=np.float64) for w in weights)
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    if X.shape[1] != W1.shape[1]:
        raise ValueError(f"expected inputs with {W1.shape[1]} columns, got {X.shape[1]}")
    return (softplus(X @ W1.T + b1) @ W2.T + b2)[:, 0]


def multiply(x, y, lam: float, order: int = 1, ratio: float = 2.0) -> np.ndarray:
    """The gadget's approximation of x * y (numpy, float64): the network of :func:`gadget_weights` evaluated."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    X = np.stack([x.reshape(-1), y.reshape(-1)], axis=1)
    return evaluate_numpy(gadget_weights(lam, order, ratio), X).reshape(x.shape)


def _sequential(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray, dtype: torch.dtype) -> nn.Sequential:
    # nn.Linear's default initialisation draws from torch's global RNG; fork it so building a gadget (whose weights
    # are overwritten anyway) leaves the caller's random state untouched.
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(W1.shape[1], W1.shape[0], dtype=dtype), nn.Softplus(),
                              nn.Linear(W1.shape[0], 1, dtype=dtype))
    with torch.no_grad():
        for layer, W, b in ((model[0], W1, b1), (model[2], W2, b2)):
            layer.weight.copy_(torch.as_tensor(W, dtype=dtype))
            layer.bias.copy_(torch.as_tensor(b, dtype=dtype))
    return model


def make_multiplication_network(lam: float, order: int = 1, ratio: float = 2.0,
                                dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``nn.Sequential(Linear(2, 4p), Softplus(), Linear(4p, 1))`` computing x*y (Fig. 6b); ``order = p`` > 1 adds
    Richardson scales. (``nn.Softplus`` returns t for t > 20, far beyond useful scales.)"""
    return _sequential(*gadget_weights(lam, order, ratio), dtype=dtype)


def _dot_product_weights(lam: float, n_pairs: int, order: int, ratio: float) -> tuple[np.ndarray, ...]:
    W1g, b1g, W2g, _ = gadget_weights(lam, order, ratio)
    hidden = W1g.shape[0]
    W1 = np.zeros((n_pairs * hidden, 2 * n_pairs))
    for p in range(n_pairs):  # gadget p reads x_p (column p) and y_p (column n_pairs + p)
        rows = slice(p * hidden, (p + 1) * hidden)
        W1[rows, p] = W1g[:, 0]
        W1[rows, n_pairs + p] = W1g[:, 1]
    return W1, np.tile(b1g, n_pairs), np.tile(W2g, (1, n_pairs)), np.zeros(1)


def make_dot_product_network(lam: float, n_pairs: int = 3, order: int = 1, ratio: float = 2.0,
                             dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """The exact depth-2 network for sum_p x_p y_p, ``n_pairs`` gadgets in parallel (I.11.19: width 12, 97 parameters).
    """
    n_pairs = _check_positive_int(n_pairs, "n_pairs")
    return _sequential(*_dot_product_weights(_check_lambda(lam), n_pairs, order, ratio), dtype=dtype)


def _predict(model_or_weights, X: np.ndarray, backend: str) -> np.ndarray:
    if backend == "torch":
        with torch.no_grad():
            return model_or_weights(torch.as_tensor(X, dtype=torch.float64))[:, 0].numpy()
    return evaluate_numpy(model_or_weights, X)


@dataclass(frozen=True)
class GadgetCurve:
    """Relative RMSE (paper Eq. 1) of the multiplication network against its scale lambda."""

    lambdas: np.ndarray
    rel_rmse: np.ndarray
    order: int
    width: int  # hidden neurons, 4 * order

    @property
    def best_index(self) -> int:
        return int(np.nanargmin(self.rel_rmse))

    @property
    def best_lambda(self) -> float:
        return float(self.lambdas[self.best_index])

    @property
    def best_rel_rmse(self) -> float:
        return float(self.rel_rmse[self.best_index])


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    return backend


def gadget_error_curve(lambdas: Sequence[float], n_points: int = 10_000, seed: int = 0, order: int = 1,
                       low: float = -1.0, high: float = 1.0, ratio: float = 2.0,
                       backend: str = "torch") -> GadgetCurve:
    """Float64 relative RMSE of the ``order``-scale gadget at each lambda on (x, y) uniform in [low, high]^2 (Fig. 6b),
    evaluated by the torch network or, with ``backend="numpy"``, :func:`evaluate_numpy`."""
    backend = _check_backend(backend)
    if not high > low:
        raise ValueError(f"need low < high, got {low}, {high}")
    X = np.random.default_rng(seed).uniform(low, high, size=(int(n_points), 2))
    y = X[:, 0] * X[:, 1]
    lambdas = np.asarray(lambdas, dtype=np.float64).reshape(-1)
    errors = []
    for lam in lambdas:
        weights = gadget_weights(lam, order, ratio)
        model = _sequential(*weights, dtype=torch.float64) if backend == "torch" else weights
        errors.append(metrics.relative_rmse(_predict(model, X, backend), y))
    return GadgetCurve(lambdas, np.array(errors), int(order), 4 * int(order))


def gadget_truncation_error(lambdas: Sequence[float], order: int = 1, n_points: int = 32, seed: int = 0,
                            low: float = -1.0, high: float = 1.0, ratio: float = 2.0, dps: int = 60) -> np.ndarray:
    """Relative RMSE of the gadget in ``dps``-digit arithmetic (mpmath): the truncation error alone, c l^(2 order)."""
    import mpmath  # a sympy dependency; imported here to keep ``import pml.nn.gadget`` light

    order = _check_positive_int(order, "order")
    X = np.random.default_rng(seed).uniform(low, high, size=(int(n_points), 2))
    out = []
    with mpmath.workdps(int(dps)):
        r = mpmath.mpf(ratio)
        scales = [r**i for i in range(order)]
        V = mpmath.matrix([[s ** (2 * m) for s in scales] for m in range(order)])
        rhs = mpmath.matrix([1] + [0] * (order - 1))
        weights = mpmath.lu_solve(V, rhs)
        sp = lambda t: mpmath.log1p(mpmath.exp(t))  # noqa: E731
        points = [(mpmath.mpf(float(a)), mpmath.mpf(float(b))) for a, b in X]
        exact = [a * b for a, b in points]
        den = mpmath.fsum(e**2 for e in exact)
        for lam in np.asarray(lambdas, dtype=np.float64).reshape(-1):
            lam = mpmath.mpf(_check_lambda(lam))
            num = 0
            for (a, b), e in zip(points, exact):
                approx = 0
                for s, w in zip(scales, weights):
                    mu = lam * s
                    S = sp(mu * (a + b)) + sp(-mu * (a + b)) - sp(mu * (a - b)) - sp(-mu * (a - b))
                    approx += w * S / (4 * mu**2 * mpmath.mpf(SOFTPLUS_D2))
                num += (approx - e) ** 2
            out.append(float(mpmath.sqrt(num / den)))
    return np.array(out)


@dataclass(frozen=True)
class DotProductCurve:
    """Test relative and absolute RMSE of the exact dot-product network against lambda (I.11.19, Fig. 6)."""

    lambdas: np.ndarray
    rel_rmse: np.ndarray
    rmse: np.ndarray
    order: int
    width: int
    n_params: int

    @property
    def best_index(self) -> int:
        return int(np.nanargmin(self.rel_rmse))

    @property
    def best_lambda(self) -> float:
        return float(self.lambdas[self.best_index])

    @property
    def best_rel_rmse(self) -> float:
        return float(self.rel_rmse[self.best_index])

    @property
    def best_rmse(self) -> float:
        return float(self.rmse[self.best_index])


def dot_product_error_curve(lambdas: Sequence[float], n_test: int = 30_000, seed: int = 0, order: int = 1,
                            eq_id: str = "I.11.19", ratio: float = 2.0) -> DotProductCurve:
    """Test error of :func:`make_dot_product_network` on ``eq_id`` versus lambda, on the central 80% box (Fig. 6)."""
    from pml import data, equations  # equations pulls in sympy: import it only when needed

    eq = equations.get(eq_id)
    if eq.dim % 2:
        raise ValueError(f"{eq_id} has {eq.dim} variables; a dot product needs an even number (x_1..x_n, y_1..y_n)")
    n_pairs = eq.dim // 2
    X = data.sample_test(eq.ranges, n_test, np.random.default_rng(seed))
    y = eq(X)
    lambdas = np.asarray(lambdas, dtype=np.float64).reshape(-1)
    rel, absolute = [], []
    for lam in lambdas:
        model = make_dot_product_network(lam, n_pairs, order, ratio)
        y_pred = _predict(model, X, "torch")
        rel.append(metrics.relative_rmse(y_pred, y))
        absolute.append(metrics.rmse(y_pred, y))
    model = make_dot_product_network(1.0, n_pairs, order, ratio)
    n_params = sum(p.numel() for p in model.parameters())
    return DotProductCurve(lambdas, np.array(rel), np.array(absolute), int(order), 4 * int(order) * n_pairs, n_params)
