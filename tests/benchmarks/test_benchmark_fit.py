"""`pml bench fit`: rows with the JSON keys, scored on the central box, auto's ratio to the best peer printed."""

import math

import numpy as np
import pytest

from pml.benchmarks import fit as bench


def test_case_data_tests_on_the_central_box():
    X, y, Xt, yt, box = bench._case_data("I.12.4", 50, 0)
    lo, hi = box[:, 0] + 0.1 * (box[:, 1] - box[:, 0]), box[:, 1] - 0.1 * (box[:, 1] - box[:, 0])
    assert Xt.shape == (bench.N_TEST, 3) and np.all((Xt >= lo) & (Xt <= hi)) and X.shape == (50, 3)
    assert np.all(np.isfinite(yt)) and np.all(np.isfinite(y))


@pytest.mark.slow
def test_rows_and_table():
    methods = ["auto", "lm-net"]
    try:
        import sklearn  # noqa: F401

        methods.append("sklearn-gp")
    except ImportError:
        pass
    rows = bench.run_case("I.12.4", 200, methods, time_limit=3.0, lm_seconds=1.0)
    assert [r["method"] for r in rows] == methods
    for r in rows:
        assert {"case", "method", "rel_rmse", "seconds"} <= set(r) and r["case"] == "I.12.4"
        assert math.isfinite(r["rel_rmse"]) and 0 < r["rel_rmse"] < 1 and r["seconds"] > 0
    text = bench.format(rows)
    assert "I.12.4" in text and "auto/best peer" in text


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="time_limit"):
        bench.run(time_limit=0)
    with pytest.raises(ValueError, match="unknown method"):
        bench.run_case("I.12.4", 50, ["gp"])
