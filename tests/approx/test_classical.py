"""pml.approx.classical: Chebyshev interpolation, polyharmonic RBF with polynomial tail, polynomial least squares."""

import numpy as np
import pytest
from numpy.polynomial import Polynomial

from pml.approx import classical


def _rel(pred, y):
    return float(np.sqrt(np.mean((pred - y) ** 2)) / np.sqrt(np.mean(y**2)))


def test_chebyshev_points():
    z = classical.chebyshev_points(5)
    assert np.all(np.diff(z) > 0) and np.allclose(z, -z[::-1])
    assert np.allclose(np.sort(np.cos((2 * np.arange(5) + 1) * np.pi / 10)), z)


def test_chebyshev_reproduces_polynomials_exactly():
    p = Polynomial([0.3, -1.0, 2.0, 0.5, -0.25, 1.5])
    Xq = np.random.default_rng(0).uniform(2, 4, size=(2000, 1))
    exact = classical.Chebyshev().fit(lambda X: p(X[:, 0]), [(2, 4)], degree=5)
    assert np.max(np.abs(exact.predict(Xq) - p(Xq[:, 0]))) <= 1e-14 * np.max(np.abs(p(Xq[:, 0])))
    adaptive = classical.Chebyshev().fit(lambda X: p(X[:, 0]), [(2, 4)])
    assert adaptive.degree == (5,) and adaptive.resolved and adaptive.n_params == 6  # chopped at round-off
    # 2D tensor grid: degree (3, 2) polynomial in (x, y)
    f2 = lambda X: 1 + X[:, 0] * X[:, 1] ** 2 - 3 * X[:, 0] ** 3  # noqa: E731
    grid = classical.Chebyshev().fit(f2, [(1, 5), (-1, 2)])
    X2 = np.random.default_rng(1).uniform([1, -1], [5, 2], size=(2000, 2))
    assert _rel(grid.predict(X2), f2(X2)) < 1e-15
    assert grid.degree == (3, 2)


def test_chebyshev_converges_spectrally_on_cos2x():
    f = lambda X: np.cos(2 * X[:, 0])  # noqa: E731
    Xq = np.random.default_rng(2).uniform(-1, 1, size=(5000, 1))
    errs = [_rel(classical.Chebyshev().fit(f, [(-1, 1)], degree=n).predict(Xq), f(Xq)) for n in (6, 10, 14, 20)]
    assert errs[0] > 1e3 * errs[1] > 1e6 * errs[2] and errs[3] < 2e-15


@pytest.mark.parametrize("kernel,degree", [("thin_plate_spline", 1), ("cubic", 1), ("quintic", 2),
                                           ("thin_plate_spline", 2)])
def test_rbf_with_polynomial_tail_reproduces_polynomials_of_the_tail_degree(kernel, degree):
    rng = np.random.default_rng(3)
    X = rng.uniform(1, 5, size=(150, 2))
    coef = rng.standard_normal(6)
    terms = lambda X: np.column_stack([np.ones(len(X)), X[:, 0], X[:, 1], X[:, 0] ** 2, X[:, 0] * X[:, 1],  # noqa
                                       X[:, 1] ** 2])[:, : 3 if degree == 1 else 6]
    f = lambda X: terms(X) @ coef[: terms(X[:1]).shape[1]]  # noqa: E731
    m = classical.RBF(kernel, degree).fit(X, f(X), [(1, 5), (1, 5)])
    Xq = rng.uniform(1, 5, size=(2000, 2))
    assert _rel(m.predict(Xq), f(Xq)) < 1e-12
    assert m.n_params == 150 + (3 if degree == 1 else 6)


def test_classical_methods_reach_1e_14_on_x2():
    f = lambda X: X[:, 0] ** 2  # noqa: E731
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, size=(300, 1))
    Xq = rng.uniform(-1, 1, size=(10_000, 1))
    cheb = classical.Chebyshev().fit(f, [(-1, 1)])
    rbf = classical.RBF("thin_plate_spline", 2).fit(X, f(X), [(-1, 1)])
    poly = classical.PolynomialLSQ().fit(X, f(X), [(-1, 1)])
    for m in (cheb, rbf, poly):
        assert _rel(m.predict(Xq), f(Xq)) <= 1e-14, type(m).__name__
    assert cheb.n_params == 3 and poly.degree >= 2


def test_polynomial_lsq_total_degree_in_6d():
    rng = np.random.default_rng(5)
    X = rng.uniform(1, 5, size=(400, 6))
    f = lambda X: X[:, 0] * X[:, 3] + X[:, 1] * X[:, 4] + X[:, 2] * X[:, 5]  # noqa: E731
    m = classical.PolynomialLSQ().fit(X, f(X), [(1, 5)] * 6, degree=2)
    assert m.n_params == 28  # C(6 + 2, 2) monomials of total degree <= 2
    Xq = rng.uniform(1, 5, size=(3000, 6))
    assert _rel(m.predict(Xq), f(Xq)) < 1e-14
    chosen = classical.PolynomialLSQ().fit(X, f(X), [(1, 5)] * 6, degrees=range(0, 4))
    assert chosen.degree >= 2 and set(chosen.scores) <= {0, 1, 2, 3}


def test_errors():
    with pytest.raises(ValueError, match=r"kernel must be one of \['thin_plate_spline', 'cubic', 'quintic'\]"):
        classical.RBF("gaussian")
    with pytest.raises(ValueError, match="degree >= 2"):
        classical.RBF("quintic", 1)
    with pytest.raises(RuntimeError, match="not fitted"):
        classical.PolynomialLSQ().predict(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="d <= 3"):
        classical.Chebyshev().fit(lambda X: X[:, 0], [(0, 1)] * 4)
