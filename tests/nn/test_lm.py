"""pml.nn.lm: Levenberg-Marquardt in float64 (dense torch.func Jacobian, QR/SVD steps, adaptive damping)."""

import functools
import math

import numpy as np
import pytest
import torch
from nets import tiny_mlp

from pml.nn import boosting, lm


def _teacher_problem(n=80, seed=0):
    """Data from a 1-3-1 tanh teacher: a student of the same shape can fit it exactly."""
    teacher = tiny_mlp([1, 3, 1], seed=seed)
    with torch.no_grad():
        teacher[0].weight.mul_(3.0)
    X = np.linspace(-1, 1, n).reshape(-1, 1)
    with torch.no_grad():
        y = teacher(torch.from_numpy(X)).numpy()[:, 0]
    return teacher, X, y


def _rosenbrock():
    def residual(t):
        return np.array([10.0 * (t[1] - t[0] ** 2), 1.0 - t[0]])

    def jacobian(t):
        return np.array([[-20.0 * t[0], 10.0], [-1.0, 0.0]])

    return residual, jacobian


# ------------------------------------------------------------------------------------------------ generic solver
@pytest.mark.parametrize("solver", lm.SOLVERS)
@pytest.mark.parametrize("damping", lm.DAMPING_RULES)
def test_least_squares_solves_rosenbrock_and_records_why_it_stopped(solver, damping):
    residual, jacobian = _rosenbrock()
    res = lm.least_squares(residual, jacobian, [-1.2, 1.0], solver=solver, damping=damping, max_iter=200)
    assert np.allclose(res.theta, [1.0, 1.0], atol=1e-12, rtol=0)
    assert res.stop_reason in ("zero_residual", "noise_floor", "ftol", "damping")
    assert res.stop_reason != "max_iter" and res.message
    h = res.history
    assert h["step"][0] == 0 and len(h["cost"]) == res.n_iter + 1
    assert np.all(np.diff(h["cost"]) <= 0)  # LM only accepts decreasing steps


def test_damping_adapts_up_on_failure_and_down_on_success():
    residual, jacobian = _rosenbrock()
    res = lm.least_squares(residual, jacobian, [-1.2, 1.0], tau=1e-6, max_iter=200)
    mu = res.history["mu"][1:]
    mu = mu[np.isfinite(mu)]
    steps = np.diff(np.log(mu))
    assert np.any(steps > 0) and np.any(steps < 0)  # rejected trial steps raised mu, good ones lowered it
    # Nielsen: a successful step never lowers mu by more than a factor 3
    assert np.min(steps) >= math.log(1 / 3) - 1e-12


def test_stop_rules_gtol_max_iter_and_callback():
    residual, jacobian = _rosenbrock()
    res = lm.least_squares(residual, jacobian, [-1.2, 1.0], max_iter=3)
    assert res.stop_reason == "max_iter" and res.n_iter == 3
    res = lm.least_squares(residual, jacobian, [-1.2, 1.0], gtol=0.5)
    assert res.stop_reason == "gtol"
    res = lm.least_squares(residual, jacobian, [-1.2, 1.0], callback=lambda row: row["step"] >= 2)
    assert res.stop_reason == "callback" and res.n_iter == 2


def test_jacobian_blocks_are_accepted_and_bad_shapes_rejected():
    residual, jacobian = _rosenbrock()
    blocks = lm.least_squares(residual, lambda t: iter([jacobian(t)[:1], jacobian(t)[1:]]), [-1.2, 1.0])
    whole = lm.least_squares(residual, jacobian, [-1.2, 1.0])
    assert np.allclose(blocks.theta, whole.theta, atol=1e-13)
    with pytest.raises(ValueError, match="rows"):
        lm.least_squares(residual, lambda t: jacobian(t)[:1], [-1.2, 1.0])


def test_options_are_validated_with_the_valid_values_named():
    with pytest.raises(ValueError, match=r"solver must be one of \['svd', 'qr'\]"):
        lm.LMOptions(solver="cholesky")
    with pytest.raises(ValueError, match="damping must be one of"):
        lm.LMOptions(damping="fletcher")
    with pytest.raises(ValueError, match="scaling must be one of"):
        lm.LMOptions(scaling="unit")
    with pytest.raises(ValueError, match="max_iter"):
        lm.LMOptions(max_iter=-1)


# --------------------------------------------------------------------------------------------------- Jacobians
def test_chunked_jacobian_equals_unchunked_and_autograd():
    model = tiny_mlp([2, 4, 3, 1], seed=1)
    X = np.random.default_rng(0).uniform(-1, 1, size=(23, 2))
    J = lm.jacobian(model, X)
    assert J.shape == (23, sum(p.numel() for p in model.parameters()))
    # equal up to rounding: BLAS may take another kernel for a 1-row product than for a 23-row one (it does on
    # some x86-64 CPUs), so the last bits can differ
    for chunk in (1, 5, 7, 23, 100):
        assert np.allclose(lm.jacobian(model, X, chunk_size=chunk), J, rtol=1e-14, atol=1e-16)
    assert np.allclose(lm.jacobian(model, X, max_bytes=1), J, rtol=1e-14, atol=1e-16)  # one point per chunk
    # reference: d f(x_i) / d theta by plain autograd, one point at a time
    for i in (0, 11, 22):
        model.zero_grad()
        model(torch.from_numpy(X[i:i + 1])).sum().backward()
        ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
        assert np.allclose(J[i], ref, rtol=1e-14, atol=1e-15)


def test_jacobian_rejects_float32_and_bad_chunk_size():
    X = np.zeros((4, 1))
    with pytest.raises(TypeError, match="float64"):
        lm.jacobian(tiny_mlp([1, 2, 1], seed=0, dtype=torch.float32), X)
    with pytest.raises(ValueError, match="chunk_size"):
        lm.jacobian(tiny_mlp([1, 2, 1], seed=0), X, chunk_size=0)


# ------------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("solver", lm.SOLVERS)
def test_train_fits_a_representable_target_to_1e_12(solver):
    teacher, X, y = _teacher_problem()
    student = tiny_mlp([1, 3, 1], seed=0)
    with torch.no_grad():  # start near the teacher: the test is about the endgame, not about the basin
        for s, t in zip(student.parameters(), teacher.parameters()):
            s.copy_(t + 0.05 * torch.sin(torch.arange(t.numel(), dtype=t.dtype).reshape(t.shape) + 1))
    res = lm.train(student, X, y, X, y, solver=solver, max_iter=300)
    assert res.method == "lm"
    assert res.train_rmse < 1e-12 * np.sqrt(np.mean(y**2)), res
    assert res.stop_reason in ("zero_residual", "noise_floor", "ftol", "damping"), res.message
    assert res.test_rmse == pytest.approx(res.train_rmse, rel=1e-6, abs=1e-16)
    with torch.no_grad():  # parameters were written back
        assert np.sqrt(np.mean((student(torch.from_numpy(X)).numpy()[:, 0] - y) ** 2)) == pytest.approx(
            res.train_rmse, rel=1e-6, abs=1e-17)
    h = res.history
    assert {"step", "train_rmse", "test_rmse", "mu", "time_s", "n_fev"} <= set(h)
    assert h["train_rmse"][-1] <= h["train_rmse"][0]


def test_train_from_default_init_reduces_the_loss_by_orders_and_logs_every_k():
    X = np.linspace(-1, 1, 60).reshape(-1, 1)
    y = np.sin(2 * X[:, 0])
    model = tiny_mlp([1, 6, 1], seed=3)
    res = lm.train(model, X, y, max_iter=60, log_every=20, scaling="jac")
    # LM accepts only steps that lower the loss; how far 60 steps get depends on the trajectory (init seeds 0-11:
    # 5e-5 to 4e-4 of the initial RMSE), so two orders of magnitude hold with 20x to spare.
    h = res.history["train_rmse"]
    assert np.all(np.diff(h) <= 0) and res.train_rmse < 1e-2 * h[0]
    assert list(res.history["step"]) == [0, 20, 40, 60]
    assert np.isnan(res.test_rmse)


def test_train_is_a_boosting_trainer():
    X = np.linspace(-1, 1, 50).reshape(-1, 1)
    y = X[:, 0] ** 3
    models = [tiny_mlp([1, 4, 1], seed=s) for s in (0, 1)]
    out = boosting.boost(models, X, y, functools.partial(lm.train, max_iter=40), normaliser="rms")
    assert out.stages[1].train_rmse < out.stages[0].train_rmse
    assert all(s.result.method == "lm" for s in out.stages)


def test_rounding_estimate_sees_cancellation():
    X = np.linspace(-1, 1, 50).reshape(-1, 1)
    plain = tiny_mlp([1, 8, 1], seed=0)
    big = tiny_mlp([1, 8, 1], seed=0)
    with torch.no_grad():  # unit 1 copies unit 0, and their output weights become a huge cancelling pair
        big[2].weight[0, 0] += 1e8
        big[2].weight[0, 1] += 1e8
        big[0].weight[1] = big[0].weight[0]
        big[0].bias[1] = big[0].bias[0]
        big[2].weight[0, 1] -= 2e8
    assert lm.rounding_estimate(big, X) > 1e6 * lm.rounding_estimate(plain, X)
