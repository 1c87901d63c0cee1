"""pml.experiments.optimization and pml.plotting.optimization at tiny sizes (paper §4, Figs. 7-9, spec §11)."""

import functools
import math

import numpy as np
import pytest

from pml.book import claims
from pml.experiments import optimization as opt
from pml.plotting import optimization as figs

TINY = dict(n_train=120, n_test=60, log_every=5, seed=0)


@functools.lru_cache(maxsize=None)
def adam_teacher():
    return opt.run_adam(opt.AdamConfig(problem="teacher", width=6, lrs=(1e-2, 1e-3), n_steps=30, spectrum_lr=1e-3,
                                       **TINY))


@functools.lru_cache(maxsize=None)
def bfgs_x2():
    return opt.run_bfgs(opt.BFGSConfig(problem="Z.001", width=6, maxiter=60, **TINY))


@functools.lru_cache(maxsize=None)
def combined(problem="teacher"):
    return opt.run_combined(opt.CombinedConfig(problem=problem, width=4, maxiter=60, lc_steps=2, **TINY))


@functools.lru_cache(maxsize=None)
def quintic():
    return opt.run_quintic(opt.QuinticConfig(n_train=100, width=4, maxiter=80, taus=(1e-12, 1e-16), lc_steps=2,
                                             log_every=5))


def test_problem_data_shapes_and_full_box_test_set():
    X, y, Xt, yt = opt.problem_data("I.11.19", 50, 400, seed=1)
    assert X.shape == (50, 6) and y.shape == (50,) and Xt.shape == (400, 6) and X.dtype == np.float64
    assert Xt.min() < 1.3 and Xt.max() > 4.7  # the full [1, 5] box, not the central 80%
    np.testing.assert_allclose(yt, (Xt[:, :3] * Xt[:, 3:]).sum(axis=1))
    X2, *_ = opt.problem_data("I.11.19", 50, 400, seed=1)
    np.testing.assert_array_equal(X, X2)
    Xq, yq, Xqt, _ = opt.problem_data("quintic", 30, 0, seed=0)
    assert Xq.shape == (30, 1) and Xqt.shape == (0, 1)
    with pytest.raises(ValueError):
        opt.problem_data("no-such-problem", 5, 5, 0)


def test_adam_sweep_curves_and_spectrum():
    res = adam_teacher()
    assert res.lrs == (1e-2, 1e-3) and len(res.curves) == 2
    for curve in res.curves:
        assert curve.step[0] == 0 and np.all(np.diff(curve.step) > 0) and curve.step[-1] == 30
        assert np.all(np.isfinite(curve.rmse))
        assert np.nanmin(curve.rmse) >= res.min_test.min() - 1e-15
    assert res.best == pytest.approx(float(np.min(res.min_test))) and res.best_lr in res.lrs
    spec = res.spectrum
    n = 2 * 6 + 6 * 6 + 6 + 6 + 1
    assert spec.n_params == n and spec.lr == 1e-3 and np.all(np.diff(spec.eigenvalues) >= 0)
    # the full projections carry all of |g|^2; the first-layer ones (6 weights) do not
    assert np.sum(spec.grad_projections**2) == pytest.approx(spec.gradient_norm**2, rel=1e-10)
    assert spec.grad_projections_first_layer.shape == (n,)
    numbers = opt.spectrum_numbers(spec)
    assert numbers["n_nonneg"] + numbers["n_neg"] == n
    assert 0 <= numbers["bulk_fraction"] <= 1 and 0 < numbers["top_cluster_fraction"] <= 1
    assert 0 < numbers["grad_top"] <= 1 and numbers["top_eig"] == pytest.approx(spec.eigenvalues[-1])
    assert all(isinstance(v, (int, float)) and not isinstance(v, np.generic) for v in numbers.values())


def test_adam_is_deterministic_and_checks_spectrum_lr():
    cfg = opt.AdamConfig(problem="Z.001", width=4, lrs=(1e-2,), n_steps=10, **TINY)
    a, b = opt.run_adam(cfg), opt.run_adam(cfg)
    np.testing.assert_array_equal(a.curves[0].rmse, b.curves[0].rmse)
    with pytest.raises(ValueError, match="spectrum_lr"):
        opt.run_adam(opt.AdamConfig(problem="Z.001", width=4, lrs=(1e-2,), n_steps=5, spectrum_lr=1e-3, **TINY))


def test_bfgs_run_logs_and_beats_its_start():
    res = bfgs_x2()
    assert res.curve.step[0] == 0 and res.curve.step[-1] == res.n_iter <= 60
    assert res.test_rmse < res.curve.rmse[0] and res.stop_reason in ("maxiter", "precision_loss", "gtol")
    assert res.y_rms > 0 and res.seconds_per_iter > 0


def test_combined_pipeline_is_a_boosted_model():
    res = combined()
    assert len(res.stages) == 2 and res.stages[0].scale == 1.0 and 0 < res.stages[1].scale
    names = [name for _, name in res.boundaries]
    assert names == ["f1 BFGS", "f1 low-curvature", "f2 BFGS", "f2 low-curvature"]
    assert np.all(np.diff(res.curve.step) >= 0)  # f2's start repeats the step where f1's stages ended
    # the curve ends at the final combined model, and the merged single network computes the same function
    assert res.curve.rmse[-1] == pytest.approx(res.test_rmse, rel=1e-9)
    assert res.merged_test_rmse == pytest.approx(res.test_rmse, rel=1e-9)
    # low-curvature steps never raise the training loss (allow_increase=False)
    for stage in res.stages:
        assert stage.lc_train <= stage.bfgs_train * (1 + 1e-12)
    numbers = opt.learning_numbers(adam_teacher(), None, res)
    assert numbers["boost_orders"] == pytest.approx(opt.orders(res.stages[0].lc_test, res.test_rmse))
    assert "bfgs40" not in numbers and isinstance(numbers["f1_bfgs_stop"], str)


def test_combined_line_search_per_problem():
    cfg = opt.CombinedConfig(problem="I.11.19")
    assert cfg.stage_line_search() == ((1e-30, 70), (1e-50, 70))
    assert opt.CombinedConfig(problem="teacher").stage_line_search() == ((1e-12, 15), (1e-12, 15))
    assert opt.CombinedConfig(problem="teacher", line_search=((1e-5, 3), (1e-6, 4))).stage_line_search()[1] == (1e-6, 4)
    with pytest.raises(ValueError, match="one"):
        opt.CombinedConfig(problem="teacher", line_search=((1e-5, 3),)).stage_line_search()
    with pytest.raises(ValueError, match="n_stages"):
        opt.run_combined(opt.CombinedConfig(n_stages=0, **TINY))


def test_quintic_sweep_starts_every_tau_from_the_bfgs_solution():
    res = quintic()
    assert res.taus == (1e-12, 1e-16) and len(res.lc_curves) == 2
    for curve, final in zip(res.lc_curves, res.lc_rmse):
        assert curve.rmse[0] == pytest.approx(res.bfgs_rmse, rel=1e-12)
        assert final <= res.bfgs_rmse * (1 + 1e-12)
    assert res.gain(1e-16) >= 1.0 - 1e-12
    numbers = opt.quintic_numbers(res, 1e-16)
    assert numbers["lc_gain"] == pytest.approx(res.gain(1e-16)) and numbers["claim_tau"] == 1e-16
    np.testing.assert_allclose(res.coefficients, opt.teacher.random_quintic(0).coef)


def test_timing_and_paper_estimate_are_positive():
    timing = opt.run_timing(opt.TimingConfig(n_points=(50, 200), widths=(20, 40), n_repeats=1))
    assert timing.seconds.shape == (2, 2) and np.all(timing.seconds > 0)
    assert timing.scale(20, 50, 50) == pytest.approx(1.0)
    assert timing.scale(40, 50, 100_000) >= 1.0
    est = opt.paper_estimate(timing, {"teacher": adam_teacher()}, {"Z.001": bfgs_x2()}, {"teacher": combined()},
                             quintic(), adam_teacher().spectrum, n_train_run=120, quintic_n_train_run=100)
    assert est["total"] == pytest.approx(sum(v for k, v in est.items() if k != "total"))
    assert all(v >= 0 and math.isfinite(v) for v in est.values())


def test_claim_values_cover_every_declared_claim():
    spec = opt.spectrum_numbers(adam_teacher().spectrum)
    teacher = opt.learning_numbers(adam_teacher(), bfgs_x2(), combined())
    learning = {"teacher": teacher, "Z.001": teacher, "I.11.19": teacher}
    values = opt.claim_values(spec, learning, opt.quintic_numbers(quintic(), 1e-16))
    assert set(values) == {c.id for c in claims.for_chapter("04_optimization")}
    assert values["C4.11"] == pytest.approx(0.0) and values["C4.6"] == teacher["adam_to_bfgs_orders"]


def test_figures_draw():
    panels = [("a", adam_teacher(), bfgs_x2(), combined()), ("b", adam_teacher(), None, combined())]
    for fig, n_axes in ((figs.plot_spectrum(adam_teacher().spectrum), 4),
                        (figs.plot_combined_techniques(panels), 2),
                        (figs.plot_quintic(quintic()), 2)):
        assert len(fig.axes) == n_axes
