import numpy as np
import pytest

from pml import data


def test_central_box_shrinks_each_side_to_80_percent():
    box = data.central_box([[1, 5], [-1, 1]])
    np.testing.assert_allclose(box, [[1.4, 4.6], [-0.8, 0.8]])


def test_train_and_test_ranges_and_determinism():
    ranges = [[1, 5], [3, 6]]
    X_tr, y_tr, X_te, y_te = data.train_test_split(lambda X: X.sum(axis=1), ranges, 1000, 500, seed=3)
    assert X_tr.shape == (1000, 2) and X_te.shape == (500, 2) and X_tr.dtype == np.float64
    assert X_tr[:, 0].min() >= 1 and X_tr[:, 0].max() <= 5
    assert X_te[:, 0].min() >= 1.4 and X_te[:, 0].max() <= 4.6
    assert X_te[:, 1].min() >= 3.3 and X_te[:, 1].max() <= 5.7
    np.testing.assert_array_equal(y_tr, X_tr.sum(axis=1))
    again = data.train_test_split(lambda X: X.sum(axis=1), ranges, 1000, 500, seed=3)
    np.testing.assert_array_equal(again[0], X_tr)
    np.testing.assert_array_equal(again[2], X_te)


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="low < high"):
        data.sample_uniform([[2, 1]], 3, rng)
    with pytest.raises(TypeError, match="Generator"):
        data.sample_uniform([[0, 1]], 3, 0)
    with pytest.raises(ValueError, match="non-negative integer"):
        data.sample_uniform([[0, 1]], -1, rng)
    with pytest.raises(ValueError, match="fraction"):
        data.central_box([[0, 1]], 0.0)
