"""Tiny networks for the optimisation tests, built from a private generator (no global RNG)."""

import math

import torch
from torch import nn


def tiny_mlp(widths, seed, act=nn.Tanh, dtype=torch.float64):
    """Linear/activation stack with PyTorch-style uniform init from a private generator."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        lin = nn.utils.skip_init(nn.Linear, a, b, dtype=dtype)
        with torch.no_grad():
            bound = 1 / math.sqrt(a)
            lin.weight.uniform_(-bound, bound, generator=g)
            lin.bias.uniform_(-bound, bound, generator=g)
        layers += [lin, act()]
    return nn.Sequential(*layers[:-1])
