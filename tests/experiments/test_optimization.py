"""pml.experiments.optimization and pml.plotting.optimization at tiny sizes (paper §4, Figs. 7-9, the quintic)."""

import dataclasses

import numpy as np
import pytest
import torch

from pml import engine
from pml.book import claims, params
from pml.experiments import optimization as opt
from pml.nn import boosting
from pml.nn.bfgs import bfgs
from pml.nn.flat import FlatModel
from pml.nn.lowcurv import low_curvature_steps
from pml.nn.networks import make_mlp
from pml.plotting import optimization as figs

TINY = dict(n_train=120, n_test=60, log_every=5, seed=0)
ADAM = opt.AdamSweep(problem="teacher", width=6, lrs=(1e-2, 1e-3), n_steps=30, spectrum_lr=1e-3, **TINY)
BFGS = opt.BFGSSweep(problem="Z.001", width=6, maxiter=60, **TINY)
QUINTIC = opt.QuinticSweep(n_train=100, width=4, maxiter=80, taus=(1e-12, 1e-16), lc_steps=2, log_every=5)


def combined_sweep(problem="teacher"):
    return opt.CombinedSweep(problem=problem, width=4, maxiter=60, lc_steps=2, **TINY)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return engine.Store(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="module")
def results(store):
    return {name: engine.run(sweep, store=store)
            for name, sweep in (("adam", ADAM), ("bfgs", BFGS), ("combined", combined_sweep()), ("quintic", QUINTIC))}


def test_problem_data_shapes_and_full_box_test_set():
    X, y, Xt, yt = opt.problem_data("I.11.19", 50, 400, seed=1)
    assert X.shape == (50, 6) and y.shape == (50,) and Xt.shape == (400, 6) and X.dtype == np.float64
    assert Xt.min() < 1.3 and Xt.max() > 4.7  # the full [1, 5] box, not the central 80%
    np.testing.assert_allclose(yt, (Xt[:, :3] * Xt[:, 3:]).sum(axis=1))
    X2, *_ = opt.problem_data("I.11.19", 50, 400, seed=1)
    np.testing.assert_array_equal(X, X2)
    Xq, _, Xqt, _ = opt.problem_data("quintic", 30, 0, seed=0)
    assert Xq.shape == (30, 1) and Xqt.shape == (0, 1)
    assert opt.problem_dim("I.11.19") == 6 and opt.problem_dim("quintic") == 1
    with pytest.raises(ValueError):
        opt.problem_data("no-such-problem", 5, 5, 0)


def test_weights_round_trip_exactly_and_are_not_shared():
    model = make_mlp(2, 5, 3, "tanh", seed=3)
    weights = opt.net_weights(model)
    assert weights["theta"].dtype == np.float64 and weights["layer_sizes"] == [2, 5, 5, 1]
    rebuilt = opt.net_from_weights(weights)
    X = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (20, 2)))
    with torch.no_grad():
        assert torch.equal(model(X), rebuilt(X))
    with torch.no_grad():
        next(rebuilt.parameters()).add_(1.0)  # training the rebuilt net leaves the stored weights alone
    np.testing.assert_array_equal(weights["theta"], opt.net_weights(model)["theta"])
    with pytest.raises(ValueError, match="weights"):
        opt.net_from_weights(dict(weights, theta=weights["theta"][:-1]))


def test_adam_sweep_curves_and_spectrum(results):
    res = results["adam"]
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


def test_the_hessian_task_reads_the_adam_end_point(results):
    """Fig. 7's spectrum is that of the network Adam ended with, rebuilt from the stored weights."""
    hess = ADAM.tasks()[-1]
    assert isinstance(hess, opt.HessianTask) and hess.inputs() == {"adam": ADAM.adam_task(1e-3)}
    adam = hess.adam.run()
    X, y, _, _ = opt.problem_data("teacher", TINY["n_train"], TINY["n_test"], 0)
    flat = FlatModel(opt.net_from_weights(adam["weights"]), X, y)
    loss, grad = flat.loss_and_grad(flat.theta())
    spec = results["adam"].spectrum
    assert spec.train_rmse == pytest.approx(float(loss) ** 0.5, rel=1e-12)
    assert spec.gradient_norm == pytest.approx(float(torch.linalg.vector_norm(grad)), rel=1e-10)
    with pytest.raises(ValueError, match="spectrum_lr"):
        dataclasses.replace(ADAM, spectrum_lr=0.5).tasks()


def test_adam_task_is_deterministic():
    task = ADAM.adam_task(1e-2)
    a, b = task.run(), task.run()
    np.testing.assert_array_equal(a["rmse"], b["rmse"])
    np.testing.assert_array_equal(a["weights"]["theta"], b["weights"]["theta"])


def test_bfgs_run_logs_and_beats_its_start(results):
    res = results["bfgs"]
    assert res.curve.step[0] == 0 and res.curve.step[-1] == res.n_iter <= 60
    assert res.test_rmse < res.curve.rmse[0] and res.stop_reason in ("maxiter", "precision_loss", "gtol")
    assert res.y_rms > 0 and res.seconds_per_iter > 0


def test_combined_pipeline_is_a_boosted_model(results):
    res = results["combined"]
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
    numbers = opt.learning_numbers(results["adam"], None, res)
    assert numbers["boost_orders"] == pytest.approx(opt.orders(res.stages[0].lc_test, res.test_rmse))
    assert "bfgs40" not in numbers and isinstance(numbers["f1_bfgs_stop"], str)


def _in_memory_pipeline(sweep: opt.CombinedSweep):
    """The same pipeline with the networks kept in memory (no task boundaries): BFGS, then low-curvature steps, for
    each boosting stage."""
    X, y, Xt, yt = opt.problem_data(sweep.problem, sweep.n_train, sweep.n_test, sweep.seed)
    models = [make_mlp(X.shape[1], sweep.width, sweep.depth, "tanh", seed=sweep.seed + k) for k in range(2)]
    scales = []
    for k, (alpha_min, n_grid) in enumerate(sweep.stage_line_search()):
        def trainer(model, X, y, X_test, y_test, alpha_min=alpha_min, n_grid=n_grid):
            bfgs(model, X, y, X_test, y_test, gtol=sweep.gtol, maxiter=sweep.maxiter,
                          log_every=sweep.log_every, engine=sweep.engine)
            return low_curvature_steps(model, X, y, sweep.tau, sweep.lc_steps, X_test, y_test,
                                                alpha_min=alpha_min, alpha_max=sweep.alpha_max, n_grid=n_grid)
        scales = boosting.boost(models[: k + 1], X, y, trainer, Xt, yt, n_pretrained=k).scales
    return float(np.sqrt(np.mean((boosting.predict_stages(models, scales, Xt) - yt) ** 2))), scales


def test_the_task_graph_equals_the_pipeline_in_memory(results):
    """Weights handed from task to task as arrays change no bit of the result."""
    test_rmse, scales = _in_memory_pipeline(combined_sweep())
    res = results["combined"]
    assert res.test_rmse == test_rmse and [s.scale for s in res.stages] == scales


def test_combined_line_search_per_problem():
    assert opt.CombinedSweep(problem="I.11.19").stage_line_search() == ((1e-30, 70), (1e-50, 70))
    assert opt.CombinedSweep(problem="teacher").stage_line_search() == ((1e-12, 15), (1e-12, 15))
    assert opt.CombinedSweep(problem="teacher", line_search=((1e-5, 3), (1e-6, 4))).stage_line_search()[1] == (1e-6, 4)
    with pytest.raises(ValueError, match="one"):
        opt.CombinedSweep(problem="teacher", line_search=((1e-5, 3),)).stage_line_search()
    with pytest.raises(ValueError, match="n_stages"):
        opt.CombinedSweep(n_stages=0, **TINY).tasks()
    lc = opt.CombinedSweep(problem="I.11.19").tasks()[3]
    assert (lc.alpha_min, lc.n_grid, lc.bfgs.stage, lc.bfgs.previous.alpha_min) == (1e-50, 70, 1, 1e-30)
    with pytest.raises(ValueError, match="previous"):
        opt.BFGSTask(stage=1)


def test_quintic_sweep_starts_every_tau_from_the_bfgs_solution(results):
    res = results["quintic"]
    assert res.taus == (1e-12, 1e-16) and len(res.lc_curves) == 2
    for curve, final in zip(res.lc_curves, res.lc_rmse):
        assert curve.rmse[0] == pytest.approx(res.bfgs_rmse, rel=1e-12)
        assert final <= res.bfgs_rmse * (1 + 1e-12)
    assert res.gain(1e-16) >= 1.0 - 1e-12
    numbers = opt.quintic_numbers(res, 1e-16)
    assert numbers["lc_gain"] == pytest.approx(res.gain(1e-16)) and numbers["claim_tau"] == 1e-16
    np.testing.assert_allclose(res.coefficients, opt.teacher.random_quintic(0).coef)


def test_sweeps_through_the_engine_equal_the_serial_result(results, store, tmp_path):
    """Distinct keys; the stored results assemble to the same result; a fresh store recomputes the same bits."""
    for name, sweep in (("adam", ADAM), ("bfgs", BFGS), ("combined", combined_sweep()), ("quintic", QUINTIC)):
        tasks = sweep.tasks()
        assert len({t.key() for t in tasks}) == len(tasks)
        assert all(t.cost() > 0 for t in tasks)
        again = sweep.assemble(engine.compute(tasks, store=store))
        _assert_same(again, results[name])
    fresh = engine.run(QUINTIC, store=engine.Store(tmp_path))
    _assert_same(fresh, results["quintic"])


def _assert_same(a, b):
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            if "seconds" not in f.name:
                _assert_same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_a_new_low_curvature_setting_reuses_the_stored_bfgs(store):
    """Only the new low-curvature task runs: BFGS's end point is a stored task output."""
    counts = []
    engine.compute(QUINTIC.tasks(), store=store)
    changed = dataclasses.replace(QUINTIC, taus=(1e-10,))
    engine.compute(changed.tasks(), store=store, progress=lambda p: counts.append(p.n_tasks))
    assert counts == [1]
    combined = dataclasses.replace(combined_sweep(), lc_steps=1)
    tasks = combined.tasks()
    assert tasks[0] == combined_sweep().tasks()[0]  # f1's BFGS is shared ...
    assert tasks[2] != combined_sweep().tasks()[2]  # ... f2's starts from a different f1


def test_inputs_enter_the_key_without_their_execution_settings():
    lc = combined_sweep().tasks()[1]
    assert dataclasses.replace(lc, bfgs=dataclasses.replace(lc.bfgs, threads=4)).key() == lc.key()
    assert dataclasses.replace(lc, bfgs=dataclasses.replace(lc.bfgs, maxiter=61)).key() != lc.key()


def test_costs_grow_with_the_sizes_and_respect_budgets():
    adam = opt.AdamTask(n_train=1000, n_test=100, n_steps=100)
    assert 0 < adam.cost() < dataclasses.replace(adam, n_train=10_000).cost()
    assert adam.cost() < dataclasses.replace(adam, n_steps=1000).cost()
    assert adam.cost() < dataclasses.replace(adam, problem="I.11.19").cost()
    bfgs = opt.BFGSTask(n_train=1000, n_test=100, maxiter=100)
    assert 0 < bfgs.cost() < dataclasses.replace(bfgs, maxiter=1000).cost()
    assert bfgs.cost() < dataclasses.replace(bfgs, n_train=10_000).cost()
    assert dataclasses.replace(bfgs, maxiter=10**9, time_limit=60.0).cost() <= 60.0 + opt.COST["task"]
    lc = opt.LowCurvatureTask(bfgs=bfgs, n_steps=10)
    assert 0 < lc.cost() < dataclasses.replace(lc, n_steps=20).cost()
    assert lc.cost() < opt.LowCurvatureTask(bfgs=dataclasses.replace(bfgs, width=60), n_steps=10).cost()
    assert dataclasses.replace(lc, n_steps=10**6, time_limit=5.0).cost() <= 5.0 + opt.COST["task"]
    hess = opt.HessianTask(adam=adam)
    assert 0 < hess.cost() < opt.HessianTask(adam=dataclasses.replace(adam, n_train=10_000)).cost()


def test_steps_follow_the_chapter_parameters():
    ci = params.chapter_steps("04_optimization", "ci")
    paper = params.chapter_steps("04_optimization", "paper")
    assert list(paper) == ["fig7_adam", "fig8_teacher", "fig8_equation", "fig9_2d", "fig9_6d", "quintic"]
    assert len(paper["fig7_adam"].tasks()) == 9 + 1  # one Adam task per learning rate and the Hessian
    assert len(paper["fig8_teacher"].tasks()) == 1 + 4  # width-40 BFGS; BFGS and low-curvature for f1 and f2
    assert len(paper["fig8_equation"].tasks()) == 9 + 1 + 4
    assert len(paper["fig9_6d"].tasks()) == 9 + 4 and len(paper["quintic"].tasks()) == 1 + 7
    assert len(ci["fig7_adam"].tasks()) == 2 + 1 and len(ci["quintic"].tasks()) == 1 + 1
    for sweeps in (ci, paper):
        keys = [t.key() for s in sweeps.values() for t in engine.tasks.graph(s.tasks())]
        assert len(set(keys)) == len(keys)  # no task is computed for two steps
    assert paper["fig9_2d"].parts[0][1].n_steps == 50_000 and paper["fig8_equation"].parts[0][1].n_steps == 30_000
    breakdown = opt.paper_estimate(paper)
    assert breakdown["total"] == pytest.approx(sum(t.cost() for s in paper.values() for t in s.tasks()))
    assert breakdown["total"] == pytest.approx(sum(v for k, v in breakdown.items() if k != "total"))
    assert all(breakdown[k] > 0 for k in opt.COST_PARTS)


def test_claim_values_cover_every_declared_claim(results):
    spec = opt.spectrum_numbers(results["adam"].spectrum)
    teacher = opt.learning_numbers(results["adam"], results["bfgs"], results["combined"])
    learning = {"teacher": teacher, "Z.001": teacher, "I.11.19": teacher}
    values = opt.claim_values(spec, learning, opt.quintic_numbers(results["quintic"], 1e-16))
    assert set(values) == {c.id for c in claims.for_chapter("04_optimization")}
    assert values["C4.11"] == pytest.approx(0.0) and values["C4.6"] == teacher["adam_to_bfgs_orders"]


def test_figures_draw(results):
    adam, bfgs, combined = results["adam"], results["bfgs"], results["combined"]
    panels = [("a", adam, bfgs, combined), ("b", adam, None, combined)]
    for fig, n_axes in ((figs.plot_spectrum(adam.spectrum), 4),
                        (figs.plot_combined_techniques(panels), 2),
                        (figs.plot_quintic(results["quintic"]), 2)):
        assert len(fig.axes) == n_axes
