"""pml.fit / pml.fitting: auto choices, precision on smooth targets, the report, save/load and bad input."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import pml
from pml import __version__, fitting
from pml.fitting import guide

RNG = np.random.default_rng(0)
X1 = RNG.uniform(-1, 1, (80, 1))
Y1 = np.cos(2 * X1[:, 0])
X2 = RNG.uniform(-1, 1, (120, 2))
Y2 = np.exp(X2[:, 0] * X2[:, 1]) + X2[:, 0]

# tiny settings so every method fits in well under a second
TINY = {
    "poly": (X2, Y2, {}),
    "spline": (X1, Y1, {}),
    "readout": (X2, Y2, {"n_units": [40], "scales": [0.3]}),
    "rbf": (X2, Y2, {}),
    "simplex": (X2, Y2, {}),
    "lm-multistage": (X1, Y1, {"max_iter": [10, 10], "width": 6}),
    "adam-tanh": (X2, Y2, {"n_steps": 20, "width": 8}),
    "adam-relu": (X2, Y2, {"n_steps": 20, "width": 8}),
    "kernel": (X2, Y2, {"n_restarts": 1, "kernels": ("rbf",)}),
    "deep-lm": (X2, Y2, {"depths": (3,), "n_stages": 1, "time_limit": 1.0}),
}


def test_tiny_covers_every_method():
    assert set(TINY) == set(fitting.METHODS)


def test_auto_1d_smooth_reaches_machine_precision():
    model = pml.fit(X1, Y1, input_names=["x"], target_name="y")
    r = model.report
    choice = guide.choose(1, X1.shape[0])
    assert r.requested == "auto" and r.rule == choice.rule.key and r.method in choice.methods
    assert r.promise == choice.expected_rel_rmse and r.promise_met is True
    assert r.val_rel_rmse < 1e-13 and r.error_source == "precision limit"  # better than 1d-little's promise
    assert r.n_train + r.n_validation == 80 and r.n_validation == 16 and r.rule == "1d-little"
    assert {c["method"] for c in r.candidates} == set(choice.methods)


def test_auto_works_at_the_guides_minimum_rows():
    model = pml.fit(X1[:5], Y1[:5])
    assert model.report.rule == "1d-few" and model.report.n_train == 4
    skipped = {c["method"]: c["skipped"] for c in model.report.candidates if c["skipped"]}
    assert model.method not in skipped and all("too few rows" in why for why in skipped.values())
    assert np.isfinite(model.report.val_rel_rmse)


def test_auto_2d_smooth_reaches_high_precision():
    X = RNG.uniform(-1, 1, (2000, 2))
    y = np.exp(X[:, 0] * X[:, 1]) * np.sin(X[:, 1] + 1)
    r = pml.fit(X, y, progress=False).report
    assert r.rule == "2d-enough" and r.promise_met is True and r.val_rel_rmse < 1e-11


def test_auto_non_smooth_uses_simplex():
    X = RNG.uniform(-1, 1, (200, 2))
    y = np.abs(X[:, 0]) + X[:, 1]
    model = pml.fit(X, y, smooth=False)
    assert model.method == "simplex" and model.report.rule == "rough-simplex"
    # outside the convex hull of the training inputs: no prediction, counted in the report
    assert np.isnan(model.predict(np.array([[5.0, 5.0]])))[0]
    assert model.report.n_val_nonfinite >= 0 and np.isfinite(model.report.val_rel_rmse)


@pytest.mark.parametrize("method", sorted(TINY))
def test_every_method_round_trips_through_save_and_load(method, tmp_path):
    X, y, options = TINY[method]
    model = fitting.fit(X, y, method, seed=1, **options)
    assert model.method == method and model.report.requested == method and model.report.rule is None
    Q = RNG.uniform(-0.9, 0.9, (50, X.shape[1]))
    before = model.predict(Q)
    path = model.save(tmp_path / "m.npz")
    loaded = fitting.load(path)
    assert np.array_equal(loaded.predict(Q), before, equal_nan=True)
    assert loaded.report == model.report and loaded.input_names == model.input_names
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_predictions_match_the_report():
    model = fitting.fit(X2, Y2, "poly", seed=3)
    tr, va = fitting.checks.split_rows(X2.shape[0], 0.2, [3, 11])
    assert model.report.val_rel_rmse == pytest.approx(fitting.core._finite_rel_rmse(model.predict(X2[va]), Y2[va]), rel=1e-12)


def test_refit_uses_every_row():
    a = fitting.fit(X1, Y1, "spline")
    b = fitting.fit(X1, Y1, "spline", refit=True)
    assert b.report.refit and not a.report.refit
    assert b.state["t"].size > a.state["t"].size  # more knots: every row is a node


def test_validation_zero_reports_no_validation_error():
    r = fitting.fit(X1, Y1, "poly", validation=0).report
    assert r.n_validation == 0 and np.isnan(r.val_rel_rmse) and r.n_train == 80


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(fitting.FitError, match="unknown method 'nope'.*poly.*simplex"):
        pml.fit(X1, Y1, "nope")
    with pytest.raises(fitting.FitError, match="needs the function"):
        pml.fit(X1, Y1, "chebyshev")
    with pytest.raises(fitting.FitError, match="unknown option.*valid options: max_degree"):
        pml.fit(X1, Y1, "poly", degree=3)
    with pytest.raises(fitting.FitError, match="need a named method"):
        pml.fit(X1, Y1, max_degree=3)


@pytest.mark.parametrize(
    "X, y, kwargs, message",
    [
        (np.array([[1.0], [np.nan], [3.0]] * 10), np.arange(30.0), {}, "NaN or infinite.*row 1"),
        (X1, np.where(np.arange(80) == 5, np.inf, Y1), {}, "target 'y' has 1 NaN or infinite.*row 5"),
        (np.array([["a"], ["b"]] * 10), np.arange(20.0), {}, "must be numeric"),
        (X1, np.full(80, 2.5), {}, "constant"),
        (X1, np.zeros(80), {}, "constant.*undefined"),
        (np.column_stack([X1[:, 0], np.ones(80)]), Y1, {}, "input 'x1' is constant"),
        (X1, Y1[:10], {}, "one value per row"),
        (RNG.uniform(size=(50, 3)), RNG.uniform(size=50), {}, "too few rows.*at least 100"),
        (RNG.uniform(size=(5, 3)), RNG.uniform(size=5), {"method": "simplex"}, "simplex.*at least 5 training rows"),
        (RNG.uniform(size=(20, 2)), RNG.uniform(size=20), {"method": "spline"}, "d <= 1"),
        (np.array([[0.0], [0.0], [1.0], [2.0], [3.0]] * 4), np.arange(20.0), {"method": "spline"}, "repeated"),
        (X1, Y1, {"validation": 1.0}, "validation must be a fraction"),
        (X1, Y1, {"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_bad_input_is_a_clear_error(X, y, kwargs, message):
    with pytest.raises(fitting.FitError, match=message):
        fitting.fit(X, y, **kwargs)


def test_predict_checks_its_input():
    model = fitting.fit(X2, Y2, "poly", input_names=["a", "b"])
    with pytest.raises(fitting.FitError, match="3 columns; the model takes 2 inputs \\(a, b\\)"):
        model.predict(np.ones((4, 3)))
    with pytest.raises(fitting.FitError, match="NaN or infinite.*in b, row 2"):
        model.predict(np.array([[0.1, 0.2], [0.1, 0.2], [0.3, np.nan]]))
    assert model.predict(np.array([0.1, 0.2]).reshape(1, 2)).shape == (1,)


def _rewrite_meta(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta.update(changes)
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"pml_version": "0.0.1"}, "saved by pml 0.0.1.*this is pml " + __version__.replace(".", "\\.")),
        ({"format_version": 99}, "model format 99"),
        ({"format": "other"}, "not a pml model"),
    ],
)
def test_loading_a_model_from_another_version_is_refused(changes, message, tmp_path):
    path = fitting.fit(X1, Y1, "poly").save(tmp_path / "m.npz")
    _rewrite_meta(path, **changes)
    with pytest.raises(fitting.ModelFileError, match=message):
        fitting.load(path)


def test_loading_something_else_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        fitting.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(fitting.ModelFileError, match="not a pml model"):
        fitting.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "data.npz", x=np.arange(3.0))
    with pytest.raises(fitting.ModelFileError, match="is not part of a pml model file"):
        fitting.load(tmp_path / "data.npz")


def test_save_is_atomic(tmp_path, monkeypatch):
    model = fitting.fit(X1, Y1, "poly")
    target = tmp_path / "m.npz"
    target.write_bytes(b"previous")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        model.save(target)
    assert target.read_bytes() == b"previous" and list(tmp_path.iterdir()) == [target]


def test_report_text_and_dict():
    model = pml.fit(X1, Y1, input_names=["x"], target_name="y")
    text = str(model.report)
    for needle in ("method", "why", "candidates", "train", "validation", "float64 floor", "promise", "error source"):
        assert needle in text
    d = json.loads(json.dumps(model.report.to_dict()))
    assert d["method"] == model.method and d["promise_met"] is True and d["input_names"] == ["x"]
    assert fitting.PrecisionReport.from_dict(d) == model.report


def test_float64_floor():
    y = np.linspace(1.0, 1.999, 1000)
    assert fitting.float64_floor(y) == pytest.approx(2.0**-52 / np.sqrt(12) / np.sqrt(np.mean(y**2)))
    assert 1e-17 < fitting.float64_floor(RNG.uniform(-5, 5, 100)) < 1e-16


@pytest.mark.parametrize(
    "kind, train, val, data_floor, source",
    [
        ("least-squares", 1e-16, 2e-16, None, "precision limit"),
        ("interpolant", 0.0, 1e-6, None, "generalisation"),
        ("least-squares", 1e-9, 1e-6, None, "generalisation"),
        ("trained", 1e-6, 2e-6, None, "optimisation"),
        ("least-squares", 1e-6, 2e-6, None, "architecture or noise"),
        ("trained", 1e-7, 2e-7, 1e-7, "data precision"),
        ("trained", 1e-3, 2e-3, 1e-7, "optimisation"),
        ("interpolant", 0.0, float("nan"), None, "unknown"),
        ("least-squares", 1e-16, float("nan"), None, "precision limit"),
    ],
)
def test_diagnose(kind, train, val, data_floor, source):
    got, text = fitting.diagnose(kind, train, val, 6e-17, data_floor)
    assert got == source and text


def test_import_pml_stays_cheap():
    code = "import sys, pml; assert callable(pml.fit); print('pml.fitting' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "3"])
def test_seed_must_be_a_non_negative_integer(seed):
    with pytest.raises(fitting.FitError, match="seed must be an integer from 0 to 4294967295"):
        pml.fit(X1, Y1, "poly", seed=seed)


@pytest.mark.parametrize("scale, message", [(1e300, "squares overflow float64.*rescale"),
                                            (1e-300, "squares underflow float64.*rescale")])
def test_targets_and_inputs_beyond_float64_arithmetic_are_refused(scale, message):
    with pytest.raises(fitting.FitError, match="the target 'y' has values.*" + message):
        pml.fit(X1, scale * Y1, "poly")
    with pytest.raises(fitting.FitError, match="input 'x0' has values.*" + message):
        pml.fit(scale * X1, Y1, "poly")
    assert pml.fit(1e100 * X1, 1e100 * Y1, "poly").report.val_rel_rmse < 1e-10  # large but safe scales still fit


def test_one_row_is_too_few_rows_not_a_constant_target():
    with pytest.raises(fitting.FitError, match="too few rows: 1 row with d = 1 input; a fit needs at least 5 rows"):
        pml.fit(X1[:1], Y1[:1])
    with pytest.raises(fitting.FitError, match="too few rows for method 'poly'"):
        pml.fit(X1[:1], Y1[:1], "poly")


def test_messages_show_plain_numbers():
    for X, y in [(X1, np.full(80, 3.0)), (np.column_stack([X1[:, 0], np.full(80, 2.0)]), Y1)]:
        with pytest.raises(fitting.FitError) as exc:
            pml.fit(X, y)
        assert "np.float64" not in str(exc.value) and ("3.0" in str(exc.value) or "2.0" in str(exc.value))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["train", "validation", "refit"])
def test_a_model_with_non_finite_predictions_is_never_returned(bad, where, monkeypatch):
    from pml.fitting import methods

    spec = fitting.METHODS["poly"]
    held_out = fitting.fit(X1, Y1, "poly").report.n_validation
    calls = []

    def fitter(X, y, **kwargs):  # the real fit, whose predictor breaks on the chosen call
        fitted = spec.fitter(X, y, **kwargs)
        calls.append(X.shape[0])
        refit = X.shape[0] == X1.shape[0]

        def predict(Q):
            out = fitted.predict(Q)
            if (where == "refit") == refit and (where != "validation" or Q.shape[0] == held_out):
                out = np.where(np.arange(out.size) == 0, bad, out)
            return out

        return dataclasses.replace(fitted, predict=predict)

    monkeypatch.setitem(fitting.METHODS, "poly", dataclasses.replace(spec, fitter=fitter))
    assert methods.METHODS is fitting.METHODS
    with pytest.raises(fitting.FitError, match="1 non-finite predictions.*no model was saved; rescale"):
        pml.fit(X1, Y1, "poly", refit=True)


def test_simplex_may_leave_validation_rows_outside_the_hull_without_a_prediction():
    model = pml.fit(X2, Y2, "simplex")
    assert model.report.n_val_nonfinite > 0 and np.isfinite(model.report.val_rel_rmse)


@pytest.mark.parametrize("cut", [0, 10, 300, -40, -1])
def test_truncated_or_corrupted_model_files_are_refused(cut, tmp_path):
    path = fitting.fit(X1, Y1, "poly").save(tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:cut] if cut else b"")
    flipped = bytearray(data)
    flipped[len(data) // 2 + cut] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    for name in ("cut.npz", "flipped.npz"):
        with pytest.raises(fitting.ModelFileError, match="truncated or corrupted|damaged|non-finite"):
            fitting.load(tmp_path / name)


def test_a_model_holding_non_finite_numbers_is_refused(tmp_path):
    path = fitting.fit(X1, Y1, "poly").save(tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["state.coef"] = np.full_like(arrays["state.coef"], np.nan)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(fitting.ModelFileError, match="non-finite numbers \\(nan or inf\\) in coef.*fit it again"):
        fitting.load(path)
