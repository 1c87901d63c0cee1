"""Targets of the optimisation chapter (paper §4): the teacher network and a random quintic.

Paper: §4.1 (Fig. 7: "The teacher is a depth-3, width-3 tanh MLP"), §4.2 (Fig. 8 top; the "~1e-7 RMSE before
precision loss" claim on single-variable polynomials). The authors' code (ejmichaud/precision-ml):
``notebooks/create-paper-figures/eigenvalue-spectrum.ipynb`` (Fig. 7),
``scripts/combined-techniques-teacher-student.py`` (Fig. 8 top) and
``notebooks/low-curvature-subspace-training-mse.ipynb`` (the quintic of the text claims).

Seeds are explicit and nothing touches global random state. The teacher-student inputs are drawn with a
private ``numpy.random.RandomState(seed)``, which yields the same numbers as the authors'
``np.random.seed(seed); np.random.uniform(-1, 1, ...)`` (training points first, then test points); the
teacher's weights come from :func:`pml.nn.networks.make_mlp` with the same ``seed`` (PyTorch default init, as
the authors' fresh ``torch.manual_seed(0)`` stream).
"""

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
    """(X_train, y_train, X_test, y_test) for the teacher-student problem, float64 numpy.

    Paper: §4.1-4.2, Figs. 7 and 8 (top). x ~ U[-1, 1] for both sets (the full range, no 10% margin, as in the authors'
    Fig. 7-9 code, unlike the scaling figures), X of
    shape (n, 1), y = teacher(x) of shape (n,). The defaults are the paper's 100k / 10k points.
    """
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
    """y = a + b x + ... + f x^5 with coefficients ~ U[-1.5, 1.5] (as the authors'), as a callable ``Polynomial``.

    Paper: §4.2 ("single-variable polynomials"; the ~1e-7 BFGS claim). The authors' draw was unseeded
    (``notebooks/low-curvature-subspace-training-mse.ipynb`` sets no seed), so any seed is as faithful as another;
    ``coef`` is in ascending powers.
    """
    rng = np.random.default_rng(seed)
    return Polynomial(rng.uniform(-1.5, 1.5, size=6))


def quintic_data(
    n_train: int = 50_000, n_test: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) for :func:`random_quintic` with x ~ U[-1, 1] (the authors used 50k points).

    The authors used no test set; ``n_test=0`` gives empty test arrays. The coefficients come from ``seed``
    and the inputs from an independent stream of the same seed.
    """
    n_train, n_test = _check_n("n_train", n_train), _check_n("n_test", n_test)
    poly = random_quintic(seed)
    rng = np.random.default_rng([seed, 1])
    X_train = rng.uniform(-1.0, 1.0, size=(n_train, 1))
    X_test = rng.uniform(-1.0, 1.0, size=(n_test, 1))
    return X_train, poly(X_train[:, 0]), X_test, poly(X_test[:, 0])
