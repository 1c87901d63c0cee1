"""Targets of the optimisation chapter (paper §4): the teacher network (Fig. 7, "a depth-3, width-3 tanh MLP") and a
random quintic (§4.2's "~1e-7 RMSE before precision loss").

As the authors' code (ejmichaud/precision-ml, ``notebooks/create-paper-figures/eigenvalue-spectrum.ipynb``,
``scripts/combined-techniques-teacher-student.py``, ``notebooks/low-curvature-subspace-training-mse.ipynb``): inputs
from a private ``RandomState(seed)`` (their ``np.random.seed(seed); np.random.uniform(...)`` stream, training points
first) and the teacher's weights from :func:`pml.nn.networks.make_mlp` with the same seed. No global state changes."""

from __future__ import annotations

import numpy as np
import torch
from numpy.polynomial import Polynomial
from torch import nn

__all__ = ["make_teacher", "teacher_student_data", "random_quintic", "quintic_data", "TEACHER_WIDTH", "TEACHER_DEPTH"]

TEACHER_WIDTH = 3  # 1-3-3-1 tanh MLP (paper Fig. 7: "a depth-3, width-3 tanh MLP")
TEACHER_DEPTH = 3  # number of Linear layers


def _check_n(name: str, n) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    return int(n)


def make_teacher(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """The teacher: a 1-3-3-1 tanh MLP with PyTorch default init from ``seed`` (paper §4.1, Fig. 7)."""
    from pml.nn.networks import make_mlp  # imported here so pml.teacher stays importable on its own

    return make_mlp(1, TEACHER_WIDTH, TEACHER_DEPTH, activation="tanh", seed=seed, dtype=dtype)


def teacher_student_data(
    n_train: int = 100_000, n_test: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) for the teacher-student problem (Figs. 7, 8 top): x ~ U[-1, 1] for both sets,
    the full range as in the authors' §4 code (unlike the scaling figures' 80% box)."""
    n_train, n_test = _check_n("n_train", n_train), _check_n("n_test", n_test)
    rs = np.random.RandomState(seed)  # private legacy stream: the authors' draw order, no global state
    X_train = rs.uniform(-1.0, 1.0, size=(n_train, 1))
    X_test = rs.uniform(-1.0, 1.0, size=(n_test, 1))
    teacher = make_teacher(seed)
    with torch.no_grad():
        y_train = teacher(torch.from_numpy(X_train)).reshape(-1).numpy().astype(np.float64)
        y_test = teacher(torch.from_numpy(X_test)).reshape(-1).numpy().astype(np.float64)
    return X_train, y_train, X_test, y_test


def random_quintic(seed: int = 0) -> Polynomial:
    """A quintic with coefficients ~ U[-1.5, 1.5] (ascending powers), as the authors'; their draw was unseeded
    (``notebooks/low-curvature-subspace-training-mse.ipynb``), so any seed is as faithful as another."""
    rng = np.random.default_rng(seed)
    return Polynomial(rng.uniform(-1.5, 1.5, size=6))


def quintic_data(
    n_train: int = 50_000, n_test: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) for :func:`random_quintic`, x ~ U[-1, 1]; the authors used no test set."""
    n_train, n_test = _check_n("n_train", n_train), _check_n("n_test", n_test)
    poly = random_quintic(seed)
    rng = np.random.default_rng([seed, 1])
    X_train = rng.uniform(-1.0, 1.0, size=(n_train, 1))
    X_test = rng.uniform(-1.0, 1.0, size=(n_test, 1))
    return X_train, poly(X_train[:, 0]), X_test, poly(X_test[:, 0])
