"""Unit tests of pml.experiments.introduction (paper §1) at tiny configurations: float64, deterministic, seconds."""

import dataclasses

import numpy as np
import pytest

from pml import engine
from pml.book import params
from pml.experiments import introduction as intro

FLOORS = intro.FloorSweep(n_points=200)
DECOMPOSITION = intro.DecompositionSweep(n_train=(16, 64, 256), n_seeds=12)
PIECEWISE = intro.PiecewiseSweep(degrees=(1, 3), n_cells=(4, 8, 16), n_test=2000)


def serial(sweep):
    """The sweep's result with every task run here, in order, without the engine or its store."""
    return sweep.assemble([t.run() for t in sweep.tasks()])


def assert_same(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


def test_floors_lie_below_machine_epsilon():
    res = serial(FLOORS)
    assert res.dtypes == ("float32", "float64")
    # round-to-nearest moves each value by at most eps/2 relative
    assert np.all(res.storage_floor > 0) and np.all(res.storage_floor <= res.eps / 2)
    assert res.storage_floor[1] < 1e-15 < res.storage_floor[0]
    assert np.all(res.evaluation_floor >= res.storage_floor * 0.5)


@pytest.mark.slow
def test_decomposition_terms_other_than_the_luck_are_nonnegative():
    res = serial(DECOMPOSITION)
    assert res.terms.shape == (3, 12, 4)
    total = res.terms.sum(axis=2, keepdims=True)
    assert np.all(np.delete(res.terms, 1, axis=2) / total > -1e-9)
    assert res.std()[-1, 1] < res.std()[0, 1]  # the sampling luck shrinks with |D|


def test_piecewise_exponents_follow_the_theory():
    res = serial(PIECEWISE)
    assert res.dims == (1, 2) and res.n_params.shape == (2, 2, 3)
    np.testing.assert_allclose(res.exponent, res.theory(), atol=0.25)


@pytest.mark.parametrize("sweep", [FLOORS, pytest.param(DECOMPOSITION, marks=pytest.mark.slow), PIECEWISE],
                         ids=["floors", "decomposition", "piecewise"])
def test_sweeps_through_the_engine_equal_the_serial_result(sweep, tmp_path):
    tasks = sweep.tasks()
    assert len({t.key() for t in tasks}) == len(tasks) > 1
    expected = serial(sweep)
    store = engine.Store(tmp_path)
    assert_same(engine.run(sweep, store=store), expected)
    assert_same(engine.run(sweep, store=store), expected)  # read back from the store
    assert all(t.cost() > 0 for t in tasks)


def test_costs_grow_with_the_sizes():
    assert 0 < intro.FloorTask("cos2x", 100, 0, "float64").cost() < intro.FloorTask("cos2x", 1000, 0, "float64").cost()
    small = intro.DecompositionTask("cos2x", 3, 3, 64, 10)
    larger = dataclasses.replace(small, n=4096)
    assert small.cost() < larger.cost() < dataclasses.replace(larger, n_seeds=20).cost()
    line = intro.PiecewiseTask("cos2x", 1, (4, 8), 1000, 0)
    assert line.cost() < dataclasses.replace(line, n_test=30_000).cost() < dataclasses.replace(line, target="exp_xy",
                                                                                               n_test=30_000).cost()


def test_steps_follow_the_chapter_parameters():
    smoke = params.chapter_steps("01_introduction", "smoke")
    paper = params.chapter_steps("01_introduction", "paper")
    assert set(smoke) == {"floors", "decomposition", "piecewise"}
    assert smoke["decomposition"].n_train == (16, 64, 256) and smoke["decomposition"].n_seeds == 20
    assert [len(paper[s].tasks()) for s in ("floors", "decomposition", "piecewise")] == [2, 5, 6]
