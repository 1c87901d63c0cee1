"""Piecewise-polynomial interpolators of paper §3 (Figure 4), which scale as D^(-(n+1)/d): 1D splines on e^x
(:func:`spline_1d`), 2D tensor splines on e^(xy) (:func:`spline_2d`) and the tricubic interpolation of Lekien & Marsden
(2005) on I.30.5 (:class:`Tricubic`), in the authors' layouts (ejmichaud/precision-ml,
``notebooks/create-paper-figures/1d-2d-3d-nonlinear.ipynb``, ``scripts/feynman-tricubic-subexperiment.py``).

SciPy 1.14 removed the authors' ``interp2d``; ``RectBivariateSpline`` gives the same values. Fig. 4c's ``int(TP **
(1/3))`` nodes per axis truncates 4096 to 15^3 (:func:`grid_points_per_axis`), and the authors' ARBInterp leaves the
outermost cell layer undefined (NaN), as :class:`Tricubic` does by default."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy.interpolate import BSpline, RectBivariateSpline, make_interp_spline

from pml import metrics

__all__ = [
    "BOUNDARY_MODES",
    "FIG4C_SIZES",
    "GridSpline2D",
    "SPLINE_ORDERS_1D",
    "SPLINE_ORDERS_2D",
    "SplineScaling",
    "Tricubic",
    "TricubicScaling",
    "fig4a_nodes",
    "fig4a_sizes",
    "fig4a_test_points",
    "fig4b_nodes",
    "fig4b_points_per_axis",
    "fig4b_sizes",
    "fig4b_test_grid",
    "grid_points_per_axis",
    "regular_grid",
    "spline_1d",
    "spline_2d",
    "spline_scaling_1d",
    "spline_scaling_2d",
    "tricubic_coefficient_matrix",
    "tricubic_scaling",
]

SPLINE_ORDERS_1D = (1, 2, 3, 4, 5, 6, 7)  # interp1d accepts integer kinds; Fig. 4a plots 1, 2, 3, 5, 7
SPLINE_ORDERS_2D = (1, 3, 5)  # interp2d's 'linear', 'cubic', 'quintic'
FIG4C_SIZES = (256, 1024, 4096, 16384, 65536, 262144)  # nominal TP of the tricubic runs (config feynman-cubic-1)
BOUNDARY_MODES = ("nan", "one-sided")


def _check_order(order, valid: Sequence[int]) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or int(order) not in valid:
        raise ValueError(f"spline order must be one of {list(valid)}, got {order!r}")
    return int(order)


def _check_axis(x, name: str, min_points: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size < min_points:
        raise ValueError(f"{name} needs at least {min_points} points, got {x.size}")
    if not np.all(np.isfinite(x)) or np.any(np.diff(x) <= 0):
        raise ValueError(f"{name} must be finite and strictly increasing")
    return x


# ---------------------------------------------------------------------------------------------------------------------
# Grid layouts of Fig. 4
# ---------------------------------------------------------------------------------------------------------------------
def fig4a_sizes(i_min: int = 6, i_max: int = 36) -> list[int]:
    """Fig. 4a node counts ``[int(1.5**i) for i in range(i_min, i_max + 1)]``: 11, 17, 25, ..., 2,184,164."""
    return [int(1.5**i) for i in range(int(i_min), int(i_max) + 1)]


def fig4a_nodes(n: int) -> np.ndarray:
    """Fig. 4a training nodes: ``np.linspace(-1, 1, n)``."""
    return np.linspace(-1.0, 1.0, int(n))


def fig4a_test_points(n_test: int = 2000) -> np.ndarray:
    """Fig. 4a test points: ``n_test`` equally spaced points on [-0.9, 0.9]."""
    return np.linspace(-0.9, 0.9, int(n_test))


def fig4b_sizes(i_min: int = 9, i_max: int = 35) -> list[int]:
    """Fig. 4b *nominal* sizes ``int(1.5**i)`` for i = 9..35 (38 ... 1,456,109); the figure plots these."""
    return [int(1.5**i) for i in range(int(i_min), int(i_max) + 1)]


def fig4b_points_per_axis(n_nominal: int) -> int:
    """Fig. 4b nodes per axis ``int(sqrt(n))``: exact, since ``sqrt`` is correctly rounded (unlike Fig. 4c's cube root).
    """
    return grid_points_per_axis(n_nominal, dim=2)


def fig4b_nodes(n_nominal: int) -> np.ndarray:
    """Fig. 4b nodes of each axis: ``np.linspace(-1, 1, int(sqrt(n_nominal)))``."""
    return np.linspace(-1.0, 1.0, fig4b_points_per_axis(n_nominal))


def fig4b_test_grid(n_per_axis: int = 121) -> np.ndarray:
    """Fig. 4b test axis: the ``n_per_axis`` x ``n_per_axis`` test grid on [-0.8, 0.8]^2 uses it for both axes."""
    return np.linspace(-0.8, 0.8, int(n_per_axis))


def grid_points_per_axis(n_nominal: int, dim: int = 3, rule: str = "authors") -> int:
    """Points per axis of a d-dimensional regular grid with about ``n_nominal`` points (Fig. 4c).

    ``rule="authors"`` is the authors' ``int(TP ** (1/d))`` with a correctly rounded power (evaluated with mpmath, so
    it does not depend on the libm). Since fl(1/3) < 1/3 it falls just below exact cube roots: 64 -> 3, 4096 -> 15,
    262144 -> 63. NumPy 1.26's ``np.power(64, 1/3)`` has been seen to return 4.0, so the authors' build may have used 4
    points for 64 (not a tricubic size); we follow the correctly rounded value. ``rule="exact"`` is the integer d-th
    root (64 -> 4, 4096 -> 16).

    Parameters
    ----------
    n_nominal : int
        The nominal number of points TP, positive.
    dim : int, optional
        The dimension d (default 3).
    rule : str, optional
        ``"authors"`` (default) or ``"exact"``.

    Returns
    -------
    int
        Points per axis.
    """
    if rule not in ("authors", "exact"):
        raise ValueError(f"rule must be one of ['authors', 'exact'], got {rule!r}")
    if isinstance(n_nominal, bool) or int(n_nominal) != n_nominal or n_nominal < 1:
        raise ValueError(f"n_nominal must be a positive integer, got {n_nominal!r}")
    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    n, dim = int(n_nominal), int(dim)
    if rule == "exact":
        m = int(round(n ** (1.0 / dim)))
        while m**dim > n:
            m -= 1
        while (m + 1) ** dim <= n:
            m += 1
        return m
    import mpmath  # a sympy dependency; imported lazily to keep ``import pml.approx.splines`` light

    with mpmath.workdps(50):
        exact = mpmath.mpf(n) ** mpmath.mpf(1.0 / dim)  # mpf(float) is exact: the exponent is fl(1/d)
        guess = float(exact)
        candidates = (math.nextafter(guess, -math.inf), guess, math.nextafter(guess, math.inf))
        nearest = min(candidates, key=lambda c: (abs(mpmath.mpf(c) - exact), c))
    return int(nearest)


def regular_grid(ranges: Sequence[Sequence[float]], points_per_axis) -> tuple[list[np.ndarray], np.ndarray]:
    """The product grid of ``np.linspace(low, high, m)`` axes (Fig. 4c layout)."""
    bounds = np.asarray(ranges, dtype=np.float64)
    if bounds.ndim != 2 or bounds.shape[1] != 2 or np.any(bounds[:, 1] <= bounds[:, 0]):
        raise ValueError(f"ranges must be (low, high) pairs with low < high, got {np.asarray(ranges).tolist()}")
    m = np.broadcast_to(np.asarray(points_per_axis), (bounds.shape[0],))
    axes = [np.linspace(lo, hi, int(k)) for (lo, hi), k in zip(bounds, m)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return axes, np.stack([g.reshape(-1) for g in mesh], axis=1)


# ---------------------------------------------------------------------------------------------------------------------
# 1D and 2D splines (Fig. 4a, 4b)
# ---------------------------------------------------------------------------------------------------------------------
def spline_1d(x, y, order: int) -> BSpline:
    """Interpolating B-spline of degree ``order`` (1..7) through (x, y): Fig. 4a's ``interp1d(x, y, kind=order)``.

    That is ``make_interp_spline(x, y, k=order)`` (not-a-knot), what ``interp1d`` calls for an integer ``kind``. The
    spline extrapolates outside [x[0], x[-1]].

    Parameters
    ----------
    x, y : array_like
        (n,) nodes, finite and strictly increasing (at least order + 1), and values.
    order : int
        Degree 1 to 7.

    Returns
    -------
    scipy.interpolate.BSpline
        The interpolating spline.
    """
    order = _check_order(order, SPLINE_ORDERS_1D)
    x = _check_axis(x, "x", order + 1)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != x.shape:
        raise ValueError(f"y must have the shape of x {x.shape}, got {y.shape}")
    return make_interp_spline(x, y, k=order)


@dataclass(frozen=True)
class GridSpline2D:
    """A tensor-product interpolating spline on a rectangular grid, with ``interp2d``'s conventions (Fig. 4b)."""

    spline: RectBivariateSpline
    order: int

    def grid(self, x, y) -> np.ndarray:
        """Values on the grid x × y, shaped as ``interp2d(...)(x, y)`` returned them."""
        return self.spline(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), grid=True).T

    def __call__(self, X) -> np.ndarray:
        """Values at scattered points X of shape (n, 2) (columns x, y); shape (n,)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"expected points of shape (n, 2), got {X.shape}")
        return self.spline.ev(X[:, 0], X[:, 1])


def spline_2d(x, y, Z, order: int) -> GridSpline2D:
    """Interpolating spline of degree 1, 3 or 5 per variable through a grid (Fig. 4b), ``Z[j, i] = f(x[i], y[j])`` as
    the removed ``interp2d``, fitted by its replacement ``RectBivariateSpline(x, y, Z.T, s=0)``."""
    order = _check_order(order, SPLINE_ORDERS_2D)
    x = _check_axis(x, "x", order + 1)
    y = _check_axis(y, "y", order + 1)
    Z = np.asarray(Z, dtype=np.float64)
    if Z.shape != (y.size, x.size):
        raise ValueError(f"Z must have shape (len(y), len(x)) = {(y.size, x.size)} (interp2d layout), got {Z.shape}")
    return GridSpline2D(RectBivariateSpline(x, y, Z.T, kx=order, ky=order, s=0), order)


@dataclass(frozen=True)
class SplineScaling:
    """A Fig. 4a/4b curve: relative test RMSE (paper Eq. 1) against the nominal and real training-set sizes."""

    order: int
    n_nominal: np.ndarray  # what the figure plots on the x axis
    n_train: np.ndarray  # points actually used (s^2 for Fig. 4b)
    rel_rmse: np.ndarray


def spline_scaling_1d(order: int, sizes: Sequence[int] | None = None, n_test: int = 2000,
                      target: Callable[[np.ndarray], np.ndarray] = np.exp) -> SplineScaling:
    """Fig. 4a, as the authors' notebook: relative RMSE of the order-``order`` spline of e^x on [-1, 1] vs nodes."""
    order = _check_order(order, SPLINE_ORDERS_1D)
    sizes = fig4a_sizes() if sizes is None else [int(n) for n in sizes]
    t = fig4a_test_points(n_test)
    y_true = target(t)
    errors = [metrics.relative_rmse(spline_1d(x, target(x), order)(t), y_true) for x in map(fig4a_nodes, sizes)]
    n = np.array(sizes, dtype=np.int64)
    return SplineScaling(order, n, n.copy(), np.array(errors))


def spline_scaling_2d(order: int, sizes: Sequence[int] | None = None, n_test_per_axis: int = 121,
                      target: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> SplineScaling:
    """Fig. 4b, as the authors' notebook: relative RMSE of the tensor spline of e^(xy), tested on a 121^2 grid."""
    order = _check_order(order, SPLINE_ORDERS_2D)
    target = (lambda x, y: np.exp(x * y)) if target is None else target
    sizes = fig4b_sizes() if sizes is None else [int(n) for n in sizes]
    t = fig4b_test_grid(n_test_per_axis)
    z_true = target(t[None, :], t[:, None])  # interp2d layout: rows are y
    errors, real = [], []
    for n in sizes:
        s = fig4b_nodes(n)
        Z = target(s[None, :], s[:, None])
        errors.append(metrics.relative_rmse(spline_2d(s, s, Z, order).grid(t, t), z_true))
        real.append(s.size**2)
    return SplineScaling(order, np.array(sizes, dtype=np.int64), np.array(real, dtype=np.int64), np.array(errors))


# ---------------------------------------------------------------------------------------------------------------------
# Tricubic interpolation (Lekien & Marsden 2005; Fig. 4c)
# ---------------------------------------------------------------------------------------------------------------------
# Derivative multi-indices in Lekien & Marsden's order: f, f_x, f_y, f_z, f_xy, f_xz, f_yz, f_xyz.
_DERIVATIVES = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1))
# Cell corners (cx, cy, cz), corner index cx + 2 cy + 4 cz.
_CORNERS = tuple((c & 1, (c >> 1) & 1, (c >> 2) & 1) for c in range(8))


def _monomial_derivative(power: int, order: int, at: int) -> float:
    """d^order/du^order u^power evaluated at u = at (0 or 1)."""
    if power < order:
        return 0.0
    if at == 0:
        return float(math.factorial(order)) if power == order else 0.0
    return float(math.factorial(power) // math.factorial(power - order))


@lru_cache(maxsize=1)
def _coefficient_matrix() -> np.ndarray:
    # B maps the 64 coefficients a_{i + 4j + 16k} of p(u, v, w) = sum a_ijk u^i v^j w^k to the 64 constraints
    # (row 8 q + c: derivative q of p at corner c). Solving B a = b once gives A = B^-1, the Lekien-Marsden matrix.
    B = np.zeros((64, 64))
    for q, (dx, dy, dz) in enumerate(_DERIVATIVES):
        for c, (cx, cy, cz) in enumerate(_CORNERS):
            for n in range(64):
                i, j, k = n % 4, (n // 4) % 4, n // 16
                B[8 * q + c, n] = (_monomial_derivative(i, dx, cx) * _monomial_derivative(j, dy, cy)
                                   * _monomial_derivative(k, dz, cz))
    A = np.linalg.solve(B, np.eye(64))
    A_int = np.rint(A)
    # The inverse of this integer matrix is an integer matrix (the published table); rounding removes the solver's
    # last-bit noise, and A_int @ B == I is then checked exactly.
    if np.max(np.abs(A - A_int)) > 1e-8 or not np.array_equal(A_int @ B, np.eye(64)):
        raise RuntimeError("the tricubic constraint matrix did not invert to an integer matrix")
    A_int.setflags(write=False)
    return A_int


def tricubic_coefficient_matrix() -> np.ndarray:
    """The 64 x 64 matrix A of Lekien & Marsden (2005): coefficients a = A b from corner data b."""
    return _coefficient_matrix().copy()


def _difference(f: np.ndarray, axis: int, boundary: str) -> np.ndarray:
    """Central difference along ``axis`` in index units, (f[i+1] - f[i-1]) / 2; ends NaN or one-sided O(h^2)."""
    f = np.moveaxis(f, axis, 0)
    out = np.empty_like(f)
    out[1:-1] = (f[2:] - f[:-2]) / 2
    if boundary == "nan":
        out[0] = out[-1] = np.nan
    else:  # second-order one-sided stencils, exact for quadratics like the central one
        out[0] = (-3 * f[0] + 4 * f[1] - f[2]) / 2
        out[-1] = (3 * f[-1] - 4 * f[-2] + f[-3]) / 2
    return np.moveaxis(out, 0, axis)


def _check_grid_axis(a, name: str, min_points: int) -> np.ndarray:
    a = _check_axis(a, name, min_points)
    step = np.diff(a)
    if not np.allclose(step, step[0], rtol=1e-9, atol=0.0):
        raise ValueError(f"{name} must be equally spaced (a regular grid), steps range {step.min()}..{step.max()}")
    return a


class Tricubic:
    """Local C1 tricubic interpolation on a regular 3D grid after Lekien & Marsden (2005), ref. [25] (Fig. 4c).

    In each cell p(u, v, w) = sum_{i,j,k<=3} a_ijk u^i v^j w^k, its 64 coefficients from f and its derivatives at the
    8 corners (:func:`tricubic_coefficient_matrix`); neighbouring cells share face data, so the interpolant and its
    first derivatives are continuous. Build it with :meth:`from_grid` (finite differences, as ARBInterp),
    :meth:`from_points` or :meth:`from_derivatives` (exact derivatives).

    Parameters
    ----------
    axes : sequence of numpy.ndarray
        The three equally spaced axes.
    data : numpy.ndarray
        Scaled corner data of every node (built by the constructors).
    boundary : str
        ``"nan"`` or ``"one-sided"`` (or ``"exact"`` for exact derivatives).
    """

    def __init__(self, axes: Sequence[np.ndarray], data: np.ndarray, boundary: str):
        self.axes = tuple(axes)
        self.boundary = boundary
        self._data = data  # (8, nx, ny, nz): the eight scaled quantities, Lekien-Marsden order
        self.shape = tuple(a.size for a in self.axes)
        self.low = np.array([a[0] for a in self.axes])
        self.high = np.array([a[-1] for a in self.axes])
        self.step = np.array([(a[-1] - a[0]) / (a.size - 1) for a in self.axes])

    # -- constructors -------------------------------------------------------------------------------------------------
    @staticmethod
    def _check_values(axes, values, min_points: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        if len(axes) != 3:
            raise ValueError(f"need three axes (x, y, z), got {len(axes)}")
        axes = tuple(_check_grid_axis(a, name, min_points) for a, name in zip(axes, "xyz"))
        values = np.asarray(values, dtype=np.float64)
        shape = tuple(a.size for a in axes)
        if values.shape != shape:
            raise ValueError(f"values must have shape (len(x), len(y), len(z)) = {shape}, got {values.shape}")
        return axes, values

    @classmethod
    def from_grid(cls, axes: Sequence, values, boundary: str = "nan") -> "Tricubic":
        """Interpolant of grid values ``values[i, j, k] = f(x_i, y_j, z_k)``, derivatives by finite differences.

        Parameters
        ----------
        axes : sequence of array_like
            The three equally spaced axes.
        values : array_like
            (len(x), len(y), len(z)) values.
        boundary : str, optional
            ``"nan"`` (default, ARBInterp's convention, which the authors used: the outermost cell layer is undefined;
            at least 4 points per axis) or ``"one-sided"`` (second-order one-sided differences; at least 3).

        Returns
        -------
        Tricubic
            The interpolant.
        """
        if boundary not in BOUNDARY_MODES:
            raise ValueError(f"boundary must be one of {list(BOUNDARY_MODES)}, got {boundary!r}")
        axes, f = cls._check_values(axes, values, 4 if boundary == "nan" else 3)
        fx = _difference(f, 0, boundary)
        fy = _difference(f, 1, boundary)
        fz = _difference(f, 2, boundary)
        fxy = _difference(fx, 1, boundary)
        fxz = _difference(fx, 2, boundary)
        fyz = _difference(fy, 2, boundary)
        fxyz = _difference(fxy, 2, boundary)
        # Differences in index units are already the derivatives scaled by the cell size (h_x f_x etc.).
        return cls(axes, np.stack([f, fx, fy, fz, fxy, fxz, fyz, fxyz]), boundary)

    @classmethod
    def from_derivatives(cls, axes: Sequence, values, fx, fy, fz, fxy, fxz, fyz, fxyz) -> "Tricubic":
        """Interpolant from f and its derivatives (physical units) at every node; exact for tricubic polynomials.

        Parameters
        ----------
        axes : sequence of array_like
            The three equally spaced axes.
        values, fx, fy, fz, fxy, fxz, fyz, fxyz : array_like
            f and its derivatives, each of shape (len(x), len(y), len(z)).

        Returns
        -------
        Tricubic
            The interpolant (every cell defined).
        """
        axes, f = cls._check_values(axes, values, 2)
        hx, hy, hz = ((a[-1] - a[0]) / (a.size - 1) for a in axes)
        scaled = [f]
        for arr, name, scale in ((fx, "fx", hx), (fy, "fy", hy), (fz, "fz", hz), (fxy, "fxy", hx * hy),
                                 (fxz, "fxz", hx * hz), (fyz, "fyz", hy * hz), (fxyz, "fxyz", hx * hy * hz)):
            arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != f.shape:
                raise ValueError(f"{name} must have shape {f.shape}, got {arr.shape}")
            scaled.append(arr * scale)
        return cls(axes, np.stack(scaled), "exact")

    @classmethod
    def from_points(cls, points, values, boundary: str = "nan") -> "Tricubic":
        """Interpolant from a scattered listing of a full regular grid, in any order (ARBInterp's [x, y, z, f] layout).

        Parameters
        ----------
        points : array_like
            (M, 3) grid points, each point of the grid exactly once.
        values : array_like
            (M,) values.
        boundary : str, optional
            As :meth:`from_grid`.

        Returns
        -------
        Tricubic
            The interpolant.
        """
        points = np.asarray(points, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] != values.size:
            raise ValueError(f"need points (M, 3) and values (M,), got {points.shape} and {values.shape}")
        axes, index = zip(*(np.unique(points[:, c], return_inverse=True) for c in range(3)))
        shape = tuple(a.size for a in axes)
        if int(np.prod(shape)) != values.size:
            raise ValueError(f"{values.size} points do not form a full {shape[0]}x{shape[1]}x{shape[2]} grid")
        grid = np.full(shape, np.nan)
        grid[index] = values
        flat = np.ravel_multi_index(index, shape)
        if np.unique(flat).size != values.size:
            raise ValueError("duplicate grid points")
        return cls.from_grid(axes, grid, boundary)

    # -- evaluation ---------------------------------------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        """Number of grid nodes (the |D| of Fig. 4c)."""
        return int(np.prod(self.shape))

    def _locate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inside = np.all((X >= self.low) & (X <= self.high), axis=1)  # False for NaN coordinates too
        u = np.where(np.isfinite(X), (X - self.low) / self.step, 0.0)
        top = np.array(self.shape) - 2
        cell = np.clip(np.floor(u), 0, top).astype(np.int64)
        return cell, u - cell, inside

    def _cell_coefficients(self, cell: np.ndarray) -> np.ndarray:
        """The 64 coefficients of each requested cell; shape (m, 64)."""
        nx, ny, nz = self.shape
        data = self._data.reshape(8, -1)
        b = np.empty((cell.shape[0], 64))
        for c, (cx, cy, cz) in enumerate(_CORNERS):
            flat = ((cell[:, 0] + cx) * ny + (cell[:, 1] + cy)) * nz + (cell[:, 2] + cz)
            b[:, c::8] = data[:, flat].T  # column 8 q + c
        return b @ _coefficient_matrix().T

    def _evaluate_local(self, cell: np.ndarray, t: np.ndarray, gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
        a = self._cell_coefficients(cell).reshape(-1, 4, 4, 4)  # [m, k, j, i]
        ones, zeros = np.ones(t.shape[0]), np.zeros(t.shape[0])
        powers = [np.stack([ones, s, s * s, s * s * s], axis=1) for s in t.T]  # (m, 4) per axis
        U, V, W = powers
        value = np.einsum("mkji,mi,mj,mk->m", a, U, V, W)
        if not gradient:
            return value, None
        dU, dV, dW = (np.stack([zeros, ones, 2 * s, 3 * s * s], axis=1) for s in t.T)
        grad = np.stack([np.einsum("mkji,mi,mj,mk->m", a, dU, V, W),
                         np.einsum("mkji,mi,mj,mk->m", a, U, dV, W),
                         np.einsum("mkji,mi,mj,mk->m", a, U, V, dW)], axis=1) / self.step
        return value, grad

    def evaluate(self, X, gradient: bool = False, chunk_size: int = 32768):
        """Interpolated values at X; NaN outside the grid and, with ``boundary="nan"``, in the outermost cell layer.

        Parameters
        ----------
        X : array_like
            (m, 3) query points.
        gradient : bool, optional
            Also return the gradients (default False).
        chunk_size : int, optional
            Points evaluated at once, to bound memory (default 32768).

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            (m,) values, or (values, (m, 3) gradients).
        """
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.ndim != 2 or X.shape[1] != 3:
            raise ValueError(f"expected query points of shape (m, 3), got {X.shape}")
        values = np.empty(X.shape[0])
        grads = np.empty((X.shape[0], 3)) if gradient else None
        for start in range(0, X.shape[0], int(chunk_size)):
            part = slice(start, start + int(chunk_size))
            cell, t, inside = self._locate(X[part])
            v, g = self._evaluate_local(cell, t, gradient)
            v[~inside] = np.nan
            values[part] = v
            if gradient:
                g[~inside] = np.nan
                grads[part] = g
        return (values, grads) if gradient else values

    def __call__(self, X) -> np.ndarray:
        return self.evaluate(X)


@dataclass(frozen=True)
class TricubicScaling:
    """A Fig. 4c tricubic curve: absolute test RMSE (NaN queries excluded, but counted) per grid size and seed."""

    eq_id: str
    n_nominal: np.ndarray  # configured TP
    points_per_axis: np.ndarray  # int(TP ** (1/3)) (see grid_points_per_axis)
    n_train: np.ndarray  # true grid size, what Fig. 4c plots for the tricubic
    seeds: tuple[int, ...]
    n_test: int
    rmse: np.ndarray  # (n_sizes, n_seeds), over the finite predictions only
    n_nan: np.ndarray  # (n_sizes, n_seeds): test points that got NaN and were left out of the RMSE
    boundary: str

    @property
    def rmse_mean(self) -> np.ndarray:
        return self.rmse.mean(axis=1)

    @property
    def rmse_std(self) -> np.ndarray:
        """Population std over seeds (NumPy default), as the authors' figure notebooks compute it."""
        return self.rmse.std(axis=1)

    @property
    def nan_fraction(self) -> np.ndarray:
        return self.n_nan / self.n_test

    def slope(self) -> float:
        """Least-squares slope of log(mean RMSE) against log(n_train)."""
        return float(np.polyfit(np.log(self.n_train), np.log(self.rmse_mean), 1)[0])


def tricubic_scaling(n_nominal: Sequence[int] = FIG4C_SIZES, seeds: Sequence[int] = (0, 1, 2, 3),
                     n_test: int = 30_000, eq_id: str = "I.30.5", boundary: str = "nan",
                     rule: str = "authors") -> TricubicScaling:
    """Fig. 4c (tricubic) in the authors' layout: absolute RMSE on the central 80% box and the NaN count per grid size.
    Its slope tends to -1, not the paper's -4/3: finite-difference derivatives make the interpolant only O(h^3)."""
    from pml import data, equations  # equations pulls in sympy: import it only when needed

    eq = equations.get(eq_id)
    if eq.dim != 3:
        raise ValueError(f"tricubic interpolation needs a 3-variable equation; {eq_id} has {eq.dim}")
    seeds = tuple(int(s) for s in seeds)
    sizes = [int(n) for n in n_nominal]
    roots = [grid_points_per_axis(n, 3, rule) for n in sizes]
    tests = [data.sample_test(eq.ranges, n_test, np.random.default_rng(s)) for s in seeds]
    truths = [eq(X) for X in tests]
    rmse = np.empty((len(sizes), len(seeds)))
    n_nan = np.empty((len(sizes), len(seeds)), dtype=np.int64)
    for a, m in enumerate(roots):
        axes, X = regular_grid(eq.ranges, m)
        interp = Tricubic.from_grid(axes, eq(X).reshape(m, m, m), boundary=boundary)
        for b, (X_test, y_test) in enumerate(zip(tests, truths)):
            y_pred = interp(X_test)
            ok = np.isfinite(y_pred)
            n_nan[a, b] = int(np.sum(~ok))
            rmse[a, b] = metrics.rmse(y_pred[ok], y_test[ok]) if ok.any() else np.nan
    return TricubicScaling(eq_id, np.array(sizes), np.array(roots), np.array(roots) ** 3, seeds, int(n_test), rmse,
                           n_nan, boundary)
