"""`auto` for d >= 3: every candidate within the time limit, the best on validation kept; bad limits refused."""

import math
import time

import numpy as np
import pytest

from pml import cli, fitting
from pml.fitting import budget, guide

RNG = np.random.default_rng(6)


def _data(n=300):
    X = RNG.uniform(-1, 1, (n, 3))
    return X, np.sin(2 * X[:, 0]) * np.cos(X[:, 1]) + X[:, 2] ** 2


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


def test_time_limit_is_respected_with_the_best_candidate_so_far():
    X, y = _data()
    t0 = time.perf_counter()
    model = fitting.fit(X, y, progress=False, time_limit=5)
    assert time.perf_counter() - t0 < 30  # a generous bound: candidates start only while time is left
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
    model = fitting.fit(X, y, "deep-lm", progress=False, time_limit=2)
    assert model.report.seconds < 30
