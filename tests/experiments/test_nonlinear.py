"""Unit tests of pml.experiments.nonlinear (paper §3) at tiny configurations: float64, deterministic, seconds."""

import dataclasses

import numpy as np
import pytest

from pml import engine
from pml.book import params
from pml.experiments import nonlinear as nl
from pml.experiments import piecewise_linear as pl


def serial(sweep):
    """The sweep's result with every task run here, in order, without the engine or its store."""
    return sweep.assemble([t.run() for t in sweep.tasks()])


def assert_same(a, b):
    """Equal down to the last bit: dataclasses field by field, arrays and floats NaN-aware."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b)
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, (np.ndarray, float)):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


# --- pre-floor fits -----------------------------------------------------------------------------------------------


def test_prefloor_window_keeps_the_last_decade_above_the_floor():
    n = np.array([10, 20, 40, 80, 160, 320, 640, 1280], dtype=float)
    err = np.maximum(n**-4.0, 1e-12)  # reaches the floor 1e-12 at n ~ 1000
    window = nl.prefloor_window(n, err, floor=1e-12, margin=10.0, decades=1.0, min_points=3)
    # pre-floor: err >= 1e-11, i.e. n <= 562 -> 10 ... 320; last decade below 320: 40 ... 320
    assert window.tolist() == [False, False, True, True, True, True, False, False]
    fit = nl.fit_prefloor(n, err, floor=1e-12, margin=10.0)
    assert fit.exponent == pytest.approx(-4.0, abs=1e-12) and fit.n_points == 4


def test_prefloor_window_extends_to_min_points_and_gives_up_below_two():
    n = np.array([10.0, 100.0, 1000.0, 10000.0])
    err = np.array([1e-2, 1e-4, 1e-6, 1e-20])
    window = nl.prefloor_window(n, err, floor=1e-16, margin=100.0, decades=0.5, min_points=3)
    assert window.tolist() == [True, True, True, False]
    fit = nl.fit_prefloor(n, err, floor=1e-16, margin=100.0, decades=0.5)
    assert fit.exponent == pytest.approx(-2.0)
    none = nl.fit_prefloor(n, np.full(4, 1e-17), floor=1e-16)
    assert np.isnan(none.exponent) and not none.window.any()


def test_prefloor_window_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n has 2 values but err has 3"):
        nl.prefloor_window([1, 2], [1, 2, 3], 1e-16)
    with pytest.raises(ValueError, match="min_points"):
        nl.prefloor_window([1, 2], [1, 2], 1e-16, min_points=1)


# --- Fig. 4 -------------------------------------------------------------------------------------------------------


SPLINES_SMALL = nl.SplineSweep(orders_1d=(1, 3, 7), i_range_1d=(6, 18), orders_2d=(1, 3), i_range_2d=(9, 26),
                                n_test_1d=500, n_test_per_axis=41, stiff_orders=(5,), stiff_rate=32.0)
GRID_SMALL = nl.RegularGridSweep(tricubic_sizes=(256, 1024), simplex_sizes=(64, 256), seeds=(0, 1), n_test=500)
GADGET_SMALL = nl.GadgetSweep(n_lambdas=13, orders=(1, 2), n_points=2000, truncation_points=4, truncation_n_lambdas=3,
                               n_test=2000)


@pytest.fixture(scope="module")
def splines_small():
    return serial(SPLINES_SMALL)


def test_spline_exponents_and_floor(splines_small):
    sp = splines_small
    assert sp.curve(1, 1).fit.exponent == pytest.approx(-2.0, abs=0.05)
    assert sp.curve(1, 3).fit.exponent == pytest.approx(-4.0, abs=0.1)
    assert sp.curve(2, 1).fit.exponent == pytest.approx(-1.0, abs=0.15)
    assert sp.max_gap([1, 3]) < 0.2
    # order 7 reaches the float64 floor after a few sizes and falls much faster than n^-8 before it
    assert sp.curve(1, 7).fit.exponent < -9
    assert sp.best_floor(1) < 1e-15
    assert sp.curve(2, 3).n_train[0] == 36 and sp.curve(2, 3).n_nominal[0] == 38  # nominal vs int(sqrt n)^2
    assert sp.stiff[0].target == "exp(32x)"
    with pytest.raises(KeyError, match="no 2D order-5 curve"):
        sp.curve(2, 5)


def test_max_gap_is_nan_when_a_curve_has_no_fit(splines_small):
    assert np.isnan(splines_small.max_gap([99]))


def test_regular_grid_tricubic_and_simplex():
    cfg = nl.RegularGridSweep(tricubic_sizes=(256, 1024, 4096), simplex_sizes=(64, 256), seeds=(0,), n_test=2000)
    res = serial(cfg)
    assert res.tricubic.n_train.tolist() == [216, 1000, 3375]  # int(TP ** (1/3)) truncation of 4096
    assert res.simplex.n_train.tolist() == [27, 216]
    # finite-difference derivatives: the authors' numbers (spec Fig. 4c) within sampling noise
    np.testing.assert_allclose(res.tricubic.rmse_mean, [1.77e-3, 4.68e-4, 9.78e-5], rtol=0.15)
    assert 0.4 < res.tricubic.nan_fraction[0] < 0.7 and res.tricubic.nan_fraction[-1] == 0
    # exact derivatives are far more accurate and have no undefined layer (but I.30.5's singular corner)
    assert np.all(res.tricubic_exact.rmse_mean[1:] < res.tricubic.rmse_mean[1:] / 3)
    assert res.tricubic_exact.nan_fraction[-1] == 0
    assert res.simplex.rmse_mean[1] < res.simplex.rmse_mean[0]
    assert res.y_rms == pytest.approx(0.184, rel=0.05)


def test_regular_grid_simplex_per_seed_matches_one_call_on_every_test_set():
    """A task scores one test set; the triangulation gives the same RMSE as when every seed is located at once."""
    from pml import data, equations
    from pml.approx import splines
    from pml.approx.simplex import SimplexInterpolator

    res = serial(GRID_SMALL)
    eq = equations.get("I.30.5")
    tests = [data.sample_test(eq.ranges, 500, np.random.default_rng(s)) for s in (0, 1)]
    _, X = splines.regular_grid(eq.ranges, 6)
    together = SimplexInterpolator(X, eq(X))(np.concatenate(tests))
    for b, T in enumerate(tests):
        part = slice(500 * b, 500 * (b + 1))
        err = together.values[part] - eq(T)
        ok = together.inside[part]
        assert res.simplex.rmse[1, b] == pytest.approx(np.sqrt(np.mean(err[ok] ** 2)), rel=1e-12)
    assert res.simplex.nan_fraction[1] == together.fraction_outside


# --- Fig. 4 and 6b as tasks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sweep", [SPLINES_SMALL, GRID_SMALL, GADGET_SMALL], ids=["splines", "grid", "gadget"])
def test_sweeps_through_the_engine_equal_the_serial_result(sweep, tmp_path):
    tasks = sweep.tasks()
    assert len({t.key() for t in tasks}) == len(tasks)
    expected = serial(sweep)
    store = engine.Store(tmp_path)
    assert_same(engine.run(sweep, store=store), expected)
    assert_same(engine.run(sweep, store=store), expected)  # read back from the store
    assert all(t.cost() > 0 for t in tasks)


def test_fig4_and_gadget_costs_grow_with_the_sizes():
    small = nl.SplineCurveTask(1, 3, (11, 17, 25), 2000)
    assert 0 < small.cost() < nl.SplineCurveTask(1, 3, (11, 17, 25, 1000), 2000).cost()
    assert small.cost() < nl.SplineCurveTask(1, 7, (11, 17, 25), 2000).cost()
    assert nl.SplineCurveTask(2, 3, (38, 57), 121).cost() < nl.SplineCurveTask(2, 3, (38, 57, 10_000), 121).cost()
    for method in nl.GRID_METHODS:
        point = nl.GridPointTask("I.30.5", method, 256, 0, 1000)
        assert 0 < point.cost() <= dataclasses.replace(point, n_test=30_000).cost()
    simplex = [nl.GridPointTask("I.30.5", "simplex", n, 0, 30_000).cost() for n in (64, 4096, 262144)]
    assert simplex == sorted(simplex) and simplex[-1] > 100 * simplex[1]  # degenerate triangulations get slow
    curve = nl.GadgetCurveTask(1, (-6.0, 0.0), 13, 1000, 0)
    assert curve.cost() < dataclasses.replace(curve, order=3, n_lambdas=49).cost()
    assert (nl.GadgetTruncationTask(1, (-3.0, -1.0), 5, 8, 0, 60).cost()
            < nl.GadgetTruncationTask(1, (-3.0, -1.0), 5, 32, 0, 60).cost())
    assert nl.DotProductTask(1, "I.11.19", (-6.0, -1.0), 13, 2000, 0).cost() < \
        nl.DotProductTask(2, "I.11.19", (-6.0, -1.0), 13, 2000, 0).cost()


def test_steps_follow_the_chapter_parameters():
    smoke = params.chapter_steps("03_nonlinear", "smoke")
    paper = params.chapter_steps("03_nonlinear", "paper")
    assert {"fig4_splines", "fig4_grid", "gadget"} <= set(smoke)
    assert len(paper["fig4_splines"].tasks()) == 5 + 3 + 2  # one per curve
    assert len(paper["fig4_grid"].tasks()) == 1 + 4 * (6 + 6 + 7)  # y_rms, then method x size x seed
    assert len(paper["gadget"].tasks()) == 3 * 3
    assert paper["fig4_grid"].tasks()[-1] == nl.GridPointTask("I.30.5", "simplex", 262144, 3, 30_000)
    assert smoke["fig4_splines"].i_range_1d == (6, 16) and smoke["fig4_grid"].seeds == (0,)


# --- Figs. 5, 6a --------------------------------------------------------------------------------------------------


NETS_SMALL = nl.network_sweep(("I.30.5",), depths=(3,), widths=((4, 8, 12),), seeds=(0, 1), n_steps=20, n_test=200)


@pytest.fixture(scope="module")
def nets_small():
    return serial(NETS_SMALL)


def test_network_scaling_rows_and_medians(nets_small):
    r = nets_small
    assert len(r.rmse) == 3 * 2 * 2  # widths x activations x seeds
    assert set(r.activation.tolist()) == {"tanh", "relu"}
    assert sorted(set(zip(r.activation.tolist(), r.batch_size.tolist()))) == [("relu", 10_000), ("tanh", 30_000)]
    N, med = r.median_curve("I.30.5", "tanh", 3)
    assert N.tolist() == [(3 + 1) * 4 + (4 * 4 + 4) + (4 + 1), 113, 217]
    assert r.n_train[r.n_params == 113][0] == 113 // 4
    assert np.all(np.isfinite(med)) and np.all(r.seconds_per_step > 0)
    best_N, best = r.best_median("I.30.5", "tanh")
    assert best == pytest.approx(float(np.min(med))) and best_N in N


def test_network_sweep_through_the_engine_equals_the_serial_result(nets_small, tmp_path):
    tasks = NETS_SMALL.tasks()
    assert len(tasks) == 3 * 2 and len({t.key() for t in tasks}) == len(tasks)  # one task per shape, seeds inside
    assert all(t.rng == "pcg64" and t.seeds == (0, 1) for t in tasks)
    store = engine.Store(tmp_path)
    for _ in range(2):  # computed, then read back from the store
        again = engine.run(NETS_SMALL, store=store)
        for name in ("equation", "activation", "depth", "width", "n_params", "seed", "rmse"):
            np.testing.assert_array_equal(getattr(again, name), getattr(nets_small, name))
        assert again.y_rms == nets_small.y_rms


def test_seed_groups_give_the_same_numbers_as_one_batch():
    kw = dict(activations=("tanh",), depths=(3,), widths=((6,),), seeds=(0, 1), n_steps=10, n_test=100)
    together = serial(nl.network_sweep(("I.30.5",), **kw))
    apart = serial(nl.network_sweep(("I.30.5",), member_memory_gb=1e-12, **kw))
    np.testing.assert_allclose(together.rmse, apart.rmse, rtol=1e-10)


def test_network_sweep_needs_one_width_tuple_per_depth():
    with pytest.raises(ValueError, match="one width tuple per depth"):
        nl.network_sweep(("I.30.5",), depths=(2, 3), widths=((4,),))


def test_simplex_scaling_and_comparisons(nets_small):
    simplex = serial(pl.SimplexScalingSweep(equations=("I.30.5", "II.6.15a"), sizes=(32, 64, 128),
                                            max_train_by_dim=(128,) * 4 + (64, 64), seeds=(0,), n_test=300,
                                            rng="pcg64"))
    assert simplex.n_train[0].tolist() == [32, 64, 128] and simplex.n_train[1].tolist() == [32, 64]
    assert simplex.n_params("I.30.5").tolist() == [128, 256, 512]
    assert simplex.at("I.30.5", 256) == pytest.approx(simplex.mean("I.30.5")[1])
    assert np.isnan(simplex.at("I.30.5", 10))
    N, gain, best = nl.beats_simplex(nets_small, simplex, "I.30.5")
    assert N == 217  # the largest network N inside [128, 512]
    assert gain == pytest.approx(np.log10(simplex.at("I.30.5", 217) / best))
    assert nl.best_beat(nets_small, simplex)[0] == "I.30.5"
    table = nl.beats_table(nets_small, simplex)
    assert len(table.rows) == 2 and "<table" in table._repr_html_()
    assert np.isfinite(nl.scaling_scatter(nets_small, "I.30.5", "tanh", 3))
    assert np.isfinite(nl.scatter_ratio(nets_small))


def test_network_steps_and_their_cost():
    smoke = params.chapter_steps("03_nonlinear", "smoke")
    paper = params.chapter_steps("03_nonlinear", "paper")
    assert {"fig5_simplex", "fig5_networks", "fig6_networks"} <= set(smoke)
    assert len(paper["fig5_networks"].tasks()) == 4 * 18 * 2  # equation x (depth, width) x activation
    assert len(paper["fig6_networks"].tasks()) == 18
    assert len(paper["fig5_simplex"].tasks()) == (2 * 7 + 3 * 5) * 4  # equation x |D| x seed (d = 3, 4: 7 sizes; 5, 6, 6: 5)
    assert paper["fig6_networks"].tasks()[-1].width == 360 and paper["fig6_networks"].tasks()[-1].n_steps == 20_000
    cost = [t.cost() for t in paper["fig6_networks"].tasks()]
    assert all(c > 0 for c in cost) and cost[:6] == sorted(cost[:6])  # depth 2, growing widths
    small = smoke["fig5_networks"].tasks()[0]
    assert 0 < small.cost() < dataclasses.replace(small, n_steps=2 * small.n_steps).cost()


# --- Fig. 6b ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gadget_small():
    return serial(GADGET_SMALL)


def test_gadget_truncation_and_float64_floor(gadget_small):
    g = gadget_small
    np.testing.assert_allclose(g.truncation_exponent, [2.0, 4.0], atol=0.05)
    assert 1e-9 < g.floor(1) < 1e-7 and g.floor(2) < g.floor(1) / 10
    dot = g.dot_curve(1)
    assert (dot.width, dot.n_params) == (12, 97)
    assert dot.best_rel_rmse < 1e-7 and g.dot_y_rms == pytest.approx(27.9, rel=0.05)


def test_dot_product_gap(nets_small, gadget_small):
    gap = nl.dot_product_gap(nets_small, gadget_small, equation="I.30.5")
    assert gap["log10_gap_to_exact"] == pytest.approx(np.log10(gap["best_rmse"] / gap["exact_rmse"]))
    assert gap["log10_gap_to_floor"] == pytest.approx(np.log10(gap["best_rel_rmse"] / nl.EPS0))
    assert gap["exact_width"] == 12


def test_plots_build(splines_small, nets_small, gadget_small):
    from pml.plotting import nonlinear as figs

    grid = serial(nl.RegularGridSweep(tricubic_sizes=(256, 1024), simplex_sizes=(64, 256), seeds=(0,), n_test=500))
    simplex = serial(pl.SimplexScalingSweep(equations=("I.30.5",), sizes=(32, 64), seeds=(0,), n_test=200))
    for fig in (figs.plot_splines(splines_small, grid), figs.plot_tanh_scaling(nets_small, simplex),
                figs.plot_dot_product(nets_small, simplex, gadget_small, "I.30.5"), figs.plot_gadget(gadget_small)):
        assert fig.axes
    assert "fitted exponent" in repr(nl.exponent_table(splines_small, grid))
