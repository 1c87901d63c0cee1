"""Partial builds: `--stored` computes nothing and marks what is missing; a build that would compute more than the
limit stops first (unless --yes); each chapter run writes its coverage beside its claims."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from engine_tasks import Toy, ToySweep, runs
from test_runner import HEADER, fake_book  # noqa: F401  (fixture)

from pml import cli, paths
from pml.book import coverage, runner
from pml.engine import Store, compute, partial

TESTS = Path(__file__).resolve().parent


def quiet():
    return runner.Progress(stream=io.StringIO(), live=False)


# --- the cost check -------------------------------------------------------------------------------------------------


@pytest.fixture
def toy_steps(monkeypatch, build_tmp):
    """Every chapter has one step of two Toy tasks, each costing 1.5 CPU-hours by its cost model; run_chapter is
    recorded instead of executed."""
    monkeypatch.setattr(Toy, "cost", lambda self: 1.5 * 3600)
    monkeypatch.setattr(runner, "has_steps", lambda stem: True)
    monkeypatch.setattr(runner, "chapter_steps", lambda stem, profile, overrides=None, only=None, execution=None:
                        {"toys": ToySweep(seeds=(0, 1))})
    calls = []

    def fake_run(stem, profile, overrides=None, **kwargs):
        calls.append((stem, kwargs.get("stored")))
        return runner.ChapterRun(stem, profile, {}, build_tmp / "nb.ipynb", build_tmp, None, 0.0, profile, {})

    monkeypatch.setattr(runner, "run_chapter", fake_run)
    return calls


def test_a_build_over_the_limit_stops_first_and_says_what_it_would_cost(toy_steps, capsys):
    assert cli.main(["run", "01_introduction", "--profile", "paper"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pml: error: `pml run 01_introduction --profile paper` would compute 3 CPU-hours")
    assert "pml plan 01_introduction --profile paper" in err and "toys" in err
    for option in ("--stored", "--workers N --yes", "--scheduler ADDRESS --yes", "--profile paper --yes"):
        assert option in err
    assert toy_steps == []  # nothing ran


def test_yes_overrides_the_limit_and_stored_needs_no_check(toy_steps, capsys):
    assert cli.main(["run", "01_introduction", "--profile", "paper", "--yes"]) == 0
    assert cli.main(["run", "01_introduction", "--profile", "paper", "--stored"]) == 0
    assert toy_steps == [("01_introduction", False), ("01_introduction", True)]


def test_stored_and_a_cluster_do_not_go_together(toy_steps, capsys):
    assert cli.main(["run", "01_introduction", "--profile", "paper", "--stored", "--workers", "2"]) == 2
    assert "--stored computes nothing" in capsys.readouterr().err and toy_steps == []


def test_a_book_over_the_limit_stops_first(toy_steps, monkeypatch, capsys):
    monkeypatch.setattr(runner, "build", lambda *a, **k: pytest.fail("the book must not be built"))
    assert cli.main(["book", "--profile", "paper"]) == 2
    assert "`pml book --profile paper` would compute" in capsys.readouterr().err


def test_under_the_limit_the_check_passes_quietly(toy_steps, monkeypatch):
    monkeypatch.setattr(Toy, "cost", lambda self: 0.5 * 3600)
    assert runner.check_cost(["01_introduction"], "paper") == pytest.approx(1.0)


@pytest.mark.parametrize("profile", ["smoke", "ci"])
def test_smoke_and_ci_from_an_empty_store_are_under_the_limit(build_tmp, profile):
    assert runner.check_cost(runner.chapters(), profile) < runner.COMPUTE_LIMIT_CPU_HOURS


# --- coverage -------------------------------------------------------------------------------------------------------


def test_coverage_of_a_stored_build_and_its_file(build_tmp, tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    compute([Toy(seed=0)], store=store, client=False)
    steps = {"toys": ToySweep(seeds=(0, 1)), "one": ToySweep(seeds=(0,))}
    monkeypatch.setenv(partial.STORED_ENV, "1")
    cov = coverage.report("01_fake", steps, "paper", store=store)
    assert (cov.available, cov.tasks, cov.complete) == (2, 3, False)
    assert cov.step("one").complete and not cov.step("toys").complete
    assert "2 of 3 tasks stored" in cov.line() and "not complete: toys" in cov.line()
    data = json.loads((paths.claims_dir("paper") / "coverage" / "01_fake.json").read_text())
    assert data["stored_mode"] is True and [s["available"] for s in data["steps"]] == [1, 1]
    assert coverage.read("paper")[0] == cov
    assert coverage.missing_hours("01_fake", ["one"]) is None
    assert coverage.missing_hours("01_fake", ["toys"]) == pytest.approx(Toy(seed=1).cost() / 3600)
    rows = coverage.table("paper").rows
    assert rows[0][:4] == ("01_fake", "toys", "stored", "1 / 2") and rows[-1][1] == "(all steps)"


def test_coverage_of_a_normal_build_counts_everything(build_tmp, tmp_path, monkeypatch):
    monkeypatch.delenv(partial.STORED_ENV, raising=False)
    cov = coverage.report("01_fake", {"toys": ToySweep(seeds=(0, 1))}, "ci", store=Store(tmp_path / "store"))
    assert cov.complete and cov.step("toys").stored_before == 0
    assert cov.line().startswith("Coverage: this build computed or took from the results store every task")
    assert coverage.missing_hours("01_fake", None) is None


# --- a stored chapter run -------------------------------------------------------------------------------------------

CHAPTER = """
```{{code-cell}} ipython3
import sys
sys.path.insert(0, {tests!r})
from myst_nb import glue
from engine_tasks import ToySweep
from pml import engine
from pml.book import coverage
store = engine.Store({store!r})
steps = {{"toys": ToySweep(seeds=(0, 1), log={log!r}), "done": ToySweep(seeds=(0,), log={log!r})}}
coverage.report("01_fake", steps, profile, store=store)
```

```{{code-cell}} ipython3
toys = engine.run(steps["toys"], store=store)
done = engine.run(steps["done"], store=store)
glue("toy_norm", toys, display=False)
glue("done_norm", float(done["norms"][0]), display=False)
assert engine.is_missing(toys) and not engine.is_missing(done)
```

Norm {{glue:text}}`toy_norm:.3f`, unset {{glue:text}}`never_glued:.2e`, stored {{glue:text}}`done_norm:.3f`.
"""


@pytest.mark.chapters
def test_a_stored_chapter_run_computes_nothing_and_marks_the_missing_values(fake_book, tmp_path):  # noqa: F811
    log = str(tmp_path / "log")
    store = Store(tmp_path / "store")
    compute([Toy(seed=0, log=log)], store=store, client=False)
    body = CHAPTER.format(tests=str(TESTS), store=str(tmp_path / "store"), log=log)
    (fake_book / "book" / "01_fake.md").write_text(HEADER + body)
    runner._chapters_cached.cache_clear()
    result = runner.run_chapter("01_fake", "paper", progress=quiet(), stored=True)
    assert len(runs(log)) == 1  # only the task stored before the run ever ran
    nb = nbformat.read(result.notebook, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Norm *(not computed)*, unset *(not computed)*, stored {glue:text}`done_norm:.3f`" in text
    cov = json.loads((paths.claims_dir("paper") / "coverage" / "01_fake.json").read_text())
    assert (cov["available"], cov["tasks"], cov["stored_mode"]) == (2, 3, True)


# --- claims a stored build cannot judge -----------------------------------------------------------------------------


def test_not_computed_is_a_verdict_of_its_own():
    from pml.book import claims

    claim = claims.get("C3.5")
    v = claims.judge(claim, None, "paper", 1700.0)
    assert (v.verdict, v.measured, v.ok) == (claims.NOT_COMPUTED, None, True)
    assert v.text == "not computed at paper (1,700 CPU-hours missing)"
    assert claims.ClaimTable([v]).counts() == {claims.NOT_COMPUTED: 1}
    assert claims.judge(claim, 0.5, "paper").verdict == claims.REPRODUCED


def test_a_stored_build_judges_only_the_claims_whose_steps_are_stored(build_tmp, tmp_path, monkeypatch):
    from pml.book import claims

    store = Store(tmp_path / "store")
    compute([Toy(seed=0)], store=store, client=False)
    stored, missing = ToySweep(seeds=(0,)), ToySweep(seeds=(7,))
    steps = {name: stored for name in ("fig4_splines", "fig4_grid", "fig5_simplex", "fig6_networks", "gadget")}
    steps["fig5_networks"] = missing  # C3.5 and C3.6 depend on it
    monkeypatch.setenv(partial.STORED_ENV, "1")
    coverage.report("03_nonlinear", steps, "paper", store=store)
    measured = {f"C3.{i}": 0.0 for i in range(1, 11)}
    measured["C3.5"] = partial.NotComputed("fig5_networks", 0, 1, 2.0, 2.0)
    measured.update({"C3.7": 3.0, "C3.8": 11.0, "C3.9": 2.0})
    table = claims.report("03_nonlinear", "paper", measured)
    verdicts = {v.claim.id: v for v in table.verdicts}
    hours = Toy(seed=7).cost() / 3600
    assert {cid for cid, v in verdicts.items() if v.verdict == claims.NOT_COMPUTED} == {"C3.5", "C3.6"}
    assert verdicts["C3.6"].missing_cpu_hours == pytest.approx(hours)
    assert verdicts["C3.9"].verdict == claims.REPRODUCED and verdicts["C3.7"].verdict == claims.REPRODUCED
    again = {v.claim.id: v for v in claims.collect("paper", ["03_nonlinear"])}  # from the file, as pml claims does
    assert {cid: (v.verdict, v.missing_cpu_hours) for cid, v in again.items()} == \
        {cid: (v.verdict, v.missing_cpu_hours) for cid, v in verdicts.items()}
    monkeypatch.delenv(partial.STORED_ENV)
    coverage.report("03_nonlinear", steps, "paper", store=store)  # a normal build judges everything
    measured["C3.5"] = 0.5
    assert claims.NOT_COMPUTED not in claims.report("03_nonlinear", "paper", measured).counts()


# --- partial network sweeps ------------------------------------------------------------------------------------------


def _fake_result(task, rmse=1e-3):
    rows = [dict(kind=task.kind, equation=task.equation, dim=task.dim, activation=task.activation, depth=task.depth,
                 width=task.width, n_params=task.n_params(), n_train=task.n_train(), batch_size=task.batch_size,
                 n_steps=task.n_steps, n_test=task.n_test, seed=s, rmse=rmse / task.width, seconds_per_step=1e-3)
            for s in task.seeds]
    return {"rows": rows, "y_rms": 2.0}


def test_a_network_sweep_with_missing_widths_assembles_the_rest_and_lists_them():
    from pml.experiments.network_sweep import NetworkSweep
    from pml.experiments.piecewise_linear import SameWidthSweep

    sweep = NetworkSweep.grid(["I.30.5"], [2, 3], [(51, 204, 819), (13, 29, 61)], ("tanh",), seeds=(0, 1))
    tasks = sweep.tasks()
    results = [None if t.width in (204, 819) else _fake_result(t) for t in tasks]
    runs_ = sweep.assemble_partial(results)
    assert not runs_.complete and len(runs_) == 4 * 2  # four shapes, two seeds each
    N, med = runs_.median_curve("I.30.5", "tanh", 3)
    assert N.size == 3 and np.all(np.isfinite(med))
    missing = runs_.missing_shapes("I.30.5", "tanh", 2)
    assert [m["width"] for m in missing] == [204, 819]
    assert missing[1]["cpu_hours"] == pytest.approx(tasks[2].cost() / 3600)
    assert missing[1]["n_params"] == tasks[2].n_params()
    assert runs_.missing_shapes(depth=3) == []
    short = runs_.not_computed  # what the numbers and claims of a partial table stand on
    assert (short.stored, short.total) == (4, 6) and partial.missing_part(runs_) is short
    assert short.missing_cpu_hours == pytest.approx((tasks[1].cost() + tasks[2].cost()) / 3600)
    full = sweep.assemble_partial([_fake_result(t) for t in tasks])
    assert full.complete and full.not_computed is None and partial.missing_part(full) is None
    nothing = sweep.assemble_partial([None] * len(tasks))  # no row at all: the queries find nothing, no error
    assert len(nothing) == 0 and nothing.median_curve("I.30.5", "tanh", 2)[0].size == 0
    assert len(nothing.missing) == len(tasks)
    assert SameWidthSweep.build().assemble_partial is None  # a half pair is NotComputed, not a partial table


def test_needs_complete_refuses_partial_results_and_passes_missing_does_not():
    short = partial.NotComputed("fig5_networks", 4, 6, 2.0, 3.0)

    class Partial:
        not_computed = short

    calls = []
    numbers = partial.needs_complete(lambda r: calls.append(r) or 1.0)
    drawing = partial.passes_missing(lambda r: calls.append(r) or "figure")
    assert numbers(Partial()) is short and numbers(object()) == 1.0
    assert drawing(Partial()) == "figure" and drawing(short) is short
    assert len(calls) == 2
