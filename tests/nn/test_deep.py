"""The deep LM network candidate: widths from the rows, a 3D problem made for it, validation-only choices."""

import numpy as np
import pytest

from pml import fitting
from pml.nn import deep, networks

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("n", [200, 2400, 9600])
def test_widths_keep_parameters_below_rows(n):
    for depth, width in deep.candidate_widths(4, n, depths=(3, 4), params_per_row=0.25, max_params=1200):
        assert depth in (3, 4) and width >= 6
        p = networks.dense_param_count(4, width, depth)
        assert p <= max(0.25 * n, networks.dense_param_count(4, 6, depth))
        assert networks.dense_param_count(4, width + 1, depth) > min(0.25 * n, 1200) or width == 64


def test_time_limit_is_checked():
    X = RNG.uniform(-1, 1, (50, 3))
    with pytest.raises(ValueError, match="time_limit"):
        deep.fit(X, X[:, 0], time_limit=0)


@pytest.mark.slow
def test_deep_network_beats_polynomial_on_a_compositional_3d_target(tmp_path):
    """tanh(3 (x0 + x1 x2)): a composition a tanh network represents in few units, steep for a polynomial."""
    X = RNG.uniform(-1, 1, (400, 3))
    f = lambda Z: np.tanh(3 * (Z[:, 0] + Z[:, 1] * Z[:, 2]))  # noqa: E731
    Xt = RNG.uniform(-0.8, 0.8, (2000, 3))
    errs = {}
    for method, opts in (("poly", {}), ("deep-lm", {"time_limit": 10.0})):
        model = fitting.fit(X, f(X), method, progress=False, **opts)
        errs[method] = float(np.sqrt(np.mean((model.predict(Xt) - f(Xt)) ** 2) / np.mean(f(Xt) ** 2)))
    assert errs["deep-lm"] < errs["poly"] / 5, errs
    assert model.report.kind == "trained" and "Levenberg-Marquardt" in model.report.details
    path = model.save(tmp_path / "d.npz")
    np.testing.assert_allclose(fitting.load(path).predict(Xt[:50]), model.predict(Xt[:50]), rtol=0, atol=1e-14)


def test_validation_rows_choose_and_are_not_trained_on():
    X = RNG.uniform(-1, 1, (300, 3))
    y = np.sin(X.sum(axis=1))
    Xv = RNG.uniform(-1, 1, (80, 3))
    res = deep.fit(X, y, X_val=Xv, y_val=np.sin(Xv.sum(axis=1)), architectures=[(3, 8)], n_stages=1, time_limit=3.0)
    err = np.sqrt(np.mean((res.predict(Xv) - np.sin(Xv.sum(axis=1))) ** 2) / np.mean(np.sin(Xv.sum(axis=1)) ** 2))
    assert err == pytest.approx(res.val_rel_rmse, rel=1e-6)


@pytest.mark.parametrize("time_limit", [0.2, 0.3, 0.5])
def test_a_short_time_limit_is_a_clear_error_or_a_fit(time_limit):
    """However the time limit falls against the setup, deep-lm fits or says the time was too short (never an
    internal error about a negative time limit)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 2, (300, 3))
    y = X[:, 0] * X[:, 1] / X[:, 2]
    try:
        model = fitting.fit(X, y, "deep-lm", time_limit=time_limit, progress=False)
    except fitting.FitError as exc:
        assert "time" in str(exc) and "must be positive" not in str(exc)
    else:
        assert np.all(np.isfinite(model.predict(X[:10])))
