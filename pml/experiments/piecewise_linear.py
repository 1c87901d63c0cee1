"""Paper §2 ("Piecewise Linear Methods"): ReLU networks vs linear simplex interpolation (Figs. 1-3, the width-100
remark). :func:`steps` maps each figure of ``book/02_piecewise_linear.md`` to a sweep of tasks; the summaries behind the
chapter's claims are tested code here.

Protocol (ejmichaud/precision-ml: ``scripts/feynman-simplex-subexperiment-v2.py``, the network scripts
``...-simplexcompare-normalize.py`` and ``...-modular-normalize.py``, ``notebooks/create-paper-figures/``):
``rng="legacy"`` data come from the authors' ``RandomState(seed)`` stream (the same seed gives their data sets), test
points in the central 80% box; networks with PyTorch's default init after ``manual_seed(seed)``, |D| = N // (d+1), Adam
1e-3, standardised inputs, batches capped at 10k (Fig. 2) or 30k (Figs. 1b, 3); the simplex with N = |D|(d+1), its RMSE
over the test points inside the hull (as upstream) and the fraction outside recorded. Absolute RMSE throughout, with
``y_rms`` for Eq. (1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pml import equations, scaling
from pml.approx.simplex import SimplexInterpolator
from pml.config import Config
from pml.engine import Sweep, Task, partial
from pml.experiments.network_sweep import (
    PAPER_WIDTHS,
    Curve,
    NetworkRuns,
    NetworkSweep,
    interp_loglog,
    sample_split,
    step_seconds,
)
from pml.experiments.simplex_sweep import (
    FIG2_EQUATIONS,
    SimplexScalingResult,
    SimplexScalingSweep,
    SimplexTask,
    simplex_seconds,
)
from pml.nn import networks, regions, training

__all__ = [
    "FIG2_EQUATIONS",
    "FIG3_DEPTHS",
    "FIG3_EQUATIONS",
    "PAPER_FIG1",
    "PAPER_WIDTH100",
    "PAPER_WIDTHS",
    "LinearRegionsResult",
    "LinearRegionsSweep",
    "LinearRegionsTask",
    "SameWidthResult",
    "SameWidthSweep",
    "SimplexScalingResult",
    "SimplexScalingSweep",
    "SimplexTask",
    "claim_values",
    "fig1_summary",
    "fig1a_config",
    "fig1b_config",
    "fig2_summary",
    "interp_loglog",
    "modular_numbers",
    "modular_sweep",
    "paper_hours",
    "relu_net_from_1d_interpolant",
    "relu_sweep",
    "sample_split",
    "steps",
    "width100_numbers",
]

FIG3_EQUATIONS = ("I.8.14", "II.6.15a")
FIG3_DEPTHS = {"I.8.14": (4, 6), "II.6.15a": (6, 9)}  # the authors' seml configs feynman-network-modular-8*

PAPER_FIG1 = {  # the paper's Fig. 1 titles and the output printed by notebooks/create-paper-figures/2d-linear-regions
    "fig1a_raw": 7.82e-2,  # [title]
    "fig1a_normalized": 2.36e-2,  # [title]
    "fig1a_simplex": 2.18e-2,  # [title]; 0.021771 to more digits (the same interpolant, pml.approx.simplex)
    "fig1b_raw": 0.5355542012134172,  # [printed]
    "fig1b_normalized": 0.05656662349755255,  # [printed]
    "fig1b_simplex": 1.88e-2,  # [title]; 0.018831 to more digits
}

PAPER_WIDTH100 = {"modular": 0.004272291154020468, "dense": 0.004773926341924796,  # printed by the notebook behind
                  # the width-100 remark (notebooks/modular-vs-dense-samewidth-compare.ipynb)
                  "n_params_modular": 16_003, "n_params_dense": 41_001}



# ---------------------------------------------------------------------------------------------------------------------
# Fig. 1: linear regions of ReLU nets (raw and standardised inputs) vs simplex interpolation
# ---------------------------------------------------------------------------------------------------------------------

FIG1_KEYS = ("raw", "normalized", "simplex")


@dataclass(frozen=True)
class Fig1Row(Config):
    """The settings of one Fig. 1 row, shared by its sweep and its three tasks."""

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


@dataclass(frozen=True)
class LinearRegionsTask(Fig1Row, Task):
    """One fit of a Fig. 1 row: the ReLU net on raw or standardised inputs, or the simplex; ``init="sequential"`` draws
    both nets from one stream (Fig. 1a, the notebook's values), ``"shared"`` from the same seed (Fig. 1b)."""

    ROUNDING_SENSITIVE: ClassVar[bool] = True  # an Adam trajectory: another CPU model gives other digits

    fit: str = "raw"  # "raw" | "normalized" | "simplex"
    threads: int = 1

    def __post_init__(self):
        d = equations.get(self.equation).dim
        if d not in (1, 2):
            raise ValueError(f"region maps need a 1D or 2D target, {self.equation} has d = {d}")
        if self.init not in ("sequential", "shared"):
            raise ValueError(f"unknown init {self.init!r}; valid: ['sequential', 'shared']")
        if self.fit not in FIG1_KEYS:
            raise ValueError(f"unknown fit {self.fit!r}; valid: {list(FIG1_KEYS)}")

    def n_params(self) -> int:
        return networks.dense_param_count(equations.get(self.equation).dim, self.width, self.depth)

    def n_train(self) -> int:
        return networks.dataset_size_for(self.n_params(), equations.get(self.equation).dim)

    def data(self):
        return sample_split(self.equation, self.n_train(), self.n_test, self.seed, self.rng)

    def grid(self):
        return regions.grid(equations.get(self.equation).ranges, self.grid_size)

    def run(self) -> dict:
        eq = equations.get(self.equation)
        X, y, Xt, yt = self.data()
        grid, _ = self.grid()
        if self.fit == "simplex":
            interp = SimplexInterpolator(X, y)
            test = interp(Xt)
            gap = float("nan")
            if eq.dim == 1:
                net = relu_net_from_1d_interpolant(X[:, 0], y)
                inside = test.inside
                gap = float(np.max(np.abs(training.predict(net, Xt[inside]) - test.values[inside])))
            return {"rmse": float(test.rmse(yt)), "pred": interp(grid).values,
                    "labels": regions.simplex_regions(interp, grid), "y_rms": float(np.sqrt(np.mean(yt**2))),
                    "fraction_outside": float(test.fraction_outside), "construction_max_abs_diff": gap}
        if self.init == "sequential":
            model = _sequential_mlps(eq.dim, self.width, self.depth, self.seed, 2)[FIG1_KEYS.index(self.fit)]
        else:
            model = networks.make_mlp(eq.dim, self.width, self.depth, seed=self.seed)
        tcfg = training.TrainConfig(n_steps=self.n_steps, lr=self.lr, batch_size=self.batch_size,
                                    normalize_inputs=self.fit == "normalized", log_every=self.log_every,
                                    selection=self.selection, test_every_step=self.selection == "min_test")
        res = training.train(model, X, y, Xt, yt, tcfg)
        return {"rmse": float(res.selected),  # the reported value; maps and curves show the final weights
                "pred": training.predict(model, grid, res),
                "labels": regions.relu_regions(model, grid, res.input_mean, res.input_std, method="jacobian"),
                "train_result": res.to_dict()}

    def cost(self) -> float:
        """Training steps (:func:`~pml.experiments.network_sweep.step_seconds`) plus the region map of the grid."""
        d = equations.get(self.equation).dim
        points = self.grid_size**d
        if self.fit == "simplex":
            return simplex_seconds(d, self.n_train()) + 2e-6 * points
        test_every = 1 if self.selection == "min_test" else self.log_every
        per_step = step_seconds(self.n_params(), self.width * (self.depth - 1), self.n_train(), self.batch_size,
                                self.n_test, test_every)
        return self.n_steps * per_step + 2e-5 * points * self.width


def fig1a_config(**overrides) -> LinearRegionsSweep:
    """Fig. 1(a): cos 2x on [3, 6], 1-5-5-1, |D| = 23, seed 1, 25k full-batch steps, min logged test RMSE."""
    return LinearRegionsSweep(**overrides)


def fig1b_config(**overrides) -> LinearRegionsSweep:
    """Fig. 1(b): z = xy on [1, 5]^2, 2-20-20-1, |D| = 167, seed 0, 25k steps, min test RMSE, 400x400 map."""
    values = dict(equation="Z.008", width=20, depth=3, seed=0, selection="min_test", init="shared", grid_size=400)
    values.update(overrides)
    return LinearRegionsSweep(**values)


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


@dataclass(frozen=True)
class LinearRegionsSweep(Fig1Row, Sweep):
    """One row of Fig. 1 as three tasks: the net on raw inputs, on standardised inputs, and the simplex."""

    threads: int = 1

    def tasks(self) -> list[LinearRegionsTask]:
        return [LinearRegionsTask(**self.to_dict(), fit=key) for key in FIG1_KEYS]

    def assemble(self, results: Sequence[dict]) -> LinearRegionsResult:
        task = self.tasks()[0]
        eq = equations.get(self.equation)
        X, y, _, _ = task.data()
        grid, shape = task.grid()
        parts = dict(zip(FIG1_KEYS, results))
        simplex = parts["simplex"]
        return LinearRegionsResult(
            equation=self.equation, dim=eq.dim, n_params=task.n_params(), n_train=task.n_train(), X_train=X,
            y_train=y, grid=grid, grid_shape=shape, y_grid=eq.func(grid),
            pred={k: np.asarray(p["pred"]) for k, p in parts.items()},
            labels={k: np.asarray(p["labels"]) for k, p in parts.items()},
            rmse={k: float(p["rmse"]) for k, p in parts.items()}, y_rms=float(simplex["y_rms"]),
            simplex_fraction_outside=float(simplex["fraction_outside"]),
            construction_max_abs_diff=float(simplex["construction_max_abs_diff"]),
            train_results={k: training.TrainResult(**parts[k]["train_result"]) for k in ("raw", "normalized")})


def _sequential_mlps(dim: int, width: int, depth: int, seed: int, count: int) -> list[nn.Module]:
    """``count`` MLPs drawn one after the other from one stream seeded with ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [networks._build_mlp(dim, width, depth, "relu", torch.float64) for _ in range(count)]


def relu_net_from_1d_interpolant(x, y) -> nn.Sequential:
    """The 1-m-1 ReLU network equal to the linear interpolant of (x, y) on [min x, max x] (paper §2)."""
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


# ---------------------------------------------------------------------------------------------------------------------
# Figs. 2 and 3: ReLU networks (pml.experiments.network_sweep)
# ---------------------------------------------------------------------------------------------------------------------


def relu_sweep(widths: Sequence[Sequence[int]], depths: Sequence[int] = (2, 3, 4),
               equations_: Sequence[str] = FIG2_EQUATIONS, **protocol) -> NetworkSweep:
    """Fig. 2: dense ReLU networks, ``widths[i]`` at ``depths[i]``, batch cap 10k, ``test_at_min_train``."""
    return NetworkSweep.grid(equations_, depths, widths, ("relu",), "dense", 10_000, **protocol)


def modular_sweep(dense_widths: Sequence[int], modular_widths: Sequence[int],
                  equations_: Sequence[str] = FIG3_EQUATIONS, **protocol) -> NetworkSweep:
    """Fig. 3: dense and modular ReLU networks of the depths of :data:`FIG3_DEPTHS`, batch cap 30k."""
    curves = tuple(Curve(eq, depth, tuple(int(w) for w in widths), kind, "relu", 30_000)
                   for eq in equations_ for depth in FIG3_DEPTHS[eq]
                   for kind, widths in (("dense", dense_widths), ("modular", modular_widths)))
    return NetworkSweep(curves=curves, **protocol)


# ---------------------------------------------------------------------------------------------------------------------
# The width-100 remark: modular vs dense at the same width and depth
# ---------------------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class SameWidthSweep(NetworkSweep):
    """Notebook ``modular-vs-dense-samewidth-compare``: one modular and one dense net of the same width and depth,
    each on its own |D| = N // (d+1), trained one at a time (no batching), smallest logged test RMSE."""

    @classmethod
    def build(cls, equation: str = "I.8.14", width: int = 100, depth: int = 6, seed: int = 0, n_steps: int = 25_000,
              n_test: int = 30_000, **protocol) -> SameWidthSweep:
        curves = tuple(Curve(equation, depth, (width,), kind, "relu", 30_000) for kind in ("modular", "dense"))
        return cls(curves=curves, seeds=(seed,), n_steps=n_steps, selection="min_logged_test", n_test=n_test,
                   batched=False, **protocol)

    assemble_partial = None  # one pair: half of it is no comparison (a stored build without both is NotComputed)

    def assemble(self, results: Sequence[dict]) -> SameWidthResult:
        runs = super().assemble(results)
        fields = {name: {str(k): getattr(runs, name)[i].item() for i, k in enumerate(runs.kind)}
                  for name in ("n_params", "n_train", "rmse", "seconds_per_step")}
        return SameWidthResult(**fields, n_steps=self.n_steps, y_rms=float(results[-1]["y_rms"]))


# ---------------------------------------------------------------------------------------------------------------------
# The chapter's steps
# ---------------------------------------------------------------------------------------------------------------------


def steps(params: Mapping[str, Any]) -> dict[str, Sweep]:
    """Every expensive step of ``book/02_piecewise_linear.md``, from the chapter's parameter values."""
    p = params
    seeds = tuple(int(s) for s in p["seeds"])
    execution = dict(threads=int(p["threads"]), device=str(p["device"]))
    fig1 = dict(n_steps=int(p["fig1_n_steps"]), n_test=int(p["fig1_n_test"]))
    widths = tuple(tuple(int(w) for w in p[f"relu_widths_depth{d}"]) for d in (2, 3, 4))
    return {
        "fig1a": fig1a_config(**fig1, grid_size=int(p["fig1a_grid"])),
        "fig1b": fig1b_config(**fig1, grid_size=int(p["fig1b_grid"])),
        "fig2_simplex": SimplexScalingSweep(sizes=tuple(int(n) for n in p["simplex_sizes"]),
                                            max_train_by_dim=tuple(int(n) for n in p["simplex_max_train_by_dim"]),
                                            seeds=seeds, n_test=int(p["n_test"])),
        "fig2_relu": relu_sweep(widths, seeds=seeds, n_steps=int(p["relu_n_steps"]), n_test=int(p["n_test"]),
                                **execution),
        "fig3_modular": modular_sweep(tuple(p["modular_dense_widths"]), tuple(p["modular_widths"]), seeds=seeds,
                                      n_steps=int(p["modular_n_steps"]), n_test=int(p["n_test"]), **execution),
        "width100": SameWidthSweep.build(n_steps=int(p["width100_n_steps"]), n_test=int(p["n_test"]), **execution),
    }


def paper_hours(sweeps: Mapping[str, Sweep]) -> dict[str, float]:
    """Estimated CPU-hours (one core) of each step: the sum of its tasks' cost models; plus ``total``."""
    hours = {name: sum(t.cost() for t in sweep.tasks()) / 3600 for name, sweep in sweeps.items()}
    hours["total"] = sum(hours.values())
    return hours


# ---------------------------------------------------------------------------------------------------------------------
# Summaries the chapter glues and checks (named floats)
# ---------------------------------------------------------------------------------------------------------------------

def fig1_summary(fig1a: LinearRegionsResult, fig1b: LinearRegionsResult) -> dict[str, float]:
    """Ratios, region counts and the deviation from the paper's Fig. 1 values (claims C2.1-C2.7). In a stored build
    a panel that is not stored leaves out its keys and those that need it (the book marks them "not computed")."""
    out: dict[str, float] = {}
    for name, res in (("1a", fig1a), ("1b", fig1b)):
        if partial.is_missing(res):
            continue
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
    if not partial.is_missing(fig1a) and not partial.is_missing(fig1b):
        out["max_dev"] = max(out[f"{n}_dev_{k}"] for n in ("1a", "1b") for k in FIG1_KEYS)
    if not partial.is_missing(fig1a):
        out["construction_gap"] = float(fig1a.construction_max_abs_diff)
        out["construction_hidden"] = int(fig1a.n_train - 1)
    return out


def fig2_summary(simplex: SimplexScalingResult, relu: NetworkRuns, early_points: int = 3) -> dict[str, float]:
    """Per input dimension d (one equation each): simplex exponent and its gap to -2/d, ReLU early exponent,
    net/simplex ratios at the largest N; plus the claim quantities of C2.8-C2.13 (see :func:`claim_values`)."""
    out: dict[str, float] = {}
    if partial.is_missing(simplex):
        return out
    networks = partial.missing_part(relu) is None  # else the simplex keys only: no number of a truncated curve
    if not networks:
        relu = NetworkRuns.from_rows([])
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
    if networks:
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


def claim_values(fig1: dict[str, float], fig2: dict[str, float], modular: NetworkRuns,
                 same: SameWidthResult) -> dict[str, float]:
    """Every claim quantity of the chapter (C2.1-C2.16) from the summaries and results; in a stored build a value
    whose inputs are not stored is NaN or a :class:`pml.engine.NotComputed` (its claim reads "not computed")."""
    nan = float("nan")
    values = {
        "C2.1": fig1.get("1a_net_over_simplex", nan),
        "C2.2": fig1.get("1b_raw_over_normalized", nan),
        "C2.3": fig1.get("1b_net_over_simplex", nan),
        "C2.4": fig1.get("1b_regions_normalized_over_raw", nan),
        "C2.5": fig1.get("1b_regions_normalized_over_simplex", nan),
        "C2.6": fig1.get("max_dev", nan),
        "C2.7": fig1.get("construction_gap", nan),
        "C2.8": fig2.get("max_gap_low_d", nan),
        "C2.9": fig2.get("max_gap_high_d", nan),
        "C2.10": fig2.get("ratio_largest_d1", nan),
        "C2.11": fig2.get("ratio_largest_d2", nan),
        "C2.12": fig2.get("max_ratio_high_d", nan),
        "C2.13": fig2.get("n_steeper", nan),
        "C2.14": modular_numbers(modular)["modular_ratio"],
        "C2.15": width100_numbers(same)["w100_rmse_ratio"],
        "C2.16": width100_numbers(same)["w100_param_ratio"],
    }
    return {k: v if partial.is_missing(v) else float(v)
            for k, v in sorted(values.items(), key=lambda kv: int(kv[0].split(".")[1]))}


def modular_numbers(modular: NetworkRuns) -> dict[str, Any]:
    """Fig. 3's number: ``modular_ratio`` (:meth:`NetworkRuns.geometric_mean_ratio`), or what a stored build lacks
    (a :class:`pml.engine.NotComputed`) when the table is not complete."""
    missing = partial.missing_part(modular)
    return {"modular_ratio": missing if missing is not None else modular.geometric_mean_ratio()}


def width100_numbers(same: SameWidthResult) -> dict[str, Any]:
    """The width-100 pair's numbers (sizes, RMSEs and ratios, modular and dense); NotComputed values when not stored."""
    out: dict[str, Any] = {}
    missing = partial.missing_part(same)
    for key in ("modular", "dense"):
        for name in ("n_params", "n_train", "rmse"):
            out[f"w100_{name}_{key}"] = missing if missing is not None else getattr(same, name)[key]
        out[f"w100_paper_{key}"] = PAPER_WIDTH100[key]
    if missing is not None:
        return {**out, **{k: missing for k in ("w100_param_ratio", "w100_dense_over_modular", "w100_rmse_ratio",
                                               "w100_n_steps")}}
    return {**out, "w100_param_ratio": same.param_ratio, "w100_dense_over_modular": 1 / same.param_ratio,
            "w100_rmse_ratio": same.rmse_ratio, "w100_n_steps": same.n_steps}
