import numpy as np
import pytest

from pml.approx.decomposition import decompose


def test_terms_sum_and_signs():
    rng = np.random.default_rng(0)
    for n in (20, 200):
        x = rng.uniform(3, 6, n)
        dec = decompose(np.cos, 3, 6, x, degree=3, n_gd_steps=2)
        assert dec.optimization >= 0 and dec.generalization >= -1e-15 and dec.architecture > 0
        assert dec.as_array().sum() == pytest.approx(dec.total, rel=1e-15)
        assert abs(dec.sampling_luck) < dec.architecture  # luck is a fluctuation around the expected loss


def test_exact_model_class_has_no_architecture_error():
    x = np.random.default_rng(1).uniform(-1, 1, 50)
    dec = decompose(lambda t: 1 + t - t**3, -1, 1, x, degree=3, n_gd_steps=10_000)
    assert dec.architecture < 1e-14
    assert abs(dec.generalization) < 1e-12


def test_more_steps_less_optimization_error():
    x = np.random.default_rng(2).uniform(3, 6, 100)
    few = decompose(np.cos, 3, 6, x, degree=4, n_gd_steps=1)
    many = decompose(np.cos, 3, 6, x, degree=4, n_gd_steps=200)
    assert many.optimization < few.optimization
    assert many.architecture == few.architecture
