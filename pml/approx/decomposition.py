"""The loss decomposition of paper Eq. (6), computed exactly for a model class where every term is computable.

The model class H is polynomials of a fixed degree in 1D under the uniform distribution P on an interval: f_P^best (Eq.
3) is the L2(P) projection (Gauss-Legendre quadrature, exact for the smooth targets used here), f_D^best (Eq. 4) is the
least-squares fit to the sample D, and f_D^used (Eq. 5) is what a fixed budget of gradient-descent steps on the
empirical MSE reaches from zero: an imperfect learning algorithm A."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.polynomial import legendre


@dataclass(frozen=True)
class LossDecomposition:
    """Relative RMS losses (Eqs. 1-2) and the four terms of Eq. (6); they sum to ``total`` exactly."""

    optimization: float
    sampling_luck: float
    generalization: float
    architecture: float

    @property
    def total(self) -> float:
        return self.optimization + self.sampling_luck + self.generalization + self.architecture

    def as_array(self) -> np.ndarray:
        """The four terms in the order of ``TERMS``."""
        return np.array([self.optimization, self.sampling_luck, self.generalization, self.architecture])


TERMS = ("optimization", "sampling_luck", "generalization", "architecture")


class _PolynomialClass:
    """Legendre series of degree ``degree`` on [low, high] (well conditioned for least squares)."""

    def __init__(self, degree: int, low: float, high: float):
        self.degree, self.low, self.high = degree, low, high

    def features(self, x: np.ndarray) -> np.ndarray:
        t = (2 * np.asarray(x, dtype=np.float64) - (self.low + self.high)) / (self.high - self.low)
        return legendre.legvander(t, self.degree)


def _relative_rms(residual: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    w = np.full(y.size, 1.0 / y.size) if weights is None else weights
    return float(np.sqrt(np.sum(w * residual**2) / np.sum(w * y**2)))


def decompose(
    f: Callable[[np.ndarray], np.ndarray],
    low: float,
    high: float,
    x_train: np.ndarray,
    degree: int,
    n_gd_steps: int,
    n_quadrature: int = 256,
) -> LossDecomposition:
    """Eq. (6) for a polynomial fit of ``f`` on the sample ``x_train`` (uniform P on [low, high]).

    f_P^best (Eq. 3) is the L2(P) projection (Gauss-Legendre quadrature), f_D^best (Eq. 4) the least-squares fit to
    the sample and f_D^used (Eq. 5) what ``n_gd_steps`` of gradient descent (step 1/L) on the empirical MSE reach from
    zero.

    Parameters
    ----------
    f : callable
        The target, vectorised over a 1-D array.
    low, high : float
        The interval of P.
    x_train : numpy.ndarray
        The sample D.
    degree, n_gd_steps : int
        Degree of the polynomial model class; gradient-descent steps.
    n_quadrature : int, optional
        Gauss-Legendre nodes for the expectations under P (default 256).

    Returns
    -------
    LossDecomposition
        The four terms.
    """
    model = _PolynomialClass(degree, low, high)
    # Expected loss under uniform P by Gauss-Legendre quadrature.
    nodes, weights = legendre.leggauss(n_quadrature)
    xq = (nodes + 1) * (high - low) / 2 + low
    wq = weights / weights.sum()
    yq, Aq = f(xq), model.features(xq)
    theta_p = np.linalg.lstsq(np.sqrt(wq)[:, None] * Aq, np.sqrt(wq) * yq, rcond=None)[0]

    y_d, A_d = f(x_train), model.features(x_train)
    theta_d = np.linalg.lstsq(A_d, y_d, rcond=None)[0]

    # Imperfect optimiser: gradient descent on the empirical MSE, step 1/L, from zero.
    gram = A_d.T @ A_d / y_d.size
    step = 1.0 / np.linalg.eigvalsh(gram)[-1]
    theta_u = np.zeros(degree + 1)
    for _ in range(n_gd_steps):
        theta_u -= step * (gram @ theta_u - A_d.T @ y_d / y_d.size)

    def loss_d(theta):
        return _relative_rms(A_d @ theta - y_d, y_d)

    def loss_p(theta):
        return _relative_rms(Aq @ theta - yq, yq, wq)

    return LossDecomposition(
        optimization=loss_d(theta_u) - loss_d(theta_d),
        sampling_luck=loss_d(theta_d) - loss_p(theta_d),
        generalization=loss_p(theta_d) - loss_p(theta_p),
        architecture=loss_p(theta_p),
    )
