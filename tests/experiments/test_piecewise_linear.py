"""Unit tests of pml.experiments.piecewise_linear (paper §2) and its network sweep at tiny, deterministic float64
configs."""

import dataclasses

import numpy as np
import pytest
import torch

from pml import data, engine, equations
from pml.approx.simplex import SimplexInterpolator
from pml.book import claims, params
from pml.experiments import network_sweep as ns
from pml.experiments import piecewise_linear as pl
from pml.nn import networks, training

# --- data -------------------------------------------------------------------------------------------------------


def test_legacy_split_is_the_authors_stream_and_leaves_global_state_alone():
    eq = equations.get("I.30.5")
    saved = np.random.get_state()
    state = saved[1].copy()
    X, y, Xt, yt = pl.sample_split("I.30.5", 50, 20, seed=3)
    assert np.array_equal(np.random.get_state()[1], state)
    np.random.seed(3)  # what the authors' scripts did
    lo, hi = np.array(eq.ranges).T
    box = data.central_box(eq.ranges)
    X_ref = np.random.uniform(lo, hi, size=(50, 3))
    Xt_ref = np.random.uniform(box[:, 0], box[:, 1], size=(20, 3))
    np.random.set_state(saved)
    assert np.array_equal(X, X_ref) and np.array_equal(Xt, Xt_ref)
    assert np.array_equal(y, eq.func(X)) and np.array_equal(yt, eq.func(Xt))


def test_pcg64_split_is_the_library_split_and_unknown_rng_fails():
    eq = equations.get("Z.008")
    a = pl.sample_split("Z.008", 30, 10, seed=1, rng="pcg64")
    b = data.train_test_split(eq.func, eq.ranges, 30, 10, 1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="valid"):
        pl.sample_split("Z.008", 3, 3, 0, rng="mt")


@pytest.mark.parametrize("equation, n_train, seed, expected", [
    ("cos2x", 23, 1, 0.021770729931796903),  # Fig. 1a title 2.18e-2 (spec: recomputed 0.021771)
    ("Z.008", 167, 0, 0.018831458327792927),  # Fig. 1b title 1.88e-2 (spec: recomputed 0.018831)
])
def test_legacy_data_reproduce_the_papers_fig1_simplex_values(equation, n_train, seed, expected):
    X, y, Xt, yt = pl.sample_split(equation, n_train, 30_000, seed)
    assert SimplexInterpolator(X, y)(Xt).rmse(yt) == pytest.approx(expected, rel=1e-9)


def test_interp_loglog_is_exact_on_power_laws_and_never_extrapolates():
    n = np.array([10.0, 100.0, 1000.0])
    out = pl.interp_loglog(n, 3 * n**-0.7, [10.0, 31.6, 500.0, 5.0, 2000.0])
    assert np.allclose(out[:3], 3 * np.array([10.0, 31.6, 500.0]) ** -0.7)
    assert np.isnan(out[3:]).all()


# --- Fig. 1 -------------------------------------------------------------------------------------------------------


def test_relu_net_from_1d_interpolant_equals_linear_interpolation():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 3, 40)
    y = np.sin(3 * x)
    net = pl.relu_net_from_1d_interpolant(x, y)
    assert net[0].out_features == 39  # m = |D| - 1 hidden units
    q = rng.uniform(x.min(), x.max(), 500)
    assert np.max(np.abs(training.predict(net, q[:, None]) - np.interp(q, np.sort(x), y[np.argsort(x)]))) < 1e-12
    with pytest.raises(ValueError):
        pl.relu_net_from_1d_interpolant([1.0, 1.0, 2.0], [0.0, 1.0, 2.0])


def test_sequential_init_starts_with_make_mlp_and_then_differs():
    first, second = pl._sequential_mlps(1, 5, 3, seed=1, count=2)
    ref = networks.make_mlp(1, 5, 3, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), ref.state_dict().values()))
    assert not torch.equal(first[0].weight, second[0].weight)


def _serial(sweep):
    """The sweep's result computed task by task in this process, without the engine's store."""
    return sweep.assemble([task.run() for task in sweep.tasks()])


def _check_tasks(sweep, store):
    """Distinct keys, positive costs, and the engine's result (stored, then read back) equals the serial one."""
    tasks = sweep.tasks()
    assert len({t.key() for t in tasks}) == len(tasks)
    assert all(t.cost() > 0 for t in tasks)
    results = engine.compute(tasks, store=store)
    assert _same(results, engine.compute(tasks, store=store))  # the second time, read back from the store
    return sweep.assemble(results)


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return a == b or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return engine.Store(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="module")
def fig1(store):
    fig1a = _check_tasks(pl.fig1a_config(n_steps=30, n_test=300, grid_size=4001), store)
    fig1b = _check_tasks(pl.fig1b_config(n_steps=30, n_test=300, grid_size=40), store)
    return fig1a, fig1b


def test_linear_regions_results(fig1):
    fig1a, fig1b = fig1
    assert (fig1a.n_params, fig1a.n_train, fig1b.n_params, fig1b.n_train) == (46, 23, 501, 167)
    assert fig1a.labels["raw"].shape == (4001,) and fig1b.labels["simplex"].shape == (1600,)
    assert fig1a.n_regions("simplex") == 22  # one piece between consecutive training points
    assert fig1a.construction_max_abs_diff < 1e-12 and np.isnan(fig1b.construction_max_abs_diff)
    assert fig1b.train_results["raw"].selection == "min_test"
    assert fig1a.train_results["raw"].selection == "min_logged_test"
    for res in fig1:
        assert set(res.rmse) == {"raw", "normalized", "simplex"}
        assert all(v > 0 for v in res.rmse.values())
        assert res.relative("simplex") == pytest.approx(res.rmse["simplex"] / res.y_rms)
    again = _serial(pl.fig1a_config(n_steps=30, n_test=300, grid_size=4001))
    assert again.rmse == fig1a.rmse  # deterministic, and the engine's result is the serial one
    assert all(np.array_equal(again.labels[k], fig1a.labels[k]) for k in again.labels)


def test_fig1_tasks_split_one_row_and_the_sequential_init():
    tasks = pl.fig1a_config(n_steps=5).tasks()
    assert [t.fit for t in tasks] == ["raw", "normalized", "simplex"]
    longer = pl.fig1a_config(n_steps=50).tasks()
    assert longer[0].cost() > tasks[0].cost()


def test_linear_regions_rejects_high_dimensional_targets():
    with pytest.raises(ValueError, match="1D or 2D"):
        pl.LinearRegionsSweep(equation="I.30.5", n_steps=1).tasks()


# --- Fig. 2 -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fig2(store):
    simplex = _check_tasks(pl.SimplexScalingSweep(equations=("Z.001", "I.30.5"), sizes=(64, 256, 1024),
                                                  seeds=(0, 1), n_test=2000), store)
    relu = _check_tasks(pl.relu_sweep(((8, 16), (4, 6, 8)), (2, 3), ("Z.001", "I.30.5"), seeds=(0, 1), n_steps=20,
                                      n_test=200), store)
    return simplex, relu


def test_simplex_scaling_matches_the_upstream_table_and_the_theory(fig2):
    simplex, _ = fig2
    full = _serial(pl.SimplexScalingSweep(equations=("Z.001",), sizes=(64,)))
    assert full.mean("Z.001")[0] == pytest.approx(0.00139, rel=5e-3)  # the upstream table: seeds 0-3, 30k test points
    assert np.array_equal(simplex.n_params("Z.001"), [128, 512, 2048])
    assert simplex.exponent_gap("Z.001") < 0.15
    assert simplex.fraction_outside[simplex.index("I.30.5")].shape == (3, 2)
    assert np.isnan(simplex.at("Z.001", [100.0]))[0] and np.isfinite(simplex.at("Z.001", [300.0]))[0]


def test_simplex_engine_result_equals_the_serial_one(fig2):
    simplex, _ = fig2
    serial = _serial(pl.SimplexScalingSweep(equations=("Z.001", "I.30.5"), sizes=(64, 256, 1024), seeds=(0, 1),
                                            n_test=2000))
    assert all(np.array_equal(a, b) for a, b in zip(serial.rmse, simplex.rmse)) and serial.y_rms == simplex.y_rms


def test_simplex_cap_by_dimension_and_one_task_per_size_and_seed():
    sweep = pl.SimplexScalingSweep(equations=("Z.001", "I.30.5"), sizes=(64, 256),
                                   max_train_by_dim=(256, 256, 64, 64, 64, 64), seeds=(0, 1), n_test=100)
    assert [(t.equation, t.n_train, t.seed) for t in sweep.tasks()] == [
        ("Z.001", 64, 0), ("Z.001", 64, 1), ("Z.001", 256, 0), ("Z.001", 256, 1), ("I.30.5", 64, 0), ("I.30.5", 64, 1)]
    res = _serial(sweep)
    assert list(res.n_train[0]) == [64, 256] and list(res.n_train[1]) == [64] and res.rmse[0].shape == (2, 2)


def test_simplex_cost_grows_with_size_and_dimension():
    cost = [pl.SimplexTask("I.30.5", n).cost() for n in (1024, 4096, 16384)]
    assert 0 < cost[0] < cost[1] < cost[2]
    assert pl.SimplexTask("II.6.15a", 4096).cost() > pl.SimplexTask("I.30.5", 4096).cost()


def test_relu_scaling_rows_curves_and_summaries(fig2):
    simplex, relu = fig2
    assert len(relu.rmse) == 2 * (2 + 3) * 2  # equations x widths x seeds
    N, _ = relu.curve("I.30.5", 3)
    assert np.array_equal(N, [networks.dense_param_count(3, w, 3) for w in (4, 6, 8)])
    assert np.all(relu.n_train == relu.n_params // (relu.dim + 1))
    assert set(relu.activation) == {"relu"} and set(relu.kind) == {"dense"}
    assert np.isfinite(relu.early_exponent("I.30.5", 3))  # depth 3 has 3 sizes
    assert np.isnan(relu.early_exponent("I.30.5", 4))  # no depth has 4
    summary = pl.fig2_summary(simplex, relu)
    assert summary["n_high_d"] == 1 and summary["n_steeper"] in (0, 1)
    assert summary["theory_exp_d3"] == pytest.approx(-2 / 3)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in summary.values())


@pytest.mark.slow
def test_relu_engine_result_equals_the_serial_one(fig2):
    _, relu = fig2
    serial = _serial(pl.relu_sweep(((8, 16), (4, 6, 8)), (2, 3), ("Z.001", "I.30.5"), seeds=(0, 1), n_steps=20,
                                   n_test=200))
    assert np.array_equal(serial.rmse, relu.rmse) and np.array_equal(serial.n_params, relu.n_params)
    assert serial.y_rms == relu.y_rms


def test_batched_training_equals_one_network_per_seed():
    """Seeds trained together (one BatchedMLP) equal separate train() calls up to float64 rounding."""
    batched = _serial(pl.relu_sweep(((6,),), (3,), ("II.8.31",), seeds=(0, 1), n_steps=15, n_test=100))
    apart = _serial(pl.relu_sweep(((6,),), (3,), ("II.8.31",), seeds=(0, 1), n_steps=15, n_test=100, batched=False))
    for seed, value in zip(batched.seed, batched.rmse):
        N = networks.dense_param_count(2, 6, 3)
        X, y, Xt, yt = pl.sample_split("II.8.31", N // 3, 100, int(seed))
        cfg = training.TrainConfig(n_steps=15, test_every_step=False, eval_chunk_size=10_000)
        single = training.train(networks.make_mlp(2, 6, 3, seed=int(seed)), X, y, Xt, yt, cfg)
        assert value == pytest.approx(single.test_at_min_train, rel=1e-9)
        assert apart.rmse[apart.seed == seed][0] == single.test_at_min_train


def test_network_task_cost_grows_with_size_steps_and_seeds():
    base = ns.NetworkTask(equation="I.30.5", depth=3, width=13, seeds=(0,), n_steps=100)
    assert 0 < base.cost() < dataclasses.replace(base, width=125).cost()
    assert dataclasses.replace(base, n_steps=200).cost() == pytest.approx(2 * base.cost())
    assert base.cost() < dataclasses.replace(base, seeds=(0, 1)).cost() < 2 * base.cost()  # batched: shared overhead
    assert dataclasses.replace(base, seeds=(0, 1), batched=False).cost() == pytest.approx(2 * base.cost())
    modular = ns.NetworkTask(equation="I.8.14", kind="modular", depth=4, width=16, seeds=(0,), n_steps=100)
    assert modular.cost() > 0 and modular.n_params() == networks.modular_param_count(
        equations.get("I.8.14").graph(), 16, 4)
    assert base.key() == dataclasses.replace(base, threads=2, device="cuda", member_memory_gb=1.0).key()
    assert base.key() != dataclasses.replace(base, seeds=(0, 1)).key()


def test_network_task_validates_its_fields():
    with pytest.raises(ValueError, match="kind"):
        ns.NetworkTask(kind="sparse")
    with pytest.raises(ValueError, match="rng"):
        ns.NetworkTask(rng="mt")
    with pytest.raises(ValueError, match="one width tuple per depth"):
        ns.NetworkSweep.grid(["I.30.5"], [2, 3], [[5]])


# --- Fig. 3 and the width-100 remark ------------------------------------------------------------------------------


def _synthetic_modular(factor):
    rows = []
    grids = (("dense", (100.0, 1000.0, 10000.0), 1.0), ("modular", (300.0, 3000.0, 30000.0), factor))
    for kind, sizes, scale in grids:
        for N in sizes:
            for seed in (0, 1):
                rows.append(dict(kind=kind, equation="I.8.14", dim=4, activation="relu", depth=4, width=0,
                                 n_params=N, n_train=N // 5, batch_size=30_000, n_steps=10, n_test=100, seed=seed,
                                 rmse=scale * N**-0.5, seconds_per_step=0.1))
    return ns.NetworkRuns.from_rows(rows, {"I.8.14": 1.0})


def test_modular_ratio_at_equal_n():
    res = _synthetic_modular(0.5)
    N, ratio = res.ratios("I.8.14", 4)
    assert np.array_equal(N, [300.0, 3000.0])  # 30000 lies outside the dense range
    assert np.allclose(ratio, 0.5)
    assert res.geometric_mean_ratio() == pytest.approx(0.5)


@pytest.mark.slow
def test_modular_sweep_tiny(store):
    sweep = pl.modular_sweep((6, 10), (16,), ("I.8.14",), seeds=(0, 1), n_steps=5, n_test=50)
    assert len(sweep.tasks()) == 2 * 3  # depths 4 and 6, two dense widths and one modular width each
    res = _check_tasks(sweep, store)
    graph = equations.get("I.8.14").graph()
    assert sorted(res.kind.tolist()) == ["dense"] * 8 + ["modular"] * 4
    assert res.n_params[res.kind == "modular"][0] == networks.modular_param_count(graph, 16, 4)
    assert np.isfinite(res.geometric_mean_ratio())  # 131 lies inside the dense range [121, 281]
    assert np.array_equal(_serial(sweep).rmse, res.rmse)


def test_same_width_parameter_counts_are_the_notebooks():
    sweep = pl.SameWidthSweep.build(n_steps=1, n_test=50)
    assert [(t.kind, t.batched, t.selection) for t in sweep.tasks()] == [
        ("modular", False, "min_logged_test"), ("dense", False, "min_logged_test")]
    res = _serial(sweep)
    assert res.n_params == {"modular": 16_003, "dense": 41_001}  # as the authors' notebooks print them
    assert res.n_train == {"modular": 3_200, "dense": 8_200}
    assert res.param_ratio == pytest.approx(16_003 / 41_001)  # the paper's "2.5x fewer" is inverted


# --- steps, run-time estimate and claims ---------------------------------------------------------------------------


def test_steps_cover_the_chapter_and_the_paper_profile_is_many_tasks():

    for profile in ("smoke", "ci", "paper"):
        sweeps = params.chapter_steps("02_piecewise_linear", profile)
        assert set(sweeps) == {"fig1a", "fig1b", "fig2_simplex", "fig2_relu", "fig3_modular", "width100"}
        keys = [t.key() for s in sweeps.values() for t in s.tasks()]
        assert len(set(keys)) == len(keys)
    hours = pl.paper_hours(sweeps)
    assert len(sweeps["fig2_simplex"].tasks()) == (4 * 7 + 2 * 5) * 4  # equation x |D| x seed
    assert len(sweeps["fig2_relu"].tasks()) == 6 * 18  # equation x (depth, width), 4 seeds each
    assert hours["total"] == pytest.approx(sum(v for k, v in hours.items() if k != "total"))
    assert all(v > 0 for v in hours.values())


def test_claim_values_cover_exactly_the_declared_claims(fig1, fig2):
    modular = _synthetic_modular(0.8)
    same = pl.SameWidthResult({"modular": 16_003, "dense": 41_001}, {"modular": 3200, "dense": 8200},
                              {"modular": 0.9, "dense": 1.0}, {"modular": 0.01, "dense": 0.02}, 10, 1.0)
    values = pl.claim_values(pl.fig1_summary(*fig1), pl.fig2_summary(*fig2), modular, same)
    assert set(values) == {c.id for c in claims.for_chapter("02_piecewise_linear")}
    assert values["C2.14"] == pytest.approx(0.8) and values["C2.15"] == pytest.approx(0.9)
