"""Transformed fits: g(y) against h(x), predictions of y; `auto` for d >= 3 tries the transforms the data admit."""

import json
import zipfile

import numpy as np
import pytest

from pml import cli, fitting
from pml.fitting import budget, transforms
from pml.fitting.transforms import IDENTITY, TRANSFORMS, Transform

RNG = np.random.default_rng(11)


def _power_law(n=400):
    """A product of powers (Coulomb-like): a plane in log y against log x."""
    X = RNG.uniform(1, 5, (n, 3))
    return X, X[:, 0] / (4 * np.pi * X[:, 1] * X[:, 2] ** 2)


def _distance(n=400):
    """A 2D Euclidean distance of 4 inputs: its square is a polynomial, the distance has a cone where it is 0."""
    X = RNG.uniform(1, 5, (n, 4))
    return X, np.sqrt((X[:, 0] - X[:, 1]) ** 2 + (X[:, 2] - X[:, 3]) ** 2)


def test_every_transform_maps_back_exactly_and_has_a_unique_name():
    y = RNG.uniform(0.5, 3.0, 50)
    for t in TRANSFORMS:
        for sign in (1.0, -1.0):
            if t.target == "identity" and sign < 0:
                continue
            t = Transform(t.log_inputs, t.target, sign)
            np.testing.assert_allclose(t.inverse(t.forward(sign * y)), sign * y, rtol=1e-14)
            assert transforms.transform_named(t.name) == t
            assert transforms.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    assert len({t.name for t in TRANSFORMS}) == len(TRANSFORMS)
    assert IDENTITY.is_identity and IDENTITY.name == "y ~ x"
    assert transforms.label("poly", IDENTITY.name) == "poly"
    assert transforms.label("poly", "log y ~ log x") == "poly [log y ~ log x]"


def test_unknown_transforms_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid: 'y ~ x', 'log y ~ log x'"):
        transforms.transform_named("log y ~ lg x")
    with pytest.raises(ValueError, match="unknown target transform"):
        Transform(False, "cube")


def test_admissible_follows_the_signs_of_inputs_and_target():
    X, y = _power_law(50)
    assert transforms.admissible(X, y) == list(TRANSFORMS)  # positive inputs and target: all six
    names = [t.name for t in transforms.admissible(X, -y)]
    assert "log (-y) ~ log x" in names and "(-y)^2 ~ x" in names  # a negative target: the forms of -y
    Xn = X.copy()
    Xn[0, 1] = -1.0
    assert all(not t.log_inputs for t in transforms.admissible(Xn, y))  # an input <= 0: no log x
    y_mixed = y - np.median(y)  # changes sign: only the target as given
    assert {t.target for t in transforms.admissible(X, y_mixed)} == {"identity"}
    y_zero = y.copy()
    y_zero[0] = 0.0  # a zero: the square, not the log
    assert {t.target for t in transforms.admissible(X, y_zero)} == {"identity", "square"}


def test_auto_in_3d_finds_the_power_law_and_stops_at_the_float64_floor(tmp_path):
    X, y = _power_law()
    model = fitting.fit(X, y, progress=False, time_limit=60)
    assert (model.method, model.report.transform) == ("poly", "log y ~ log x")
    assert model.report.val_rel_rmse < 1e3 * model.report.float64_floor  # the precision limit
    cands = model.report.candidates
    assert cands[0]["method"] == "poly" and cands[0]["transform"] == "y ~ x"
    # every later candidate was skipped once the power law reached the floor: no time spent on the others
    later = cands[[c["transform"] for c in cands].index("log y ~ log x") + 1:]
    assert later and all("float64 floor" in c["skipped"] for c in later)
    text = " ".join(str(model.report).split())  # the report wraps its lines
    assert "fitted to log y ~ log x" in text and "poly [log y ~ log x]" in text
    Xt = RNG.uniform(1.2, 4.8, (500, 3))
    exact = Xt[:, 0] / (4 * np.pi * Xt[:, 1] * Xt[:, 2] ** 2)
    assert np.sqrt(np.mean((model.predict(Xt) - exact) ** 2) / np.mean(exact**2)) < 1e-13
    path = model.save(tmp_path / "m.npz")
    back = fitting.load(path)
    assert back.report.transform == "log y ~ log x"
    np.testing.assert_array_equal(back.predict(Xt), model.predict(Xt))


def test_a_named_method_fits_the_transform_it_is_given():
    X, y = _distance()
    plain = fitting.fit(X, y, "poly", progress=False)
    squared = fitting.fit(X, y, "poly", progress=False, transform="y^2 ~ x")
    assert plain.report.transform == "y ~ x" and squared.report.transform == "y^2 ~ x"
    assert squared.report.val_rel_rmse < 1e-12 < 1e-4 < plain.report.val_rel_rmse  # the cone is gone
    with pytest.raises(fitting.FitError, match="unknown transform"):
        fitting.fit(X, y, "poly", transform="sqrt y ~ x")
    with pytest.raises(fitting.FitError, match="does not suit these data"):
        fitting.fit(X, y - 2.0, "poly", transform="log y ~ x")  # a target of both signs has no log
    with pytest.raises(fitting.FitError, match="does not suit these data"):
        fitting.fit(X, -y - 1.0, "poly", transform="log y ~ x")  # a negative target: 'log (-y) ~ x'
    negative = fitting.fit(X, -y, "poly", progress=False, transform="(-y)^2 ~ x")
    assert negative.report.val_rel_rmse < 1e-12


def test_auto_with_a_transform_given_tries_only_that_one():
    X, y = _distance(300)
    model = fitting.fit(X, y, progress=False, time_limit=20, transform="y ~ x")
    assert {c["transform"] for c in model.report.candidates} == {"y ~ x"}


def test_auto_in_2d_tries_no_transform():
    X = RNG.uniform(1, 5, (200, 2))
    model = fitting.fit(X, X[:, 0] * X[:, 1] ** 2, progress=False)
    assert {c.get("transform") for c in model.report.candidates} == {"y ~ x"}


def test_a_log_input_model_predicts_nan_where_an_input_is_not_positive(tmp_path, capsys):
    X, y = _power_law(300)
    head = "a,b,c"
    (tmp_path / "d.csv").write_text(head + ",y\n" + "\n".join(",".join(repr(float(v)) for v in (*x, t))
                                                              for x, t in zip(X, y)) + "\n")
    Xn = X[:20].copy()
    Xn[:3, 0] = -1.0
    (tmp_path / "n.csv").write_text(head + "\n" + "\n".join(",".join(repr(float(v)) for v in x) for x in Xn) + "\n")
    assert cli.main(["fit", str(tmp_path / "d.csv"), "--target", "y", "--out", str(tmp_path / "m.npz"),
                     "--method", "poly", "--transform", "log y ~ log x", "--quiet"]) == 0
    model = fitting.load(tmp_path / "m.npz")
    p = model.predict(Xn)
    assert np.all(np.isnan(p[:3])) and np.all(np.isfinite(p[3:]))
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "n.csv"), "--out",
                     str(tmp_path / "p.csv")]) == 0
    assert "3 of them have an input <= 0" in capsys.readouterr().err
    assert cli.main(["fit", str(tmp_path / "d.csv"), "--target", "y", "--out", str(tmp_path / "x.npz"),
                     "--transform", "log y ~ lg x"]) == 2
    assert "--transform: unknown transform" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_a_model_file_with_a_damaged_transform_is_refused(tmp_path):
    X, y = _power_law(200)
    path = fitting.fit(X, y, "poly", progress=False, transform="log y ~ log x").save(tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta["params"]["transform"] = {"log_inputs": True, "target": "cube", "sign": 1.0}
    arrays["__meta__"] = np.array(json.dumps(meta))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    assert zipfile.is_zipfile(bad)
    with pytest.raises(fitting.ModelFileError, match="params.transform: unknown target transform .cube."):
        fitting.load(bad)


def test_the_later_candidates_take_the_first_ones_best_transform_only_with_a_clear_gain():
    X, y = _power_law(300)
    tried = transforms.admissible(X, y)
    name, fitted, records = budget.choose_within(("poly", "readout"), X, y, seed=0, time_limit=60, progress=False,
                                                 transforms=tried)
    polys = {r["transform"]: r["inner_rel_rmse"] for r in records if r["method"] == "poly"}
    assert set(polys) == {t.name for t in tried}
    assert polys["log y ~ log x"] * budget.TRANSFORM_GAIN <= polys["y ~ x"]
    assert [r["transform"] for r in records if r["method"] == "readout"] == ["log y ~ log x"]
    assert (name, fitted.params["transform"]["target"]) == ("poly", "log")
    # with the identity unbeatable (a plane), the later candidates fit the target as given
    plane = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    _, _, records = budget.choose_within(("poly", "readout"), X, plane, seed=0, time_limit=60, progress=False,
                                         transforms=transforms.admissible(X, plane))
    assert [r["transform"] for r in records if r["method"] == "readout"] == ["y ~ x"]
