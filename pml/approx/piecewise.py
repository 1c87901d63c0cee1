"""Piecewise polynomial approximation on a regular grid of cells: the scaling argument of paper §1.3.

Partition the box into cells of side eps and approximate f by a degree-n polynomial in each cell (here: tensor
interpolation at Chebyshev points of the cell). The error in each cell is O(eps^(n+1)) while the parameter count is N =
O(1/eps^d), so the error scales as N^(-(n+1)/d)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def chebyshev_points(degree: int) -> np.ndarray:
    """The degree+1 Chebyshev points of the first kind on [-1, 1], ascending."""
    k = np.arange(degree + 1)
    return np.sort(np.cos((2 * k + 1) * np.pi / (2 * degree + 2)))


def _lagrange_basis(t: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Values of the Lagrange basis polynomials of ``nodes`` at ``t``; shape (len(t), len(nodes))."""
    diff = t[:, None] - nodes[None, :]
    out = np.ones((t.size, nodes.size))
    for j in range(nodes.size):
        others = np.delete(np.arange(nodes.size), j)
        out[:, j] = np.prod(diff[:, others], axis=1) / np.prod(nodes[j] - nodes[others])
    return out


@dataclass(frozen=True)
class PiecewisePolynomial:
    """A degree-n tensor polynomial per cell, stored as its values at the cell's Chebyshev points (paper §1.3)."""

    low: np.ndarray
    high: np.ndarray
    n_cells: int
    degree: int
    values: np.ndarray  # shape (n_cells,)*d + (degree+1,)*d

    @property
    def dim(self) -> int:
        return self.low.size

    @property
    def n_params(self) -> int:
        """The number of stored numbers N = (cells * (n+1))^d, one per node of every cell."""
        return int(self.values.size)

    def __call__(self, X) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != self.dim:
            raise ValueError(f"expected inputs with {self.dim} columns, got {X.shape[1]}")
        h = (self.high - self.low) / self.n_cells
        u = (X - self.low) / h
        cell = np.clip(np.floor(u).astype(int), 0, self.n_cells - 1)
        t = 2 * (u - cell) - 1  # local coordinate in [-1, 1]
        nodes = chebyshev_points(self.degree)
        local = self.values[tuple(cell.T)]  # (m, n+1, ..., n+1)
        for axis in range(self.dim):
            basis = _lagrange_basis(t[:, axis], nodes)  # (m, n+1)
            local = np.einsum("mj,mj...->m...", basis, local)
        return local


def fit_piecewise_polynomial(
    f: Callable[[np.ndarray], np.ndarray], ranges: Sequence[Sequence[float]], n_cells: int, degree: int
) -> PiecewisePolynomial:
    """Interpolate ``f`` at the Chebyshev points of each of n_cells^d cells with a polynomial of degree ``degree``.

    The error scales as N^(-(n+1)/d) (paper §1.3).

    Parameters
    ----------
    f : callable
        Maps (m, d) points to (m,) values.
    ranges : sequence of (float, float)
        (low, high) of each of the d axes.
    n_cells, degree : int
        Cells per axis (at least 1) and polynomial degree n (at least 0).

    Returns
    -------
    PiecewisePolynomial
        The interpolant.
    """
    if n_cells < 1 or degree < 0:
        raise ValueError(f"need n_cells >= 1 and degree >= 0, got {n_cells}, {degree}")
    bounds = np.asarray(ranges, dtype=np.float64)
    low, high = bounds[:, 0], bounds[:, 1]
    d = low.size
    nodes = (chebyshev_points(degree) + 1) / 2  # in [0, 1]
    axes = [low[i] + (np.arange(n_cells)[:, None] + nodes[None, :]) * (high[i] - low[i]) / n_cells for i in range(d)]
    # grid[c_1..c_d, j_1..j_d] = point with coordinate axes[i][c_i, j_i]
    mesh = np.meshgrid(*[a.reshape(-1) for a in axes], indexing="ij")
    points = np.stack([m.reshape(-1) for m in mesh], axis=1)
    vals = np.asarray(f(points), dtype=np.float64).reshape((n_cells, degree + 1) * d)
    # reorder axes (c1, j1, c2, j2, ...) -> (c1, c2, ..., j1, j2, ...)
    order = [2 * i for i in range(d)] + [2 * i + 1 for i in range(d)]
    return PiecewisePolynomial(low, high, n_cells, degree, np.ascontiguousarray(vals.transpose(order)))
