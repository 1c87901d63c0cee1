import numpy as np
import pytest

from pml import scaling
from pml.approx import piecewise


def test_reproduces_polynomials_of_its_degree_exactly():
    f = lambda X: 1 + X[:, 0] - 2 * X[:, 0] ** 2 * X[:, 1] + X[:, 1] ** 2
    model = piecewise.fit_piecewise_polynomial(f, [[0, 1], [-1, 1]], n_cells=3, degree=2)
    X = np.random.default_rng(0).uniform([0, -1], [1, 1], size=(500, 2))
    np.testing.assert_allclose(model(X), f(X), atol=1e-13)
    assert model.n_params == (3 * 3) ** 2


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_error_scales_as_n_to_the_minus_degree_plus_one(degree):
    f = lambda X: np.sin(3 * X[:, 0])
    X = np.linspace(0.05, 0.95, 3001)[:, None]
    n, err = [], []
    for cells in (4, 8, 16, 32):
        model = piecewise.fit_piecewise_polynomial(f, [[0, 1]], cells, degree)
        n.append(model.n_params)
        err.append(np.sqrt(np.mean((model(X) - f(X)) ** 2)))
    assert scaling.fit_power_law(n, err).exponent == pytest.approx(-(degree + 1), abs=0.15)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_cells >= 1"):
        piecewise.fit_piecewise_polynomial(np.sin, [[0, 1]], 0, 1)
    model = piecewise.fit_piecewise_polynomial(lambda X: X[:, 0], [[0, 1]], 2, 1)
    with pytest.raises(ValueError, match="1 columns"):
        model(np.zeros((3, 2)))
