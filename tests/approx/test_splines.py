import math

import numpy as np
import pytest
from scipy import interpolate

from pml.approx import splines


# ---------------------------------------------------------------------------------------------------------------------
# Grid layouts
# ---------------------------------------------------------------------------------------------------------------------
def test_fig4_sizes_match_the_spec():
    a = splines.fig4a_sizes()
    assert len(a) == 31 and a[:3] == [11, 17, 25] and a[-1] == 2_184_164
    assert {129, 1477, 16834} <= set(a)
    b = splines.fig4b_sizes()
    assert b[0] == 38 and b[-1] == 1_456_109
    assert splines.fig4b_points_per_axis(38) == 6
    np.testing.assert_array_equal(splines.fig4a_nodes(11), np.linspace(-1, 1, 11))
    np.testing.assert_array_equal(splines.fig4b_nodes(38), np.linspace(-1, 1, 6))


def test_grid_points_per_axis_reproduces_the_authors_truncation():
    nominal = [64, 256, 1024, 4096, 16384, 65536, 262144]
    assert [splines.grid_points_per_axis(n) for n in nominal] == [3, 6, 10, 15, 25, 40, 63]
    assert [splines.grid_points_per_axis(n) ** 3 for n in splines.FIG4C_SIZES] == [216, 1000, 3375, 15625, 64000,
                                                                                  250047]
    assert [splines.grid_points_per_axis(n, rule="exact") for n in (64, 4096, 262144, 63, 65)] == [4, 16, 64, 3, 4]
    # Same as CPython's correctly rounded ** on every n, and on every perfect cube up to 300^3.
    for n in list(range(1, 3000)) + [m**3 for m in range(1, 301)] + [m**3 - 1 for m in range(2, 301)]:
        assert splines.grid_points_per_axis(n) == int(n ** (1 / 3)), n
    for n in range(1, 3000, 7):
        assert splines.grid_points_per_axis(n, dim=2) == math.isqrt(n)


def test_grid_points_per_axis_rejects_bad_arguments():
    with pytest.raises(ValueError, match="authors"):
        splines.grid_points_per_axis(64, rule="round")
    with pytest.raises(ValueError, match="positive integer"):
        splines.grid_points_per_axis(0)


def test_regular_grid_is_ij_ordered():
    axes, X = splines.regular_grid([(0, 1), (2, 5), (1, 5)], [2, 3, 4])
    assert [a.size for a in axes] == [2, 3, 4] and X.shape == (24, 3)
    V = (X[:, 0] + 10 * X[:, 1] + 100 * X[:, 2]).reshape(2, 3, 4)
    assert V[1, 2, 3] == axes[0][1] + 10 * axes[1][2] + 100 * axes[2][3]


# ---------------------------------------------------------------------------------------------------------------------
# 1D and 2D splines
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", splines.SPLINE_ORDERS_1D)
def test_spline_1d_is_interp1d_bit_for_bit(order):
    x = np.linspace(-1, 1, 23)
    t = np.linspace(-0.9, 0.9, 101)
    ours = splines.spline_1d(x, np.exp(x), order)(t)
    np.testing.assert_array_equal(ours, interpolate.make_interp_spline(x, np.exp(x), k=order)(t))
    np.testing.assert_array_equal(ours, interpolate.interp1d(x, np.exp(x), kind=order)(t))


def test_spline_1d_reproduces_fig4a_numbers():
    # Reproduction spec, Figure 4(a) table [recomputed, SciPy 1.13.1].
    expected = {1: (3.67e-3, 2.23e-5), 2: (1.14e-4, 2.19e-8), 3: (1.25e-5, 9.92e-11), 5: (1.73e-7, None),
                7: (2.97e-9, None)}
    for order, (at11, at129) in expected.items():
        curve = splines.spline_scaling_1d(order, sizes=[11, 129, 16834])
        np.testing.assert_allclose(curve.rel_rmse[0], at11, rtol=5e-3)
        if at129 is not None:
            np.testing.assert_allclose(curve.rel_rmse[1], at129, rtol=5e-3)
        assert curve.rel_rmse[-1] < (2e-9 if order == 1 else 1e-14)  # the floor ~2e-16 for order >= 3


def test_spline_1d_slopes_are_minus_order_plus_one():
    # Pre-floor range n = 57 ... 1477 (Fig. 4a: D^-(p+1); the figure's "D^-2/2", "D^-3/2" labels are typos).
    for order in (1, 2, 3):
        curve = splines.spline_scaling_1d(order, sizes=splines.fig4a_sizes()[4:13])
        slope = np.polyfit(np.log(curve.n_train), np.log(curve.rel_rmse), 1)[0]
        assert abs(slope + (order + 1)) < 0.1, (order, slope)


def test_spline_order_is_validated():
    x = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match=r"\[1, 2, 3, 4, 5, 6, 7\]"):
        splines.spline_1d(x, x, 8)
    with pytest.raises(ValueError, match=r"\[1, 3, 5\]"):
        splines.spline_2d(x, x, np.zeros((10, 10)), 2)


@pytest.mark.parametrize("order", splines.SPLINE_ORDERS_2D)
def test_spline_2d_transpose_convention(order):
    # interp2d layout: Z[j, i] = f(x[i], y[j]); a non-symmetric f on a non-square grid catches a missing transpose.
    def f(x, y):
        return 1 + 2 * x - y + 0.5 * x * y if order == 1 else x**3 - 2 * x * y**2 + 0.3 * y**3 - y

    x, y = np.linspace(-1, 2, 9), np.linspace(0, 1, 7)
    Z = f(x[None, :], y[:, None])
    spl = splines.spline_2d(x, y, Z, order)
    xq, yq = np.linspace(-0.7, 1.9, 5), np.linspace(0.1, 0.9, 4)
    grid = spl.grid(xq, yq)
    assert grid.shape == (yq.size, xq.size)
    np.testing.assert_allclose(grid, f(xq[None, :], yq[:, None]), atol=1e-12)
    pts = np.array([[1.3, 0.2], [-0.4, 0.8]])
    np.testing.assert_allclose(spl(pts), f(pts[:, 0], pts[:, 1]), atol=1e-12)
    with pytest.raises(ValueError, match="interp2d layout"):
        splines.spline_2d(x, y, Z.T, order)


def test_spline_2d_reproduces_fig4b_numbers():
    # Reproduction spec, Figure 4(b): 8.52e-3, 7.22e-5, 4.65e-6 at nominal n = 38 (6 x 6 nodes); quintic 3.36e-16
    # at 16,834.
    expected = {1: 8.52e-3, 3: 7.22e-5, 5: 4.65e-6}
    for order, value in expected.items():
        curve = splines.spline_scaling_2d(order, sizes=[38, 16834])
        assert list(curve.n_train) == [36, 16641] and list(curve.n_nominal) == [38, 16834]
        np.testing.assert_allclose(curve.rel_rmse[0], value, rtol=5e-3)
    assert curve.rel_rmse[1] < 1e-15


# ---------------------------------------------------------------------------------------------------------------------
# Tricubic
# ---------------------------------------------------------------------------------------------------------------------
def _random_tricubic(rng):
    a = rng.normal(size=(4, 4, 4))  # a[i, j, k] multiplies x^i y^j z^k

    def value(X, dx=0, dy=0, dz=0):
        out = np.zeros(X.shape[0])
        for i in range(dx, 4):
            for j in range(dy, 4):
                for k in range(dz, 4):
                    c = a[i, j, k] * math.perm(i, dx) * math.perm(j, dy) * math.perm(k, dz)
                    out += c * X[:, 0] ** (i - dx) * X[:, 1] ** (j - dy) * X[:, 2] ** (k - dz)
        return out

    return value


ANISOTROPIC = [(-1.0, 1.0), (0.5, 2.0), (-0.3, 0.9)]


def test_coefficient_matrix_is_the_integer_lekien_marsden_matrix():
    A = splines.tricubic_coefficient_matrix()
    assert A.shape == (64, 64)
    np.testing.assert_array_equal(A, np.rint(A))
    np.testing.assert_array_equal(A[0], np.eye(64)[0])  # a_000 = f at corner 0
    np.testing.assert_array_equal(A[1], np.eye(64)[8])  # a_100 = h_x f_x at corner 0
    assert np.abs(A).max() == 27  # largest entry of the published table (3^3 from the 1D Hermite factors)


def test_tricubic_reproduces_tricubic_polynomials_with_exact_derivatives():
    rng = np.random.default_rng(0)
    p = _random_tricubic(rng)
    axes, X = splines.regular_grid(ANISOTROPIC, [5, 4, 6])
    shape = [a.size for a in axes]
    derivs = [p(X, *d).reshape(shape) for d in
              [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]]
    interp = splines.Tricubic.from_derivatives(axes, *derivs)
    lo, hi = np.array(ANISOTROPIC).T
    Q = rng.uniform(lo, hi, size=(2000, 3))
    values, grads = interp.evaluate(Q, gradient=True)
    scale = np.abs(p(Q)).max()
    np.testing.assert_allclose(values, p(Q), atol=1e-12 * scale)
    for axis, d in enumerate([(1, 0, 0), (0, 1, 0), (0, 0, 1)]):
        np.testing.assert_allclose(grads[:, axis], p(Q, *d), atol=1e-11 * scale)


@pytest.mark.parametrize("boundary", splines.BOUNDARY_MODES)
def test_finite_difference_tricubic_is_exact_for_triquadratics(boundary):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 3, 3))

    def q(X):
        return sum(a[i, j, k] * X[:, 0] ** i * X[:, 1] ** j * X[:, 2] ** k
                   for i in range(3) for j in range(3) for k in range(3))

    axes, X = splines.regular_grid(ANISOTROPIC, [6, 5, 7])
    interp = splines.Tricubic.from_grid(axes, q(X).reshape(6, 5, 7), boundary=boundary)
    lo, hi = np.array(ANISOTROPIC).T
    if boundary == "nan":  # only the cells away from the outer layer are defined
        h = (hi - lo) / (np.array([6, 5, 7]) - 1)
        lo, hi = lo + h, hi - h
    Q = rng.uniform(lo, hi, size=(1000, 3))
    np.testing.assert_allclose(interp(Q), q(Q), atol=1e-12)


@pytest.mark.parametrize("boundary", splines.BOUNDARY_MODES)
def test_tricubic_interpolates_grid_values(boundary):
    rng = np.random.default_rng(2)
    axes, X = splines.regular_grid(ANISOTROPIC, [6, 7, 5])
    V = rng.normal(size=(6, 7, 5))
    interp = splines.Tricubic.from_grid(axes, V, boundary=boundary)
    got = interp(X).reshape(V.shape)
    inner = (slice(1, -2),) * 3 if boundary == "nan" else (slice(None),) * 3  # node n-2 opens an undefined cell
    np.testing.assert_allclose(got[inner], V[inner], atol=1e-13)
    assert interp.n_points == 210


def test_tricubic_is_c1_across_cell_faces():
    rng = np.random.default_rng(3)
    axes, _ = splines.regular_grid(ANISOTROPIC, [7, 6, 8])
    interp = splines.Tricubic.from_grid(axes, rng.normal(size=(7, 6, 8)), boundary="one-sided")
    m = 200
    for axis in range(3):
        cell = np.stack([rng.integers(0, n - 1, m) for n in interp.shape], axis=1)
        cell[:, axis] = rng.integers(0, interp.shape[axis] - 2, m)
        t = rng.uniform(size=(m, 3))
        t[:, axis] = 1.0
        left_v, left_g = interp._evaluate_local(cell, t, gradient=True)
        cell2, t2 = cell.copy(), t.copy()
        cell2[:, axis] += 1
        t2[:, axis] = 0.0
        right_v, right_g = interp._evaluate_local(cell2, t2, gradient=True)
        np.testing.assert_allclose(left_v, right_v, atol=1e-12)
        np.testing.assert_allclose(left_g, right_g, atol=1e-10)
        # The second normal derivative is allowed to jump (C1, not C2): check that it does, so the test has teeth.
        eps = 1e-4
        step = np.zeros(3)
        step[axis] = eps
        lv = interp._evaluate_local(cell, t - step, gradient=True)[1][:, axis]
        rv = interp._evaluate_local(cell2, t2 + step, gradient=True)[1][:, axis]
        assert np.max(np.abs((rv - right_g[:, axis]) - (left_g[:, axis] - lv))) > 1e-6


def test_tricubic_nan_convention_matches_arbinterp():
    # 6 points per axis: cells 0 and 4 of 5 are undefined, so in the central 80% box 1 - 0.75^3 = 57.8% are NaN.
    axes, X = splines.regular_grid([(0, 5)] * 3, 6)
    interp = splines.Tricubic.from_grid(axes, np.sin(X).sum(axis=1).reshape(6, 6, 6))
    Q = np.random.default_rng(4).uniform(0.5, 4.5, size=(20000, 3))
    y = interp(Q)
    outer = np.any((Q < 1) | (Q >= 4), axis=1)
    assert np.all(np.isnan(y[outer])) and np.all(np.isfinite(y[~outer]))
    assert abs(np.mean(outer) - (1 - 0.75**3)) < 0.01
    assert np.all(np.isnan(interp(np.array([[-0.1, 2, 2], [2, 2, 5.1], [np.nan, 2, 2], [2, np.inf, 2]]))))
    one_sided = splines.Tricubic.from_grid(axes, np.sin(X).sum(axis=1).reshape(6, 6, 6), boundary="one-sided")
    assert np.all(np.isfinite(one_sided(Q)))


def test_from_points_accepts_the_arbinterp_layout_in_any_order():
    axes, X = splines.regular_grid(ANISOTROPIC, [5, 6, 4])
    f = np.cos(X).prod(axis=1)
    perm = np.random.default_rng(5).permutation(f.size)
    a = splines.Tricubic.from_points(X[perm], f[perm])
    b = splines.Tricubic.from_grid(axes, f.reshape(5, 6, 4))
    Q = np.random.default_rng(6).uniform([-0.5, 0.9, 0.0], [0.5, 1.6, 0.6], size=(50, 3))
    np.testing.assert_array_equal(a(Q), b(Q))
    with pytest.raises(ValueError, match="full"):
        splines.Tricubic.from_points(X[:-1], f[:-1])


def test_tricubic_rejects_bad_input():
    axes = [np.linspace(0, 1, 5)] * 3
    with pytest.raises(ValueError, match="nan"):
        splines.Tricubic.from_grid(axes, np.zeros((5, 5, 5)), boundary="periodic")
    with pytest.raises(ValueError, match="equally spaced"):
        splines.Tricubic.from_grid([np.array([0, 1, 3, 4.0]), axes[1], axes[2]], np.zeros((4, 5, 5)))
    with pytest.raises(ValueError, match="shape"):
        splines.Tricubic.from_grid(axes, np.zeros((5, 5, 4)))


def test_tricubic_convergence_orders():
    # Exact derivatives: error ~ h^4 (slope -4/3 against |D| = m^3). Central finite differences (Lekien-Marsden
    # as used by ARBInterp) make the scaled derivatives O(h^3) accurate, so the error tends to h^3 (slope -1).
    def f(X, dx=0, dy=0, dz=0):
        x, y, z = X.T
        fx = [np.sin(x), np.cos(x)][dx]
        fy = [np.cos(2 * y), -2 * np.sin(2 * y)][dy]
        fz = np.exp(z / 2) / 2**dz
        return fx * fy * fz

    box = [(0.0, 2.0), (0.0, 1.5), (-1.0, 1.0)]
    lo, hi = np.array(box).T
    Q = np.random.default_rng(7).uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), size=(4000, 3))
    sizes, exact_err, fd_err = [12, 24, 48], [], []
    for m in sizes:
        axes, X = splines.regular_grid(box, m)
        derivs = [f(X, *d).reshape(m, m, m) for d in
                  [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]]
        exact_err.append(np.sqrt(np.mean((splines.Tricubic.from_derivatives(axes, *derivs)(Q) - f(Q)) ** 2)))
        fd_err.append(np.sqrt(np.mean((splines.Tricubic.from_grid(axes, derivs[0])(Q) - f(Q)) ** 2)))
    logn = np.log(np.array(sizes) ** 3)
    exact_slopes = np.diff(np.log(exact_err)) / np.diff(logn)
    fd_slopes = np.diff(np.log(fd_err)) / np.diff(logn)
    assert np.all(np.abs(exact_slopes + 4 / 3) < 0.1), exact_slopes
    assert np.all(np.abs(fd_slopes[-1] + 1.0) < 0.15), fd_slopes


def test_tricubic_reproduces_fig4c_numbers():
    # Reproduction spec, Figure 4(c) [recomputed with ARBInterp v1.8]: 1.77e-3 @216, 4.68e-4 @1000, 9.78e-5 @3375.
    result = splines.tricubic_scaling(n_nominal=(256, 1024, 4096), seeds=(0, 1), n_test=30_000)
    assert list(result.n_train) == [216, 1000, 3375]
    np.testing.assert_allclose(result.rmse_mean, [1.77e-3, 4.68e-4, 9.78e-5], rtol=0.05)
    np.testing.assert_allclose(result.nan_fraction.mean(axis=1), [1 - 0.75**3, 0.08, 0.0], atol=0.01)
    assert result.rmse.shape == (3, 2) and result.n_nan.dtype.kind == "i"
    assert -1.5 < result.slope() < -1.0
