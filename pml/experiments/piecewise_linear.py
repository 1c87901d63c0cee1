"""Paper §2 ("Piecewise Linear Methods"): ReLU networks vs linear simplex interpolation (Figs. 1-3, the width-100
remark).

Every experiment is a frozen ``Config`` and a pure ``run_*(cfg) -> Result``; the chapter ``book/02_piecewise_linear.md``
calls them through :func:`pml.cache.load_or_run`. The summaries behind the chapter's claims (exponents, ratios at
equal N, region counts) are methods and functions here, so every rule that produces a number is tested code.

Protocol (reproduction spec §1, pitfalls 1-3, 13):

* **Data.** ``rng="legacy"`` (default) draws the training inputs and then the test inputs from
  ``numpy.random.RandomState(seed)``, the stream the authors' ``np.random.seed(seed); np.random.uniform(...)`` used:
  the same seed gives the authors' exact data sets (we check this: the Fig. 1 simplex RMSEs and the Fig. 2 simplex
  table come out identical to the recomputed upstream values). ``rng="pcg64"`` uses :func:`pml.data.train_test_split`.
  Test points lie in the central 80% box.
* **Networks.** :func:`pml.nn.networks.make_mlp` / :class:`~pml.nn.networks.BatchedMLP` (PyTorch default init drawn after
  ``manual_seed(seed)``, as upstream), :class:`~pml.nn.networks.ModularMLP` for Fig. 3; |D| = N // (d+1).
* **Training.** :func:`pml.nn.training.train` / :func:`~pml.nn.training.train_batched`: Adam 1e-3, MSE, inputs standardised,
  cyclic batches capped at 10k (Fig. 2) or 30k (Figs. 1b, 3), ``test_at_min_train`` (Figs. 2, 3), ``min_logged_test``
  (Fig. 1a, the width-100 remark) or ``min_test`` (Fig. 1b). One torch thread by default: these networks are small.
* **Simplex.** :class:`pml.approx.simplex.SimplexInterpolator`, N = |D|(d+1); its RMSE is over the test points inside the
  convex hull (as upstream) and the fraction outside is recorded (it is large in 5-6 D at small |D|).
* **Metric.** Absolute test RMSE throughout, as the paper's axes; ``y_rms`` (RMS of the target over the test box)
  converts to the relative ell_rms of Eq. (1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from pml import data, equations, scaling
from pml.nn import networks, regions, training
from pml.config import Config
from pml.threads import limit_threads
from pml.approx.simplex import SimplexInterpolator

__all__ = [
    "FIG2_EQUATIONS",
    "FIG3_DEPTHS",
    "PAPER_FIG1",
    "PAPER_WIDTHS",
    "PAPER_WIDTH100",
    "LinearRegionsConfig",
    "LinearRegionsResult",
    "ModularConfig",
    "ModularResult",
    "ReluScalingConfig",
    "ReluScalingResult",
    "SameWidthConfig",
    "SameWidthResult",
    "SimplexScalingConfig",
    "SimplexScalingResult",
    "claim_values",
    "estimate_seconds",
    "fig1_summary",
    "fig2_summary",
    "paper_runtime_estimate",
    "fig1a_config",
    "fig1b_config",
    "interp_loglog",
    "relu_net_from_1d_interpolant",
    "run_linear_regions",
    "run_modular",
    "run_relu_scaling",
    "run_same_width",
    "run_simplex_scaling",
    "step_work",
    "train_seeds",
    "sample_split",
]

RNGS = ("legacy", "pcg64")

FIG2_EQUATIONS = ("Z.001", "II.8.31", "I.30.5", "I.8.14", "I.44.4", "II.6.15a")  # d = 1..6 (config feynman-network-8)

PAPER_WIDTHS = {  # spec §1: chosen so that N ~ 256 * 4^k at d = 3
    2: (51, 204, 819, 3276, 13107, 52428),
    3: (13, 29, 61, 125, 253, 509),
    4: (9, 20, 43, 88, 179, 360),
}

FIG3_DEPTHS = {"I.8.14": (4, 6), "II.6.15a": (6, 9)}  # spec §3

PAPER_FIG1 = {  # the values in the paper's Fig. 1 (titles) and the notebook's printed output (spec §15)
    "fig1a_raw": 7.82e-2,  # [title]
    "fig1a_normalized": 2.36e-2,  # [title]
    "fig1a_simplex": 2.18e-2,  # [title]; 0.021771 recomputed
    "fig1b_raw": 0.5355542012134172,  # [printed]
    "fig1b_normalized": 0.05656662349755255,  # [printed]
    "fig1b_simplex": 1.88e-2,  # [title]; 0.018831 recomputed
}

PAPER_WIDTH100 = {"modular": 0.004272291154020468, "dense": 0.004773926341924796,  # [printed], spec §3 text claim
                  "n_params_modular": 16_003, "n_params_dense": 41_001}


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def sample_split(equation: str, n_train: int, n_test: int, seed: int, rng: str = "legacy"):
    """(X_train, y_train, X_test, y_test) for a registry equation; training points first, then the test points.

    ``rng="legacy"``: ``RandomState(seed).uniform`` on the full ranges, then on the central 80% box: bit-identical to
    the authors' ``np.random.seed(seed)`` + ``np.random.uniform`` (global state untouched). ``rng="pcg64"``:
    :func:`pml.data.train_test_split` (NumPy's default generator).
    """
    eq = equations.get(equation)
    if rng == "pcg64":
        return data.train_test_split(eq.func, eq.ranges, n_train, n_test, seed)
    if rng != "legacy":
        raise ValueError(f"unknown rng {rng!r}; valid: {list(RNGS)}")
    gen = np.random.RandomState(seed)
    ranges = np.asarray(eq.ranges, dtype=np.float64)
    box = data.central_box(eq.ranges)
    X_train = gen.uniform(ranges[:, 0], ranges[:, 1], size=(int(n_train), eq.dim))
    X_test = gen.uniform(box[:, 0], box[:, 1], size=(int(n_test), eq.dim))
    return X_train, eq.func(X_train), X_test, eq.func(X_test)


def _stack_splits(equation: str, n_train: int, n_test: int, seeds: Sequence[int], rng: str):
    splits = [sample_split(equation, n_train, n_test, s, rng) for s in seeds]
    return [np.stack([sp[i] for sp in splits]) for i in range(4)]


def interp_loglog(n, err, at) -> np.ndarray:
    """err interpolated linearly in log-log space at ``at``; NaN outside [min n, max n] (never extrapolated)."""
    n, err, at = (np.asarray(a, dtype=np.float64) for a in (n, err, at))
    order = np.argsort(n)
    n, err = n[order], err[order]
    out = np.exp(np.interp(np.log(at), np.log(n), np.log(err)))
    return np.where((at >= n[0]) & (at <= n[-1]), out, np.nan)


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 1: linear regions of ReLU nets (raw and standardised inputs) vs simplex interpolation
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearRegionsConfig(Config):
    """One panel row of Fig. 1: a ReLU net trained on raw and on standardised inputs, and the simplex interpolant.

    ``init="sequential"``: both nets come from one seeded stream, the raw net first (Fig. 1a: this reproduces the
    notebook's values); ``"shared"``: both start from ``make_mlp(seed)`` (Fig. 1b: same seed, same init).
    """

    equation: str = "cos2x"
    width: int = 5
    depth: int = 3
    seed: int = 1
    n_steps: int = 25_000
    lr: float = 1e-3
    batch_size: int = 30_000
    selection: str = "min_logged_test"
    log_every: int = 100
    init: str = "sequential"
    n_test: int = 30_000
    grid_size: int = 4001  # points per axis of the region map (Fig. 1b used 400)
    rng: str = "legacy"
    threads: int = 1


def fig1a_config(**overrides) -> LinearRegionsConfig:
    """Fig. 1(a): cos 2x on [3, 6], 1-5-5-1, |D| = 23, seed 1, 25k full-batch steps, min logged test RMSE."""
    return LinearRegionsConfig(**overrides)


def fig1b_config(**overrides) -> LinearRegionsConfig:
    """Fig. 1(b): z = xy on [1, 5]^2, 2-20-20-1, |D| = 167, seed 0, 25k steps, min test RMSE, 400x400 map."""
    values = dict(equation="Z.008", width=20, depth=3, seed=0, selection="min_test", init="shared", grid_size=400)
    values.update(overrides)
    return LinearRegionsConfig(**values)


@dataclass(frozen=True)
class LinearRegionsResult:
    equation: str
    dim: int
    n_params: int
    n_train: int
    X_train: np.ndarray
    y_train: np.ndarray
    grid: np.ndarray  # (G, d) points of the map
    grid_shape: tuple[int, ...]
    y_grid: np.ndarray  # target on the grid
    pred: dict  # {"raw", "normalized", "simplex"} -> values on the grid (simplex NaN outside the hull)
    labels: dict  # same keys -> region label per grid point (-1: outside the hull, simplex only)
    rmse: dict  # same keys -> absolute test RMSE (simplex: over the test points inside the hull)
    y_rms: float  # RMS of the target over the test set
    simplex_fraction_outside: float
    construction_max_abs_diff: float  # |1-m-1 ReLU net built from the simplex - simplex| on the test set (1D only)
    train_results: dict  # "raw" / "normalized" -> TrainResult

    def relative(self, key: str) -> float:
        return self.rmse[key] / self.y_rms

    def n_regions(self, key: str) -> int:
        """Linear regions of ``key`` among the grid points inside the training hull (where the simplex is defined)."""
        inside = self.labels["simplex"] >= 0
        return regions.count_regions(self.labels[key][inside])


def _sequential_mlps(dim: int, width: int, depth: int, seed: int, count: int) -> list[nn.Module]:
    """``count`` MLPs drawn one after the other from one stream seeded with ``seed`` (global RNG untouched).

    The first equals ``make_mlp(dim, width, depth, seed=seed)``; the others are what a notebook gets by building
    further models after the same ``torch.manual_seed``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [networks._build_mlp(dim, width, depth, "relu", torch.float64) for _ in range(count)]


def relu_net_from_1d_interpolant(x, y) -> nn.Sequential:
    """The 1-m-1 ReLU network equal to the linear interpolant of (x, y) on [min x, max x] (paper §2).

    With sorted knots x_0 < ... < x_m and slopes s_i on [x_i, x_{i+1}]:
    f(x) = y_0 + s_0 ReLU(x - x_0) + sum_{i>=1} (s_i - s_{i-1}) ReLU(x - x_i), m = |D| - 1 hidden units.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if x.size < 2 or np.any(np.diff(x) <= 0):
        raise ValueError("need at least two distinct, strictly increasing knots")
    slopes = np.diff(y) / np.diff(x)
    out_weights = np.concatenate([[slopes[0]], np.diff(slopes)])
    m = slopes.size
    with torch.random.fork_rng(devices=[]):  # nn.Linear draws an init we overwrite: keep global RNG intact
        hidden, out = nn.Linear(1, m, dtype=torch.float64), nn.Linear(m, 1, dtype=torch.float64)
    with torch.no_grad():
        hidden.weight.fill_(1.0)
        hidden.bias.copy_(torch.as_tensor(-x[:-1]))
        out.weight.copy_(torch.as_tensor(out_weights).reshape(1, -1))
        out.bias.fill_(float(y[0]))
    return nn.Sequential(hidden, nn.ReLU(), out)


def run_linear_regions(cfg: LinearRegionsConfig) -> LinearRegionsResult:
    """Fig. 1: train the net on raw and standardised inputs, fit the simplex, map every model's linear regions."""
    eq = equations.get(cfg.equation)
    d = eq.dim
    if d not in (1, 2):
        raise ValueError(f"region maps need a 1D or 2D target, {cfg.equation} has d = {d}")
    if cfg.init not in ("sequential", "shared"):
        raise ValueError(f"unknown init {cfg.init!r}; valid: ['sequential', 'shared']")
    n_params = networks.dense_param_count(d, cfg.width, cfg.depth)
    n_train = networks.dataset_size_for(n_params, d)
    X, y, Xt, yt = sample_split(cfg.equation, n_train, cfg.n_test, cfg.seed, cfg.rng)
    if cfg.init == "sequential":
        models = _sequential_mlps(d, cfg.width, cfg.depth, cfg.seed, 2)
    else:
        models = [networks.make_mlp(d, cfg.width, cfg.depth, seed=cfg.seed) for _ in range(2)]
    grid, shape = regions.grid(eq.ranges, cfg.grid_size)
    pred, labels, rmse, runs = {}, {}, {}, {}
    with limit_threads(cfg.threads):
        for key, model, normalize in (("raw", models[0], False), ("normalized", models[1], True)):
            tcfg = training.TrainConfig(n_steps=cfg.n_steps, lr=cfg.lr, batch_size=cfg.batch_size,
                                        normalize_inputs=normalize, log_every=cfg.log_every, selection=cfg.selection,
                                        test_every_step=cfg.selection == "min_test")
            runs[key] = training.train(model, X, y, Xt, yt, tcfg)
            rmse[key] = runs[key].selected  # the reported value; maps and curves show the final weights
            pred[key] = training.predict(model, grid, runs[key])
            labels[key] = regions.relu_regions(model, grid, runs[key].input_mean, runs[key].input_std,
                                               method="jacobian")
    interp = SimplexInterpolator(X, y)
    test = interp(Xt)
    rmse["simplex"] = test.rmse(yt)
    pred["simplex"] = interp(grid).values
    labels["simplex"] = regions.simplex_regions(interp, grid)
    gap = float("nan")
    if d == 1:
        net = relu_net_from_1d_interpolant(X[:, 0], y)
        inside = test.inside
        gap = float(np.max(np.abs(training.predict(net, Xt[inside]) - test.values[inside])))
    return LinearRegionsResult(
        equation=cfg.equation, dim=d, n_params=n_params, n_train=n_train, X_train=X, y_train=y, grid=grid,
        grid_shape=shape, y_grid=eq.func(grid), pred=pred, labels=labels, rmse=rmse,
        y_rms=float(np.sqrt(np.mean(yt**2))), simplex_fraction_outside=test.fraction_outside,
        construction_max_abs_diff=gap, train_results=runs)


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 2 (and the simplex bands of Fig. 3): simplex scaling
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimplexScalingConfig(Config):
    equations: tuple[str, ...] = FIG2_EQUATIONS
    sizes: tuple[int, ...] = (64, 256, 1024, 4096, 16384, 65536, 262144)  # |D| = 64 * 4^k (feynman-simplex-4)
    max_train_by_dim: tuple[int, ...] = (262144, 262144, 262144, 262144, 16384, 16384)  # |D| cap for d = 1..6
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    n_test: int = 30_000
    rng: str = "legacy"


@dataclass(frozen=True)
class SimplexScalingResult:
    """Per equation: |D|, absolute RMSE (sizes, seeds) over the test points inside the hull, fraction outside."""

    equations: tuple[str, ...]
    dims: tuple[int, ...]
    n_train: tuple[np.ndarray, ...]
    rmse: tuple[np.ndarray, ...]
    fraction_outside: tuple[np.ndarray, ...]
    y_rms: tuple[float, ...]
    seconds: tuple[np.ndarray, ...]  # wall time per (size, seed)

    def index(self, equation: str) -> int:
        return self.equations.index(equation)

    def dim(self, equation: str) -> int:
        return self.dims[self.index(equation)]

    def n_params(self, equation: str) -> np.ndarray:
        """N = |D|(d+1) (paper §2)."""
        i = self.index(equation)
        return self.n_train[i] * (self.dims[i] + 1)

    def mean(self, equation: str) -> np.ndarray:
        return self.rmse[self.index(equation)].mean(axis=1)

    def std(self, equation: str) -> np.ndarray:
        return self.rmse[self.index(equation)].std(axis=1)  # population std, as the authors' np.std

    def fit(self, equation: str) -> scaling.PowerLawFit:
        """Power law fitted to the seed-mean RMSE against N over all sizes."""
        return scaling.fit_power_law(self.n_params(equation), self.mean(equation))

    def exponent_gap(self, equation: str) -> float:
        """|fitted exponent - (-2/d)|."""
        return abs(self.fit(equation).exponent - scaling.theoretical_exponent(self.dim(equation)))

    def at(self, equation: str, n_params) -> np.ndarray:
        """Seed-mean RMSE at N, interpolated log-log; NaN outside the computed sizes."""
        return interp_loglog(self.n_params(equation), self.mean(equation), n_params)


def run_simplex_scaling(cfg: SimplexScalingConfig) -> SimplexScalingResult:
    dims, n_train, rmse, outside, y_rms, seconds = [], [], [], [], [], []
    for name in cfg.equations:
        d = equations.get(name).dim
        sizes = [n for n in cfg.sizes if n <= cfg.max_train_by_dim[d - 1]]
        err = np.empty((len(sizes), len(cfg.seeds)))
        frac, secs = np.empty_like(err), np.empty_like(err)
        ms = []
        for a, n in enumerate(sizes):
            for b, seed in enumerate(cfg.seeds):
                start = time.perf_counter()
                X, y, Xt, yt = sample_split(name, n, cfg.n_test, seed, cfg.rng)
                res = SimplexInterpolator(X, y)(Xt)
                err[a, b], frac[a, b] = res.rmse(yt), res.fraction_outside
                secs[a, b] = time.perf_counter() - start
                ms.append(float(np.mean(yt**2)))
        dims.append(d)
        n_train.append(np.asarray(sizes))
        rmse.append(err)
        outside.append(frac)
        seconds.append(secs)
        y_rms.append(math.sqrt(float(np.mean(ms))))
    return SimplexScalingResult(tuple(cfg.equations), tuple(dims), tuple(n_train), tuple(rmse), tuple(outside),
                                tuple(y_rms), tuple(seconds))


# ---------------------------------------------------------------------------------------------------------------------
# Training many networks (Figs. 2 and 3)
# ---------------------------------------------------------------------------------------------------------------------

_ROW_KEYS = ("kind", "equation", "dim", "depth", "width", "n_params", "n_train", "seed", "rmse", "seconds_per_step")


@dataclass(frozen=True)
class _Runs:
    """Long-format table of trained networks: one row per (kind, equation, depth, width, seed)."""

    kind: np.ndarray  # "dense" | "modular"
    equation: np.ndarray
    dim: np.ndarray
    depth: np.ndarray
    width: np.ndarray
    n_params: np.ndarray
    n_train: np.ndarray
    seed: np.ndarray
    rmse: np.ndarray  # absolute test RMSE chosen by the selection rule
    seconds_per_step: np.ndarray  # wall seconds per step per network
    n_test: int
    batch_size: int
    y_rms: dict = field(default_factory=dict)  # equation -> RMS of the target over the test box

    def _mask(self, equation: str, depth: int, kind: str = "dense") -> np.ndarray:
        return (self.equation == equation) & (self.depth == depth) & (self.kind == kind)

    def curve(self, equation: str, depth: int, kind: str = "dense") -> tuple[np.ndarray, np.ndarray]:
        """(N, median RMSE over seeds) for one (equation, depth, kind), sorted by N (the lines of Figs. 2-3)."""
        m = self._mask(equation, depth, kind)
        Ns = np.unique(self.n_params[m])
        med = np.array([np.median(self.rmse[m & (self.n_params == n)]) for n in Ns])
        return Ns.astype(np.float64), med

    def depths_of(self, equation: str, kind: str = "dense") -> list[int]:
        return sorted(int(v) for v in np.unique(self.depth[(self.equation == equation) & (self.kind == kind)]))


def _new_rows() -> dict[str, list]:
    return {k: [] for k in _ROW_KEYS}


def _add(rows, kind, equation, dim, depth, width, n_params, n_train, seed, res: training.TrainResult, members: int):
    values = (kind, equation, dim, depth, width, n_params, n_train, seed, res.selected,
              res.wall_time_s / max(res.n_steps_done, 1) / members)
    for key, value in zip(_ROW_KEYS, values):
        rows[key].append(value)


def train_seeds(equation, depth, width, activation, seeds, n_test, rng, tcfg, device, member_memory_gb):
    """Train one dense (equation, depth, width, activation) on every seed, several seeds per BatchedMLP where their
    activations (about three float64 copies per hidden layer) fit ``member_memory_gb``.

    Returns (N, |D|, [(seed, TrainResult, members trained together)], y_rms of the test points). Figs. 2, 3 and 5.
    """
    d = equations.get(equation).dim
    N = networks.dense_param_count(d, width, depth)
    D = networks.dataset_size_for(N, d)
    Xtr, ytr, Xte, yte = _stack_splits(equation, D, n_test, seeds, rng)
    per_member = 8 * 3 * (min(D, tcfg.batch_size) + min(n_test, tcfg.eval_chunk_size or n_test)) * width * (depth - 1)
    group = max(1, int(member_memory_gb * 2**30 // max(per_member, 1)))
    runs = []
    for start in range(0, len(seeds), group):
        part = slice(start, start + group)
        model = networks.BatchedMLP(d, width, depth, activation, seeds[part], device=device)
        results = training.train_batched(model, Xtr[part], ytr[part], Xte[part], yte[part], tcfg)
        runs += [(seed, res, len(results)) for seed, res in zip(seeds[part], results)]
    return N, D, runs, float(np.sqrt(np.mean(yte**2)))


def _train_dense(rows, equation, depth, width, seeds, n_test, rng, tcfg, device, member_memory_gb):
    """ReLU ``train_seeds`` appended to ``rows``; returns y_rms."""
    N, D, runs, y_rms = train_seeds(equation, depth, width, "relu", seeds, n_test, rng, tcfg, device, member_memory_gb)
    d = equations.get(equation).dim
    for seed, res, members in runs:
        _add(rows, "dense", equation, d, depth, width, N, D, seed, res, members)
    return y_rms


def _train_config(n_steps, lr, batch_size, selection, log_every=100) -> training.TrainConfig:
    return training.TrainConfig(n_steps=n_steps, lr=lr, batch_size=batch_size, selection=selection,
                                log_every=log_every, test_every_step=selection == "min_test", eval_chunk_size=10_000)


def _finish(rows, n_test, batch_size, y_rms, cls):
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    return cls(**arrays, n_test=n_test, batch_size=batch_size, y_rms=y_rms)


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 2: ReLU networks of depth 2, 3, 4 on d = 1..6
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReluScalingConfig(Config):
    equations: tuple[str, ...] = FIG2_EQUATIONS
    depths: tuple[int, ...] = (2, 3, 4)
    widths: tuple[tuple[int, ...], ...] = (PAPER_WIDTHS[2], PAPER_WIDTHS[3], PAPER_WIDTHS[4])  # one tuple per depth
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    n_steps: int = 20_000
    lr: float = 1e-3
    batch_size: int = 10_000  # min(|D|, 1e4) (paper §2, config feynman-network-8)
    selection: str = "test_at_min_train"
    n_test: int = 30_000
    rng: str = "legacy"
    threads: int = 1
    device: str = "cpu"
    member_memory_gb: float = 4.0  # memory per batched group of seeds


@dataclass(frozen=True)
class ReluScalingResult(_Runs):
    def ratio_to_simplex(self, simplex: SimplexScalingResult, equation: str, depth: int) -> tuple[np.ndarray, ...]:
        """(N, median net RMSE / simplex RMSE at the same N) for one depth; NaN where the simplex was not computed."""
        N, med = self.curve(equation, depth)
        return N, med / simplex.at(equation, N)

    def ratio_at_largest(self, simplex: SimplexScalingResult, equation: str) -> dict[int, float]:
        """Per depth: net/simplex RMSE at the largest network N inside the simplex's range (NaN if none)."""
        out = {}
        for depth in self.depths_of(equation):
            N, ratio = self.ratio_to_simplex(simplex, equation, depth)
            ok = np.isfinite(ratio)
            out[depth] = float(ratio[ok][np.argmax(N[ok])]) if ok.any() else float("nan")
        return out

    def early_exponent(self, equation: str, n_points: int = 3) -> float:
        """Median over depths of the exponent fitted to the first ``n_points`` sizes of each depth's median curve
        (depths with fewer sizes are skipped; NaN if none has enough). The "early in the scaling curves" of §2."""
        fits = []
        for depth in self.depths_of(equation):
            N, med = self.curve(equation, depth)
            if N.size >= n_points:
                fits.append(scaling.fit_power_law(N[:n_points], med[:n_points]).exponent)
        return float(np.median(fits)) if fits else float("nan")


def run_relu_scaling(cfg: ReluScalingConfig) -> ReluScalingResult:
    """Train every (equation, depth, width) on every seed (seeds batched); ``test_at_min_train`` per run."""
    if len(cfg.widths) != len(cfg.depths):
        raise ValueError(f"need one width list per depth: {len(cfg.depths)} depths, {len(cfg.widths)} width lists")
    tcfg = _train_config(cfg.n_steps, cfg.lr, cfg.batch_size, cfg.selection)
    rows, y_rms = _new_rows(), {}
    with limit_threads(cfg.threads):
        for name in cfg.equations:
            for depth, widths in zip(cfg.depths, cfg.widths):
                for width in widths:
                    y_rms[name] = _train_dense(rows, name, depth, width, cfg.seeds, cfg.n_test, cfg.rng, tcfg,
                                               cfg.device, cfg.member_memory_gb)
    return _finish(rows, cfg.n_test, cfg.batch_size, y_rms, ReluScalingResult)


# ---------------------------------------------------------------------------------------------------------------------
# Fig. 3: modular vs dense networks
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModularConfig(Config):
    equations: tuple[str, ...] = ("I.8.14", "II.6.15a")
    depths: tuple[tuple[int, ...], ...] = (FIG3_DEPTHS["I.8.14"], FIG3_DEPTHS["II.6.15a"])  # one tuple per equation
    dense_widths: tuple[int, ...] = (6, 8, 10, 12, 14, 16, 18, 20, 25, 30, 45, 60, 90, 120, 180, 360, 720)
    modular_widths: tuple[int, ...] = (10, 12, 14, 16, 18, 20, 25, 30, 45, 60, 90, 120, 180, 360, 720, 1500)
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    n_steps: int = 20_000
    lr: float = 1e-3
    batch_size: int = 30_000  # configs feynman-network-modular-8(-baseline)
    selection: str = "test_at_min_train"
    n_test: int = 30_000
    rng: str = "legacy"
    threads: int = 1
    device: str = "cpu"
    member_memory_gb: float = 4.0


@dataclass(frozen=True)
class ModularResult(_Runs):
    def ratios(self, equation: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, modular median RMSE / dense median RMSE at the same N) over the modular sizes inside the dense range."""
        Nm, rm = self.curve(equation, depth, "modular")
        Nd, rd = self.curve(equation, depth, "dense")
        if Nd.size < 2:
            return Nm[:0], rm[:0]
        ratio = rm / interp_loglog(Nd, rd, Nm)
        ok = np.isfinite(ratio)
        return Nm[ok], ratio[ok]

    def geometric_mean_ratio(self) -> float:
        """Geometric mean of all modular/dense ratios at equal N (every equation and depth); NaN if none."""
        logs = [np.log(self.ratios(eq, depth)[1]) for eq in np.unique(self.equation)
                for depth in self.depths_of(str(eq), "modular")]
        logs = np.concatenate(logs) if logs else np.zeros(0)
        return float(np.exp(logs.mean())) if logs.size else float("nan")


def run_modular(cfg: ModularConfig) -> ModularResult:
    """Dense (batched over seeds) and modular (one network per seed) ReLU nets of the same depths (Fig. 3)."""
    if len(cfg.depths) != len(cfg.equations):
        raise ValueError(f"need one depth tuple per equation: {len(cfg.equations)} equations, {len(cfg.depths)}")
    tcfg = _train_config(cfg.n_steps, cfg.lr, cfg.batch_size, cfg.selection)
    rows, y_rms = _new_rows(), {}
    with limit_threads(cfg.threads):
        for name, depths in zip(cfg.equations, cfg.depths):
            eq = equations.get(name)
            graph = eq.graph()
            for depth in depths:
                for width in cfg.dense_widths:
                    y_rms[name] = _train_dense(rows, name, depth, width, cfg.seeds, cfg.n_test, cfg.rng, tcfg,
                                               cfg.device, cfg.member_memory_gb)
                for width in cfg.modular_widths:
                    N = networks.modular_param_count(graph, width, depth)
                    D = networks.dataset_size_for(N, eq.dim)
                    for seed in cfg.seeds:
                        X, y, Xt, yt = sample_split(name, D, cfg.n_test, seed, cfg.rng)
                        model = networks.ModularMLP(graph, width, depth, "relu", seed=seed, device=cfg.device)
                        res = training.train(model, X, y, Xt, yt, tcfg)
                        _add(rows, "modular", name, eq.dim, depth, width, N, D, seed, res, 1)
    return _finish(rows, cfg.n_test, cfg.batch_size, y_rms, ModularResult)


# ---------------------------------------------------------------------------------------------------------------------
# The width-100 remark: modular vs dense at the same width and depth
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SameWidthConfig(Config):
    """Notebook ``modular-vs-dense-samewidth-compare``: I.8.14, depth 6, width 100, seed 0, 25k steps."""

    equation: str = "I.8.14"
    width: int = 100
    depth: int = 6
    seed: int = 0
    n_steps: int = 25_000
    lr: float = 1e-3
    batch_size: int = 30_000
    selection: str = "min_logged_test"
    n_test: int = 30_000
    rng: str = "legacy"
    threads: int = 1
    device: str = "cpu"


@dataclass(frozen=True)
class SameWidthResult:
    n_params: dict  # "modular" / "dense" -> N
    n_train: dict  # |D| = N // (d+1) of each
    rmse: dict  # absolute test RMSE (selection rule of the config)
    seconds_per_step: dict
    n_steps: int
    y_rms: float

    @property
    def param_ratio(self) -> float:
        """N_modular / N_dense: the paper's sentence implies ~2.5 ("dense networks having ~2.5x fewer parameters")."""
        return self.n_params["modular"] / self.n_params["dense"]

    @property
    def rmse_ratio(self) -> float:
        """Modular / dense test RMSE (< 1: the modular net is better)."""
        return self.rmse["modular"] / self.rmse["dense"]


def run_same_width(cfg: SameWidthConfig) -> SameWidthResult:
    eq = equations.get(cfg.equation)
    graph = eq.graph()
    tcfg = _train_config(cfg.n_steps, cfg.lr, cfg.batch_size, cfg.selection)
    models = {
        "modular": networks.ModularMLP(graph, cfg.width, cfg.depth, "relu", seed=cfg.seed, device=cfg.device),
        "dense": networks.make_mlp(eq.dim, cfg.width, cfg.depth, "relu", seed=cfg.seed, device=cfg.device),
    }
    n_params, n_train, rmse, secs = {}, {}, {}, {}
    y_rms = float("nan")
    with limit_threads(cfg.threads):
        for key, model in models.items():
            n_params[key] = networks.count_params(model)
            n_train[key] = networks.dataset_size_for(n_params[key], eq.dim)
            X, y, Xt, yt = sample_split(cfg.equation, n_train[key], cfg.n_test, cfg.seed, cfg.rng)
            res = training.train(model, X, y, Xt, yt, tcfg)
            rmse[key], secs[key] = res.selected, res.wall_time_s / max(res.n_steps_done, 1)
            y_rms = float(np.sqrt(np.mean(yt**2)))
    return SameWidthResult(n_params, n_train, rmse, secs, cfg.n_steps, y_rms)


# ---------------------------------------------------------------------------------------------------------------------
# Run-time estimate of the paper profile
# ---------------------------------------------------------------------------------------------------------------------


def step_work(n_params, n_train, batch_size, n_test):
    """Cost units of one step of one network: N * (3 min(|D|, B) + n_test), forward+backward on the batch (~3
    forward passes) and one forward pass over the test set (an upper bound: with ``test_every_step=False`` the test
    set is evaluated only at the logged steps and once at the end)."""
    return np.asarray(n_params, dtype=np.float64) * (3 * np.minimum(n_train, batch_size) + n_test)


def estimate_seconds(measured: Sequence[_Runs], target: Sequence[Config]) -> dict[str, float]:
    """Extrapolate measured per-step costs to the grids of ``target`` (ReluScalingConfig / ModularConfig).

    Model: seconds per network step = c * work (see :func:`step_work`), with c the median over the measured runs in the
    upper half of the work range (the overhead of tiny networks would otherwise inflate it). Rough: large layers
    are memory-bound on a CPU, so this is optimistic there; returns {"c": c, <target class name>: seconds, "total"}.
    """
    work = np.concatenate([step_work(m.n_params, m.n_train, m.batch_size, m.n_test) for m in measured])
    secs = np.concatenate([m.seconds_per_step for m in measured])
    big = work >= np.median(work)
    c = float(np.median(secs[big] / work[big]))
    out = {"c": c}
    total = 0.0
    for cfg in target:
        seconds = 0.0
        if isinstance(cfg, ReluScalingConfig):
            for name in cfg.equations:
                d = equations.get(name).dim
                for depth, widths in zip(cfg.depths, cfg.widths):
                    for width in widths:
                        N = networks.dense_param_count(d, width, depth)
                        D = networks.dataset_size_for(N, d)
                        seconds += c * step_work(N, D, cfg.batch_size, cfg.n_test) * cfg.n_steps * len(cfg.seeds)
        elif isinstance(cfg, ModularConfig):
            for name, depths in zip(cfg.equations, cfg.depths):
                eq = equations.get(name)
                for depth in depths:
                    sizes = [networks.dense_param_count(eq.dim, w, depth) for w in cfg.dense_widths]
                    sizes += [networks.modular_param_count(eq.graph(), w, depth) for w in cfg.modular_widths]
                    for N in sizes:
                        D = networks.dataset_size_for(N, eq.dim)
                        seconds += c * step_work(N, D, cfg.batch_size, cfg.n_test) * cfg.n_steps * len(cfg.seeds)
        else:
            raise TypeError(f"cannot estimate {type(cfg).__name__}")
        out[type(cfg).__name__] = float(seconds)
        total += seconds
    out["total"] = float(total)
    return out



# ---------------------------------------------------------------------------------------------------------------------
# Summaries the chapter glues and checks (named floats)
# ---------------------------------------------------------------------------------------------------------------------

FIG1_KEYS = ("raw", "normalized", "simplex")


def fig1_summary(fig1a: LinearRegionsResult, fig1b: LinearRegionsResult) -> dict[str, float]:
    """Ratios, region counts and the deviation from the paper's Fig. 1 values (claims C2.1-C2.7)."""
    out: dict[str, float] = {}
    for name, res in (("1a", fig1a), ("1b", fig1b)):
        for key in FIG1_KEYS:
            out[f"{name}_rmse_{key}"] = float(res.rmse[key])
            out[f"{name}_rel_{key}"] = float(res.relative(key))
            out[f"{name}_regions_{key}"] = int(res.n_regions(key))
            out[f"{name}_paper_{key}"] = float(PAPER_FIG1[f"fig{name}_{key}"])
            out[f"{name}_dev_{key}"] = float(abs(res.rmse[key] / PAPER_FIG1[f"fig{name}_{key}"] - 1))
        out[f"{name}_n_train"] = int(res.n_train)
        out[f"{name}_n_params"] = int(res.n_params)
        out[f"{name}_net_over_simplex"] = float(res.rmse["normalized"] / res.rmse["simplex"])
        out[f"{name}_raw_over_normalized"] = float(res.rmse["raw"] / res.rmse["normalized"])
        out[f"{name}_regions_normalized_over_raw"] = res.n_regions("normalized") / max(res.n_regions("raw"), 1)
        out[f"{name}_regions_normalized_over_simplex"] = res.n_regions("normalized") / max(res.n_regions("simplex"), 1)
        out[f"{name}_seconds"] = float(sum(r.wall_time_s for r in res.train_results.values()))
    out["max_dev"] = max(out[f"{n}_dev_{k}"] for n in ("1a", "1b") for k in FIG1_KEYS)
    out["construction_gap"] = float(fig1a.construction_max_abs_diff)
    out["construction_hidden"] = int(fig1a.n_train - 1)
    return out


def fig2_summary(simplex: SimplexScalingResult, relu: ReluScalingResult, early_points: int = 3) -> dict[str, float]:
    """Per input dimension d (one equation each): simplex exponent and its gap to -2/d, ReLU early exponent,
    net/simplex ratios at the largest N; plus the claim quantities of C2.8-C2.13 (see :func:`claim_values`)."""
    out: dict[str, float] = {}
    gaps_low, gaps_high, high_ratios, steeper, n_high = [], [], [], 0, 0
    for eq in simplex.equations:
        d = simplex.dim(eq)
        theory = scaling.theoretical_exponent(d)
        enough = simplex.n_train[simplex.index(eq)].size >= 2
        out[f"simplex_exp_d{d}"] = simplex.fit(eq).exponent if enough else float("nan")
        out[f"theory_exp_d{d}"] = theory
        out[f"simplex_gap_d{d}"] = simplex.exponent_gap(eq) if enough else float("nan")
        out[f"simplex_outside_d{d}"] = float(simplex.fraction_outside[simplex.index(eq)].mean(axis=1)[0])
        out[f"simplex_max_n_d{d}"] = float(simplex.n_params(eq)[-1])
        (gaps_low if d <= 3 else gaps_high).append(out[f"simplex_gap_d{d}"])
        if eq not in set(relu.equation):
            continue
        ratios = relu.ratio_at_largest(simplex, eq)
        out[f"ratio_largest_d{d}"] = _nan_min(ratios.values())
        best = min(np.min(relu.curve(eq, depth)[1]) for depth in relu.depths_of(eq))
        out[f"relu_best_d{d}"] = float(best)
        out[f"relu_best_rel_d{d}"] = float(best / relu.y_rms[eq])
        out[f"simplex_best_rel_d{d}"] = float(simplex.mean(eq).min() / simplex.y_rms[simplex.index(eq)])
        if d >= 3:
            early = relu.early_exponent(eq, early_points)
            out[f"early_exp_d{d}"] = early
            n_high += 1
            steeper += int(np.isfinite(early) and early < theory)
        if d >= 4:
            high_ratios.append(out[f"ratio_largest_d{d}"])
    out["max_gap_low_d"] = float(np.max(gaps_low)) if gaps_low else float("nan")  # C2.8 (NaN if a d is missing)
    out["max_gap_high_d"] = float(np.max(gaps_high)) if gaps_high else float("nan")  # C2.9
    out["max_ratio_high_d"] = _nan_max(high_ratios)  # C2.12
    out["n_steeper"] = steeper  # C2.13
    out["n_high_d"] = n_high
    return out


def _nan_min(values) -> float:
    finite = [float(v) for v in values if np.isfinite(v)]
    return min(finite) if finite else float("nan")


def _nan_max(values) -> float:
    finite = [float(v) for v in values if np.isfinite(v)]
    return max(finite) if finite else float("nan")


def claim_values(fig1: dict[str, float], fig2: dict[str, float], modular: ModularResult,
                 same: SameWidthResult) -> dict[str, float]:
    """Every claim quantity of the chapter (C2.1-C2.16) from the summaries and results."""
    values = {
        "C2.1": fig1["1a_net_over_simplex"],
        "C2.2": fig1["1b_raw_over_normalized"],
        "C2.3": fig1["1b_net_over_simplex"],
        "C2.4": fig1["1b_regions_normalized_over_raw"],
        "C2.5": fig1["1b_regions_normalized_over_simplex"],
        "C2.6": fig1["max_dev"],
        "C2.7": fig1["construction_gap"],
        "C2.8": fig2["max_gap_low_d"],
        "C2.9": fig2["max_gap_high_d"],
        "C2.10": fig2.get("ratio_largest_d1", float("nan")),
        "C2.11": fig2.get("ratio_largest_d2", float("nan")),
        "C2.12": fig2["max_ratio_high_d"],
        "C2.13": fig2["n_steeper"],
        "C2.14": modular.geometric_mean_ratio(),
        "C2.15": same.rmse_ratio,
        "C2.16": same.param_ratio,
    }
    return {k: float(v) for k, v in sorted(values.items(), key=lambda kv: int(kv[0].split(".")[1]))}


def paper_runtime_estimate(fig1a: LinearRegionsResult, fig1b: LinearRegionsResult, simplex: SimplexScalingResult,
                           relu: ReluScalingResult, modular: ModularResult, same: SameWidthResult,
                           paper_simplex: SimplexScalingConfig | None = None) -> dict[str, float]:
    """Hours the ``paper`` profile needs on the machine that produced these results (single process).

    Fig. 1 and the width-100 run: measured seconds per step times the paper's steps. Figs. 2-3 networks:
    :func:`estimate_seconds`. Simplex: per equation, a power law of seconds against |D| fitted to the measured sizes,
    summed over the paper's sizes and seeds (only where at least two sizes were timed).
    """
    hours = {}
    fig1 = 0.0
    for res in (fig1a, fig1b):
        for run in res.train_results.values():
            fig1 += run.wall_time_s / max(run.n_steps_done, 1) * 25_000
    hours["fig1"] = fig1 / 3600
    nets = estimate_seconds([relu, modular], [ReluScalingConfig(), ModularConfig()])
    hours["fig2_nets"] = nets["ReluScalingConfig"] / 3600
    hours["fig3_nets"] = nets["ModularConfig"] / 3600
    hours["width100"] = sum(same.seconds_per_step.values()) * 25_000 / 3600
    target = paper_simplex or SimplexScalingConfig()
    total = 0.0
    for i, eq in enumerate(simplex.equations):
        secs = simplex.seconds[i].mean(axis=1)
        n = simplex.n_train[i]
        ok = secs > 0
        if ok.sum() < 2:
            continue
        fit = scaling.fit_power_law(n[ok], secs[ok], last=min(3, int(ok.sum())))
        d = simplex.dims[i]
        sizes = [s for s in target.sizes if s <= target.max_train_by_dim[d - 1]]
        total += float(np.sum(fit.predict(sizes))) * len(target.seeds)
    hours["simplex"] = total / 3600
    hours["total"] = sum(hours.values())
    hours["c"] = nets["c"]
    return hours
