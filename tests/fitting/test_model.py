"""Model files are data: a crafted ``.npz`` never makes ``load``/``pml predict`` exhaust memory or raise anything but
one ``ModelFileError`` line naming the field; genuine models of every method still load and predict the same."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from pml import cli
from pml.fitting import METHODS, ModelFileError, fit, load
from pml.fitting import model as model_module

RNG = np.random.default_rng(0)
X1 = np.linspace(-1, 1, 60)
Y1 = np.sin(2 * X1)
X2 = RNG.uniform(-1, 1, (80, 2))
Y2 = np.sin(X2[:, 0]) + X2[:, 1] ** 2
CASES = {  # small options: each fit but deep-lm's takes well under a second
    "poly": (X1, Y1, {}),
    "spline": (X1, Y1, {}),
    "readout": (X1, Y1, {"n_units": (12,)}),
    "rbf": (X2, Y2, {}),
    "simplex": (X2, Y2, {}),
    "kernel": (X2, Y2, {"n_restarts": 1}),
    "deep-lm": (X2, Y2, {"time_limit": 3.0, "n_stages": 1, "depths": (3,)}),  # it trains for its whole limit
    "lm-multistage": (X1, Y1, {"n_stages": 1, "max_iter": [20]}),
    "adam-tanh": (X1, Y1, {"n_steps": 20, "width": 8}),
    "adam-relu": (X1, Y1, {"n_steps": 20, "width": 8}),
}


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """method -> (path of a genuine model file, its inputs, the fitted model)."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for method, (X, y, options) in CASES.items():
        path = folder / f"{method}.npz"
        fitted = fit(X, y, method, **options)
        fitted.save(path)
        out[method] = (path, X, fitted)
    return out


def test_every_method_has_a_validator():
    assert set(model_module._VALIDATORS) == set(METHODS)


@pytest.mark.parametrize("method", sorted(CASES))
def test_genuine_models_of_every_method_load_and_predict_the_same(method, genuine):
    path, X, fitted = genuine[method]
    loaded = load(path)
    assert loaded.method == method and loaded.params == fitted.params
    np.testing.assert_allclose(loaded.predict(X), fitted.predict(X), rtol=1e-12, atol=1e-12, equal_nan=True)


def test_a_transformed_and_an_auto_model_load(tmp_path):
    X = RNG.uniform(0.5, 2.0, (80, 3))
    y = X[:, 0] * X[:, 1] ** 2 / X[:, 2]
    fitted = fit(X, y, "poly", transform="log y ~ log x")
    fitted.save(tmp_path / "t.npz")
    assert load(tmp_path / "t.npz").params["transform"]["log_inputs"] is True
    auto = fit(X1, Y1)  # candidates in the report
    auto.save(tmp_path / "a.npz")
    assert load(tmp_path / "a.npz").report.candidates == auto.report.candidates


def _parts(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("__meta__"))), arrays


def _write(path, meta, arrays, meta_text=None):
    np.savez(path, __meta__=np.array(meta_text if meta_text is not None else json.dumps(meta)), **arrays)
    return path


def _craft(genuine, method, tmp_path, edit_meta=None, edit_arrays=None, meta_text=None):
    meta, arrays = _parts(genuine[method][0])
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    return _write(tmp_path / f"crafted-{method}.npz", meta, arrays, meta_text)


def _set(section, key, value):
    def edit(meta):
        (meta if section is None else meta[section])[key] = value
    return edit


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


CRAFTED = {
    # a degree far beyond the stored coefficients grew pml predict to tens of GB before it was checked
    "huge degree": ("poly", _set("params", "degree", 100_000), None, "params.degree: 100000 does not match"),
    "negative degree": ("poly", _set("params", "degree", -5), None, "params.degree: -5 is not an integer >= 0"),
    "boolean degree": ("poly", _set("params", "degree", True), None, "params.degree"),
    "params a list": ("poly", _set(None, "params", [1, 2]), None, "params: must be a JSON object"),
    "params missing a setting": ("poly", lambda m: m["params"].pop("rcond"), None, "params: holds ['degree']"),
    "bad rcond": ("poly", _set("params", "rcond", "tiny"), None, "params.rcond"),
    "zero half-width": ("poly", None, lambda a: a.update({"state.half": np.zeros(1)}), "state.half: must be positive"),
    "state_keys an integer": ("poly", _set(None, "state_keys", 3), None, "damaged or incomplete"),
    "input_names a string": ("poly", _set(None, "input_names", "x"), None, "input_names: must be a non-empty list"),
    "input named twice": ("rbf", _set(None, "input_names", ["a", "a"]), None, "input_names: names a column more"),
    "target a number": ("poly", _set(None, "target_name", 5), None, "target_name"),
    "report a list": ("poly", _set(None, "report", []), None, "report: must be a JSON object"),
    "report field of the wrong type": ("poly", _set("report", "y_rms", "big"), None, "report.y_rms"),
    "report disagrees": ("poly", _set("report", "method", "rbf"), None, "report.method"),
    "candidate without a method": ("poly", _set("report", "candidates", [{"x": 1}]), None, "report.candidates"),
    "bad transform": ("poly", _set("params", "transform", {"log_inputs": 1, "target": "cube", "sign": 2}), None,
                      "params.transform"),
    "unknown transform target": ("poly", _set("params", "transform", {"log_inputs": False, "target": "cube",
                                                                      "sign": 1.0}), None, "params.transform"),
    "network layers that do not chain": ("adam-tanh", None, lambda a: a.update({"state.W1": np.zeros((8, 5))}),
                                         "state.W1: has shape (8, 5), not (n, 8)"),
    "network with a missing bias": ("adam-tanh", lambda m: m["state_keys"].remove("b1"),
                                    lambda a: a.pop("state.b1"), "state: holds"),
    "network of another activation": ("adam-tanh", _set("params", "activation", "sigmoid"), None,
                                      "params.activation"),
    "network with a zero scale": ("adam-relu", None, lambda a: a.update({"state.input_std": np.zeros(1)}),
                                  "state.input_std"),
    "integer weights": ("readout", None, lambda a: a.update({"state.W0": np.ones((12, 1), dtype=np.int64)}),
                        "state.W0: holds int64"),
    "spline order beyond its knots": ("spline", _set("params", "order", 40), None, "params.order: 40 does not match"),
    "decreasing knots": ("spline", None, lambda a: a.update({"state.t": a["state.t"][::-1].copy()}), "state.t"),
    # an RBF predictor solves an n x n system: rows beyond what the method fits would exhaust memory
    "rbf with too many rows": ("rbf", None, lambda a: a.update({"state.X": RNG.uniform(-1, 1, (10_001, 2)),
                                                                "state.y": np.zeros(10_001)}),
                               "state.X: holds 10001 rows"),
    "rbf with an unknown kernel": ("rbf", _set("params", "kernel", "os.system"), None, "params.kernel"),
    "rbf tail above its rows": ("rbf", _set("params", "degree", 50), None, "params.degree"),
    "rbf with a flat box": ("rbf", None, lambda a: a.update({"state.box": np.zeros((2, 2))}), "state.box"),
    "simplex of mismatched sizes": ("simplex", None, lambda a: a.update({"state.y": np.zeros(3)}), "state.y"),
    "kernel of an unknown kernel": ("kernel", _set("params", "kernel", "linear"), None, "params.kernel"),
    "kernel with negative lengths": ("kernel", None, lambda a: a.update({"state.lengths": -np.ones(2)}),
                                     "state.lengths"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_models_are_one_error_line_naming_the_field(case, genuine, tmp_path, capsys):
    method, edit_meta, edit_arrays, message = CRAFTED[case]
    path = _craft(genuine, method, tmp_path, edit_meta, edit_arrays)
    with pytest.raises(ModelFileError, match="not a model pml can have written|damaged"):
        load(path)
    data = tmp_path / "data.npz"
    X = genuine[method][1]
    np.savez(data, **{f"x{j}": c for j, c in enumerate(np.atleast_2d(X.T))})
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(path), str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pml: error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize("depth", [20, 100_000])
def test_deeply_nested_metadata_is_refused(depth, genuine, tmp_path):
    meta, arrays = _parts(genuine["poly"][0])
    meta["report"]["details"] = "@"
    text = json.dumps(meta).replace('"@"', _nested(depth))
    with pytest.raises(ModelFileError, match=r"__meta__: the JSON nests deeper than \d+ levels"):
        load(_write(tmp_path / "deep.npz", meta, arrays, text))


def test_compressed_or_foreign_members_are_refused(genuine, tmp_path):
    """np.savez stores members uncompressed: a deflated member could expand far beyond the file's size."""
    meta, arrays = _parts(genuine["poly"][0])
    np.savez_compressed(tmp_path / "z.npz", __meta__=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(ModelFileError, match="is compressed"):
        load(tmp_path / "z.npz")
    extra = _write(tmp_path / "extra.npz", meta, arrays)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(ModelFileError, match="'notes.txt': is not part of a pml model file"):
        load(extra)
    np.savez(tmp_path / "meta-array.npz", __meta__=np.zeros(3), **arrays)
    with pytest.raises(ModelFileError, match="__meta__: holds a float64 array"):
        load(tmp_path / "meta-array.npz")


def test_a_fifo_is_not_read_as_a_model(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="is a FIFO"):  # opening it would block forever
        load(fifo)
