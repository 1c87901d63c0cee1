import numpy as np
import pytest
import torch
from torch import nn

from pml import equations
from pml.approx import simplex
from pml.nn import networks, regions


def _one_relu_net():
    """y = relu(x) - relu(x - 1) on 1D: three pieces, kinks at 0 and 1."""
    net = nn.Sequential(nn.Linear(1, 2, dtype=torch.float64), nn.ReLU(), nn.Linear(2, 1, dtype=torch.float64))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [1.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -1.0]))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
        net[2].bias.zero_()
    return net


def test_grid_shapes():
    X, shape = regions.grid([(1, 5), (2, 3)], 4)
    assert X.shape == (16, 2) and shape == (4, 4)
    assert X[1].tolist() == [1.0, 2 + 1 / 3]
    X1, shape1 = regions.grid([(0, 1)], 5)
    assert X1.shape == (5, 1) and shape1 == (5,)
    with pytest.raises(ValueError):
        regions.grid([(0, 1)] * 3, 4)


def test_relu_known_regions_1d():
    net = _one_relu_net()
    X = np.array([[-1.0], [-0.5], [0.5], [0.7], [2.0], [3.0]])
    labels = regions.relu_regions(net, X)
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[4] == labels[5]
    assert regions.count_regions(labels) == 3
    jac = regions.relu_regions(net, X, method="jacobian")
    # slopes 0, 1, 0: the Jacobian view merges the two flat pieces
    assert regions.count_regions(jac) == 2
    assert jac[0] == jac[5] != jac[2]


def test_standardisation_applied():
    net = _one_relu_net()
    X = np.array([[11.0], [13.0], [9.0]])  # standardised with mean 10, std 2: 0.5, 1.5, -0.5
    assert regions.count_regions(regions.relu_regions(net, X)) == 1  # raw: all beyond the kink at 1
    assert regions.count_regions(regions.relu_regions(net, X, input_mean=[10.0], input_std=[2.0])) == 3


def test_relu_2d_region_count_is_plausible():
    model = networks.make_mlp(2, 20, 3, seed=0)
    X, shape = regions.grid([(-2, 2), (-2, 2)], 60)
    labels = regions.relu_regions(model, X)
    k = regions.count_regions(labels)
    assert 5 < k < 3600
    assert labels.min() == 0 and labels.max() == k - 1
    # the Jacobian view never has more regions than the activation-pattern view
    assert regions.count_regions(regions.relu_regions(model, X, method="jacobian")) <= k


def test_relu_regions_errors():
    with pytest.raises(ValueError, match="ReLU"):
        regions.relu_regions(networks.make_mlp(1, 3, 2, activation="tanh"), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="pattern"):
        regions.relu_regions(_one_relu_net(), np.zeros((2, 1)), method="grad")


def test_modular_net_pattern_regions():
    model = networks.ModularMLP(equations.get("Z.008").graph(), 6, 2, seed=1)
    X, _ = regions.grid([(1, 5), (1, 5)], 30)
    assert regions.count_regions(regions.relu_regions(model, X)) >= 1


def test_simplex_regions_1d_and_2d():
    x = np.array([0.0, 1.0, 3.0, 4.0])
    interp = simplex.SimplexInterpolator(x, x**2)
    labels = regions.simplex_regions(interp, np.array([-1.0, 0.5, 0.9, 2.0, 3.5, 5.0]))
    assert labels.tolist() == [-1, 0, 0, 1, 2, -1]
    assert regions.count_regions(labels) == 3

    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    interp2 = simplex.SimplexInterpolator(X, X.sum(axis=1))
    G, _ = regions.grid([(-0.5, 1.5), (-0.5, 1.5)], 41)
    labels2 = regions.simplex_regions(interp2, G)
    assert regions.count_regions(labels2) == 2  # the unit square splits into two triangles
    assert (labels2 == -1).sum() > 0
