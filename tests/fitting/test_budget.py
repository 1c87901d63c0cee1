"""`auto` for d >= 3: every candidate within the time limit, the best on validation kept; bad limits refused."""

import math
import time

import numpy as np
import pytest

from pml import cli, fitting
from pml.fitting import budget, guide, methods

RNG = np.random.default_rng(6)


def _data(n=300):
    X = RNG.uniform(-1, 1, (n, 3))
    return X, np.sin(2 * X[:, 0]) * np.cos(X[:, 1]) + X[:, 2] ** 2


@pytest.mark.slow
def test_auto_in_3d_tries_the_rule_candidates_and_keeps_the_best():
    X, y = _data()
    model = fitting.fit(X, y, progress=False, time_limit=30)
    cands = model.report.candidates
    assert [c["method"] for c in cands] == list(guide.choose(3, 300).methods) == ["poly", "readout", "kernel",
                                                                                  "deep-lm"]
    scored = {c["method"]: c["inner_rel_rmse"] for c in cands if c["skipped"] is None}
    assert "poly" in scored and model.method == min(scored, key=scored.get)
    assert all(c["seconds"] >= 0 for c in cands)
    text = str(model.report)
    assert "<- chosen: the lowest validation error" in text and " s;" in text
    assert math.isfinite(model.report.val_rel_rmse)


@pytest.mark.slow
def test_time_limit_is_respected_with_the_best_candidate_so_far():
    X, y = _data()
    t0 = time.perf_counter()
    model = fitting.fit(X, y, progress=False, time_limit=5)
    assert time.perf_counter() - t0 < 1.1 * 5 + 5  # the limit + 10%, and slack for a loaded machine
    assert model.method in guide.choose(3, 300).methods
    skipped = [c for c in model.report.candidates if c["skipped"]]
    assert all("time limit" in c["skipped"] for c in skipped)


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, "10", True, [5]])
def test_bad_time_limits_are_refused(bad):
    X, y = _data(150)
    with pytest.raises(fitting.FitError, match="time_limit must be a positive, finite number of seconds"):
        fitting.fit(X, y, time_limit=bad)
    with pytest.raises(fitting.FitError, match="time_limit"):
        budget.check_time_limit(bad)


@pytest.mark.parametrize("bad", ["0", "-3", "inf", "nan", "ten"])
def test_cli_refuses_bad_time_limits(bad, tmp_path, capsys):
    X, y = _data(150)
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,y\n" + "\n".join(",".join(repr(float(v)) for v in (*x, t)) for x, t in zip(X, y)) + "\n")
    with pytest.raises(SystemExit) as exc:
        cli.main(["fit", str(path), "--target", "y", "--out", str(tmp_path / "m.npz"), "--time-limit", bad])
    assert exc.value.code == 2
    assert "--time-limit" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_bench_time_limit_only_where_a_benchmark_takes_one(capsys):
    assert cli.main(["bench", "simplex", "--time-limit", "5"]) == 2
    assert "--time-limit is not an option" in capsys.readouterr().err


def test_named_method_takes_the_time_limit_as_its_option():
    X, y = _data(200)
    methods.warm_up("deep-lm")  # torch's imports (seconds on a loaded machine) would take the 2 s
    model = fitting.fit(X, y, "deep-lm", progress=False, time_limit=2)
    assert model.report.seconds < 30


# --- the time limit holds for everything (fit() promises the limit plus 10%), with what was subsampled reported ---
# Bounds are limit * 1.1 plus 5 s of slack for a loaded machine; without the limit these fits take minutes.

def _slack(limit: float) -> float:
    return 1.1 * limit + 5.0


def test_a_large_fit_keeps_its_time_limit_and_says_what_it_subsampled(capsys):
    import pml.nn.deep  # noqa: F401  (torch's import is not the fit's time)

    X = RNG.uniform(1, 5, (40_000, 4))
    y = np.sqrt(X[:, 0] ** 2 + X[:, 1] ** 2 - 2 * X[:, 0] * X[:, 1] * np.cos(X[:, 2] - X[:, 3]))
    t0 = time.perf_counter()
    model = fitting.fit(X, y, progress=False, time_limit=3)
    assert time.perf_counter() - t0 < _slack(3)
    assert model.report.time_limit == 3 and model.report.seconds < _slack(3)
    assert "seeded subsamples of 1000 of the 25600 inner-fit rows" in model.report.sampling
    text = " ".join(str(model.report).split())
    assert "time limit 3 s; the fit took" in text and "subsample" in text
    assert math.isfinite(model.report.val_rel_rmse) and model.report.val_rel_rmse < 0.5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pml: note: fitting 40000 rows x 4 inputs: about ")
    assert "of memory" in err[0]


def test_many_inputs_keep_the_time_limit_and_a_too_slow_network_is_skipped():
    import pml.nn.deep  # noqa: F401

    X = RNG.uniform(1, 5, (300, 200))
    y = X[:, 0] * X[:, 1] / X[:, 2]
    t0 = time.perf_counter()
    model = fitting.fit(X, y, progress=False, time_limit=3)
    assert time.perf_counter() - t0 < _slack(3)
    deep_lm = [c for c in model.report.candidates if c["method"] == "deep-lm"]
    assert deep_lm and deep_lm[0]["skipped"] and "time limit" in deep_lm[0]["skipped"]


@pytest.mark.slow
def test_named_methods_stop_in_time_and_the_others_refuse_a_limit():
    X = RNG.uniform(-1, 1, (20_000, 3))
    y = np.exp(X[:, 0] * X[:, 1]) + np.sin(3 * X[:, 2])
    t0 = time.perf_counter()
    model = fitting.fit(X, y, "poly", progress=False, time_limit=2)
    assert time.perf_counter() - t0 < _slack(2)
    assert model.report.time_limit == 2
    with pytest.raises(fitting.FitError, match="method 'rbf' cannot stop at a time limit"):
        fitting.fit(X[:300], y[:300], "rbf", time_limit=5)
    methods.warm_up("lm-multistage")  # torch's imports are not the fit's time
    t0 = time.perf_counter()
    model = fitting.fit(X, y, "lm-multistage", progress=False, time_limit=2)  # its frequency estimates: minutes
    assert time.perf_counter() - t0 < _slack(2)
    assert "seeded subsample" in model.report.details


@pytest.mark.slow
def test_the_kernel_keeps_its_time_limit_with_its_final_solve():
    from pml.approx import kernel

    X = RNG.uniform(-1, 1, (8000, 3))  # without the limit: an 8000-row Cholesky solve and nine on 3000 rows
    y = np.sin(2 * X[:, 0]) * X[:, 1] + X[:, 2]
    t0 = time.perf_counter()
    m = kernel.fit(X, y, time_limit=1.5, predict_rows=8000)
    assert time.perf_counter() - t0 < _slack(1.5)
    assert m.info["rows"] >= 10 and np.all(np.isfinite(m.predict(X[:100])))


def test_a_deep_network_too_slow_for_the_time_limit_is_refused_clearly():
    from pml.nn import deep

    X = RNG.uniform(-1, 1, (120, 400))
    with pytest.raises(deep.TooSlow, match="fewer than 40 iterations fit in the time limit"):
        deep.fit(X, X[:, 0], time_limit=0.5)


def test_data_that_cannot_fit_in_memory_are_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(budget, "available_memory", lambda: 50 * 2**20)  # 50 MiB
    X, y = _data(200)
    with pytest.raises(fitting.FitError, match=r"need about .* of memory to fit .* only 50 MiB are available"):
        fitting.fit(X, y, progress=False, time_limit=5)
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,y\n" + "\n".join(",".join(repr(float(v)) for v in (*x, t)) for x, t in zip(X, y)) + "\n")
    out = tmp_path / "m.npz"
    assert cli.main(["fit", str(path), "--target", "y", "--out", str(out), "--time-limit", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pml: error: 200 rows x 3 inputs need about")
    assert not out.exists()


def test_the_memory_plan_bounds_the_methods_with_a_time_limit_only(monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 8 * 2**30)
    limited = budget.memory_plan(200_000, 4, 160_000, time_limit=30, methods=("poly", "readout", "kernel"))
    assert limited.work <= budget.WORK_BYTES and limited.typical <= limited.data + limited.work
    assert limited.refusal is None and limited.large and "200000 rows x 4 inputs" in limited.note()
    free = budget.memory_plan(200_000, 2, 160_000, methods=("poly",))
    assert free.work is None and free.typical > limited.typical  # no bound without a limit: the basis on every row


def test_without_a_time_limit_low_d_fits_subsample_nothing_new():
    x = RNG.uniform(-1, 1, 300)
    model = fitting.fit(x, np.cos(2 * x), progress=False)
    assert model.report.time_limit is None and model.report.sampling is None
    assert "time limit" not in str(model.report)
    sampling = {}
    budget.choose_within(("poly", "readout"), x.reshape(-1, 1), np.cos(2 * x), seed=0, time_limit=math.inf,
                         progress=False, max_rows=5000, sampling=sampling)
    assert sampling["fit_rows"][0] == sampling["fit_rows"][1] and sampling["refit_rows"] is None
