import numpy as np
import pytest

from pml import scaling


def test_exact_power_law_recovered():
    n = np.array([128, 512, 2048, 8192, 32768])
    fit = scaling.fit_power_law(n, 3.0 * n**-0.667)
    assert fit.exponent == pytest.approx(-0.667, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.0, rel=1e-10)
    assert fit.exponent_stderr < 1e-12
    assert fit.r_squared == pytest.approx(1.0)
    assert (fit.n_points, fit.n_min, fit.n_max) == (5, 128, 32768)
    np.testing.assert_allclose(fit.predict(n), 3.0 * n**-0.667, rtol=1e-10)


def test_stderr_matches_textbook_formula():
    rng = np.random.default_rng(0)
    n = np.logspace(2, 6, 12)
    err = 2 * n**-1.0 * np.exp(rng.normal(0, 0.1, n.size))
    fit = scaling.fit_power_law(n, err)
    x, y = np.log(n), np.log(err)
    coef, cov = np.polyfit(x, y, 1, cov=True)
    assert fit.exponent == pytest.approx(coef[0], rel=1e-12)
    # polyfit(cov=True) scales by residuals/(k-2): the same OLS standard error
    assert fit.exponent_stderr == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-9)
    assert abs(fit.exponent + 1) < 4 * fit.exponent_stderr


def test_last_k_points_and_unsorted_input():
    n = np.array([4096, 64, 1024, 256, 16384])
    err = np.where(n <= 256, 1.0, n**-2.0)  # plateau then power law
    fit = scaling.fit_power_law(n, err, last=3)
    assert fit.exponent == pytest.approx(-2.0, abs=1e-12)
    assert fit.n_min == 1024
    assert scaling.fit_power_law(n, err).exponent != pytest.approx(-2.0, abs=0.5)


def test_two_points_have_no_stderr():
    fit = scaling.fit_power_law([10, 100], [1.0, 0.01])
    assert fit.exponent == pytest.approx(-2.0)
    assert np.isnan(fit.exponent_stderr)


@pytest.mark.parametrize("n,err,kw", [([1, 2], [1, np.nan], {}), ([1, 2], [1, 0], {}), ([1, 1], [1, 2], {}),
                                      ([1, 2, 3], [1, 2, 3], {"last": 1}), ([1, 2], [1], {})])
def test_invalid_inputs(n, err, kw):
    with pytest.raises(ValueError):
        scaling.fit_power_law(n, err, **kw)


def test_reference_line_and_theory():
    line = scaling.reference_line([100, 1000], -1.0, anchor_n=100, anchor_err=0.5, scale=2)
    np.testing.assert_allclose(line, [1.0, 0.1])
    assert scaling.theoretical_exponent(3) == pytest.approx(-2 / 3)
    assert scaling.theoretical_exponent(2, order=3) == -2.0
