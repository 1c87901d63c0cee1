import numpy as np
import pytest
from scipy.interpolate import LinearNDInterpolator, interp1d

from pml import scaling
from pml.approx import simplex
from pml.threads import limit_threads


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_reproduces_affine_functions(d):
    rng = np.random.default_rng(d)
    X = rng.uniform(-1, 2, size=(60 * d, d))
    a, b = rng.normal(size=d), 0.7
    Q = rng.uniform(-0.5, 1.5, size=(500, d))
    res = simplex.simplex_interpolate(X, X @ a + b, Q)
    assert res.n_inside > 0
    np.testing.assert_allclose(res.values[res.inside], Q[res.inside] @ a + b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_outside_points_reported_not_dropped(d):
    rng = np.random.default_rng(10 + d)
    X = rng.uniform(0, 1, size=(40, d))
    Q = np.concatenate([np.full((3, d), 0.5) + rng.uniform(-0.01, 0.01, (3, d)), np.full((2, d), 5.0),
                        np.full((1, d), -3.0)])
    res = simplex.simplex_interpolate(X, X.sum(axis=1), Q)
    assert res.values.shape == (6,)
    assert res.inside.tolist() == [True, True, True, False, False, False]
    assert res.n_outside == 3 and res.n_inside == 3
    assert np.isnan(res.values[3:]).all() and np.isfinite(res.values[:3]).all()
    assert (res.cell[3:] == -1).all() and (res.cell[:3] >= 0).all()
    assert res.fraction_outside == pytest.approx(0.5)


def test_rmse_uses_inside_points_only():
    res = simplex.SimplexResult(values=np.array([1.0, np.nan, 3.0]), inside=np.array([True, False, True]),
                                cell=np.array([0, -1, 1]))
    assert res.rmse([0.0, 100.0, 3.0]) == pytest.approx(np.sqrt(0.5))
    with pytest.raises(ValueError):
        simplex.SimplexResult(values=np.array([np.nan]), inside=np.array([False]), cell=np.array([-1])).rmse([1.0])


def test_1d_matches_interp1d():
    rng = np.random.default_rng(0)
    x = rng.uniform(3, 6, 23)
    q = rng.uniform(2.9, 6.1, 2000)
    res = simplex.simplex_interpolate(x, np.cos(2 * x), q)
    ref = interp1d(x, np.cos(2 * x), kind="linear", bounds_error=False)(q)
    np.testing.assert_array_equal(res.values, ref)
    assert res.n_outside == int(np.isnan(ref).sum()) > 0


def test_1d_convergence_slope_minus_two():
    """Paper §2: linear interpolation error scales as N^(-2/d); in 1D the slope is -2 (evenly spaced nodes)."""
    q = np.random.default_rng(1).uniform(-0.8, 0.8, 5000)
    ns = np.array([64, 256, 1024, 4096])
    errs = [simplex.simplex_interpolate(x, np.exp(x), q).rmse(np.exp(q))
            for x in (np.linspace(-1, 1, n) for n in ns)]
    fit = scaling.fit_power_law(2 * ns, errs)
    assert fit.exponent == pytest.approx(-2.0, abs=0.02)


def test_1d_random_points_slope_near_minus_two():
    """Random training points (4 seeds averaged, as upstream): slope about -2 (spec: -1.97 for Z.001)."""
    ns, errs = [], []
    for n_train in [256, 1024, 4096, 16384]:
        e = []
        for seed in range(4):
            rng = np.random.default_rng(seed)
            x, q = rng.uniform(-1, 1, n_train), rng.uniform(-0.8, 0.8, 3000)
            e.append(simplex.simplex_interpolate(x, x**2, q).rmse(q**2))
        ns.append(2 * n_train)
        errs.append(np.mean(e))
    assert scaling.fit_power_law(ns, errs).exponent == pytest.approx(-2.0, abs=0.3)


def test_paper_fig1a_simplex_value():
    """Spec Fig. 1a: cos(2x) on [3, 6], 23 points, seed 1 (legacy NumPy stream), 30k test points in [3.3, 5.7]."""
    legacy = np.random.RandomState(1)
    x = legacy.uniform(3, 6, size=(23, 1))
    q = legacy.uniform(3.3, 5.7, size=(30000, 1))
    res = simplex.simplex_interpolate(x, np.cos(2 * x[:, 0]), q)
    assert res.rmse(np.cos(2 * q[:, 0])) == pytest.approx(0.021771, abs=2e-6)


@pytest.mark.parametrize("d,n", [(2, 500), (3, 300), (4, 150), (5, 80)])
def test_fast_paths_equal_plain_scipy(d, n):
    rng = np.random.default_rng(20 + d)
    X = rng.uniform(1, 5, size=(n, d))
    y = np.sin(X).sum(axis=1) * X[:, 0]
    Q = rng.uniform(0.9, 5.1, size=(3000, d))  # some outside the hull
    fast = simplex.SimplexInterpolator(X, y, method="walk")
    res = fast(Q)
    # SciPy's own call, caller's order. One BLAS thread only keeps the test fast on a busy machine (a multi-threaded
    # BLAS can take minutes for the transforms); the numbers are the same.
    with limit_threads(1):
        plain = LinearNDInterpolator(fast.tri, y)(Q)
    np.testing.assert_array_equal(res.values, plain)  # identical, NaN pattern included
    assert res.n_outside == int(np.isnan(plain).sum()) > 0
    np.testing.assert_array_equal(res.cell, np.where(np.isnan(plain), -1, fast.tri.find_simplex(Q)))
    for method in ("auto", "scipy", "plain"):
        with limit_threads(1):
            other = simplex.SimplexInterpolator(X, y, method=method)(Q)
        np.testing.assert_array_equal(other.values, plain)
        np.testing.assert_array_equal(other.cell, res.cell)


def test_walk_computes_only_visited_transforms():
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(400, 4))
    interp = simplex.SimplexInterpolator(X, X.sum(axis=1))
    assert interp.method == "walk"
    interp(rng.uniform(0.3, 0.7, size=(50, 4)))
    have = np.flatnonzero(interp._slot >= 0)
    assert 0 < have.size < 0.5 * interp.tri.nsimplex
    with limit_threads(1):
        full = interp.tri.transform
    np.testing.assert_array_equal(interp._cached_transforms(have), full[have])


def test_degenerate_grid_points_match_scipy():
    """Cospherical grid points give degenerate simplices and ties on faces: values must still be exact there."""
    g = np.linspace(0, 1, 5)
    X = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.25
    Q = np.random.default_rng(0).uniform(-0.05, 1.05, size=(2000, 3))
    res = simplex.simplex_interpolate(X, y, Q, method="walk")
    with limit_threads(1):
        plain = LinearNDInterpolator(X, y)(Q)
    np.testing.assert_array_equal(np.isnan(res.values), np.isnan(plain))
    np.testing.assert_allclose(res.values[res.inside], plain[res.inside], rtol=0, atol=1e-13)


def test_n_params_and_validation():
    X = np.random.default_rng(0).uniform(size=(10, 3))
    interp = simplex.SimplexInterpolator(X, X.sum(axis=1))
    assert interp.n_params == 40
    with pytest.raises(ValueError, match="walk"):
        simplex.SimplexInterpolator(X, X.sum(axis=1), method="hilbert")
    with pytest.raises(ValueError, match="shape"):
        interp(np.zeros((2, 2)))


def test_morton_order_is_a_local_permutation():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(4000, 3))
    perm = simplex.morton_order(X)
    assert np.array_equal(np.sort(perm), np.arange(4000))
    step = np.linalg.norm(np.diff(X[perm], axis=0), axis=1).mean()
    random_step = np.linalg.norm(np.diff(X, axis=0), axis=1).mean()
    assert step < 0.25 * random_step
    assert simplex.morton_order(np.zeros((0, 2))).size == 0


def test_paper_fig1b_simplex_value():
    """Spec Fig. 1b: xy on [1, 5]^2, |D| = 167, seed 0, 30k test points in [1.4, 4.6]^2: RMSE 0.018831."""
    legacy = np.random.RandomState(0)
    X = legacy.uniform([1, 1], [5, 5], size=(167, 2))
    Q = legacy.uniform([1.4, 1.4], [4.6, 4.6], size=(30000, 2))
    res = simplex.simplex_interpolate(X, X[:, 0] * X[:, 1], Q)
    assert res.rmse(Q[:, 0] * Q[:, 1]) == pytest.approx(0.018831, abs=2e-6)
    assert res.n_outside == 0


def test_non_finite_queries_are_outside():
    X = np.random.default_rng(0).uniform(size=(30, 2))
    res = simplex.simplex_interpolate(X, X.sum(axis=1), np.array([[np.nan, 0.5], [0.5, 0.5], [np.inf, 0.2]]),
                                      method="walk")
    assert res.inside.tolist() == [False, True, False] and res.n_outside == 2
    with limit_threads(1):
        plain = LinearNDInterpolator(X, X.sum(axis=1))(np.array([[np.nan, 0.5], [0.5, 0.5], [np.inf, 0.2]]))
    np.testing.assert_array_equal(res.values, plain)


def test_benchmark_smoke():
    from pml.benchmarks import simplex as bench

    result = bench.run(n_train=60, n_queries=200, dims=(2, 4), plain_budget_s=0)  # no subprocess in unit tests
    assert [r["max_abs_diff"] for r in result["rows"]] == [0.0, 0.0]
    assert all(r["nan_pattern_identical"] for r in result["rows"])
    assert "max|diff|" in bench.format(result)
