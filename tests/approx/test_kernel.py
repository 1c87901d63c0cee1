"""The kernel (Gaussian-process mean) candidate: likelihood gradient, interpolation, and a 3D problem made for it."""

import numpy as np
import pytest

from pml import fitting
from pml.approx import kernel

RNG = np.random.default_rng(4)


@pytest.mark.parametrize("name", kernel.KERNELS)
def test_likelihood_gradient_matches_finite_differences(name):
    X = RNG.uniform(-1, 1, (120, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]
    theta = np.log([0.5, 0.8, 1.2])
    _, grad = kernel.log_marginal_likelihood(name, X, y, theta, 1e-8)
    h = 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        num = (kernel.log_marginal_likelihood(name, X, y, theta + e, 1e-8)[0]
               - kernel.log_marginal_likelihood(name, X, y, theta - e, 1e-8)[0]) / (2 * h)
        assert grad[j] == pytest.approx(num, rel=1e-4, abs=1e-4)


def test_fit_interpolates_and_keeps_length_bounds():
    X = RNG.uniform(0, 2, (150, 2))
    y = np.cos(X[:, 0]) * np.exp(-X[:, 1])
    m = kernel.fit(X, y, n_restarts=2, min_length=0.1, max_length=50.0, seed=1)
    assert np.all(m.lengths >= 0.1 * (1 - 1e-9)) and np.all(m.lengths <= 50.0 * (1 + 1e-9))
    assert m.nugget >= 1e-13 and m.kernel in kernel.KERNELS
    # the final solve uses every row: an interpolant up to its nugget
    assert np.max(np.abs(m.predict(X) - y)) < 1e-4 * np.max(np.abs(y))
    again = kernel.KernelModel.from_state(m.kernel, m.state())
    np.testing.assert_array_equal(again.predict(X[:10]), m.predict(X[:10]))


def test_bad_kernel_is_named():
    with pytest.raises(ValueError, match="rbf"):
        kernel.kernel_matrix("cubic", np.zeros((2, 1)), np.zeros((2, 1)), np.ones(1))


def test_kernel_beats_polynomial_on_an_oscillatory_3d_target(tmp_path):
    """An oscillation along each input: the learned length scales fit it where a global polynomial needs many terms."""
    X = RNG.uniform(-1, 1, (400, 3))
    f = lambda Z: np.sin(3 * Z[:, 0]) * np.cos(2 * Z[:, 1]) + Z[:, 2]  # noqa: E731
    Xt = RNG.uniform(-0.8, 0.8, (2000, 3))
    errs = {}
    for method in ("poly", "kernel"):
        model = fitting.fit(X, f(X), method, progress=False)
        errs[method] = float(np.sqrt(np.mean((model.predict(Xt) - f(Xt)) ** 2) / np.mean(f(Xt) ** 2)))
    assert errs["kernel"] < errs["poly"] / 10, errs
    path = model.save(tmp_path / "k.npz")
    np.testing.assert_allclose(fitting.load(path).predict(Xt[:50]), model.predict(Xt[:50]), rtol=0, atol=1e-14)
