"""Classical approximation anchors: Chebyshev interpolation, polyharmonic RBF interpolation, polynomial least squares.

Paper §3 and Fig. 4 (splines reach 1e-16 in 1D/2D; "RBF interpolation ... was not tested", footnote 4). These are the
ceilings a precision network is measured against. :class:`Chebyshev` interpolates a *function* on tensor grids of
Chebyshev points with the degree chosen by the decay of the coefficients, as chebfun does (Trefethen, *Approximation
Theory and Approximation Practice*, SIAM 2013; Aurentz & Trefethen, ACM TOMS 43 (2017)). :class:`RBF` is SciPy's
``RBFInterpolator`` with a polyharmonic kernel and a polynomial tail. :class:`PolynomialLSQ` fits a total-degree
polynomial in a Chebyshev product basis by truncated SVD with one step of iterative refinement. Each has ``fit(...) ->
self``, ``predict(X)`` and ``n_params``."""

from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import numpy as np
import scipy.interpolate
import scipy.linalg
from numpy.polynomial import chebyshev as C

from pml.data import as_inputs
from pml.threads import limit_threads

__all__ = ["Chebyshev", "PolynomialLSQ", "RBF", "RBF_KERNELS", "chebyshev_points"]

EPS = float(np.finfo(np.float64).eps)
RBF_KERNELS = ("thin_plate_spline", "cubic", "quintic")


def _box(ranges) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(ranges, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"ranges must be a sequence of (low, high) pairs, got shape {arr.shape}")
    if np.any(arr[:, 1] <= arr[:, 0]):
        raise ValueError(f"every range needs low < high, got {arr.tolist()}")
    return (arr[:, 0] + arr[:, 1]) / 2, (arr[:, 1] - arr[:, 0]) / 2


def chebyshev_points(n: int) -> np.ndarray:
    """The n Chebyshev points of the first kind on [-1, 1], cos((2k+1) pi / 2n), in increasing order."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    k = np.arange(int(n))
    return np.sort(np.cos((2 * k + 1) * np.pi / (2 * int(n))))


def _check_fitted(obj, attr: str) -> None:
    if getattr(obj, attr, None) is None:
        raise RuntimeError(f"{type(obj).__name__} is not fitted: call fit(...) first")


# --------------------------------------------------------------------------------------------------- Chebyshev
class Chebyshev:
    """Tensor-product Chebyshev interpolant of a function on a box (d = 1, 2 or 3), a baseline of chapter 6."""

    def __init__(self):
        self.coef: np.ndarray | None = None
        self.centre = self.half = None
        self.n_train = 0
        self.degree: tuple[int, ...] = ()
        self.resolved = False

    @staticmethod
    def _coefficients(values: np.ndarray, n: int) -> np.ndarray:
        """Coefficients from values on the first-kind grid (one axis at a time; V is orthogonal up to scaling)."""
        z = chebyshev_points(n + 1)
        V = C.chebvander(z, n)
        Vinv = np.linalg.inv(V)
        out = values
        for axis in range(values.ndim):
            out = np.moveaxis(np.tensordot(Vinv, np.moveaxis(out, axis, 0), axes=(1, 0)), 0, axis)
        return out

    def fit(self, func: Callable[[np.ndarray], np.ndarray], ranges, degree: int | None = None, *,
            tol: float = 4 * EPS, max_degree: int = 512) -> "Chebyshev":
        """Interpolate ``func`` on the first-kind Chebyshev grid of the box.

        Without ``degree`` the degree doubles from 8 until the trailing coefficients along every axis fall below ``tol``
        times the largest (chebfun's chop), up to ``max_degree``; the series is then chopped after the last coefficient
        above that level.

        Parameters
        ----------
        func : callable
            Maps X of shape (n, d) to (n,).
        ranges : sequence of (float, float)
            (low, high) of each axis, d <= 3.
        degree : int, optional
            Degree per axis; None (default) chooses it.
        tol : float, optional
            Relative size of the coefficients treated as rounding (default 4 eps).
        max_degree : int, optional
            The largest degree tried (default 512).

        Returns
        -------
        Chebyshev
            ``self``, fitted.
        """
        centre, half = _box(ranges)
        dim = centre.size
        if dim > 3:
            raise ValueError(f"tensor Chebyshev grids are for d <= 3 (got d = {dim}); use PolynomialLSQ or RBF")
        if degree is not None and (int(degree) != degree or degree < 0):
            raise ValueError(f"degree must be a non-negative integer or None, got {degree!r}")
        if dim > 1 and degree is None:
            max_degree = min(max_degree, {2: 128, 3: 32}[dim])
        degrees = [int(degree)] if degree is not None else [8 * 2**k for k in range(20) if 8 * 2**k <= max_degree]
        n_evals = 0
        for n in degrees:
            z = chebyshev_points(n + 1)
            grid = np.stack(np.meshgrid(*([z] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
            values = np.asarray(func(centre + half * grid), dtype=np.float64).reshape((n + 1,) * dim)
            n_evals += values.size
            coef = self._coefficients(values, n)
            scale = float(np.max(np.abs(coef))) or 1.0
            tails = [np.max(np.abs(np.moveaxis(coef, a, 0)[-max(2, n // 8):])) for a in range(dim)]
            self.resolved = all(t <= tol * scale for t in tails)
            if self.resolved or degree is not None:
                break
        if degree is None:  # chop each axis after the last coefficient above tol * scale
            keep = []
            for a in range(dim):
                mags = np.max(np.abs(np.moveaxis(coef, a, 0)).reshape(n + 1, -1), axis=1)
                big = np.nonzero(mags > tol * scale)[0]
                keep.append(int(big[-1]) + 1 if big.size else 1)
            coef = coef[tuple(slice(0, k) for k in keep)]
        self.coef, self.centre, self.half = coef, centre, half
        self.degree = tuple(s - 1 for s in coef.shape)
        self.n_train = n_evals  # every function value used, including the coarser rounds of the adaptive search
        return self

    def predict(self, X) -> np.ndarray:
        """The interpolant's values.

        Parameters
        ----------
        X : array_like
            (n, d) points.

        Returns
        -------
        numpy.ndarray
            (n,) values.

        Raises
        ------
        RuntimeError
            If the interpolant is not fitted.
        """
        _check_fitted(self, "coef")
        X = as_inputs(X)
        if X.shape[1] != self.coef.ndim:
            raise ValueError(f"X must have {self.coef.ndim} columns, got {X.shape[1]}")
        Z = (X - self.centre) / self.half
        out = None
        for a in range(self.coef.ndim):
            V = C.chebvander(Z[:, a], self.coef.shape[a] - 1)  # (n, K_a)
            if out is None:
                out = np.tensordot(V, self.coef, axes=(1, 0))  # (n, K_2, ...)
            else:
                out = np.einsum("nk,nk...->n...", V, out)
        return out.reshape(-1)

    @property
    def n_params(self) -> int:
        _check_fitted(self, "coef")
        return int(self.coef.size)


# --------------------------------------------------------------------------------------------------------- RBF
class RBF:
    """Polyharmonic RBF interpolation with a polynomial tail (``scipy.interpolate.RBFInterpolator``)."""

    def __init__(self, kernel: str = "quintic", degree: int = 2):
        if kernel not in RBF_KERNELS:
            raise ValueError(f"kernel must be one of {list(RBF_KERNELS)}, got {kernel!r}")
        minimum = {"thin_plate_spline": 1, "cubic": 1, "quintic": 2}[kernel]
        if int(degree) != degree or degree < minimum:
            raise ValueError(f"the {kernel} kernel needs a polynomial tail of degree >= {minimum}, got {degree!r}")
        self.kernel, self.degree = kernel, int(degree)
        self.interp = None
        self.n_train = 0

    def fit(self, X, y, ranges=None) -> "RBF":
        """Interpolate the data.

        Parameters
        ----------
        X, y : array_like
            (n, d) centres and (n,) values.
        ranges : sequence of (float, float), optional
            The box mapped to [-1, 1]^d (default: the data's bounding box).

        Returns
        -------
        RBF
            ``self``, fitted.
        """
        X = as_inputs(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.size != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} points but y has {y.size}")
        if ranges is None:
            lo, hi = X.min(axis=0), X.max(axis=0)
            ranges = np.stack([lo, np.where(hi > lo, hi, lo + 1)], axis=1)
        self.centre, self.half = _box(ranges)
        self.dim = X.shape[1]
        self.interp = scipy.interpolate.RBFInterpolator((X - self.centre) / self.half, y, kernel=self.kernel,
                                                        degree=self.degree)
        self.n_train = X.shape[0]
        return self

    def predict(self, X) -> np.ndarray:
        """The interpolant's values; outside the fitted box it extrapolates.

        Parameters
        ----------
        X : array_like
            (m, d) points, mapped to [-1, 1]^d by the box of :meth:`fit`.

        Returns
        -------
        numpy.ndarray
            (m,) values.
        """
        _check_fitted(self, "interp")
        X = as_inputs(X)
        return self.interp((X - self.centre) / self.half).reshape(-1)

    @property
    def n_params(self) -> int:
        """One weight per centre plus the tail's coefficients, C(d + k, k)."""
        _check_fitted(self, "interp")
        return self.n_train + math.comb(self.dim + self.degree, self.degree)


# -------------------------------------------------------------------------------------------- polynomial LSQ
def _total_degree_indices(dim: int, degree: int) -> list[tuple[int, ...]]:
    return [a for a in itertools.product(range(degree + 1), repeat=dim) if sum(a) <= degree]


class PolynomialLSQ:
    """Least-squares polynomial of total degree <= ``degree`` in d variables (Chebyshev product basis on the box)."""

    def __init__(self, rcond: float = 1e-15):
        self.rcond = rcond
        self.coef = None
        self.degree = None
        self.n_train = 0
        self.val_rmse = math.nan

    def _basis(self, X: np.ndarray, degree: int) -> np.ndarray:
        Z = (X - self.centre) / self.half
        V = [C.chebvander(Z[:, a], degree) for a in range(Z.shape[1])]
        cols = [np.prod([V[a][:, k] for a, k in enumerate(idx)], axis=0) for idx in
                _total_degree_indices(Z.shape[1], degree)]
        return np.column_stack(cols)

    def _solve(self, A: np.ndarray, y: np.ndarray) -> np.ndarray:
        U, s, Vt = scipy.linalg.svd(A, full_matrices=False, check_finite=False)
        keep = s > self.rcond * s[0]

        def lsq(rhs):
            return Vt[keep].T @ ((U[:, keep].T @ rhs) / s[keep])

        c = lsq(y)
        return c + lsq(y - A @ c)

    def fit(self, X, y, ranges, degree: int | None = None, *, degrees: Sequence[int] = range(0, 9),
            val_fraction: float = 0.2, seed: int = 0, num_threads: int | None = 1) -> "PolynomialLSQ":
        """Fit the coefficients by least squares, choosing the degree on a validation split when none is given.

        Parameters
        ----------
        X, y : array_like
            (n, d) inputs and (n,) targets.
        ranges : sequence of (float, float)
            (low, high) of each axis: the box of the Chebyshev basis.
        degree : int, optional
            The total degree; None (default): the one of ``degrees`` with the smallest RMSE on a seeded validation split
            of ``val_fraction`` of the points, refitted on all points.
        degrees : sequence of int, optional
            Candidate degrees (default 0 to 8).
        val_fraction : float, optional
            Default 0.2.
        seed : int, optional
            Seed of the split (default 0).
        num_threads : int or None, optional
            BLAS threads for the solve (default 1; None: unchanged).

        Returns
        -------
        PolynomialLSQ
            ``self``, fitted.
        """
        X = as_inputs(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.size != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} points but y has {y.size}")
        self.centre, self.half = _box(ranges)
        if self.centre.size != X.shape[1]:
            raise ValueError(f"ranges has {self.centre.size} pairs but X has {X.shape[1]} columns")
        with limit_threads(num_threads):
            if degree is None:
                perm = np.random.default_rng([seed, 5]).permutation(X.shape[0])
                n_val = max(1, int(round(val_fraction * X.shape[0])))
                val, tr = perm[:n_val], perm[n_val:]
                scores = {}
                for k in degrees:
                    if math.comb(X.shape[1] + int(k), int(k)) > tr.size:
                        break  # more coefficients than points: stop the search
                    c = self._solve(self._basis(X[tr], int(k)), y[tr])
                    scores[int(k)] = float(np.sqrt(np.mean((self._basis(X[val], int(k)) @ c - y[val]) ** 2)))
                if not scores:
                    raise ValueError("too few training points for any candidate degree")
                degree = min(scores, key=scores.get)
                self.val_rmse = scores[degree]
                self.scores = scores
            elif int(degree) != degree or degree < 0:
                raise ValueError(f"degree must be a non-negative integer or None, got {degree!r}")
            self.degree = int(degree)
            self.coef = self._solve(self._basis(X, self.degree), y)
        self.n_train = X.shape[0]
        return self

    def predict(self, X) -> np.ndarray:
        """The polynomial's values.

        Parameters
        ----------
        X : array_like
            (m, d) points; the Chebyshev basis is on the ``ranges`` box of :meth:`fit`.

        Returns
        -------
        numpy.ndarray
            (m,) values.
        """
        _check_fitted(self, "coef")
        return self._basis(as_inputs(X), self.degree) @ self.coef

    @property
    def n_params(self) -> int:
        _check_fitted(self, "coef")
        return int(self.coef.size)
