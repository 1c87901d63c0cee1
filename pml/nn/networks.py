"""Network builders: dense MLPs, modular MLPs and S same-shape MLPs evaluated as one batched model.

Paper §2 (ReLU MLPs; "depth" = number of affine layers), §3 and Fig. 3 (one small MLP per node of the computation
graph). Parameter counts and modular layouts follow the authors' scripts (ejmichaud/precision-ml,
``scripts/feynman-network-subexperiment-v2-simplexcompare-*normalize.py``): the "width" of a modular network is not a
layer width (its input modules have width w // 2 or w // 3, :func:`modular_layout`). Weights get PyTorch's default init,
drawn on the CPU after ``manual_seed(seed)`` inside :func:`torch.random.fork_rng`: the global RNG is untouched and a
seed gives the same weights on every device."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "BatchedMLP",
    "ModularMLP",
    "ModuleSpec",
    "count_params",
    "dataset_size_for",
    "dense_param_count",
    "make_mlp",
    "modular_layout",
    "modular_param_count",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _activation(name: str) -> type[nn.Module]:
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}") from None


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _build_mlp(dim: int, width: int, depth: int, activation: str, dtype: torch.dtype) -> nn.Sequential:
    """The layers, initialised from torch's *current* default generator (callers seed it inside fork_rng)."""
    act = _activation(activation)
    sizes = [dim] + [width] * (depth - 1) + [1]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out, dtype=dtype, device="cpu"))
        if i < depth - 1:
            layers.append(act())
    return nn.Sequential(*layers)


def make_mlp(dim: int, width: int, depth: int, activation: str = "relu", seed: int = 0,
             dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> nn.Sequential:
    """A fully connected MLP dim -> width -> ... -> width -> 1 with ``depth`` ``nn.Linear`` layers (paper §2).

    Depth 3, width 40, dim 1 is 1-40-40-1. PyTorch's default init, drawn on the CPU from ``seed`` without touching the
    global RNG, then moved to ``device``.

    Parameters
    ----------
    dim, width, depth : int
        Inputs d, hidden width w and linear layers (at least 2).
    activation : str, optional
        A name of ``ACTIVATIONS`` (default ``"relu"``).
    seed : int, optional
        Seed of the initialisation (default 0).
    dtype : torch.dtype, optional
        Parameter type (default float64).
    device : str or torch.device, optional
        Where the parameters live (default ``"cpu"``).

    Returns
    -------
    torch.nn.Sequential
        The network, input (n, dim) to output (n, 1).
    """
    dim, width = _check_int(dim, "dim", 1), _check_int(width, "width", 1)
    depth = _check_int(depth, "depth", 2)
    _activation(activation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_mlp(dim, width, depth, activation, dtype)
    return model.to(device)


def dense_param_count(dim: int, width: int, depth: int) -> int:
    """N = (d+1)w + (depth-2)(w^2+w) + (w+1): weights and biases of :func:`make_mlp` (paper §2)."""
    dim, width = _check_int(dim, "dim", 1), _check_int(width, "width", 1)
    depth = _check_int(depth, "depth", 2)
    return (dim + 1) * width + (depth - 2) * (width * width + width) + (width + 1)


def count_params(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (for a BatchedMLP: of all S members together)."""
    return int(sum(p.numel() for p in model.parameters()))


def dataset_size_for(n_params: int, dim: int) -> int:
    """The training-set size tied to the parameter count: floor(N / (d+1)) (paper §2, the "fair comparison")."""
    n_params, dim = _check_int(n_params, "n_params", 0), _check_int(dim, "dim", 1)
    return n_params // (dim + 1)


# ---------------------------------------------------------------------------------------------------------------------
# Modular networks (paper §3, Fig. 3)
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModuleSpec:
    """One module of a modular network: an MLP mirroring graph node ``name`` on its ``inputs``."""

    name: str
    inputs: tuple[str, ...]
    width: int
    depth: int
    level: int  # 1 for modules whose inputs are all variables, else 1 + the deepest input module's level

    @property
    def is_input_module(self) -> bool:
        return self.level == 1

    @property
    def n_params(self) -> int:
        return dense_param_count(len(self.inputs), self.width, self.depth)


def modular_layout(graph, width: int, depth: int) -> tuple[ModuleSpec, ...]:
    """The modules of a modular network for ``graph``, as the authors' script: depth // L layers each (L modules on the
    longest path), width w // k for each of the k input modules, w for the others."""
    width, depth = _check_int(width, "width", 1), _check_int(depth, "depth", 2)
    variables = tuple(graph.inputs)
    nodes = tuple(graph.nodes)
    if not nodes:
        raise ValueError("the graph has no nodes")
    levels: dict[str, int] = {}
    for node in nodes:
        unknown = [i for i in node.inputs if i not in levels and i not in variables]
        if unknown:
            raise ValueError(f"node {node.name!r} reads {unknown}, which are neither variables {list(variables)} nor "
                             f"earlier nodes {list(levels)}")
        if node.name in levels or node.name in variables:
            raise ValueError(f"duplicate node name {node.name!r}")
        levels[node.name] = 1 + max((levels[i] for i in node.inputs if i in levels), default=0)
    output = graph.output
    if output not in levels:
        raise ValueError(f"output {output!r} is not a node of the graph; nodes: {list(levels)}")
    n_levels = max(levels.values())
    if depth % n_levels:
        raise ValueError(f"depth {depth} is not a multiple of the graph's {n_levels} module levels; valid depths: "
                         f"{[n_levels * k for k in range(2, 5)]}, ...")
    module_depth = depth // n_levels
    if module_depth < 2:
        raise ValueError(f"depth {depth} gives modules of depth {module_depth}; need depth >= {2 * n_levels}")
    n_input_modules = sum(1 for lvl in levels.values() if lvl == 1)
    input_width = width // n_input_modules
    if input_width < 1:
        raise ValueError(f"width {width} is too small for {n_input_modules} input modules of width width // "
                         f"{n_input_modules}; need width >= {n_input_modules}")
    return tuple(ModuleSpec(node.name, tuple(node.inputs), input_width if levels[node.name] == 1 else width,
                            module_depth, levels[node.name]) for node in nodes)


def modular_param_count(graph, width: int, depth: int) -> int:
    """True parameter count of the modular network (I.8.14, depth 6, w = 100: 16,003, as the authors' notebook prints).
    """
    return sum(spec.n_params for spec in modular_layout(graph, width, depth))


class ModularMLP(nn.Module):
    """One small MLP per node of a computation graph, wired as the graph says (paper §3, Fig. 3).

    ``forward`` maps X (n, d), columns in ``graph.inputs`` order, to (n, 1); modules are initialised in node order from
    one seeded stream.

    Parameters
    ----------
    graph : pml.equations.ExpressionGraph
        The computation graph.
    width, depth : int
        As :func:`modular_layout`.
    activation, seed, dtype, device : optional
        As :func:`make_mlp`.
    """

    def __init__(self, graph, width: int, depth: int, activation: str = "relu", seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        super().__init__()
        _activation(activation)
        self.layout = modular_layout(graph, width, depth)
        self.variables = tuple(graph.inputs)
        self.output = graph.output
        self.width, self.depth, self.activation = int(width), int(depth), activation
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            modules = {spec.name: _build_mlp(len(spec.inputs), spec.width, spec.depth, activation, dtype)
                       for spec in self.layout}
        self.modules_by_node = nn.ModuleDict(modules)
        self.to(device)
        column = {name: j for j, name in enumerate(self.variables)}
        # For each module: (name, [(is_variable, column index or node name), ...]).
        self._wiring = [(spec.name, [(i in column, column.get(i, i)) for i in spec.inputs]) for spec in self.layout]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.ndim != 2 or X.shape[1] != len(self.variables):
            raise ValueError(f"ModularMLP expects X of shape (n, {len(self.variables)}) with columns "
                             f"{list(self.variables)}, got {tuple(X.shape)}")
        values: dict[str, torch.Tensor] = {}
        for name, wiring in self._wiring:
            cols = [X[:, ref] if is_var else values[ref] for is_var, ref in wiring]
            values[name] = self.modules_by_node[name](torch.stack(cols, dim=1)).squeeze(-1)
        return values[self.output].unsqueeze(-1)


# ---------------------------------------------------------------------------------------------------------------------
# S independent MLPs of one shape, evaluated with batched matmuls
# ---------------------------------------------------------------------------------------------------------------------


class BatchedMLP(nn.Module):
    """S independent MLPs of one shape; layer l holds weights (S, out, in) and biases (S, out).

    Member s equals ``make_mlp(dim, width, depth, activation, seed=seeds[s], dtype=dtype)`` exactly. ``forward`` maps
    X (S, n, dim) to (S, n, 1); the members share no parameters, so the gradient of the summed losses gives each member
    its own gradient. Trains the seeds of a sweep together.

    Parameters
    ----------
    dim, width, depth : int
        The members' shape, as :func:`make_mlp`.
    activation : str, optional
        A name of ``ACTIVATIONS`` (default ``"relu"``).
    seeds : sequence of int, optional
        One seed per member (default ``(0,)``).
    dtype : torch.dtype, optional
        Parameter type (default float64).
    device : str or torch.device, optional
        Where the parameters live (default ``"cpu"``).
    """

    def __init__(self, dim: int, width: int, depth: int, activation: str = "relu", seeds: Sequence[int] = (0,),
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("BatchedMLP needs at least one seed")
        models = [make_mlp(dim, width, depth, activation, seed=s, dtype=dtype) for s in seeds]
        self._init_from(models, activation, device)
        self.dim, self.width, self.depth, self.seeds = int(dim), int(width), int(depth), tuple(seeds)

    @classmethod
    def from_models(cls, models: Iterable[nn.Sequential], activation: str = "relu") -> "BatchedMLP":
        """Stack same-shape ``nn.Sequential`` MLPs (as built by :func:`make_mlp`) into one BatchedMLP (copies)."""
        models = list(models)
        if not models:
            raise ValueError("from_models needs at least one model")
        self = cls.__new__(cls)
        device = next(models[0].parameters()).device
        self._init_from(models, activation, device)
        linears = [m for m in models[0] if isinstance(m, nn.Linear)]
        self.dim, self.width, self.depth = linears[0].in_features, linears[0].out_features, len(linears)
        self.seeds = None  # unknown: the members were built elsewhere
        return self

    def _init_from(self, models: list[nn.Sequential], activation: str, device) -> None:
        nn.Module.__init__(self)
        self.activation = activation
        self._act = _activation(activation)()
        layers = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        shapes = {tuple(tuple(lin.weight.shape) for lin in ls) for ls in layers}
        if len(shapes) != 1:
            raise ValueError(f"all members must have the same layer shapes, got {sorted(shapes)}")
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[l].weight.detach() for ls in layers]).to(device).clone())
             for l in range(len(layers[0]))])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[l].bias.detach() for ls in layers]).to(device).clone())
             for l in range(len(layers[0]))])

    @property
    def n_members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.ndim != 3 or X.shape[0] != self.n_members or X.shape[2] != self.weights[0].shape[2]:
            raise ValueError(f"BatchedMLP expects X of shape ({self.n_members}, n, {self.weights[0].shape[2]}), "
                             f"got {tuple(X.shape)}")
        h = X
        last = len(self.weights) - 1
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.bmm(h, W.transpose(1, 2)).add_(b.unsqueeze(1))  # faster than baddbmm's broadcast bias
            if l < last:
                h = self._act(h)
        return h

    def member(self, s: int) -> nn.Sequential:
        """Member s as a standalone ``nn.Sequential`` (a copy, same layout as :func:`make_mlp`)."""
        if not -self.n_members <= s < self.n_members:
            raise IndexError(f"member index {s} out of range for {self.n_members} members")
        layers: list[nn.Module] = []
        last = len(self.weights) - 1
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            out_f, in_f = W.shape[1], W.shape[2]
            with torch.random.fork_rng(devices=[]):  # nn.Linear draws an init we overwrite: keep global RNG intact
                lin = nn.Linear(in_f, out_f, dtype=W.dtype, device="cpu")
            with torch.no_grad():
                lin.weight.copy_(W[s].detach().cpu())
                lin.bias.copy_(b[s].detach().cpu())
            layers.append(lin.to(W.device))
            if l < last:
                layers.append(type(self._act)())
        return nn.Sequential(*layers)
