import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from pml import equations
from pml.nn import networks


# A stand-in with the ExpressionGraph interface (inputs, nodes of (name, inputs, expr), output), so these tests do
# not depend on pml.equations; a test below also checks the real graphs when that module is importable.
@dataclasses.dataclass(frozen=True)
class _Node:
    name: str
    inputs: tuple
    expr: object = None


@dataclasses.dataclass(frozen=True)
class _Graph:
    inputs: tuple
    nodes: tuple

    @property
    def output(self):
        return self.nodes[-1].name


I_8_14 = _Graph(("x1", "x2", "y1", "y2"), (_Node("A", ("x1", "x2")), _Node("B", ("y1", "y2")),
                                            _Node("C", ("A", "B"))))
II_6_15a = _Graph(("epsilon", "p_d", "r", "x", "y", "z"),
                  (_Node("mul1", ("p_d", "z")), _Node("rnorm", ("x", "y")), _Node("mul2", ("mul1", "rnorm")),
                   _Node("eps_r5", ("epsilon", "r")), _Node("div", ("mul2", "eps_r5"))))


@pytest.mark.parametrize("dim,width,depth", [(1, 5, 3), (3, 51, 2), (2, 20, 3), (4, 9, 4), (6, 13, 3)])
def test_dense_count_matches_built_model(dim, width, depth):
    model = networks.make_mlp(dim, width, depth)
    assert networks.count_params(model) == networks.dense_param_count(dim, width, depth)
    assert sum(isinstance(m, nn.Linear) for m in model) == depth


@pytest.mark.parametrize("dim,width,depth,n,size", [
    # Spec §1 table (N, |D|) and the Fig. 1 networks.
    (3, 51, 2, 256, 64), (1, 51, 2, 154, 77), (6, 52428, 2, 419425, 59917), (3, 13, 3, 248, 62),
    (5, 360, 4, 262441, 43740), (1, 5, 3, 46, 23), (2, 20, 3, 501, 167), (4, 100, 6, 41001, 8200),
    (4, 720, 6, 2080801, 416160),
])
def test_dense_param_count_spec_table(dim, width, depth, n, size):
    assert networks.dense_param_count(dim, width, depth) == n
    assert networks.dataset_size_for(n, dim) == size


def test_make_mlp_shape_and_layers():
    model = networks.make_mlp(2, 7, 4, activation="tanh", seed=3)
    assert isinstance(model, nn.Sequential)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model(torch.zeros(5, 2, dtype=torch.float64)).shape == (5, 1)


def test_make_mlp_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = networks.make_mlp(3, 10, 3, seed=5)
    b = networks.make_mlp(3, 10, 3, seed=5)
    c = networks.make_mlp(3, 10, 3, seed=6)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, c[0].weight)


def test_make_mlp_matches_pytorch_default_init():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        ref = nn.Sequential(nn.Linear(2, 4, dtype=torch.float64), nn.ReLU(), nn.Linear(4, 1, dtype=torch.float64))
    model = networks.make_mlp(2, 4, 2, seed=11)
    assert all(torch.equal(p, q) for p, q in zip(ref.parameters(), model.parameters()))


def test_float32_option():
    model = networks.make_mlp(2, 4, 2, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_unknown_activation_lists_valid():
    with pytest.raises(ValueError, match="relu.*tanh"):
        networks.make_mlp(2, 4, 2, activation="gelu")


@pytest.mark.parametrize("bad", [dict(depth=1), dict(width=0), dict(dim=0), dict(depth=2.5)])
def test_bad_sizes_rejected(bad):
    kw = dict(dim=2, width=4, depth=3) | bad
    with pytest.raises(ValueError):
        networks.make_mlp(**kw)


@pytest.mark.parametrize("graph,depth,width,n", [
    (I_8_14, 6, 100, 16_003), (I_8_14, 4, 1500, 12_003), (II_6_15a, 6, 1500, 18_005), (II_6_15a, 9, 720, 1_220_405),
])
def test_modular_param_counts_spec(graph, depth, width, n):
    assert networks.modular_param_count(graph, width, depth) == n
    if n < 100_000:
        assert networks.count_params(networks.ModularMLP(graph, width, depth)) == n


def test_modular_layout_i_8_14():
    layout = networks.modular_layout(I_8_14, 100, 6)
    assert [(s.name, s.inputs, s.width, s.depth) for s in layout] == [
        ("A", ("x1", "x2"), 50, 3), ("B", ("y1", "y2"), 50, 3), ("C", ("A", "B"), 100, 3)]


def test_modular_layout_ii_6_15a():
    layout = {s.name: s for s in networks.modular_layout(II_6_15a, 30, 9)}
    assert {k: (s.width, s.depth, s.level) for k, s in layout.items()} == {
        "mul1": (10, 3, 1), "rnorm": (10, 3, 1), "eps_r5": (10, 3, 1), "mul2": (30, 3, 2), "div": (30, 3, 3)}


def test_modular_depth_must_divide():
    with pytest.raises(ValueError, match="multiple"):
        networks.modular_layout(II_6_15a, 30, 8)


def test_modular_forward_wiring():
    """Output = module C applied to (module A on x1,x2 ; module B on y1,y2)."""
    model = networks.ModularMLP(I_8_14, 8, 4, seed=2)
    X = torch.from_numpy(np.random.default_rng(0).uniform(1, 5, size=(7, 4)))
    m = model.modules_by_node
    a = m["A"](X[:, [0, 1]])
    b = m["B"](X[:, [2, 3]])
    expected = m["C"](torch.cat([a, b], dim=1))
    assert torch.allclose(model(X), expected, rtol=0, atol=1e-15)
    assert model(X).shape == (7, 1)


def test_modular_with_real_equation_graphs():
    assert networks.modular_param_count(equations.get("I.8.14").graph(), 100, 6) == 16_003
    assert networks.modular_param_count(equations.get("II.6.15a").graph(), 1500, 6) == 18_005
    model = networks.ModularMLP(equations.get("II.6.15a").graph(), 12, 6)
    assert model(torch.ones(3, 6, dtype=torch.float64)).shape == (3, 1)


def test_batched_members_equal_make_mlp():
    seeds = [0, 4, 9]
    batched = networks.BatchedMLP(3, 6, 3, "tanh", seeds=seeds)
    X = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 5, 3)))
    out = batched(X)
    assert out.shape == (3, 5, 1)
    for s, seed in enumerate(seeds):
        ref = networks.make_mlp(3, 6, 3, "tanh", seed=seed)
        member = batched.member(s)
        assert all(torch.equal(p, q) for p, q in zip(ref.parameters(), member.parameters()))
        assert torch.allclose(out[s], ref(X[s]), rtol=1e-13, atol=1e-15)
    assert networks.count_params(batched) == 3 * networks.dense_param_count(3, 6, 3)


def test_batched_member_is_a_copy_and_rng_untouched():
    batched = networks.BatchedMLP(2, 4, 2, seeds=[1, 2])
    state = torch.random.get_rng_state()
    member = batched.member(0)
    assert torch.equal(state, torch.random.get_rng_state())
    with torch.no_grad():
        member[0].weight.zero_()
    assert batched.weights[0][0].abs().sum() > 0


def test_batched_from_models():
    models = [networks.make_mlp(2, 5, 3, seed=s) for s in (7, 8)]
    batched = networks.BatchedMLP.from_models(models)
    for s, m in enumerate(models):
        assert all(torch.equal(p, q) for p, q in zip(m.parameters(), batched.member(s).parameters()))
    with pytest.raises(ValueError, match="same layer shapes"):
        networks.BatchedMLP.from_models([networks.make_mlp(2, 5, 3), networks.make_mlp(2, 6, 3)])
