"""Stored mode: engine.run computes nothing; a sweep with missing tasks is assembled partially or is NotComputed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from engine_tasks import Toy, ToySweep, runs

from pml.engine import NotComputed, Store, compute, is_missing, partial, run


@dataclass(frozen=True)
class PartialToySweep(ToySweep):
    """A ToySweep that assembles what is stored: the seeds whose results are there."""

    def assemble_partial(self, results):
        return {"seeds": [r["seed"] for r in results if r is not None],
                "missing": [s for s, r in zip(self.seeds, results) if r is None]}


def _store_some(tmp_path, seeds, log):
    store = Store(tmp_path / "store")
    compute([Toy(seed=s, log=log) for s in seeds], store=store, client=False)
    return store


def test_stored_mode_runs_no_task_and_gives_not_computed(tmp_path, monkeypatch):
    log = str(tmp_path / "log")
    store = _store_some(tmp_path, (0, 2), log)
    assert len(runs(log)) == 2
    sweep = ToySweep(seeds=(0, 1, 2, 3), log=log)
    partial.name_steps({"toys": sweep})
    monkeypatch.setenv(partial.STORED_ENV, "1")
    result = run(sweep, store=store)
    assert len(runs(log)) == 2  # no task ran
    assert is_missing(result) and isinstance(result, NotComputed)
    assert (result.step, result.stored, result.total) == ("toys", 2, 4)
    missing = sum(Toy(seed=s).cost() for s in (1, 3)) / 3600
    assert result.missing_cpu_hours == pytest.approx(missing)
    assert result.total_cpu_hours == pytest.approx(2 * missing)
    assert "2 of 4 tasks stored" in str(result) and f"{result:.3f}" == "(not computed)"
    with pytest.raises(partial.NotComputedError, match="'norms' of a result that was not computed: step toys"):
        result.norms  # noqa: B018
    assert not hasattr(result, "norms")  # hasattr and getattr(..., default) still work
    assert not store.contains(Toy(seed=1, log=log))


def test_stored_mode_assembles_partially_where_the_sweep_can(tmp_path):
    log = str(tmp_path / "log")
    store = _store_some(tmp_path, (1,), log)
    result = run(PartialToySweep(seeds=(0, 1, 2), log=log), store=store, stored=True)
    assert result == {"seeds": [1], "missing": [0, 2]}
    assert len(runs(log)) == 1


def test_stored_mode_with_everything_stored_is_the_normal_result(tmp_path):
    log = str(tmp_path / "log")
    store = _store_some(tmp_path, (0, 1), log)
    sweep = PartialToySweep(seeds=(0, 1), log=log)
    stored = run(sweep, store=store, stored=True)
    normal = run(sweep, store=store, stored=False)
    assert stored["seeds"] == normal["seeds"] == [0, 1] and (stored["ax"] == normal["ax"]).all()
    assert len(runs(log)) == 2


def test_without_stored_mode_run_computes(tmp_path, monkeypatch):
    monkeypatch.delenv(partial.STORED_ENV, raising=False)
    log = str(tmp_path / "log")
    result = run(ToySweep(seeds=(0, 1), log=log), store=Store(tmp_path / "store"))
    assert result["seeds"] == [0, 1] and len(runs(log)) == 2


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("", False), ("0", False)])
def test_stored_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(partial.STORED_ENV, value)
    assert partial.stored_mode() is expected


def test_combine_and_passes_missing():
    a = NotComputed("fig5_simplex", 10, 20, 1.0, 2.0)
    b = NotComputed("fig5_networks", 0, 100, 1700.0, 1700.0)
    both = partial.combine(a, 3, b, a)
    assert (both.step, both.stored, both.total) == ("fig5_simplex, fig5_networks", 10, 120)
    assert both.missing_cpu_hours == 1701.0 and partial.combine(1, "x") is None

    @partial.passes_missing
    def ratio(x, y):
        return x / y

    assert ratio(6, 3) == 2 and ratio(a, 3) is a and ratio(6, y=b) is b
    assert partial.hours_text(1700) == "1,700 CPU-hours" and partial.hours_text(0.001) == "< 0.01 CPU-hours"
