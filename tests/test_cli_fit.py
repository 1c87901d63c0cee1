"""`pml fit`, `pml predict` and `pml guide`: round trips through CSV and .npz, and clear errors that write nothing."""

import csv
import io
import json
import re

import numpy as np
import pytest

from pml import cli, fitting

RNG = np.random.default_rng(1)


def write_csv(path, columns: dict, fmt=repr):
    names = list(columns)
    n = len(next(iter(columns.values())))
    with open(path, "w") as fh:
        fh.write(",".join(names) + "\n")
        for i in range(n):
            fh.write(",".join(fmt(float(columns[c][i])) if not isinstance(columns[c][i], str) else columns[c][i]
                              for c in names) + "\n")
    return path


@pytest.fixture
def data(tmp_path):
    x = RNG.uniform(1, 3, 100)
    return write_csv(tmp_path / "data.csv", {"theta": x, "f": np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)})


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_fit_then_predict_round_trip_on_stdout(data, tmp_path, capsys):
    model_path = tmp_path / "model.npz"
    assert cli.main(["fit", str(data), "--target", "f", "--out", str(model_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "pml precision report" in out and "rule '1d-enough'" in out and "promise" in out and "kept" in out
    assert f"model written to {model_path}" in out

    x_new = RNG.uniform(1.2, 2.8, 7)
    new = write_csv(tmp_path / "new.csv", {"id": [f"p{i}" for i in range(7)], "theta": x_new})
    assert cli.main(["predict", str(model_path), str(new)]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(7)] and list(rows[0]) == ["id", "theta", "f"]
    got = np.array([float(r["f"]) for r in rows])
    assert np.array_equal(got, fitting.load(model_path).predict(x_new))
    truth = np.exp(-x_new**2 / 2) / np.sqrt(2 * np.pi)
    assert np.max(np.abs(got - truth)) / np.sqrt(np.mean(truth**2)) < 1e-12


def test_predict_to_files_and_target_clash(data, tmp_path, capsys):
    model_path = tmp_path / "model.npz"
    assert cli.main(["fit", str(data), "--target", "f", "--out", str(model_path), "--method", "poly", "--quiet"]) == 0
    assert cli.main(["predict", str(model_path), str(data), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert "predictions go to 'f_predicted'" in err
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert list(rows[0]) == ["theta", "f", "f_predicted"] and len(rows) == 100
    assert cli.main(["predict", str(model_path), str(data), "--out", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "p.npz") as z:
        assert set(z.files) == {"theta", "f", "f_predicted"} and z["f_predicted"].dtype == np.float64


def test_fit_reads_npz_and_prints_json(tmp_path, capsys):
    X = RNG.uniform(-1, 1, (200, 2))
    np.savez(tmp_path / "d.npz", a=X[:, 0], b=X[:, 1], z=np.exp(X[:, 0] * X[:, 1]))
    code = cli.main(["fit", str(tmp_path / "d.npz"), "--target", "z", "--method", "poly", "--out",
                     str(tmp_path / "m.npz"), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "poly" and report["input_names"] == ["a", "b"] and report["val_rel_rmse"] < 1e-6


def test_rounded_csv_targets_set_a_data_floor(tmp_path, capsys):
    x = RNG.uniform(1, 3, 100)
    path = write_csv(tmp_path / "r.csv", {"x": x, "y": np.sin(x)}, fmt=lambda v: f"{v:.6g}")
    assert cli.main(["fit", str(path), "--target", "y", "--out", str(tmp_path / "m.npz"), "--json"]) == 0
    captured = capsys.readouterr()
    assert "at most 6 significant digits" in captured.err
    report = json.loads(captured.out)
    assert 1e-8 < report["data_floor"] < 1e-6 and report["error_source"] == "data precision"


def test_guide_command(capsys):
    assert cli.main(["guide"]) == 0
    assert "1d-enough" in capsys.readouterr().out
    assert cli.main(["guide", "--d", "2", "--rows", "3000"]) == 0
    assert "rule 2d-enough" in capsys.readouterr().out


def _bad_csv(tmp_path, body):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    return p


@pytest.mark.parametrize(
    "body, args, message",
    [
        ("x,y\n1,2\n", ["--target", "nope"], "no column 'nope' \\(--target\\); columns are: x, y"),
        ("x,y\n1,2\n2,abc\n", ["--target", "y"], "non-numeric value 'abc' in column 'y', row 2 \\(line 3\\)"),
        ("x,y\n1,2\n,3\n", ["--target", "y"], "missing value in column 'x', row 2 \\(line 3\\)"),
        ("x,y\n1,2\n2,nan\n", ["--target", "y"], "column 'y' has 1 NaN or infinite values"),
        ("x,y\n1,2\n2,inf\n", ["--target", "y"], "column 'y' has 1 NaN or infinite values"),
        ("x,y\n1,2\n2\n", ["--target", "y"], "row 2 \\(line 3\\) has 1 fields, the header has 2"),
        ("x,y\n" + "".join(f"{i},5\n" for i in range(40)), ["--target", "y"], "target 'y' is constant"),
        ("x,y\n1,2\n2,3\n3,5\n", ["--target", "y"], "too few rows.*at least 5 rows"),
        ("x,y\n1,2\n2,3\n3,5\n", ["--target", "y", "--method", "spline"], "at least 3 training rows.*held out"),
        ("x,y\n1,2\n", ["--target", "y", "--inputs", "x,w"], "no column\\(s\\) 'w' \\(--inputs\\)"),
        ("", ["--target", "y"], "the file is empty"),
        ("x,x\n1,2\n", ["--target", "x"], "repeated column name"),
        ("x,y\n1,2\n", ["--target", "y"], "too few rows: 1 row with d = 1 input; a fit needs at least 5 rows"),
        ("x,y,z\n" + "".join(f"{i},{i},{i * i}\n" for i in range(40)), ["--target", "z", "--inputs", "x,x"],
         "--inputs names 'x' more than once"),
        ("x,y\n1,2\n", ["--target", "y", "--inputs", "x,"], "--inputs has an empty column name"),
        ("x;y\n1;2\n2;3\n", ["--target", "y"], "contains a semicolon: the file looks semicolon-separated"),
        ("x\ty\n1\t2\n2\t3\n", ["--target", "y"], "contains a tab: the file looks tab-separated"),
        ("1.5,2\n2,3\n3,5\n", ["--target", "y"], "first line \\(1.5, 2\\) is numbers: the file needs a header row"),
        ("x,y\n" + "".join(f"{i},5\n" for i in range(40)), ["--target", "y"], "every value is 5.0\\)"),
        ("x,y\n" + "".join(f"{i},{1e307 * (1 + i % 3)}\n" for i in range(40)), ["--target", "y"],
         "values up to 3e\\+307 in magnitude: their squares overflow float64.*rescale"),
        ("a,b,z\n" + "".join(f"{i},{2 * i},{i * i}\n" for i in range(30)), ["--target", "z", "--method", "simplex"],
         "method 'simplex' failed on these data \\(QhullError: .*degenerate"),
        ("a,b,z\n" + "".join(f"{i},{2 * i},{i * i}\n" for i in range(30)), ["--target", "z", "--method", "rbf"],
         "method 'rbf' failed on these data \\(LinAlgError: .*degenerate"),
        ("x,y\n" + "".join(f"{i},{i}\n" for i in range(40)), ["--target", "y", "--seed", "-1"],
         "seed must be an integer from 0 to 4294967295, got -1"),
    ],
)
def test_bad_data_is_a_clear_error_and_writes_nothing(body, args, message, tmp_path, capsys):
    path = _bad_csv(tmp_path, body)
    before = files(tmp_path)
    assert cli.main(["fit", str(path), *args, "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pml: error: ") and "Traceback" not in err and "np.float64" not in err
    assert err.count("\n") == 1, err  # one line
    assert re.search(message, err), err
    assert files(tmp_path) == before


def test_missing_file_and_missing_output_folder(tmp_path, data, capsys):
    assert cli.main(["fit", str(tmp_path / "none.csv"), "--target", "y", "--out", str(tmp_path / "m.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["fit", str(data), "--target", "f", "--out", str(tmp_path / "no" / "m.npz")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "none.npz"), str(data)]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_predict_refuses_other_versions_and_missing_columns(data, tmp_path, capsys):
    model_path = tmp_path / "model.npz"
    assert cli.main(["fit", str(data), "--target", "f", "--method", "poly", "--out", str(model_path)]) == 0
    other = write_csv(tmp_path / "other.csv", {"x": [1.0, 2.0]})
    assert cli.main(["predict", str(model_path), str(other), "--out", str(tmp_path / "p.csv")]) == 2
    assert "lacks the model's input column(s) 'theta'" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()

    with np.load(model_path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta["pml_version"] = "0.0.1"
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(model_path, "wb") as fh:
        np.savez(fh, **arrays)
    assert cli.main(["predict", str(model_path), str(data)]) == 2
    assert "saved by pml 0.0.1" in capsys.readouterr().err


def test_interrupt_writes_nothing(data, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fitting, "fit", interrupted)
    assert cli.main(["fit", str(data), "--target", "f", "--out", str(tmp_path / "m.npz")]) == 130
    assert "no model was written" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_unknown_method_is_rejected_by_the_parser(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["fit", str(data), "--target", "f", "--method", "nope", "--out", str(tmp_path / "m.npz")])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def _damaged(data: bytes, how: str) -> bytes:
    if how == "flipped":
        b = bytearray(data)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)
    return data[: {"empty": 0, "head": 300, "tail": len(data) - 30}[how]]


@pytest.mark.parametrize("how", ["empty", "head", "tail", "flipped"])
def test_truncated_or_corrupted_npz_files_are_a_clear_error(how, data, tmp_path, capsys):
    model_path = tmp_path / "model.npz"
    assert cli.main(["fit", str(data), "--target", "f", "--method", "poly", "--out", str(model_path), "--quiet"]) == 0
    (tmp_path / "bad_model.npz").write_bytes(_damaged(model_path.read_bytes(), how))
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "bad_model.npz"), str(data), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pml: error: ") and "truncated or corrupted" in err and err.count("\n") == 1, err
    x = RNG.uniform(1, 3, 100)
    np.savez(tmp_path / "d.npz", x=x, y=np.sin(x))
    (tmp_path / "bad_data.npz").write_bytes(_damaged((tmp_path / "d.npz").read_bytes(), how))
    assert cli.main(["fit", str(tmp_path / "bad_data.npz"), "--target", "y", "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pml: error: ") and "truncated or corrupted" in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "m.npz").exists()


def test_huge_targets_save_no_model_and_a_non_finite_model_is_refused(tmp_path, capsys):
    x = RNG.uniform(1, 3, 100)
    huge = write_csv(tmp_path / "huge.csv", {"x": x, "y": 1e308 * (0.5 + 0.4 * np.sin(x))})
    assert cli.main(["fit", str(huge), "--target", "y", "--method", "poly", "--out", str(tmp_path / "m.npz")]) == 2
    assert "squares overflow float64" in capsys.readouterr().err and not (tmp_path / "m.npz").exists()
    # a model file with non-finite parameters (as an older pml could save) is refused, not blamed on the hull
    fine = write_csv(tmp_path / "fine.csv", {"x": x, "y": np.sin(x)})
    assert cli.main(["fit", str(fine), "--target", "y", "--method", "poly", "--out", str(tmp_path / "m.npz")]) == 0
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["state.coef"] = arrays["state.coef"] * np.nan
    np.savez(tmp_path / "m.npz", **arrays)
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "m.npz"), str(fine)]) == 2
    err = capsys.readouterr().err
    assert "non-finite numbers (nan or inf) in coef" in err and "convex hull" not in err


def test_predict_names_the_reason_for_missing_predictions(tmp_path, capsys):
    X = RNG.uniform(-1, 1, (200, 2))
    np.savez(tmp_path / "d.npz", a=X[:, 0], b=X[:, 1], z=np.exp(X[:, 0] * X[:, 1]))
    far = write_csv(tmp_path / "far.csv", {"a": [0.1, 5.0, 1e200], "b": [0.2, 0.0, 1e200]})
    for method, reason in [("simplex", "outside the training data's convex hull"),
                           ("poly", "overflows float64 there; such rows lie far outside the range")]:
        model = tmp_path / f"{method}.npz"
        assert cli.main(["fit", str(tmp_path / "d.npz"), "--target", "z", "--method", method, "--out", str(model),
                         "--quiet"]) == 0
        capsys.readouterr()
        assert cli.main(["predict", str(model), str(far)]) == 0
        err = capsys.readouterr().err
        assert reason in err, err


def test_outputs_are_checked_before_any_work(data, tmp_path, capsys, monkeypatch):
    model_path = tmp_path / "model.npz"
    assert cli.main(["fit", str(data), "--target", "f", "--method", "poly", "--out", str(model_path), "--quiet"]) == 0
    before = data.read_bytes(), model_path.read_bytes()
    for out, message in [(data, "is the data file itself"), (model_path, "is the model file itself"),
                         (tmp_path / "." / "data.csv", "is the data file itself"), (tmp_path, "is a folder")]:
        assert cli.main(["predict", str(model_path), str(data), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert (data.read_bytes(), model_path.read_bytes()) == before

    def no_fit(*args, **kwargs):
        raise AssertionError("fit() ran")

    monkeypatch.setattr(fitting, "fit", no_fit)
    (tmp_path / "folder").mkdir()
    assert cli.main(["fit", str(data), "--target", "f", "--out", str(tmp_path / "folder")]) == 2
    err = capsys.readouterr().err
    assert "is a folder; give a file name" in err and "tmp" not in err.split("folder")[-1]
