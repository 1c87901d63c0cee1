"""Tests for pml.equations: registry, vectorised targets, computation graphs and the AI Feynman CSV loader."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from pml import equations
from pml.equations import (
    Equation,
    EquationError,
    UndeclaredSymbolError,
    UnknownEquationError,
    get,
    ids,
    load_feynman_csv,
)

CSV_PATH = Path(__file__).resolve().parents[2] / "shared/data/feynman-equations.csv"

# Every target the paper's figures and configs use (spec §1.1, §13).
PAPER_IDS = ["Z.001", "Z.008", "Z.009", "II.8.31", "I.30.5", "I.8.14", "I.44.4", "II.6.15a", "I.11.19",
             "I.10.7", "I.39.22", "I.12.11", "cos2x", "exp_x", "exp_xy"]


def _sample(eq: Equation, n: int, seed: int) -> np.ndarray:
    low, high = np.array(eq.ranges).T
    return np.random.default_rng(seed).uniform(low, high, size=(n, eq.dim))


@pytest.fixture(scope="module")
def csv_load():
    if not CSV_PATH.is_file():
        pytest.skip(f"AI Feynman table not available at {CSV_PATH}")
    return load_feynman_csv(CSV_PATH)


# --- registry -------------------------------------------------------------------------------------------------------


def test_registry_holds_paper_targets_and_extras():
    assert set(PAPER_IDS) <= set(ids())
    assert ids() == list(equations.REGISTRY)
    extras = [i for i in ids() if i not in PAPER_IDS]
    assert len(extras) >= 12
    assert {get(i).dim for i in extras} >= {1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    "eq_id, variables, ranges",
    [
        ("Z.001", ("x",), ((-1, 1),)),
        ("Z.008", ("x", "y"), ((1, 5), (1, 5))),
        ("I.30.5", ("lambd", "d", "n"), ((1, 2), (2, 5), (1, 5))),
        ("II.6.15a", ("epsilon", "p_d", "r", "x", "y", "z"), ((1, 3),) * 6),
        ("I.11.19", ("x1", "x2", "x3", "y1", "y2", "y3"), ((1, 5),) * 6),
        ("cos2x", ("x",), ((3, 6),)),
        ("exp_xy", ("x", "y"), ((-1, 1), (-1, 1))),
    ],
)
def test_variables_and_ranges(eq_id, variables, ranges):
    eq = get(eq_id)
    assert eq.variables == variables
    assert eq.ranges == tuple((float(lo), float(hi)) for lo, hi in ranges)
    assert eq.dim == len(variables)


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        equations.REGISTRY["new"] = get("Z.001")  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        get("Z.001").formula = "x"


def test_unknown_id_lists_valid_ids():
    with pytest.raises(UnknownEquationError) as info:
        get("I.99.99")
    message = str(info.value)
    assert "I.99.99" in message and "I.8.14" in message and "cos2x" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("eq_id", ids())
def test_every_entry_is_finite_on_its_range(eq_id):
    eq = get(eq_id)
    X = _sample(eq, 500, seed=0)
    y = eq(X)
    assert y.shape == (500,) and y.dtype == np.float64
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(eq.func(X), y)


# --- known values ---------------------------------------------------------------------------------------------------


def test_known_values():
    assert get("I.8.14")(np.array([[1.0, 4.0, 1.0, 5.0]]))[0] == pytest.approx(5.0, rel=1e-15)
    assert get("Z.008")(np.array([[2.0, 3.5]]))[0] == 7.0
    assert get("Z.001")(np.array([[-0.5]]))[0] == 0.25
    assert get("I.30.5")(np.array([[1.5, 2.0, 3.0]]))[0] == pytest.approx(math.asin(0.25), rel=1e-15)
    assert get("I.44.4")(np.array([[2.0, 3.0, 4.0, 1.0, math.e]]))[0] == pytest.approx(24.0, rel=1e-14)
    assert get("II.8.31")(np.array([[2.0, 3.0]]))[0] == pytest.approx(9.0, rel=1e-15)
    eps, p_d, r, x, y, z = 1.5, 2.0, 1.2, 1.1, 2.5, 2.9
    expected = p_d / (4 * math.pi * eps) * 3 * z / r**5 * math.sqrt(x**2 + y**2)
    assert get("II.6.15a")(np.array([[eps, p_d, r, x, y, z]]))[0] == pytest.approx(expected, rel=1e-14)
    assert get("I.11.19")(np.array([[1, 2, 3, 4, 5, 6.0]]))[0] == 32.0
    assert get("cos2x")(np.array([[3.3]]))[0] == pytest.approx(math.cos(6.6), rel=1e-15)
    assert get("exp_xy")(np.array([[0.5, -0.8]]))[0] == pytest.approx(math.exp(-0.4), rel=1e-15)
    assert get("I.14.4")(np.array([[2.0, 3.0]]))[0] == 9.0  # 1/2 parses as a rational, not 0


def test_vectorisation_and_input_shapes():
    eq = get("I.8.14")
    X = _sample(eq, 7, seed=1)
    y = eq(X)
    assert y.shape == (7,)
    np.testing.assert_allclose(y, [eq(row[None, :])[0] for row in X], rtol=0, atol=0)
    assert eq(np.empty((0, 4))).shape == (0,)
    np.testing.assert_array_equal(get("Z.001")(np.array([0.5, -1.0])), [0.25, 1.0])  # 1-D accepted when d = 1
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        eq(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        eq(np.ones(4))


def test_constant_formula_broadcasts():
    eq = Equation("const", "2 + 0*x", ("x",), ((0, 1),), "y")
    y = eq(np.zeros((3, 1)))
    assert y.shape == (3,) and np.all(y == 2.0)


def test_names_that_clash_with_sympy_are_plain_variables():
    names = ("E", "I", "S", "N", "Q", "gamma", "beta", "lambd", "epsilon", "theta")
    eq = Equation("clash", "E*I + S*N - Q*gamma/beta + lambd*epsilon + theta + pi", names, ((1, 2),) * 10, "y")
    x = np.arange(1, 11, dtype=np.float64)[None, :] / 5
    E, I, S, N, Q, gamma, beta, lambd, epsilon, theta = x[0]
    expected = E * I + S * N - Q * gamma / beta + lambd * epsilon + theta + math.pi
    assert eq(x)[0] == pytest.approx(expected, rel=1e-15)
    assert {str(s) for s in eq.sympy_expr.free_symbols} == set(names)


def test_ln_and_arc_functions_parse():
    eq = Equation("fns", "ln(x) + arcsin(x/4) + arccos(x/4) + arctan(x)", ("x",), ((1, 2),), "y")
    x = 1.7
    assert eq(np.array([[x]]))[0] == pytest.approx(math.log(x) + math.pi / 2 + math.atan(x), rel=1e-14)


# --- validation -----------------------------------------------------------------------------------------------------


def test_undeclared_symbol_error_names_both_sets():
    with pytest.raises(UndeclaredSymbolError) as info:
        Equation("bad", "r*F*sin(theta)", ("r", "F"), ((1, 5), (1, 5)), "tau")
    message = str(info.value)
    assert "theta" in message and "'r'" in message and "'F'" in message
    assert info.value.undeclared == ("theta",)
    # sympy's E (Euler's number) must not slip in silently
    with pytest.raises(UndeclaredSymbolError, match="'E'"):
        Equation("bad", "x*E", ("x",), ((0, 1),), "y")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(formula="x*y", variables=("x", "y"), ranges=((0, 1),)), "2 variables"),
        (dict(formula="x", variables=("x",), ranges=((1, 1),)), "low < high"),
        (dict(formula="x", variables=("x",), ranges=((0, float("inf")),)), "finite"),
        (dict(formula="#NAME?", variables=("x",), ranges=((0, 1),)), "not a valid expression"),
        (dict(formula="foo(x)", variables=("x",), ranges=((0, 1),)), "not a known function"),
        (dict(formula="x", variables=("x", "x"), ranges=((0, 1), (0, 1))), "duplicate"),
        (dict(formula="sin", variables=("sin",), ranges=((0, 1),)), "clashes"),
        (dict(formula="x.real", variables=("x",), ranges=((0, 1),)), "unsupported syntax"),
        (dict(formula="x*y", variables=("x", "y"), ranges=((0, 1), (0, 1)), structure="x + y"), "does not equal"),
    ],
)
def test_invalid_definitions_raise(kwargs, match):
    with pytest.raises(EquationError, match=match):
        Equation(id="bad", output="y", **kwargs)


# --- computation graphs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "eq_id, arities",
    [
        ("I.8.14", (2, 2, 2)),
        ("II.6.15a", (2, 2, 2, 2, 2)),
        ("Z.001", (1,)),
        ("cos2x", (1,)),
        ("exp_xy", (2,)),
        ("I.44.4", (2, 2, 2, 2)),
    ],
)
def test_graph_shapes(eq_id, arities):
    graph = get(eq_id).graph()
    assert graph.arities == arities
    assert graph.max_arity == max(arities)
    assert graph.output == graph.nodes[-1].name
    assert graph.inputs == get(eq_id).variables


def test_graph_i_8_14_matches_fig3_modules():
    graph = get("I.8.14").graph()
    a, b, c = graph.nodes
    assert a.inputs == ("x1", "x2") and b.inputs == ("y1", "y2") and c.inputs == (a.name, b.name)
    assert a(np.array([1.0]), np.array([4.0]))[0] == 9.0  # (x2 - x1)**2
    assert c(np.array([9.0]), np.array([16.0]))[0] == 5.0  # sqrt(A + B)


def test_graph_ii_6_15a_matches_fig3_modules():
    graph = get("II.6.15a").graph()
    mul1, rnorm, mul2, eps_r5, div = graph.nodes
    assert mul1.inputs == ("p_d", "z")
    assert rnorm.inputs == ("x", "y")
    assert mul2.inputs == (mul1.name, rnorm.name)
    assert eps_r5.inputs == ("epsilon", "r")
    assert div.inputs == (mul2.name, eps_r5.name)


def test_graph_i_11_19_is_binary():
    graph = get("I.11.19").graph()
    assert graph.max_arity == 2 and len(graph.nodes) == 5


@pytest.mark.parametrize("eq_id", ids())
def test_graph_reproduces_func(eq_id):
    eq = get(eq_id)
    X = _sample(eq, 200, seed=2)
    np.testing.assert_allclose(eq.graph().evaluate(X), eq(X), rtol=1e-12, atol=0)


def test_graph_respects_written_grouping():
    # sympy's evaluate=False would flatten both into one 3-ary sum; the graph keeps the written grouping.
    left = Equation("g", "(a*b + c*d) + e*f", tuple("abcdef"), ((0, 1),) * 6, "y").graph()
    right = Equation("g", "a*b + (c*d + e*f)", tuple("abcdef"), ((0, 1),) * 6, "y").graph()
    assert left.nodes[2].inputs == ("node0", "node1")  # a*b + c*d
    assert right.nodes[3].inputs == ("node1", "node2")  # c*d + e*f
    assert left.arities == right.arities == (2, 2, 2, 2, 2)


# --- CSV loader -----------------------------------------------------------------------------------------------------


def test_csv_loads_good_rows_and_reports_bad_ones(csv_load):
    assert len(csv_load.equations) >= 100
    errors = csv_load.errors
    for eq_id in ("II.15.4", "II.15.5", "III.21.20"):
        assert "not a valid expression" in errors[eq_id]
    for eq_id, symbol in (("I.18.12", "theta"), ("I.18.14", "theta"), ("III.10.19", "Bz")):
        assert "undeclared" in errors[eq_id] and symbol in errors[eq_id]
    assert "'# variables' is 6 but 3" in errors["II.37.1"]
    assert not set(errors) & set(csv_load.equations)


def test_registry_agrees_with_csv(csv_load):
    shared = [i for i in ids() if i in csv_load.equations]
    assert set(PAPER_IDS) - {"cos2x", "exp_x", "exp_xy"} <= set(shared)
    assert len(shared) >= 24
    for eq_id in shared:
        ours, theirs = get(eq_id), csv_load.equations[eq_id]
        assert ours.variables == theirs.variables, eq_id
        assert ours.ranges == theirs.ranges, eq_id
        assert ours.output == theirs.output, eq_id
        X = _sample(ours, 50, seed=3)
        np.testing.assert_allclose(ours(X), theirs(X), rtol=1e-13, atol=0, err_msg=eq_id)


def test_csv_loader_on_small_file(tmp_path):
    header = "Equation,Number,Output,Formula,# variables,v1_name,v1_low,v1_high,v2_name,v2_low,v2_high"
    rows = [
        "A.1,1,y,x*z,2,x,1,5,z,0,1",
        "A.2,2,y,x**2,1,x,-1,1,,,",
        "A.3,3,y,x*w,2,x,1,5,w,one,2",  # unparsable number
        "A.4,4,y,E*x,1,x,1,2,,,",  # undeclared E
        "A.1,5,y,x,1,x,0,1,,,",  # duplicate id
    ]
    path = tmp_path / "eqs.csv"
    path.write_text("\n".join([header, *rows, ""]), encoding="utf-8-sig")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    load = load_feynman_csv(path)
    assert sorted(load.equations) == ["A.1", "A.2"]
    assert load.equations["A.1"].ranges == ((1.0, 5.0), (0.0, 1.0))
    assert load.equations["A.1"](np.array([[2.0, 0.5]]))[0] == 1.0
    assert "v2_low" in load.errors["A.3"] and "'one'" in load.errors["A.3"]
    assert "undeclared" in load.errors["A.4"] and "'E'" in load.errors["A.4"]
    assert any("duplicate" in msg for key, msg in load.errors.items() if key.startswith("A.1 "))


def test_csv_loader_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_feynman_csv(tmp_path / "nope.csv")
    path = tmp_path / "cols.csv"
    path.write_text("Equation,Output,# variables,v1_name,v1_low,v1_high\nA,y,1,x,0,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Formula"):
        load_feynman_csv(path)
