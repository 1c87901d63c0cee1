"""pml.nn.boosting: staged training on normalised residuals and merging stages into one network (paper §4.2)."""

import functools
import math

import numpy as np
import pytest
import torch
from nets import tiny_mlp
from torch import nn

from pml.nn import boosting
from pml.nn.bfgs import bfgs


def _out(net, X):
    with torch.no_grad():
        return net(torch.from_numpy(X)).numpy()


def _assert_merge_exact(nets, scales, X):
    merged = boosting.merge_stages(nets, scales)
    expected = sum(c * _out(n, X) for n, c in zip(nets, scales))
    got = _out(merged, X)
    scale = sum(abs(c) * np.max(np.abs(_out(n, X))) for n, c in zip(nets, scales))
    rel = np.max(np.abs(got - expected)) / scale
    assert rel < 4e-15, rel
    return merged


def test_merge_two_stages_matches_f1_plus_c_f2():
    X = np.random.default_rng(0).uniform(-1, 1, size=(500, 1))
    f1, f2 = tiny_mlp([1, 3, 3, 1], seed=0), tiny_mlp([1, 5, 5, 1], seed=1)
    merged = _assert_merge_exact([f1, f2], [1.0, 3.7e-6], X)
    linears = [m for m in merged if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1, 8), (8, 8), (8, 1)]
    assert all(p.dtype == torch.float64 for p in merged.parameters())
    hidden = linears[1].weight.detach()
    assert torch.all(hidden[:3, 3:] == 0) and torch.all(hidden[3:, :3] == 0)  # block-diagonal
    assert torch.equal(linears[2].weight.detach()[:, 3:], 3.7e-6 * f2[4].weight.detach())  # last layer scaled by c


def test_merge_three_stages_any_widths_and_activations():
    X = np.random.default_rng(1).uniform(-1, 1, size=(300, 2))
    nets = [tiny_mlp([2, w, w, w, 1], seed=s) for s, w in enumerate((2, 4, 3))]
    _assert_merge_exact(nets, [1.0, 1e-4, 2e-9], X)
    relu = [tiny_mlp([2, w, 1], seed=s, act=nn.ReLU) for s, w in enumerate((4, 6, 1))]
    _assert_merge_exact(relu, [1.0, 0.5, 0.25], X)
    linear = [tiny_mlp([2, 1], seed=s) for s in range(3)]
    assert len(_assert_merge_exact(linear, [1.0, 0.1, 0.01], X)) == 1


def test_merge_with_make_mlp():
    from pml.nn.networks import make_mlp

    X = np.random.default_rng(2).uniform(-1, 1, size=(200, 1))
    nets = [make_mlp(1, w, 3, activation="tanh", seed=s) for s, w in enumerate((20, 20, 10))]
    _assert_merge_exact(nets, [1.0, 2.5e-8, 1e-13], X)


def test_merge_errors():
    a, b = tiny_mlp([1, 3, 3, 1], seed=0), tiny_mlp([1, 3, 1], seed=1)
    with pytest.raises(ValueError, match="depths must match"):
        boosting.merge_stages([a, b], [1.0, 0.1])
    with pytest.raises(ValueError, match="differs"):
        boosting.merge_stages([a, tiny_mlp([1, 3, 3, 1], seed=0, act=nn.ReLU)], [1.0, 0.1])
    with pytest.raises(ValueError, match="inputs"):
        boosting.merge_stages([a, tiny_mlp([2, 3, 3, 1], seed=0)], [1.0, 0.1])
    with pytest.raises(TypeError, match="Sequential"):
        boosting.merge_stages([a, nn.Linear(1, 1)], [1.0, 0.1])
    with pytest.raises(ValueError, match="element-wise"):
        boosting.merge_stages([nn.Sequential(nn.Linear(1, 2), nn.Softmax(dim=1), nn.Linear(2, 1))], [1.0])
    with pytest.raises(ValueError, match="one scale per net"):
        boosting.merge_stages([a], [1.0, 2.0])


def test_normaliser_scale():
    r = np.array([1.0, -3.0, 0.0, 4.0])
    assert boosting.normaliser_scale(r) == 2.0  # mean |r|: the authors' choice
    assert boosting.normaliser_scale(r, "rms") == pytest.approx(math.sqrt(26 / 4))
    assert boosting.normaliser_scale(r, "none") == 1.0 and boosting.normaliser_scale(r, 0.5) == 0.5
    with pytest.raises(ValueError, match="normaliser"):
        boosting.normaliser_scale(r, "max")
    with pytest.raises(ValueError, match="positive"):
        boosting.normaliser_scale(np.zeros(3))


def test_boost_passes_normalised_residual_to_trainer():
    rng = np.random.default_rng(0)
    X, X_test = rng.uniform(-1, 1, size=(50, 1)), rng.uniform(-1, 1, size=(20, 1))
    y, y_test = np.cos(3 * X[:, 0]), np.cos(3 * X_test[:, 0])
    calls = []

    def trainer(model, X_, y_, X_t, y_t):  # a no-op "optimiser" that records what it is given
        calls.append((X_, y_, X_t, y_t))
        return "trained"

    f1, f2, f3 = (tiny_mlp([1, 3, 1], seed=s) for s in range(3))
    res = boosting.boost([f1, f2, f3], X, y, trainer, X_test, y_test)
    assert len(calls) == 3 and [s.result for s in res.stages] == ["trained"] * 3
    assert np.array_equal(calls[0][1], y) and res.scales[0] == 1.0
    resid = y - _out(f1, X)[:, 0]
    assert res.scales[1] == pytest.approx(np.mean(np.abs(resid)), rel=1e-15)
    assert np.allclose(calls[1][1], resid / res.scales[1], rtol=1e-14)
    assert np.mean(np.abs(calls[1][1])) == pytest.approx(1.0, rel=1e-14)
    resid_test = y_test - _out(f1, X_test)[:, 0]
    assert np.allclose(calls[1][3], resid_test / res.scales[1], rtol=1e-14)
    F = _out(f1, X)[:, 0] + res.scales[1] * _out(f2, X)[:, 0] + res.scales[2] * _out(f3, X)[:, 0]
    assert np.allclose(res.predict(X), F, rtol=1e-15, atol=1e-15)
    assert res.test_rmse == pytest.approx(np.sqrt(np.mean((res.predict(X_test) - y_test) ** 2)), rel=1e-14)
    # Pre-trained stages are not passed to the trainer; RMS normaliser on request.
    calls.clear()
    res = boosting.boost([f1, f2], X, y, lambda m, X_, y_: calls.append(y_), normaliser="rms", n_pretrained=1)
    assert len(calls) == 1 and res.stages[0].result is None
    assert np.sqrt(np.mean(calls[0] ** 2)) == pytest.approx(1.0, rel=1e-14)
    assert math.isnan(res.test_rmse)


@pytest.mark.slow
def test_boost_with_bfgs_lowers_error_and_merges():
    rng = np.random.default_rng(0)
    X, X_test = rng.uniform(-1, 1, size=(64, 1)), rng.uniform(-1, 1, size=(64, 1))
    y, y_test = np.sin(2 * X[:, 0]), np.sin(2 * X_test[:, 0])
    trainer = functools.partial(bfgs, maxiter=3000, num_threads=1)
    nets = [tiny_mlp([1, 4, 4, 1], seed=0), tiny_mlp([1, 4, 4, 1], seed=1)]
    res = boosting.boost(nets, X, y, trainer, X_test, y_test)
    first, second = res.stages
    # BFGS only lowers the loss from its start, so how far the second stage gets depends on the CPU's rounding;
    # what boosting guarantees is the bookkeeping: the combined error is c times the stage's own, and lower.
    assert second.train_rmse == pytest.approx(second.scale * second.result.train_rmse, rel=1e-9)
    assert second.train_rmse < first.train_rmse
    # The stage's own test RMSE times c is the combined model's test RMSE.
    assert second.test_rmse == pytest.approx(second.scale * second.result.test_rmse, rel=1e-9)
    merged = res.merged()
    assert np.max(np.abs(_out(merged, X_test)[:, 0] - res.predict(X_test))) < 4e-15  # |F| <= 1: float64 rounding
