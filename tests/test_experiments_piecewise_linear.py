"""Unit tests of pml.experiments.piecewise_linear (paper §2) at tiny, deterministic float64 configs."""

import numpy as np
import pytest
import torch

from pml import data, equations
from pml.book import claims
from pml.nn import networks, training
from pml.experiments import piecewise_linear as pl
from pml.approx.simplex import SimplexInterpolator


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


@pytest.fixture(scope="module")
def fig1():
    fig1a = pl.run_linear_regions(pl.fig1a_config(n_steps=30, n_test=300, grid_size=4001))
    fig1b = pl.run_linear_regions(pl.fig1b_config(n_steps=30, n_test=300, grid_size=40))
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
    again = pl.run_linear_regions(pl.fig1a_config(n_steps=30, n_test=300, grid_size=4001))
    assert again.rmse == fig1a.rmse  # deterministic


def test_linear_regions_rejects_high_dimensional_targets():
    with pytest.raises(ValueError, match="1D or 2D"):
        pl.run_linear_regions(pl.LinearRegionsConfig(equation="I.30.5", n_steps=1))


# --- Fig. 2 -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fig2():
    simplex = pl.run_simplex_scaling(pl.SimplexScalingConfig(equations=("Z.001", "I.30.5"), sizes=(64, 256, 1024),
                                                             seeds=(0, 1), n_test=2000))
    relu = pl.run_relu_scaling(pl.ReluScalingConfig(equations=("Z.001", "I.30.5"), depths=(2, 3),
                                                    widths=((8, 16), (4, 6, 8)), seeds=(0, 1), n_steps=20,
                                                    n_test=200))
    return simplex, relu


def test_simplex_scaling_matches_the_upstream_table_and_the_theory(fig2):
    simplex, _ = fig2
    full = pl.run_simplex_scaling(pl.SimplexScalingConfig(equations=("Z.001",), sizes=(64,)))
    assert full.mean("Z.001")[0] == pytest.approx(0.00139, rel=5e-3)  # spec §15, seeds 0-3, 30k test points
    assert np.array_equal(simplex.n_params("Z.001"), [128, 512, 2048])
    assert simplex.exponent_gap("Z.001") < 0.15
    assert simplex.fraction_outside[simplex.index("I.30.5")].shape == (3, 2)
    assert np.isnan(simplex.at("Z.001", [100.0]))[0] and np.isfinite(simplex.at("Z.001", [300.0]))[0]


def test_simplex_cap_by_dimension():
    res = pl.run_simplex_scaling(pl.SimplexScalingConfig(equations=("Z.001", "I.30.5"), sizes=(64, 256),
                                                         max_train_by_dim=(256, 256, 64, 64, 64, 64), seeds=(0,),
                                                         n_test=100))
    assert list(res.n_train[0]) == [64, 256] and list(res.n_train[1]) == [64]


def test_relu_scaling_rows_curves_and_summaries(fig2):
    simplex, relu = fig2
    assert len(relu.rmse) == 2 * (2 + 3) * 2  # equations x widths x seeds
    N, med = relu.curve("I.30.5", 3)
    assert np.array_equal(N, [networks.dense_param_count(3, w, 3) for w in (4, 6, 8)])
    assert np.all(relu.n_train == relu.n_params // (relu.dim + 1))
    assert np.isfinite(relu.early_exponent("I.30.5", 3))  # depth 3 has 3 sizes
    assert np.isnan(relu.early_exponent("I.30.5", 4))  # no depth has 4
    summary = pl.fig2_summary(simplex, relu)
    assert summary["n_high_d"] == 1 and summary["n_steeper"] in (0, 1)
    assert summary["theory_exp_d3"] == pytest.approx(-2 / 3)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in summary.values())


def test_batched_training_equals_one_network_per_seed():
    """The rows of run_relu_scaling (seeds batched) equal separate train() calls up to float64 rounding."""
    relu = pl.run_relu_scaling(pl.ReluScalingConfig(equations=("II.8.31",), depths=(3,), widths=((6,),),
                                                    seeds=(0, 1), n_steps=15, n_test=100))
    for seed, value in zip(relu.seed, relu.rmse):
        N = networks.dense_param_count(2, 6, 3)
        X, y, Xt, yt = pl.sample_split("II.8.31", N // 3, 100, int(seed))
        cfg = training.TrainConfig(n_steps=15, test_every_step=False, eval_chunk_size=10_000)
        single = training.train(networks.make_mlp(2, 6, 3, seed=int(seed)), X, y, Xt, yt, cfg)
        assert value == pytest.approx(single.test_at_min_train, rel=1e-9)


# --- Fig. 3 and the width-100 remark ------------------------------------------------------------------------------


def _synthetic_modular(factor):
    rows = {k: [] for k in pl._ROW_KEYS}
    grids = (("dense", (100.0, 1000.0, 10000.0), 1.0), ("modular", (300.0, 3000.0, 30000.0), factor))
    for kind, widths, scale in grids:
        for N in widths:
            for seed in (0, 1):
                for key, value in zip(pl._ROW_KEYS, (kind, "I.8.14", 4, 4, 0, N, N // 5, seed, scale * N**-0.5, 0.1)):
                    rows[key].append(value)
    return pl._finish(rows, 100, 30_000, {"I.8.14": 1.0}, pl.ModularResult)


def test_modular_ratio_at_equal_n():
    res = _synthetic_modular(0.5)
    N, ratio = res.ratios("I.8.14", 4)
    assert np.array_equal(N, [300.0, 3000.0])  # 30000 lies outside the dense range
    assert np.allclose(ratio, 0.5)
    assert res.geometric_mean_ratio() == pytest.approx(0.5)


def test_run_modular_tiny():
    res = pl.run_modular(pl.ModularConfig(equations=("I.8.14",), depths=((4,),), dense_widths=(6, 10),
                                          modular_widths=(16,), seeds=(0,), n_steps=5, n_test=50))
    graph = equations.get("I.8.14").graph()
    assert sorted(res.kind.tolist()) == ["dense", "dense", "modular"]
    assert res.n_params[res.kind == "modular"][0] == networks.modular_param_count(graph, 16, 4)
    assert np.isfinite(res.geometric_mean_ratio())  # 131 lies inside the dense range [121, 281]


def test_same_width_parameter_counts_are_the_notebooks():
    res = pl.run_same_width(pl.SameWidthConfig(n_steps=1, n_test=50))
    assert res.n_params == {"modular": 16_003, "dense": 41_001}  # spec §3 [printed]
    assert res.n_train == {"modular": 3_200, "dense": 8_200}
    assert res.param_ratio == pytest.approx(16_003 / 41_001)  # the paper's "2.5x fewer" is inverted


# --- run-time estimate and claims ----------------------------------------------------------------------------------


def test_estimate_seconds_recovers_the_cost_constant():
    rows = {k: [] for k in pl._ROW_KEYS}
    c = 2e-9
    for N in (100, 1000, 10_000):
        D = N // 2
        work = N * (3 * min(D, 10_000) + 500)
        for key, value in zip(pl._ROW_KEYS, ("dense", "Z.001", 1, 3, 0, N, D, 0, 0.1, c * work)):
            rows[key].append(value)
    measured = pl._finish(rows, 500, 10_000, {}, pl.ReluScalingResult)
    target = pl.ReluScalingConfig(equations=("Z.001",), depths=(3,), widths=((10,),), seeds=(0, 1), n_steps=7,
                                  n_test=500)
    est = pl.estimate_seconds([measured], [target])
    N = networks.dense_param_count(1, 10, 3)
    assert est["c"] == pytest.approx(c)
    assert est["total"] == pytest.approx(c * N * (3 * (N // 2) + 500) * 7 * 2)
    with pytest.raises(TypeError):
        pl.estimate_seconds([measured], [pl.SameWidthConfig()])


def test_claim_values_cover_exactly_the_declared_claims(fig1, fig2):
    modular = _synthetic_modular(0.8)
    same = pl.SameWidthResult({"modular": 16_003, "dense": 41_001}, {"modular": 3200, "dense": 8200},
                              {"modular": 0.9, "dense": 1.0}, {"modular": 0.01, "dense": 0.02}, 10, 1.0)
    values = pl.claim_values(pl.fig1_summary(*fig1), pl.fig2_summary(*fig2), modular, same)
    assert set(values) == {c.id for c in claims.for_chapter("02_piecewise_linear")}
    assert values["C2.14"] == pytest.approx(0.8) and values["C2.15"] == pytest.approx(0.9)
    hours = pl.paper_runtime_estimate(*fig1, fig2[0], fig2[1], modular, same)
    assert hours["total"] > 0 and all(np.isfinite(v) for v in hours.values())
