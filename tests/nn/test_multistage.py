"""pml.nn.multistage: RMS-normalised residual stages, frequency-aware first layers, merging into one network."""

import functools
import math

import numpy as np
import pytest
import torch

from pml.nn import lm, multistage
from pml.nn.networks import make_mlp


def _x2(n=200):
    X = np.linspace(-1, 1, n).reshape(-1, 1)
    return X, X[:, 0] ** 2


def _net_out(net, X):
    with torch.no_grad():
        return net(torch.from_numpy(X)).numpy()[:, 0]


def _magnitude(net, X):
    """max over X of |W_out| |hidden| + |b_out|: the size of the terms a one-hidden-layer net sums (rounding scale)."""
    with torch.no_grad():
        h = net[1](net[0](torch.from_numpy(X))).abs()
        return float((h @ net[2].weight.abs().T + net[2].bias.abs()).max())


# ---------------------------------------------------------------------------------------- dominant frequency
def test_dominant_frequency_1d_fft_on_scattered_points():
    X = np.sort(np.random.default_rng(0).uniform(-1, 1, size=(800, 1)), axis=0)
    r = np.sin(2 * np.pi * 3.0 * X[:, 0]) + 0.2 * np.sin(2 * np.pi * 11.0 * X[:, 0])
    assert multistage.dominant_frequency(X, r) == pytest.approx(3.0, rel=0.1)
    assert multistage.dominant_frequency(X, np.ones(800)) == 0.0


def test_dominant_frequency_plane_wave_projection_in_2d():
    X = np.random.default_rng(1).uniform(-1, 1, size=(3000, 2))
    v = np.array([0.6, 0.8])
    r = np.cos(2 * np.pi * 2.0 * X @ v)
    assert multistage.dominant_frequency(X, r, n_directions=128) == pytest.approx(2.0, rel=0.15)


# -------------------------------------------------------------------------------------------------- folding
def test_affine_fold_maps_raw_inputs_and_output_scale():
    net = make_mlp(2, 5, 3, "tanh", seed=0)
    centre, half = np.array([3.0, -1.0]), np.array([2.0, 0.5])
    X = np.random.default_rng(2).uniform(1, 5, size=(50, 2))
    raw = multistage.affine_fold(net, centre, half, out_scale=2.5, out_offset=-0.75)
    expected = 2.5 * _net_out(net, (X - centre) / half) - 0.75
    assert np.allclose(_net_out(raw, X), expected, rtol=1e-14, atol=1e-14)


# ----------------------------------------------------------------------------------------------------- fit
def test_stages_merge_into_one_network_equal_to_their_sum():
    X, y = _x2()
    res = multistage.fit(X, y, n_stages=3, width=[6, 5, 4], depth=2,
                         trainer=multistage.default_trainer(max_iter=30), ranges=[(-1, 1)], seed=0)
    assert len(res.models) == len(res.scales) == 3
    merged = res.network()
    Xq = np.random.default_rng(3).uniform(-1, 1, size=(500, 1))
    total = sum(c * _net_out(m, Xq) for m, c in zip(res.models, res.scales))
    got = _net_out(merged, Xq)
    scale = sum(abs(c) * _magnitude(m, Xq) for m, c in zip(res.models, res.scales))
    assert np.max(np.abs(got - total)) <= 8 * np.finfo(float).eps * scale
    assert np.allclose(res.predict(Xq), total, rtol=0, atol=8 * np.finfo(float).eps * scale)
    assert sum(p.numel() for p in merged.parameters()) <= res.n_params  # output biases merge into one
    assert [m[0].out_features for m in res.models] == [6, 5, 4]


def test_each_stage_fits_the_rms_normalised_residual_and_lowers_the_error():
    X, y = _x2()
    seen = []

    def trainer(model, Xz, target, *rest):
        seen.append(float(np.sqrt(np.mean(np.asarray(target) ** 2))))
        return lm.train(model, Xz, target, *rest, max_iter=60, scaling="jac")

    res = multistage.fit(X, y, n_stages=3, width=8, depth=2, trainer=trainer, ranges=[(-1, 1)],
                         X_val=X[::3], y_val=y[::3], seed=0)
    assert seen[0] == pytest.approx(1.0, rel=1e-12)  # stage 1: standardised y
    assert seen[1] == pytest.approx(1.0, rel=1e-12) and seen[2] == pytest.approx(1.0, rel=1e-12)  # e_k / RMS(e_k)
    train = [s.train_rmse for s in res.stages]
    # Each stage starts from its least-squares output layer (no worse than the previous error) and LM only lowers
    # the loss, so the error falls stage by stage. The levels are measured, with room: over seeds 0-4 and BLAS
    # kernels (Haswell, Sandybridge, Prescott) train[1] / train[0] <= 0.07 and train[2] <= 2.2e-8.
    assert train[2] < train[1] < 0.2 * train[0]
    assert train[2] < 1e-7
    assert res.stages[1].scale == pytest.approx(train[0], rel=1e-9)  # eps_k = RMS of the previous residual
    assert all(math.isfinite(s.val_rmse) for s in res.stages)
    assert math.isnan(res.stages[0].kappa) and res.stages[1].kappa > 2 * math.pi  # frequency-aware later stages


def test_sampler_adds_points_for_high_frequency_residuals():
    X, y = _x2(40)
    calls = []

    def sampler(n, rng):
        calls.append(n)
        Z = rng.uniform(-1, 1, size=(n, 1))
        return Z, Z[:, 0] ** 2

    res = multistage.fit(X, y, n_stages=2, width=6, depth=2, trainer=multistage.default_trainer(max_iter=20),
                         ranges=[(-1, 1)], sampler=sampler, points_per_period=64, max_train=300, seed=1)
    assert calls and res.stages[1].n_train > res.stages[0].n_train
    assert res.stages[1].n_train <= 300


def test_fit_validates_arguments():
    X, y = _x2(20)
    with pytest.raises(ValueError, match="n_stages"):
        multistage.fit(X, y, n_stages=0)
    with pytest.raises(ValueError, match="width"):
        multistage.fit(X, y, n_stages=2, width=[4, 4, 4])
    with pytest.raises(ValueError, match="activation must be 'tanh'"):
        multistage.fit(X, y, activation="relu")
    with pytest.raises(ValueError, match="points"):
        multistage.fit(X, y[:-1])
    with pytest.raises(ValueError, match="trainer"):
        multistage.fit(X, y, n_stages=2, trainer=[functools.partial(lm.train, max_iter=1)])
