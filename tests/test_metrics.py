import numpy as np
import pytest

from pml import metrics


def test_known_values():
    y = np.array([3.0, 4.0])
    y_pred = np.array([3.0, 5.0])
    assert metrics.mse(y_pred, y) == 0.5
    assert metrics.rmse(y_pred, y) == pytest.approx(np.sqrt(0.5))
    # Eq. (1): sqrt(sum err^2 / sum y^2) = sqrt(1 / 25)
    assert metrics.relative_rmse(y_pred, y) == pytest.approx(0.2, rel=1e-15)
    assert metrics.max_abs_err(y_pred, y) == 1.0


def test_errors():
    with pytest.raises(ValueError, match="2 values but y has 3"):
        metrics.rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="all-zero"):
        metrics.relative_rmse([1.0], [0.0])
    with pytest.raises(ValueError, match="zero points"):
        metrics.mse([], [])


def test_machine_epsilon():
    assert metrics.machine_epsilon("float64") == 2.0**-52
    assert metrics.machine_epsilon("float32") == 2.0**-23


def test_precision_floor_is_a_fraction_of_eps():
    import mpmath

    rng = np.random.default_rng(0)
    with mpmath.workdps(30):
        exact = [mpmath.mpf(1) / 3 + mpmath.mpf(float(v)) / 7 for v in rng.uniform(1, 2, 2000)]
    f64 = metrics.precision_floor(exact, "float64")
    f32 = metrics.precision_floor(exact, "float32")
    assert 0.05 * 2.0**-52 < f64 < 0.5 * 2.0**-52
    assert 0.05 * 2.0**-23 < f32 < 0.5 * 2.0**-23
    # float64 data is exact in float64
    assert metrics.precision_floor(rng.uniform(1, 2, 10), "float64") == 0.0


def test_finite_rmse_skips_points_without_a_finite_prediction():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.5, np.nan, 2.0, np.inf])
    value, n_bad = metrics.finite_rmse(pred, y)
    assert n_bad == 2 and value == pytest.approx(metrics.rmse([1.5, 2.0], [1.0, 3.0]), rel=1e-15)
    rel, _ = metrics.finite_rmse(pred, y, relative=True)
    assert rel == pytest.approx(metrics.relative_rmse([1.5, 2.0], [1.0, 3.0]), rel=1e-15)
    nothing, n_all = metrics.finite_rmse(np.full(4, np.nan), y)
    assert np.isnan(nothing) and n_all == 4
