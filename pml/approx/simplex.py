"""Linear simplex interpolation, the piecewise-linear baseline of paper §2 (Figs. 1-3, 5, 6).

d = 1: the arithmetic of the authors' ``interp1d(kind="linear")`` (ejmichaud/precision-ml,
``scripts/feynman-simplex-subexperiment-v2.py``); d >= 2: ``scipy.spatial.Delaunay`` (upstream's options) and the values
of ``LinearNDInterpolator``. Queries outside the convex hull get NaN and are counted (``inside``, ``n_outside``); the
authors' script dropped them before the RMSE, which in 5-6 dimensions at small |D| removes up to ~75% of the test set
(the book's appendix on where the paper and its code disagree).

Speed: SciPy computes the barycentric transform of every simplex, slow in 5-6 dimensions with a threaded BLAS.
``method="walk"`` (d >= 4) walks from each query's nearest training point and transforms only the simplices it visits;
``method="scipy"`` (d = 2, 3) locates queries in Morton order; ``"plain"`` is upstream's call. All give the same values,
up to the rounding of a query on a shared face."""

from __future__ import annotations

import dataclasses

import numpy as np

from pml.threads import limit_threads

__all__ = [
    "METHODS",
    "SimplexInterpolator",
    "SimplexResult",
    "morton_order",
    "simplex_interpolate",
]

METHODS = ("auto", "walk", "scipy", "plain")

_EPS = 100 * np.finfo(np.float64).eps  # LinearNDInterpolator's simplex tolerance (eps = 100 DBL_EPSILON)


@dataclasses.dataclass(frozen=True)
class SimplexResult:
    """Interpolated values at the query points, with points outside the convex hull reported, never dropped."""

    values: np.ndarray
    inside: np.ndarray
    cell: np.ndarray

    @property
    def n_outside(self) -> int:
        return int(self.inside.size - np.count_nonzero(self.inside))

    @property
    def n_inside(self) -> int:
        return int(np.count_nonzero(self.inside))

    @property
    def fraction_outside(self) -> float:
        return self.n_outside / max(self.inside.size, 1)

    def rmse(self, y_true) -> float:
        """Absolute RMSE over the points *inside* the hull (the authors' convention; see ``n_outside``)."""
        y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
        if y_true.shape != self.values.shape:
            raise ValueError(f"y_true has {y_true.size} values for {self.values.size} query points")
        if self.n_inside == 0:
            raise ValueError("every query point lies outside the convex hull: no RMSE")
        err = self.values[self.inside] - y_true[self.inside]
        return float(np.sqrt(np.mean(err**2)))


# ---------------------------------------------------------------------------------------------------------------------
# Space-filling-curve order
# ---------------------------------------------------------------------------------------------------------------------


def morton_order(X, bits: int | None = None) -> np.ndarray:
    """A permutation that sorts the points along a Morton (Z-order) curve."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {X.shape}")
    n, d = X.shape
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    if bits is None:
        bits = min(16, 63 // d)
    if not 1 <= bits <= 63 // d:
        raise ValueError(f"bits must lie in [1, {63 // d}] for d = {d}, got {bits}")
    finite = np.isfinite(X).all(axis=1)
    lo = np.min(X[finite], axis=0) if finite.any() else np.zeros(d)
    hi = np.max(X[finite], axis=0) if finite.any() else np.ones(d)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.clip((np.nan_to_num(X, nan=0.0) - lo) / span, 0.0, 1.0)
    q = np.minimum((scaled * (1 << bits)).astype(np.uint64), np.uint64((1 << bits) - 1))
    key = np.zeros(n, dtype=np.uint64)
    one = np.uint64(1)
    for b in range(bits):
        for j in range(d):
            key |= ((q[:, j] >> np.uint64(b)) & one) << np.uint64(b * d + j)
    return np.argsort(key, kind="stable")


# ---------------------------------------------------------------------------------------------------------------------
# The interpolator
# ---------------------------------------------------------------------------------------------------------------------


class SimplexInterpolator:
    """Piecewise-linear interpolant on the Delaunay triangulation (an interval mesh in 1D), paper §2.

    Calling it on query points returns a :class:`SimplexResult`; ``n_params`` is the paper's N = |D|(d+1).

    Parameters
    ----------
    X_train : array_like
        (n, d) training inputs, or (n,) for d = 1; finite, at least d + 1 points (distinct in 1D).
    y_train : array_like
        (n,) training values, finite.
    method : str, optional
        The evaluation route for d >= 2 (the module's): ``"auto"`` (default), ``"walk"``, ``"scipy"`` or ``"plain"``;
        all give the values of SciPy's ``LinearNDInterpolator``.
    """

    def __init__(self, X_train, y_train, method: str = "auto"):
        X = np.asarray(X_train, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        y = np.asarray(y_train, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or X.shape[0] != y.size:
            raise ValueError(f"X_train must have shape (n, d) with n = len(y_train); got {X.shape} and {y.shape}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {list(METHODS)}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("training points and values must be finite")
        self.dim = X.shape[1]
        if X.shape[0] < self.dim + 1:
            raise ValueError(f"need at least d+1 = {self.dim + 1} training points, got {X.shape[0]}")
        self.n_train = X.shape[0]
        if method == "auto":  # the walk wins from d = 4 (many simplices); below, SciPy's walk is cheaper
            method = "walk" if self.dim >= 4 else "scipy"
        self.method = method
        self.tri = None
        if self.dim == 1:
            order = np.argsort(X[:, 0], kind="stable")
            self._x, self._y = X[order, 0], y[order]
            if np.any(np.diff(self._x) == 0):
                raise ValueError("1D training inputs must be distinct")
            return
        from scipy.spatial import Delaunay

        self.tri = Delaunay(X)  # default qhull options, as the authors' code
        self._y = np.ascontiguousarray(y)
        self._scipy_interp = None
        if method == "walk":
            # transforms computed so far: rows of _store, simplex s at row _slot[s] (-1: not yet computed); 8 bytes
            # per simplex instead of SciPy's (d+1)*d*8 for all of them
            self._slot = np.full(self.tri.nsimplex, -1, dtype=np.int64)
            self._store = np.empty((0, self.dim + 1, self.dim))
            self._n_cached = 0
            self._kdtree = None

    @property
    def n_params(self) -> int:
        return self.n_train * (self.dim + 1)

    # -- public evaluation -------------------------------------------------------------------------------------

    def __call__(self, X) -> SimplexResult:
        X = self._queries(X)
        if self.dim == 1:
            values, cell = self._linear_1d(X[:, 0])
        elif self.method == "walk":
            with limit_threads(1):  # one BLAS thread for the many small transform batches
                values, cell = self._walk_evaluate(X)
        elif self.method == "scipy":
            with limit_threads(1):
                transform = self.tri.transform  # computed once, cached by SciPy (the expensive part)
            cell = self._scipy_find(X, ordered=True).astype(np.int64)
            values = self._values(cell, X, lambda ids: transform[ids])
        else:
            values = self._scipy_values(X, ordered=False)
            cell = np.where(np.isnan(values), -1, self._scipy_find(X, ordered=False))
        return SimplexResult(values=values, inside=~np.isnan(values), cell=cell)

    def find(self, X) -> np.ndarray:
        """Index of the simplex (d >= 2) or interval (d = 1) containing each query point.

        Parameters
        ----------
        X : array_like
            (m, d) query points.

        Returns
        -------
        numpy.ndarray
            (m,) indices, -1 outside the convex hull.
        """
        return self(X).cell

    # -- helpers ------------------------------------------------------------------------------------------------

    def _queries(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1 and self.dim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"query points must have shape (n, {self.dim}), got {X.shape}")
        return np.ascontiguousarray(X)

    def _ordered(self, X: np.ndarray, fn, ordered: bool) -> np.ndarray:
        if not ordered or len(X) < 2:
            return np.asarray(fn(X))
        perm = morton_order(X)
        out_sorted = np.asarray(fn(np.ascontiguousarray(X[perm])))
        out = np.empty_like(out_sorted)
        out[perm] = out_sorted
        return out

    def _scipy_values(self, X: np.ndarray, ordered: bool) -> np.ndarray:
        from scipy.interpolate import LinearNDInterpolator

        if self._scipy_interp is None:
            if ordered or self.method == "walk":
                with limit_threads(1):
                    self.tri.transform  # noqa: B018 -- computed once and cached by SciPy (the expensive part)
            self._scipy_interp = LinearNDInterpolator(self.tri, self._y)
        return self._ordered(X, self._scipy_interp, ordered)

    def _scipy_find(self, X: np.ndarray, ordered: bool) -> np.ndarray:
        return self._ordered(X, self.tri.find_simplex, ordered)

    def _interval(self, x: np.ndarray) -> np.ndarray:
        inside = (x >= self._x[0]) & (x <= self._x[-1])
        idx = np.clip(np.searchsorted(self._x, x), 1, self._x.size - 1) - 1
        return np.where(inside, idx, -1)

    def _linear_1d(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """interp1d(kind='linear', bounds_error=False)'s arithmetic: slope * (x - x_lo) + y_lo, NaN outside."""
        hi = np.clip(np.searchsorted(self._x, x), 1, self._x.size - 1)
        lo = hi - 1
        x_lo, x_hi, y_lo, y_hi = self._x[lo], self._x[hi], self._y[lo], self._y[hi]
        slope = (y_hi - y_lo) / (x_hi - x_lo)
        values = slope * (x - x_lo) + y_lo
        inside = (x >= self._x[0]) & (x <= self._x[-1])
        return np.where(inside, values, np.nan), np.where(inside, lo, -1)

    # -- the vectorised walk (method="walk") --------------------------------------------------------------------

    def _ensure_transforms(self, ids: np.ndarray) -> None:
        need = np.unique(ids[self._slot[ids] < 0])
        if need.size == 0:
            return
        new = _barycentric_transforms(self.tri.points, self.tri.simplices[need])
        start, stop = self._n_cached, self._n_cached + need.size
        if stop > self._store.shape[0]:
            grown = np.empty((max(stop, 2 * self._store.shape[0]), self.dim + 1, self.dim))
            grown[:start] = self._store[:start]
            self._store = grown
        self._store[start:stop] = new
        self._slot[need] = np.arange(start, stop)
        self._n_cached = stop

    def _cached_transforms(self, ids: np.ndarray) -> np.ndarray:
        return self._store[self._slot[ids]]

    def _values(self, cell: np.ndarray, X: np.ndarray, transforms_of) -> np.ndarray:
        """Interpolated values for the points with ``cell >= 0`` (NaN elsewhere), computed with the operations of
        ``LinearNDInterpolator`` in its order: c = barycentric(x); out = 0; out = out + c[j] * y[vertex j]."""
        values = np.full(X.shape[0], np.nan)
        idx = np.flatnonzero(cell >= 0)
        if idx.size:
            c = self._barycentric(transforms_of(cell[idx]), X[idx])
            verts = self.tri.simplices[cell[idx]]
            acc = np.zeros(idx.size)
            for j in range(self.dim + 1):
                acc = acc + c[:, j] * self._y[verts[:, j]]
            values[idx] = acc
        return values

    def _barycentric(self, T: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Barycentric coordinates (n, d+1) of X (n, d) in simplices with transforms T (n, d+1, d), with SciPy's
        operation order (``_barycentric_coordinate_single``)."""
        d = self.dim
        c = np.empty((X.shape[0], d + 1))
        last = np.ones(X.shape[0])
        for i in range(d):
            acc = np.zeros(X.shape[0])
            for j in range(d):
                acc = acc + T[:, i, j] * (X[:, j] - T[:, d, j])
            c[:, i] = acc
        for i in range(d):
            last = last - c[:, i]
        c[:, d] = last
        return c

    def _climb(self, cur: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Hill-climb on the lifted paraboloid (SciPy's first stage, vectorised; needs no transforms)."""
        tri = self.tri
        d = self.dim
        eq = tri.equations  # (nsimplex, d+2): normal (d+1) and offset of each lifted facet
        z = np.empty((X.shape[0], d + 1))
        z[:, :d] = X
        z[:, d] = np.sum(X**2, axis=1) * tri.paraboloid_scale + tri.paraboloid_shift
        cur = cur.copy()
        dist = np.einsum("nk,nk->n", eq[cur, :d + 1], z) + eq[cur, d + 1]
        todo = np.arange(cur.size)
        for _ in range(4 * tri.nsimplex):
            if todo.size == 0:
                break
            nb = tri.neighbors[cur[todo]]  # (m, d+1)
            valid = nb >= 0
            nbc = np.where(valid, nb, 0)
            nd = np.einsum("mjk,mk->mj", eq[nbc, :d + 1], z[todo]) + eq[nbc, d + 1]
            nd = np.where(valid, nd, -np.inf)
            j = np.argmax(nd, axis=1)
            best = nd[np.arange(todo.size), j]
            better = best > dist[todo] + _EPS * (1 + np.abs(dist[todo]))
            idx = todo[better]
            cur[idx] = nbc[better, j[better]]
            dist[idx] = best[better]
            todo = idx
        return cur

    def _walk_evaluate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.spatial import cKDTree

        n, d = X.shape
        tri = self.tri
        cell = np.full(n, -2, dtype=np.int64)  # -2: unresolved, -1: outside
        lo, hi = tri.min_bound, tri.max_bound
        box_out = np.any((X < lo - _EPS) | (X > hi + _EPS), axis=1)  # SciPy's bounding-box shortcut
        box_out |= ~np.isfinite(X).all(axis=1)  # NaN/inf queries: no simplex (SciPy also returns NaN)
        cell[box_out] = -1
        active = np.flatnonzero(~box_out)
        if active.size:
            if self._kdtree is None:
                self._kdtree = cKDTree(tri.points)
            _, nearest = self._kdtree.query(X[active])
            cur = tri.vertex_to_simplex[nearest].astype(np.int64)
            cur[cur < 0] = 0
            neighbors = tri.neighbors
            cur = self._climb(cur, X[active])
            for _ in range(64 + 4 * d):
                if active.size == 0:
                    break
                self._ensure_transforms(cur)
                c = self._barycentric(self._cached_transforms(cur), X[active])
                bad = np.isnan(c).any(axis=1)
                kmin = np.argmin(np.where(np.isnan(c), np.inf, c), axis=1)
                cmin = c[np.arange(active.size), kmin]
                inside = ~bad & (cmin >= -_EPS) & np.all(c <= 1 + _EPS, axis=1)
                cell[active[inside]] = cur[inside]
                hop = ~bad & (cmin < -_EPS)
                nxt = neighbors[cur, kmin]
                cell[active[hop & (nxt == -1)]] = -1  # beyond a hull facet: outside the convex hull
                move = hop & (nxt != -1)
                # anything else (NaN transform, inconsistent coordinates) stays -2 and goes to SciPy below
                active, cur = active[move], nxt[move].astype(np.int64)
        values = self._values(cell, X, self._cached_transforms)
        unresolved = np.flatnonzero(cell == -2)
        if unresolved.size:
            Xu = X[unresolved]
            values[unresolved] = self._scipy_values(Xu, ordered=True)
            cell[unresolved] = np.where(np.isnan(values[unresolved]), -1, self._scipy_find(Xu, ordered=True))
        return values, cell


def _barycentric_transforms(points: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """``Delaunay.transform`` rows for the given simplices (SciPy's own routine, so bit-identical)."""
    try:
        from scipy.spatial._qhull import _get_barycentric_transforms
    except ImportError:  # pragma: no cover - private SciPy API; NumPy fallback (same maths, rounding may differ)
        return _barycentric_transforms_numpy(points, simplices)
    return _get_barycentric_transforms(points, np.ascontiguousarray(simplices, dtype=np.intc),
                                       np.finfo(np.float64).eps)


def _barycentric_transforms_numpy(points: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    d = points.shape[1]
    r = points[simplices[:, d]]
    T = np.transpose(points[simplices[:, :d]] - r[:, None, :], (0, 2, 1))  # T[:, i, j] = p_j[i] - r[i]
    out = np.full((simplices.shape[0], d + 1, d), np.nan)
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(T, 1)
        ok = np.isfinite(cond) & (1.0 / cond >= np.finfo(np.float64).eps)
        out[ok, :d, :] = np.linalg.inv(T[ok])
    out[ok, d, :] = r[ok]
    return out


def simplex_interpolate(X_train, y_train, X_query, method: str = "auto") -> SimplexResult:
    """One-shot :class:`SimplexInterpolator` (paper §2): values at ``X_query`` with the outside points reported."""
    return SimplexInterpolator(X_train, y_train, method=method)(X_query)
