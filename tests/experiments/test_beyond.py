"""pml.experiments.beyond and pml.plotting.beyond at tiny sizes (issue 6: fit to machine precision)."""

import dataclasses
import functools
import math

import numpy as np
import pytest

from pml import engine
from pml.benchmarks import precision
from pml.book import claims, params
from pml.experiments import beyond
from pml.plotting import beyond as figs


def serial(sweep):
    """The sweep's result with every task run here, in order, without the engine or its store."""
    return sweep.assemble([t.run() for t in sweep.tasks()])


@functools.lru_cache(maxsize=None)
def bench():
    # the benchmark's quick budgets on one 1D problem: a couple of seconds
    return serial(beyond.BenchmarkConfig(problems=("x2",), quick=True))


@functools.lru_cache(maxsize=None)
def bfgs():
    return serial(beyond.BFGSConfig(problem="x2", n_train=100, width=6, maxiter=30, log_every=5))


def test_benchmark_rows_are_the_benchmarks_and_cover_every_method():
    res = bench()
    assert {r["method"] for r in res.rows} == set(precision.METHODS)
    assert all(r["problem"] == "x2" and r["quick"] for r in res.rows)
    assert res.seconds >= sum(r["seconds"] for r in res.rows) * 0.99
    assert res.best("x2", "classical")["rel_rmse"] == min(r["rel_rmse"] for r in res.rows if r["family"] == "classical")
    assert res.best("x2", "nope") is None and res.best("xy", "trained") is None


def test_stage_trace_is_the_benchmarks_own_fit():
    res = bench()
    tr = res.traces["x2"]
    row = next(r for r in res.rows if r["method"] == "lm-multistage")
    # recorded while the benchmark ran: the merged network is the row's network, the last stage its sum of stages
    assert tr.merged_test_rel == pytest.approx(row["rel_rmse"], rel=1e-12)
    assert tr.test_rel[-1] == pytest.approx(tr.merged_test_rel, rel=1e-3)
    assert tr.n_stages == len(tr.iters) == len(tr.stops) == tr.seconds.size >= 2
    assert tr.test_rel[-1] < tr.test_rel[0] and tr.train_rel[-1] < tr.train_rel[0]
    assert tr.curve_time.shape == tr.curve_rel.shape == tr.curve_stage.shape
    assert np.all(np.diff(tr.curve_time) >= 0) and set(tr.curve_stage) == set(range(tr.n_stages))
    assert np.all(np.diff(tr.curve_stage) >= 0)
    # the LM curve (stage-normalised residual times the stage's scale) ends at the stage's combined train RMSE
    for k in range(tr.n_stages):
        assert tr.curve_rel[tr.curve_stage == k][-1] == pytest.approx(tr.train_rel[k], rel=1e-2)
    assert tr.curve_time[-1] <= tr.seconds.sum()
    # each stage starts from its least-squares output layer; LM never raises the training error
    assert tr.start_rel.shape == tr.lm_orders.shape == (tr.n_stages,)
    assert np.all(tr.lm_orders >= 0) and tr.start_rel[0] == tr.curve_rel[0]
    assert tr.y_rms == pytest.approx(np.sqrt(0.2), rel=2e-2)  # x^2 on [-1, 1]: E[x^4] = 1/5


def test_tasks_are_the_benchmarks_fits_with_distinct_keys():
    sweep = beyond.BenchmarkConfig(problems=("x2", "I.11.19"))
    tasks = sweep.tasks()
    assert [(t.problem, t.method) for t in tasks] == precision.jobs(("x2", "I.11.19"))
    assert len({t.key() for t in tasks}) == len(tasks) == 2 * len(precision.METHODS) - 1  # no Chebyshev in 6D
    assert dataclasses.replace(tasks[0], threads=2).key() == tasks[0].key()
    steps = beyond.steps(params.chapter_parameters("06_beyond"))
    assert set(steps) == {"benchmark", "bfgs"} and steps["benchmark"] == beyond.BenchmarkConfig()
    assert steps["bfgs"].tasks()[0].time_limit == 3600.0 and steps["bfgs"].tasks()[0].maxiter == 25_000


def test_engine_result_equals_the_serial_one_and_the_benchmarks_rows(tmp_path):
    """Through the engine (and back from its store) the numbers are the serial run's and `pml bench precision`'s."""
    sweep = beyond.BenchmarkConfig(problems=("x2",), quick=True)
    ran = engine.run(sweep, store=engine.Store(tmp_path))
    stored = engine.run(sweep, store=engine.Store(tmp_path))
    rows = precision.run(True, problem_names=("x2",), methods=("readout", "chebyshev", "rbf", "poly-lsq"))

    def numbers(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert numbers(ran.rows) == numbers(stored.rows)
    np.testing.assert_array_equal(ran.traces["x2"].curve_rel, stored.traces["x2"].curve_rel)
    assert stored.seconds == ran.seconds > 0
    assert numbers(rows) == [r for r in numbers(ran.rows) if r["method"] != "lm-multistage"]
    # lm-multistage's stages stop at a wall-clock limit only on a very slow or busy machine; otherwise it is exact too
    if "time_limit" not in ran.traces["x2"].stops + bench().traces["x2"].stops:
        assert numbers(ran.rows) == numbers(bench().rows)
        np.testing.assert_array_equal(ran.traces["x2"].test_rel, bench().traces["x2"].test_rel)
    from pml.nn import multistage
    assert precision.multistage is multistage


def test_cost_is_positive_and_grows_with_size():
    def cost(problem, method, quick=False):
        return beyond.BenchTask(problem, method, quick).cost()

    for method in precision.METHODS:
        assert 0 < cost("x2", method, quick=True) <= cost("x2", method)
    for method in ("readout", "rbf", "poly-lsq"):  # more inputs, more points and parameters
        assert cost("x2", method) <= cost("xy", method) <= cost("I.11.19", method)
    for name in precision.PROBLEMS:  # lm-multistage: at most its stages' time limits
        lm = precision._lm_config(name, precision.problems()[name].dim, False)
        assert cost(name, "lm-multistage") <= len(lm["its"]) * lm["time_limit"] + 10
    small = beyond.BFGSTask(n_train=1000, maxiter=100)
    assert 0 < small.cost() < beyond.BFGSTask(n_train=100_000, maxiter=100).cost()
    assert small.cost() < beyond.BFGSTask(n_train=1000, maxiter=1000).cost()
    assert beyond.BFGSTask(maxiter=10**9, time_limit=60.0).cost() <= 60 + 5


def test_bfgs_comparison():
    res = bfgs()
    assert res.n_iter <= 30 and res.step[0] == 0 and res.time_s.shape == res.test_rel.shape
    assert np.all(np.isfinite(res.test_rel)) and res.best_test_rel <= res.test_rel[0]
    assert res.final_test_rel == pytest.approx(res.test_rel[-1], rel=1e-9)
    assert res.seconds_per_iter > 0 and res.n_train == 100
    with pytest.raises(ValueError, match="1D"):
        beyond.BFGSTask(problem="xy", n_train=10, maxiter=1).run()
    nums = beyond.bfgs_numbers(res, bench())
    assert nums["lm_gain"] > 0 and nums["lm_seconds_to_bfgs"] <= nums["lm_seconds"]
    assert nums["paper_bfgs40"] == pytest.approx(5e-7 / res.y_rms)
    assert all(isinstance(v, (float, int, str)) for v in nums.values())


def test_numbers_tables_and_claims():
    res = bench()
    nums = beyond.problem_numbers(res, "x2")
    assert nums["trained_target"] == precision.TARGETS["x2"]["trained"]
    assert nums["trained_gain"] == pytest.approx(math.log10(nums["paper"] / nums["trained"]))
    assert nums["n_stages"] >= 2 and nums["last_gap"] > 0
    assert all(isinstance(v, (float, int, str)) for v in nums.values())
    missing = beyond.problem_numbers(res, "I.11.19")  # not run: NaN, not an error
    assert math.isnan(missing["trained"]) and math.isnan(missing["last_test"]) and missing["n_stages"] == 0
    over = beyond.overview_numbers(res)
    assert over["n_targets"] == 3 and 0 <= over["n_met"] <= 3 and over["n_rows"] == len(res.rows)
    assert over["merged_worst_ratio"] >= 1 and over["merged_worst_problem"] == "x²"
    assert over["trained_worst_low_d"] == nums["trained"]
    summary = beyond.summary_table(res)._repr_markdown_()
    assert summary.count("\n") == 1 + len(beyond.FAMILIES) and summary.count("x²") == 1 and "e\u221215" in summary
    assert "met" in summary or "missed" in summary
    assert str(beyond.summary_table(res)).count("\n") == summary.count("\n")  # heading, rule, one line per row
    assert beyond.full_table(res).markdown().count("\n") == 1 + len(res.rows)
    values = beyond.claim_values(res)
    assert set(values) == {c.id for c in claims.for_chapter("06_beyond")}
    assert values["C6.1"] == nums["trained"] and math.isnan(values["C6.4"])
    assert values["C6.16"] == pytest.approx(nums["trained_gain"])
    for cid, (problem, family) in beyond.CLAIM_TARGETS.items():
        assert claims.get(cid).check.high == precision.TARGETS[problem][family]


def test_paper_estimate_sums_the_cost_model():
    paper = params.chapter_steps("06_beyond", "paper")
    est = beyond.paper_estimate(paper)
    assert est["benchmark"] == pytest.approx(sum(t.cost() for t in paper["benchmark"].tasks()))
    assert est["total"] == pytest.approx(est["benchmark"] + est["bfgs"])
    assert 3600 <= est["bfgs"] <= 3600 + 5  # 25k iterations on 100k points: the hour's limit binds
    ci = beyond.paper_estimate(params.chapter_steps("06_beyond", "ci"))
    assert 0 < ci["benchmark"] < est["benchmark"] and 0 < ci["bfgs"] < est["bfgs"]


def test_plots():
    fig = figs.plot_stages(bench())
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
    fig = figs.plot_time(bench(), bfgs())
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("BFGS" in s for s in labels) and any(s.startswith("paper") for s in labels)
    assert figs.plot_time(bench()).axes
