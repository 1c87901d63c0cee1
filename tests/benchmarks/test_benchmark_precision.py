import pytest

from pml.benchmarks import precision


def test_rows_skip_chebyshev_beyond_2d_and_show_progress(capsys):
    fits = []
    rows = precision.run(True, problem_names=("x2", "I.11.19"), methods=("poly-lsq", "chebyshev"), progress=True,
                         on_fit=lambda problem, method, fitted: fits.append((problem, method)))
    assert [(r["problem"], r["method"]) for r in rows] == [("x2", "poly-lsq"), ("x2", "chebyshev"),
                                                           ("I.11.19", "poly-lsq")]
    assert fits == [(r["problem"], r["method"]) for r in rows]
    assert all(r["rel_rmse"] < 1e-12 for r in rows)  # polynomial targets: round-off only
    assert "precision benchmark" in capsys.readouterr().err


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid"):
        precision.run(True, problem_names=("nope",))
    with pytest.raises(ValueError, match="poly-lsq"):
        precision.run(True, methods=("nope",))
