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
from pml.book import coverage, execute, params, progress, runner
from pml.engine import Store, compute, partial

TESTS = Path(__file__).resolve().parents[1]  # tests/


def quiet():
    return progress.Progress(stream=io.StringIO(), live=False)


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
        return execute.ChapterRun(stem, profile, {}, build_tmp / "nb.ipynb", build_tmp, None, 0.0, profile, {})

    monkeypatch.setattr(execute, "run_chapter", fake_run)
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
    assert runner.check_cost(params.chapters(), profile) < runner.COMPUTE_LIMIT_CPU_HOURS


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
    params._chapters_cached.cache_clear()
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


# --- chapter 3 from a stored build ----------------------------------------------------------------------------------


def _grid_results(cfg, drop=()):
    """Made-up results of a RegularGridSweep's tasks (errors falling as n^-1), None for the tasks in ``drop``."""
    from pml.approx.splines import grid_points_per_axis

    out = [{"y_rms": 1.5}]
    for t in cfg.tasks()[1:]:
        m = grid_points_per_axis(t.n_nominal)
        out.append(None if (t.method, t.n_nominal, t.seed) in drop else
                   {"rmse": 1.0 / m**3 * (1 + 0.01 * t.seed), "n_bad": 0, "points_per_axis": m})
    return out


def test_a_regular_grid_sweep_with_missing_sizes_draws_and_reports_what_is_there(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from pml.experiments import nonlinear as nl
    from pml.plotting import nonlinear as figs

    cfg = nl.RegularGridSweep(tricubic_sizes=(256, 1024, 4096), simplex_sizes=(64, 256, 1024), seeds=(0, 1),
                               n_test=100)
    full = cfg.assemble(_grid_results(cfg))
    drop = {("simplex", 1024, 1), ("simplex", 256, 0)}
    grid = cfg.assemble_partial(_grid_results(cfg, drop))
    assert grid.simplex.missing == (256, 1024) and list(grid.simplex.n_nominal) == [64]
    assert grid.tricubic.missing == () and np.array_equal(grid.tricubic.rmse, full.tricubic.rmse)
    hours = sum(t.cost() for t in cfg.tasks()[1:] if (t.method, t.n_nominal, t.seed) in
                {("simplex", n, s) for n in (256, 1024) for s in (0, 1)}) / 3600
    assert grid.simplex.missing_cpu_hours == pytest.approx(hours)
    assert grid.not_computed.total == len(cfg.tasks()) and grid.not_computed.stored == len(cfg.tasks()) - 2
    numbers = nl.grid_numbers(grid)  # a truncated curve gives no numbers, only the figure
    assert all(partial.is_missing(v) for v in numbers.values())
    assert nl.grid_numbers(full)["tricubic_nan_n"] == full.tricubic.n_train[0]
    assert partial.is_missing(nl.exponent_table(partial.NotComputed("fig4_splines", 0, 10, 0.1, 0.1), full))
    assert cfg.assemble_partial([None] + _grid_results(cfg)[1:]) is None  # without y_rms: nothing to assemble
    store = Store(tmp_path / "store")  # ... so the engine says the step is not computed
    missing = partial.from_store(cfg, store)
    assert partial.is_missing(missing) and missing.stored == 0
    spline_missing = partial.NotComputed("fig4_splines", 0, 10, 0.1, 0.1, sweep=nl.SplineSweep(orders_1d=(1, 3)))
    assert set(nl.spline_numbers(spline_missing)) == {"gap_low", "gap_high", "slope_1d_1", "slope_1d_3", "slope_2d_1",
                                                      "slope_2d_3", "slope_2d_5", "slope_stiff_5", "slope_stiff_7",
                                                      "floor_1d", "floor_2d"}
    fig = figs.plot_splines(spline_missing, grid)  # panels a, b, d say what is missing; c draws the partial grid
    from pml import plotting

    texts = plotting.figure_texts(fig)
    assert any("not computed" in t and "fig4_splines" in t for t in texts)
    assert any("simplex (Delaunay): TP 256, 1024" in t for t in texts)


def test_chapter_3_claims_of_missing_steps_are_not_computed():
    from pml.experiments import nonlinear as nl

    def nc(step):
        return partial.NotComputed(step, 0, 1, 1.0, 1.0)

    values = nl.claim_values(nc("fig4_splines"), nc("fig4_grid"), _partial_runs(), nc("fig5_simplex"),
                             nc("gadget"), _partial_runs())
    assert set(values) == {f"C3.{i}" for i in range(1, 11)}
    assert all(partial.is_missing(v) for v in values.values())
    assert set(values["C3.5"].step.split(", ")) == {"fig5_networks", "fig5_simplex"}
    assert values["C3.5"].missing_cpu_hours == 10.0


def _partial_runs():
    """A network table of a stored build that holds none of its four shapes."""
    from pml.experiments.network_sweep import NetworkRuns

    return NetworkRuns.from_rows([], {}, [], partial.NotComputed("fig5_networks", 0, 4, 9.0, 9.0))


def test_a_plot_given_a_step_that_is_not_stored_says_so():
    import matplotlib

    matplotlib.use("Agg")
    from pml.plotting import introduction

    missing = partial.NotComputed("floors", 0, 2, 0.5, 0.5)
    fig = introduction.plot_floors(missing)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(texts) == 1 and "not computed" in texts[0] and "step floors" in texts[0]


def test_a_stored_build_marks_glue_roles_and_directives_it_cannot_fill():
    nb = nbformat.v4.new_notebook()
    glued = nbformat.v4.new_code_cell("", outputs=[
        nbformat.v4.new_output("display_data", data={"text/plain": "1.5"},
                               metadata={"scrapbook": {"name": "done", "mime_prefix": ""}}),
        nbformat.v4.new_output("display_data", data={"text/plain": repr(partial.NotComputed("t", 0, 3, 2.0, 2.0))},
                               metadata={"scrapbook": {"name": "table", "mime_prefix": ""}})])
    text = ("A {glue:text}`done:.2f`, b {glue:text}`gone:.1e`, c {glue}`table`.\n\n"
            "```{glue:md} table\n:format: myst\n```\n\n```{glue:figure} fig_gone\n:name: fig-x\n\nCaption.\n```\n")
    nb.cells = [glued, nbformat.v4.new_markdown_cell(text)]
    assert execute._mark_not_computed(nb) == ["table", "fig_gone", "gone"]
    source = nb.cells[1].source
    assert source.startswith("A {glue:text}`done:.2f`, b *(not computed)*, c *(not computed)*.")
    assert "*Table `table`: not computed: step t not computed (0 of 3 tasks stored; 2 CPU-hours missing).*" in source
    assert "*Figure `fig_gone`: its steps are not in the results store.*" in source and "glue:figure" not in source


def test_summaries_of_frozen_chapter_modules_pass_not_computed_on():
    from pml.experiments import beyond_summaries, introduction_summaries, optimization_summaries, users_guide_summaries

    missing = partial.NotComputed("benchmark", 0, 29, 0.3, 0.3)
    assert beyond_summaries.summary_table(missing) is missing and beyond_summaries.benchmark_minutes(missing) is missing
    assert users_guide_summaries.claim_values(missing, None) is missing
    assert optimization_summaries.part(missing, "adam") is missing and optimization_summaries.part({"adam": 1}, "adam") == 1
    assert optimization_summaries.claim_values({}, {"x2": missing}, {}) is missing
    values = introduction_summaries.claim_values(missing, missing, missing, 3)
    assert set(values) == {"C1.1", "C1.2", "C1.3", "C1.4"} and all(v is missing for v in values.values())
    assert set(introduction_summaries.decomposition_numbers(missing, 3)) == set(introduction_summaries.DECOMPOSITION_KEYS)
