import numpy as np
import pytest
import torch
from torch import nn

from pml.nn import gadget


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def test_multiplication_network_structure_and_weights():
    lam = 0.01
    model = gadget.make_multiplication_network(lam)
    assert isinstance(model, nn.Sequential) and len(model) == 3
    assert isinstance(model[0], nn.Linear) and isinstance(model[1], nn.Softplus) and isinstance(model[2], nn.Linear)
    assert (model[0].in_features, model[0].out_features, model[2].out_features) == (2, 4, 1)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == 17
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), lam * np.array([[1, 1], [-1, -1], [1, -1],
                                                                                     [-1, 1]]))
    c = 1 / (4 * lam**2 * gadget.SOFTPLUS_D2)
    np.testing.assert_allclose(model[2].weight.detach().numpy(), [[c, c, -c, -c]], rtol=1e-15)
    assert not model[0].bias.any() and not model[2].bias.any()
    assert gadget.make_multiplication_network(lam, order=3)[0].out_features == 12


def test_network_computes_the_product_and_matches_numpy():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(500, 2))
    for order, lam, tol in ((1, 1e-4, 1e-7), (2, 4e-3, 1e-9), (3, 1e-2, 1e-10)):
        model = gadget.make_multiplication_network(lam, order=order)
        with torch.no_grad():
            y_torch = model(torch.as_tensor(X))[:, 0].numpy()
        y_np = gadget.multiply(X[:, 0], X[:, 1], lam, order=order)
        np.testing.assert_allclose(y_torch, X[:, 0] * X[:, 1], atol=tol)
        np.testing.assert_allclose(y_np, y_torch, atol=tol)


def test_building_a_network_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    gadget.make_dot_product_network(1e-3, order=2)
    assert torch.equal(state, torch.random.get_rng_state())


def test_richardson_weights():
    s, w = gadget.richardson_weights(2)
    np.testing.assert_allclose(s, [1, 2])
    np.testing.assert_allclose(w, [4 / 3, -1 / 3], rtol=1e-14)
    s, w = gadget.richardson_weights(3)
    np.testing.assert_allclose([w.sum(), (w * s**2).sum(), (w * s**4).sum()], [1, 0, 0], atol=1e-14)
    with pytest.raises(ValueError, match="order"):
        gadget.richardson_weights(0)


def test_truncation_error_in_exact_arithmetic_scales_as_lambda_to_2p():
    # Without rounding (mpmath, 60 digits) the gadget is exact as lambda -> 0, with error ~ lambda^(2 order).
    lambdas = np.array([0.01, 0.02, 0.04, 0.08])
    for order in (1, 2, 3):
        err = gadget.gadget_truncation_error(lambdas, order=order, n_points=16)
        assert abs(_slope(lambdas, err) - 2 * order) < 0.05, (order, err)
    # Leading term for softplus (sigma''''(0)/sigma''(0) = -1/2): error -> -lambda^2 (x^3 y + x y^3) / 12.
    X = np.random.default_rng(0).uniform(-1, 1, size=(16, 2))
    x, y = X.T
    predicted = np.sqrt(np.mean(((x**3 * y + x * y**3) / 12) ** 2) / np.mean((x * y) ** 2))
    lam = 1e-3
    err = gadget.gadget_truncation_error([lam], order=1, n_points=16, seed=0)[0]
    np.testing.assert_allclose(err / lam**2, predicted, rtol=1e-4)


def test_float64_error_curve_truncation_and_rounding_regimes():
    # Truncation-dominated: slope 2, 4, 6 on log-log; rounding-dominated (tiny lambda): eps / lambda^2, slope -2.
    ranges = {1: np.geomspace(1e-3, 1e-1, 5), 2: np.geomspace(3e-2, 3e-1, 5), 3: np.geomspace(4e-2, 1.2e-1, 5)}
    for order, lambdas in ranges.items():
        curve = gadget.gadget_error_curve(lambdas, n_points=2000, order=order)
        assert abs(_slope(lambdas, curve.rel_rmse) - 2 * order) < 0.15, (order, curve.rel_rmse)
    tiny = np.geomspace(1e-7, 1e-6, 4)
    curve = gadget.gadget_error_curve(tiny, n_points=2000, order=1)
    assert abs(_slope(tiny, curve.rel_rmse) + 2) < 0.3, curve.rel_rmse


@pytest.mark.parametrize("order, low, high", [(1, 3e-9, 3e-8), (2, 1e-11, 1e-10), (3, 1e-12, 1e-11)])
def test_float64_floors(order, low, high):
    # Measured (seed 0, 10^4 points on [-1, 1]^2): 9.2e-9 @ 2.5e-4, 3.8e-11 @ 4e-3, 4.2e-12 @ 1.3e-2.
    curve = gadget.gadget_error_curve(np.logspace(-5, -0.5, 28), n_points=4000, seed=0, order=order)
    assert low < curve.best_rel_rmse < high, (curve.best_lambda, curve.best_rel_rmse)
    assert curve.width == 4 * order
    numpy_curve = gadget.gadget_error_curve([curve.best_lambda], n_points=4000, seed=0, order=order, backend="numpy")
    assert low < numpy_curve.best_rel_rmse < high


def test_dot_product_network_for_i_11_19():
    model = gadget.make_dot_product_network(1e-4)
    assert (model[0].in_features, model[0].out_features, model[2].in_features) == (6, 12, 12)
    assert sum(p.numel() for p in model.parameters()) == 97
    # Input order x1, x2, x3, y1, y2, y3: each gadget reads (x_p, y_p).
    W1 = model[0].weight.detach().numpy()
    for p in range(3):
        rows = W1[4 * p:4 * p + 4]
        assert np.count_nonzero(rows[:, [p, 3 + p]]) == 8 and np.count_nonzero(rows) == 8
    X = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 1.5], [2.5, 1.0, 4.0, 1.0, 3.0, 2.0]], dtype=torch.float64)
    with torch.no_grad():
        y = model(X)[:, 0].numpy()
    np.testing.assert_allclose(y, [1 * 4 + 2 * 5 + 3 * 1.5, 2.5 + 3 + 8], rtol=1e-6)


def test_dot_product_error_curve():
    curve = gadget.dot_product_error_curve(np.logspace(-5.5, -3.5, 9), n_test=5000)
    assert curve.width == 12 and curve.n_params == 97
    # Measured: best relative RMSE 5.7e-9 (absolute 1.6e-7) at lambda ~ 4e-5 on the [1.4, 4.6]^6 test box.
    assert 1e-9 < curve.best_rel_rmse < 3e-8, (curve.best_lambda, curve.best_rel_rmse)
    assert 1e-5 <= curve.best_lambda <= 2e-4
    np.testing.assert_allclose(curve.best_rmse / curve.best_rel_rmse, 27.9, rtol=0.02)  # y_rms of the test box


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="lambda"):
        gadget.make_multiplication_network(0.0)
    with pytest.raises(ValueError, match="torch"):
        gadget.gadget_error_curve([1e-3], backend="jax")
    with pytest.raises(ValueError, match="ratio"):
        gadget.gadget_weights(1e-3, order=2, ratio=1.0)
