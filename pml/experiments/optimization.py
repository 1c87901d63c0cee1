"""Paper §4: the loss landscape at low loss (Fig. 7) and the optimisation tricks of §4.2 (Figs. 8-9, the quintic).

:func:`steps` builds the chapter's sweeps; dependent steps are task graphs whose weights are task outputs
(:func:`net_weights`, rebuilt bit for bit by :func:`net_from_weights`): a :class:`HessianTask` takes an
:class:`AdamTask`'s weights, a :class:`LowCurvatureTask` continues a :class:`BFGSTask`, and boosting stage k starts from
stage k-1. The authors' protocol: float64, inputs not standardised, the test set on the training box, BFGS with their
options (run by ``bfgs(engine="rank2")``), the boosting residual normalised by its mean absolute value. All RMSEs stored
are absolute (as Figs. 8-9 plot), with ``y_rms`` alongside."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pml import data, equations, teacher
from pml.config import Config, _canonical
from pml.engine import Sweep, Task
from pml.nn import boosting, hessian, training
from pml.nn.bfgs import bfgs
from pml.nn.flat import FlatModel, OptimResult
from pml.nn.lowcurv import low_curvature_steps
from pml.nn.networks import dense_param_count, make_mlp

__all__ = [
    "PAPER_LRS",
    "PAPER_LINE_SEARCH",
    "problem_data",
    "net_weights",
    "net_from_weights",
    "AdamTask",
    "HessianTask",
    "BFGSTask",
    "LowCurvatureTask",
    "AdamSweep",
    "AdamResult",
    "SpectrumSummary",
    "BFGSSweep",
    "BFGSResult",
    "CombinedSweep",
    "CombinedResult",
    "QuinticSweep",
    "QuinticResult",
    "Group",
    "steps",
    "paper_estimate",
    "orders",
]

PAPER_LRS = (0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5, 1e-5)  # Figs. 8-9 (the Adam sweep)

# Line search (alpha_min, n_grid) of the low-curvature stages 2 and 4, per problem (the authors' per-script
# overrides for Fig. 9); every other problem uses the defaults (1e-12, 15). The upper bound is a config field.
PAPER_LINE_SEARCH: dict[str, tuple[tuple[float, int], tuple[float, int]]] = {
    "Z.008": ((1e-25, 70), (1e-25, 70)),
    "I.11.19": ((1e-30, 70), (1e-50, 70)),
}
DEFAULT_LINE_SEARCH = (1e-12, 15)

PROBLEMS = ("teacher", "quintic")  # besides any id of pml.equations


# ---------------------------------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------------------------------


def problem_data(problem: str, n_train: int, n_test: int, seed: int):
    """(X_train, y_train, X_test, y_test) for a problem of §4, uniform on the **full** box as the authors' code."""
    if problem == "teacher":
        return teacher.teacher_student_data(n_train, n_test, seed)
    if problem == "quintic":
        return teacher.quintic_data(n_train, n_test, seed)
    eq = equations.get(problem)
    return data.train_test_split(eq.func, eq.ranges, n_train, n_test, seed, fraction=1.0)


def problem_dim(problem: str) -> int:
    """Input dimension of a problem (1 for the teacher and the quintic)."""
    return 1 if problem in PROBLEMS else int(equations.get(problem).dim)


def _dim(X) -> int:
    return int(np.asarray(X).shape[1])


def _rms(y) -> float:
    return float(np.sqrt(np.mean(np.asarray(y, dtype=np.float64) ** 2)))


def orders(before: float, after: float) -> float:
    """Orders of magnitude gained going from RMSE ``before`` to ``after``: log10(before / after)."""
    return float(math.log10(before / after))


@dataclass(frozen=True)
class Curve:
    """A learning curve: RMSE (absolute) against optimisation steps, with a legend label."""

    step: np.ndarray
    rmse: np.ndarray
    label: str


def net_weights(model: torch.nn.Sequential, activation: str = "tanh") -> dict:
    """A :func:`pml.nn.networks.make_mlp` network as plain data: the flat float64 parameter vector (in
    ``model.parameters()`` order, that of :class:`pml.nn.flat.FlatModel`) and the layer sizes."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    sizes = [m.in_features for m in linears] + [linears[-1].out_features]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return {"theta": theta.cpu().numpy().astype(np.float64, copy=True), "layer_sizes": sizes,
            "activation": activation}


def net_from_weights(weights: Mapping[str, Any]) -> torch.nn.Sequential:
    """The network :func:`net_weights` describes, its parameters copied (not shared) from ``weights["theta"]``."""
    sizes = [int(s) for s in weights["layer_sizes"]]
    if len(sizes) < 3 or len(set(sizes[1:-1])) != 1 or sizes[-1] != 1:
        raise ValueError(f"layer sizes {sizes} are not a make_mlp network (dim, width, ..., width, 1)")
    model = make_mlp(sizes[0], sizes[1], len(sizes) - 1, str(weights.get("activation", "tanh")))
    theta = torch.from_numpy(np.array(weights["theta"], dtype=np.float64, copy=True))
    params = list(model.parameters())
    if theta.numel() != sum(p.numel() for p in params):
        raise ValueError(f"{theta.numel()} weights for a network of {sum(p.numel() for p in params)} parameters")
    with torch.no_grad():
        for p, chunk in zip(params, torch.split(theta, [p.numel() for p in params])):
            p.copy_(chunk.view_as(p))
    return model


def _optim_summary(res: OptimResult) -> dict:
    """An :class:`pml.nn.flat.OptimResult` as plain data (its history, RMSEs, counts, stop and wall time)."""
    return {
        "history": {k: np.asarray(v) for k, v in res.history.items()},
        "train_rmse": float(res.train_rmse),
        "test_rmse": float(res.test_rmse),
        "n_iter": int(res.n_iter),
        "n_fev": int(res.n_fev),
        "stop_reason": str(res.stop_reason),
        "message": str(res.message),
        "seconds": float(res.wall_s),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Cost model: CPU-seconds on one core of the machine that built this book
# ---------------------------------------------------------------------------------------------------------------------

# Constants fitted to CPU times (time.process_time) of the tasks below at widths 20 and 40 and 2k-20k points, one
# thread, on the 2-core x86-64 machine that built this book. A forward + backward pass on n points costs
# n * (point_param * N + point_unit * H) for N parameters and H hidden units: at these widths the tanh units, not the
# matrix products, dominate. A forward pass alone is a third of that.
COST = {
    "task": 0.1,  # fixed cost of a task (data, network, bookkeeping)
    "point_param": 5e-11,  # forward + backward, per point and parameter
    "point_unit": 1.75e-8,  # forward + backward, per point and hidden unit
    "adam_step": 5e-4,  # per Adam step: the update and the loop
    "bfgs_iter": 1.2e-3,  # per BFGS iteration: the line search's bookkeeping
    "bfgs_fev": 1.1,  # loss-and-gradient evaluations per BFGS iteration (SciPy's Wolfe line search)
    "bfgs_update": 2.4e-9,  # per N^2: the rank-two inverse-Hessian update
    "hessian_passes": 2.3,  # the forward-over-reverse Hessian costs this many passes per parameter
    "eigh": 4.5e-10,  # per N^3: torch.linalg.eigh
    "line_search": 60,  # forward passes per low-curvature line search (grid and zooms)
}


def _pass_seconds(n_params: int, n_units: int, n_points: int, forward_only: bool = False) -> float:
    per_point = COST["point_param"] * n_params + COST["point_unit"] * n_units
    return per_point * n_points / (3.0 if forward_only else 1.0)


def _hessian_seconds(n_params: int, n_units: int, n_points: int) -> float:
    """The dense Hessian, its eigendecomposition and one gradient."""
    return ((COST["hessian_passes"] * n_params + 1) * _pass_seconds(n_params, n_units, n_points)
            + COST["eigh"] * n_params**3)


def _within(seconds: float, *budgets: float | None) -> float:
    """``seconds``, or the wall-clock budget when one is set and smaller."""
    limits = [b for b in budgets if b is not None]
    return float(min([seconds, *limits])) if limits else float(seconds)


# ---------------------------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ChapterTask(Task):
    """A task whose fields may hold the tasks it depends on: those enter the key by their own key fields, so their
    execution settings stay out of it too."""

    def key_fields(self) -> dict[str, Any]:
        return {f.name: value.key_fields() if isinstance(value, Task) else _canonical(value)
                for f in dataclasses.fields(self) if f.name not in self.EXECUTION_FIELDS
                for value in (getattr(self, f.name),)}


@dataclass(frozen=True)
class NetworkProblem(Config):
    """The problem and the network of a run: the fields every task and sweep of the chapter starts from."""

    problem: str = "teacher"  # "teacher", "quintic" or an equation id (Z.001, Z.008, I.11.19)
    n_train: int = 100_000
    n_test: int = 10_000
    width: int = 40
    depth: int = 3

    def problem_fields(self) -> dict[str, Any]:
        """These five fields by name, to build a task of the same problem and network."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(NetworkProblem)}

    def n_params(self) -> int:
        """Parameters of the dense tanh network, N."""
        return dense_param_count(problem_dim(self.problem), self.width, self.depth)

    def n_units(self) -> int:
        """Hidden units of the network."""
        return self.width * (self.depth - 1)


@dataclass(frozen=True)
class AdamTask(NetworkProblem, _ChapterTask):
    """Full-batch Adam at one learning rate from the initialisation ``seed`` (Figs. 7-9); returns the curve, the
    lowest and the final test RMSE, and the final weights (:func:`net_weights`)."""

    lr: float = 1e-3
    n_steps: int = 30_000
    log_every: int = 10  # thinning of the stored curve
    seed: int = 0  # data and the initialisation
    threads: int = 1

    def cost(self) -> float:
        # every step: forward + backward on the training set and a forward pass on the test set (test_every_step)
        N, H = self.n_params(), self.n_units()
        per_step = (COST["adam_step"] + _pass_seconds(N, H, self.n_train)
                    + _pass_seconds(N, H, self.n_test, forward_only=True))
        return COST["task"] + self.n_steps * per_step

    def run(self) -> dict:
        X, y, Xt, yt = problem_data(self.problem, self.n_train, self.n_test, self.seed)
        model = make_mlp(_dim(X), self.width, self.depth, "tanh", seed=self.seed)
        cfg = training.TrainConfig(lr=self.lr, n_steps=self.n_steps, batch_size=self.n_train, normalize_inputs=False,
                                   log_every=self.log_every, selection="min_test", test_every_step=True)
        start = time.perf_counter()
        res = training.train(model, X, y, Xt, yt, cfg)
        seconds = time.perf_counter() - start
        # test[s] is after update s, i.e. before update s + 1: the curve starts at the initialisation
        return {
            "step": np.concatenate([[0], res.history_step + 1]).astype(np.int64),
            "rmse": np.concatenate([[res.initial_test], res.history_test]).astype(np.float64),
            "min_test": float(min(res.min_test, res.initial_test)),
            "final_test": float(res.final_test),
            "y_rms": _rms(yt),
            "seconds": seconds,
            "weights": net_weights(model),
        }


@dataclass(frozen=True)
class HessianTask(_ChapterTask):
    """Fig. 7: the Hessian of the training MSE over all parameters at the end point of an Adam run, its spectrum
    and the gradient's projections on its eigenvectors (eigenvectors not kept)."""

    adam: AdamTask
    threads: int = 1

    def inputs(self) -> dict[str, Task]:
        return {"adam": self.adam}

    def cost(self) -> float:
        a = self.adam
        return COST["task"] + _hessian_seconds(a.n_params(), a.n_units(), a.n_train)

    def run(self, adam: dict) -> dict:
        a = self.adam
        X, y, _, _ = problem_data(a.problem, a.n_train, a.n_test, a.seed)
        model = net_from_weights(adam["weights"])
        start = time.perf_counter()
        spec = hessian.spectrum(model, X, y)
        k = FlatModel(model, X, y).first_param_size()
        # The authors' first-layer projection from the same eigenvectors: no second Hessian.
        first = np.abs(spec.eigenvectors[:k, :].T @ spec.gradient[:k])
        return {
            "eigenvalues": np.asarray(spec.eigenvalues, dtype=np.float64),
            "grad_projections": np.asarray(spec.grad_projections, dtype=np.float64),
            "grad_projections_first_layer": np.asarray(first, dtype=np.float64),
            "gradient_norm": float(np.linalg.norm(spec.gradient)),
            "train_rmse": math.sqrt(spec.loss),
            "lr": float(a.lr),
            "seconds": time.perf_counter() - start,
        }


def _boosted_so_far(previous: dict | None, stage: int) -> dict:
    """The boosted model before ``stage``: {"weights": [...], "scales": [...]} (empty for stage 0)."""
    if stage == 0:
        return {"weights": [], "scales": []}
    if previous is None or len(previous["model"]["weights"]) != stage:
        raise ValueError(f"boosting stage {stage} needs the {stage} stages before it as its input")
    return previous["model"]


@dataclass(frozen=True)
class BFGSSettings(NetworkProblem):
    """A BFGS run's problem, network and stopping rule: shared by the BFGS task and the width-40 sweep."""

    gtol: float = 1e-60
    maxiter: int = 25_000
    time_limit: float | None = None  # seconds; None: run until BFGS itself stops
    log_every: int = 10
    engine: str = "rank2"  # "scipy" is the authors' call; "rank2" the same iteration in O(N^2) per step
    seed: int = 0  # data; the net is initialised from seed + stage


@dataclass(frozen=True)
class BFGSTask(BFGSSettings, _ChapterTask):
    """BFGS on a fresh width-``width`` net (seed + stage) until SciPy's stop; stage k > 0 fits the normalised residual
    of ``previous``'s boosted model. Returns the history, the RMSEs and the boosted model after this stage."""

    stage: int = 0  # boosting stage (0: fit y)
    previous: LowCurvatureTask | None = None  # stage > 0: the stage before
    normaliser: str = "mean_abs"  # boosting scale c (the authors' mean |residual|)
    threads: int = 1

    def __post_init__(self):
        if (self.stage == 0) != (self.previous is None) or self.stage < 0:
            raise ValueError(f"boosting stage {self.stage} needs previous (the stage before) exactly when stage > 0")

    def inputs(self) -> dict[str, Task]:
        return {} if self.previous is None else {"previous": self.previous}

    def data(self):
        """(X, y, X_test, y_test), the test set None when ``n_test`` is 0."""
        X, y, Xt, yt = problem_data(self.problem, self.n_train, self.n_test, self.seed)
        return (X, y, Xt, yt) if self.n_test > 0 else (X, y, None, None)

    def cost(self) -> float:
        """An upper bound: ``maxiter`` iterations (BFGS usually stops earlier), within ``time_limit``."""
        N, H = self.n_params(), self.n_units()
        per_iter = (COST["bfgs_iter"] + COST["bfgs_fev"] * _pass_seconds(N, H, self.n_train)
                    + COST["bfgs_update"] * N**2 + _pass_seconds(N, H, self.n_test, forward_only=True) / self.log_every)
        return COST["task"] + _within(self.maxiter * per_iter, self.time_limit)

    def run(self, previous: dict | None = None) -> dict:
        X, y, Xt, yt = self.data()
        before = _boosted_so_far(previous, self.stage)
        models = [net_from_weights(w) for w in before["weights"]]
        models.append(make_mlp(_dim(X), self.width, self.depth, "tanh", seed=self.seed + self.stage))
        trainer = functools.partial(bfgs, gtol=self.gtol, maxiter=self.maxiter, log_every=self.log_every,
                                    time_limit=self.time_limit, engine=self.engine)
        boosted = boosting.boost(models, X, y, trainer, Xt, yt, normaliser=self.normaliser, n_pretrained=self.stage)
        res = boosted.stages[self.stage].result
        return {
            **_optim_summary(res),
            "scale": float(boosted.scales[self.stage]),
            "model": {"weights": list(before["weights"]) + [net_weights(models[-1])],
                      "scales": [float(c) for c in boosted.scales]},
            "y_rms": _rms(y if yt is None else yt),
        }


def _low_curvature(model, X, y, X_test=None, y_test=None, *, time_limit: float | None, **kwargs):
    """A boosting stage trainer: low-curvature subspace steps, stopped after ``time_limit`` seconds (None: never)."""
    callback = None
    if time_limit is not None:
        start = time.perf_counter()
        callback = lambda row: time.perf_counter() - start >= time_limit
    return low_curvature_steps(model, X, y, X_test=X_test, y_test=y_test, callback=callback, **kwargs)


@dataclass(frozen=True)
class LowCurvatureTask(_ChapterTask):
    """Low-curvature subspace steps (|lambda| < tau, §4.2) from the end point of ``bfgs`` on the same target; returns
    the history and the boosted model after this stage with its RMSEs."""

    bfgs: BFGSTask
    tau: float = 1e-15
    n_steps: int = 500
    rule: str = "abs"  # "abs": |lambda| < tau (the code); "signed": lambda < tau (the paper's text)
    alpha_min: float = 1e-12
    alpha_max: float = 1e12
    n_grid: int = 15
    allow_increase: bool = False  # True: always take the line-search step, as the authors' code
    time_limit: float | None = None  # seconds
    threads: int = 1

    def inputs(self) -> dict[str, Task]:
        return {"bfgs": self.bfgs}

    def cost(self) -> float:
        """An upper bound: ``n_steps`` steps (a stage that stops improving ends early), within ``time_limit``."""
        b = self.bfgs
        N, H = b.n_params(), b.n_units()
        per_step = (_hessian_seconds(N, H, b.n_train)
                    + COST["line_search"] * _pass_seconds(N, H, b.n_train, forward_only=True)
                    + _pass_seconds(N, H, b.n_test, forward_only=True))
        return COST["task"] + _within(self.n_steps * per_step, self.time_limit)

    def run(self, bfgs: dict) -> dict:
        b = self.bfgs
        X, y, Xt, yt = b.data()
        weights = bfgs["model"]["weights"]
        models = [net_from_weights(w) for w in weights]
        trainer = functools.partial(
            _low_curvature, time_limit=self.time_limit, tau=self.tau, n_steps=self.n_steps, rule=self.rule,
            alpha_min=self.alpha_min, alpha_max=self.alpha_max, n_grid=self.n_grid, allow_increase=self.allow_increase)
        boosted = boosting.boost(models, X, y, trainer, Xt, yt, normaliser=b.normaliser, n_pretrained=b.stage)
        scales = [float(c) for c in boosted.scales]
        if scales[-1] != bfgs["scale"]:
            raise RuntimeError(f"stage {b.stage}: residual scale {scales[-1]!r}, but BFGS had {bfgs['scale']!r}")
        out = {
            **_optim_summary(boosted.stages[b.stage].result),
            "scale": scales[-1],
            "model": {"weights": list(weights[:-1]) + [net_weights(models[-1])], "scales": scales},
            "final_train_rmse": _rms(boosting.predict_stages(models, scales, X) - y),
            "final_test_rmse": math.nan,
            "merged_test_rmse": math.nan,
        }
        if Xt is not None:
            out["final_test_rmse"] = _rms(boosting.predict_stages(models, scales, Xt) - yt)
            merged = boosting.merge_stages(models, scales)
            with torch.no_grad():
                merged_pred = merged(torch.from_numpy(np.asarray(Xt, dtype=np.float64))).reshape(-1).numpy()
            out["merged_test_rmse"] = _rms(merged_pred - yt)
        return out


# ---------------------------------------------------------------------------------------------------------------------
# Adam sweep (Figs. 8-9) and the Hessian spectrum after Adam (Fig. 7)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdamSweep(NetworkProblem, Sweep):
    """Adam at every learning rate from one initialisation (Figs. 8-9), one task per rate, and optionally Fig. 7's
    spectrum at the end point of the run with ``spectrum_lr``."""

    lrs: tuple[float, ...] = PAPER_LRS
    n_steps: int = 30_000  # Figs. 7-8: 30k; Fig. 9: 50k
    log_every: int = 10
    seed: int = 0
    spectrum_lr: float | None = None  # Fig. 7: the Hessian spectrum after the run with this lr (None: none)

    def adam_task(self, lr: float) -> AdamTask:
        return AdamTask(**self.problem_fields(), lr=lr, n_steps=self.n_steps, log_every=self.log_every,
                        seed=self.seed)

    def tasks(self) -> list[Task]:
        if self.spectrum_lr is not None and self.spectrum_lr not in self.lrs:
            raise ValueError(f"spectrum_lr {self.spectrum_lr} is not among the learning rates {self.lrs}")
        tasks: list[Task] = [self.adam_task(lr) for lr in self.lrs]
        if self.spectrum_lr is not None:
            tasks.append(HessianTask(adam=self.adam_task(self.spectrum_lr)))
        return tasks

    def assemble(self, results: Sequence[dict]) -> AdamResult:
        runs = results[: len(self.lrs)]
        spectrum = None
        if self.spectrum_lr is not None:
            spectrum = SpectrumSummary(**results[len(self.lrs)])
        return AdamResult(
            problem=self.problem,
            lrs=tuple(self.lrs),
            curves=tuple(Curve(r["step"], r["rmse"], f"Adam lr={lr:g}") for lr, r in zip(self.lrs, runs)),
            min_test=np.asarray([r["min_test"] for r in runs], dtype=np.float64),
            final_test=np.asarray([r["final_test"] for r in runs], dtype=np.float64),
            y_rms=float(runs[0]["y_rms"]),
            seconds_per_step=sum(r["seconds"] for r in runs) / (self.n_steps * len(self.lrs)),
            spectrum=spectrum,
        )


@dataclass(frozen=True)
class SpectrumSummary:
    """The Hessian at the end of an Adam run (Fig. 7), over all N parameters, without the eigenvectors."""

    eigenvalues: np.ndarray  # ascending (torch.linalg.eigh)
    grad_projections: np.ndarray  # |g . e_i| with the full gradient, same order
    grad_projections_first_layer: np.ndarray  # the authors' notebook: first-layer slices of g and e_i only
    gradient_norm: float
    train_rmse: float
    lr: float
    seconds: float

    @property
    def n_params(self) -> int:
        return int(self.eigenvalues.size)

    def descending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(eigenvalues, full projections, first-layer projections) in Fig. 7's order: largest eigenvalue first."""
        return self.eigenvalues[::-1], self.grad_projections[::-1], self.grad_projections_first_layer[::-1]

    def _spectrum(self, first_layer: bool = False) -> hessian.Spectrum:
        proj = self.grad_projections_first_layer if first_layer else self.grad_projections
        return hessian.Spectrum(self.eigenvalues, np.empty((0, 0)), np.empty(0), proj, self.train_rmse**2, first_layer)

    def gradient_fraction_top(self, fraction: float = 0.1, first_layer: bool = False) -> float:
        """Share of |g|^2 in the top ``fraction`` of eigendirections ranked by |eigenvalue| (curvature magnitude)."""
        k = max(1, int(round(fraction * self.n_params)))
        return hessian.gradient_fraction_top_k(self._spectrum(first_layer), k, by="abs")

    def counts(self) -> dict[str, int]:
        return hessian.eigenvalue_counts(self._spectrum())

    def top_eigenvalue(self) -> float:
        return hessian.top_eigenvalue(self._spectrum())

    def bulk_fraction(self, rel: float = 1e-8) -> float:
        """Fraction of eigenvalues with |lambda| < rel * lambda_max: the near-zero bulk."""
        return float(np.mean(np.abs(self.eigenvalues) < rel * self.top_eigenvalue()))

    def n_top(self, rel: float = 1e-3) -> int:
        """Number of eigenvalues above rel * lambda_max: the top cluster."""
        return int(np.sum(self.eigenvalues > rel * self.top_eigenvalue()))


@dataclass(frozen=True)
class AdamResult:
    problem: str
    lrs: tuple[float, ...]
    curves: tuple[Curve, ...]  # one per lr: test RMSE before each update (step 0 = the initialisation)
    min_test: np.ndarray  # per lr: the lowest test RMSE over the run
    final_test: np.ndarray  # per lr: after the last update
    y_rms: float  # RMS of the test targets (relative RMSE = RMSE / y_rms)
    seconds_per_step: float  # wall time per Adam step, averaged over the sweep
    spectrum: SpectrumSummary | None

    @property
    def best(self) -> float:
        """The best Adam: the lowest test RMSE of any learning rate at any step (the most generous reading)."""
        return float(np.nanmin(self.min_test))

    @property
    def best_lr(self) -> float:
        return float(self.lrs[int(np.nanargmin(self.min_test))])


# ---------------------------------------------------------------------------------------------------------------------
# BFGS alone (the width-40 comparison curve of Fig. 8)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BFGSSweep(BFGSSettings, Sweep):
    """One width-40 net trained by BFGS alone until SciPy's precision-loss stop (Fig. 8, "width-40 BFGS")."""


    def tasks(self) -> list[Task]:
        return [BFGSTask(**self.to_dict())]

    def assemble(self, results: Sequence[dict]) -> BFGSResult:
        (r,) = results
        h = r["history"]
        return BFGSResult(
            problem=self.problem,
            curve=Curve(h["step"], h["test_rmse"], f"BFGS width {self.width}"),
            test_rmse=r["test_rmse"],
            train_rmse=r["train_rmse"],
            n_iter=r["n_iter"],
            stop_reason=r["stop_reason"],
            message=r["message"],
            y_rms=r["y_rms"],
            seconds_per_iter=r["seconds"] / max(r["n_iter"], 1),
        )


@dataclass(frozen=True)
class BFGSResult:
    problem: str
    curve: Curve
    test_rmse: float
    train_rmse: float
    n_iter: int
    stop_reason: str
    message: str
    y_rms: float
    seconds_per_iter: float


# ---------------------------------------------------------------------------------------------------------------------
# The combined pipeline: BFGS -> low-curvature steps -> boosting (BFGS -> low-curvature steps)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CombinedSweep(NetworkProblem, Sweep):
    """Figs. 8-9's "BFGS + low-curvature + boosting": per stage a BFGS task then a low-curvature task, each stage's BFGS
    taking the previous stage's low-curvature result as input."""

    width: int = 20  # per stage (paper: 20 + 20 = 40)
    n_stages: int = 2  # f1 and one boosted f2
    gtol: float = 1e-60
    maxiter: int = 25_000  # per BFGS stage
    time_limit: float | None = None  # per BFGS stage, seconds
    lc_steps: int = 500  # low-curvature steps after each BFGS stage
    lc_time_limit: float | None = None  # per low-curvature stage, seconds
    tau: float = 1e-15  # |lambda| < tau (the scripts of Figs. 8-9)
    lc_rule: str = "abs"  # "abs": |lambda| < tau (the code); "signed": lambda < tau (the paper's text)
    alpha_max: float = 1e12  # upper end of the logarithmic line search (Figs. 8-9 scripts)
    line_search: tuple[tuple[float, int], ...] | None = None  # (alpha_min, n_grid) per stage; None: PAPER_LINE_SEARCH
    allow_increase: bool = False  # True: always take the line-search step, as the authors' code
    normaliser: str = "mean_abs"  # boosting scale c
    log_every: int = 10
    engine: str = "rank2"
    seed: int = 0  # data; stage k's net is initialised from seed + k

    def stage_line_search(self) -> tuple[tuple[float, int], ...]:
        if self.line_search is not None:
            if len(self.line_search) != self.n_stages:
                raise ValueError(f"line_search needs one (alpha_min, n_grid) per stage, got {self.line_search}")
            return tuple((float(a), int(n)) for a, n in self.line_search)
        paper = PAPER_LINE_SEARCH.get(self.problem, (DEFAULT_LINE_SEARCH, DEFAULT_LINE_SEARCH))
        return tuple(paper[min(k, len(paper) - 1)] for k in range(self.n_stages))

    def tasks(self) -> list[Task]:
        """[BFGS f1, low-curvature f1, BFGS f2, low-curvature f2, ...]."""
        if self.n_stages < 1:
            raise ValueError(f"n_stages must be >= 1, got {self.n_stages}")
        tasks: list[Task] = []
        previous = None
        for k, (alpha_min, n_grid) in enumerate(self.stage_line_search()):
            bfgs = BFGSTask(**self.problem_fields(), gtol=self.gtol, maxiter=self.maxiter, time_limit=self.time_limit,
                            log_every=self.log_every, engine=self.engine, seed=self.seed, stage=k, previous=previous,
                            normaliser=self.normaliser)
            previous = LowCurvatureTask(bfgs=bfgs, tau=self.tau, n_steps=self.lc_steps, rule=self.lc_rule,
                                        alpha_min=alpha_min, alpha_max=self.alpha_max, n_grid=n_grid,
                                        allow_increase=self.allow_increase, time_limit=self.lc_time_limit)
            tasks += [bfgs, previous]
        return tasks

    def assemble(self, results: Sequence[dict]) -> CombinedResult:
        # One running x axis; each stage's RMSEs are relative to its scaled target, so the combined ones are c_k times.
        steps, values, boundaries, stages, offset = [], [], [], [], 0
        lc_time, lc_count = 0.0, 0
        for k, (alpha_min, _) in enumerate(self.stage_line_search()):
            bf, lc = results[2 * k], results[2 * k + 1]
            c = lc["scale"]
            bh, lh = bf["history"], lc["history"]
            name = f"f{k + 1}"
            boundaries.append((offset, f"{name} BFGS"))
            steps.append(offset + bh["step"])
            values.append(c * bh["test_rmse"])
            offset += int(bf["n_iter"])
            boundaries.append((offset, f"{name} low-curvature"))
            steps.append(offset + lh["step"][1:])
            values.append(c * lh["test_rmse"][1:])
            offset += int(lc["n_iter"])
            lc_time += lc["seconds"]
            lc_count += lc["n_iter"]
            stages.append(StageSummary(
                scale=c, bfgs_iters=bf["n_iter"], bfgs_stop=bf["stop_reason"], bfgs_message=bf["message"],
                bfgs_test=c * bf["test_rmse"], bfgs_train=c * bf["train_rmse"], lc_steps=lc["n_iter"],
                lc_stop=lc["stop_reason"], lc_test=c * lc["test_rmse"], lc_train=c * lc["train_rmse"],
                lc_alpha=lh["alpha"][1:], lc_n_directions=lh["n_directions"][1:], alpha_min=alpha_min,
                alpha_max=self.alpha_max, bfgs_seconds=bf["seconds"], lc_seconds=lc["seconds"],
            ))
        last = results[-1]
        return CombinedResult(
            problem=self.problem,
            curve=Curve(np.concatenate(steps), np.concatenate(values), "BFGS + low-curvature + boosting"),
            boundaries=tuple(boundaries),
            stages=tuple(stages),
            test_rmse=last["final_test_rmse"],
            train_rmse=last["final_train_rmse"],
            merged_test_rmse=last["merged_test_rmse"],
            y_rms=results[0]["y_rms"],
            seconds_per_hessian_step=lc_time / lc_count if lc_count else math.nan,
        )


@dataclass(frozen=True)
class StageSummary:
    """One boosting stage: BFGS then low-curvature steps; RMSEs are those of the combined model F_k."""

    scale: float  # c_k (1 for the first stage)
    bfgs_iters: int
    bfgs_stop: str
    bfgs_message: str
    bfgs_test: float  # combined test RMSE after this stage's BFGS
    bfgs_train: float
    lc_steps: int
    lc_stop: str
    lc_test: float  # combined test RMSE after this stage's low-curvature steps
    lc_train: float
    lc_alpha: np.ndarray  # the step taken at each low-curvature step (0: no decrease found)
    lc_n_directions: np.ndarray
    alpha_min: float
    alpha_max: float
    bfgs_seconds: float
    lc_seconds: float


@dataclass(frozen=True)
class CombinedResult:
    problem: str
    curve: Curve  # combined test RMSE against the running count of optimisation steps
    boundaries: tuple[tuple[int, str], ...]  # (first step, stage name) of each segment of ``curve``
    stages: tuple[StageSummary, ...]
    test_rmse: float  # of the final combined model F = sum_k c_k f_k
    train_rmse: float
    merged_test_rmse: float  # the same model merged into one width-(sum of widths) network (merge_stages)
    y_rms: float
    seconds_per_hessian_step: float  # wall time of one low-curvature step (Hessian + eigh + line search)


# ---------------------------------------------------------------------------------------------------------------------
# §4.2's text claims: BFGS on a random quintic until precision loss, then low-curvature steps at several tau
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuinticSweep(Sweep):
    """A width-20 tanh net fit to a random quintic by BFGS until precision loss, then, from that solution,
    ``lc_steps`` low-curvature steps for each tau: one BFGS task and one low-curvature task per tau (its input)."""

    n_train: int = 50_000  # the notebook's (no test set: the claims are about the training RMSE)
    width: int = 20  # the notebook's width; the paper's text says 40
    depth: int = 3
    gtol: float = 1e-40
    maxiter: int = 25_000
    time_limit: float | None = None  # BFGS, seconds
    taus: tuple[float, ...] = (1e-6, 1e-8, 1e-10, 1e-12, 1e-14, 1e-16, 1e-18)
    lc_steps: int = 200  # per tau, each from the BFGS solution
    lc_time_limit: float | None = None  # per tau, seconds
    lc_rule: str = "abs"
    alpha_min: float = 1e-12
    alpha_max: float = 1e18  # the notebook's sweep
    n_grid: int = 15
    allow_increase: bool = False
    log_every: int = 10
    engine: str = "rank2"
    seed: int = 0  # the quintic's coefficients and the inputs (the authors' draw was unseeded)

    def bfgs_task(self) -> BFGSTask:
        return BFGSTask(problem="quintic", n_train=self.n_train, n_test=0, width=self.width, depth=self.depth,
                        gtol=self.gtol, maxiter=self.maxiter, time_limit=self.time_limit, log_every=self.log_every,
                        engine=self.engine, seed=self.seed)

    def tasks(self) -> list[Task]:
        bfgs = self.bfgs_task()
        return [bfgs] + [
            LowCurvatureTask(bfgs=bfgs, tau=tau, n_steps=self.lc_steps, rule=self.lc_rule, alpha_min=self.alpha_min,
                             alpha_max=self.alpha_max, n_grid=self.n_grid, allow_increase=self.allow_increase,
                             time_limit=self.lc_time_limit)
            for tau in self.taus
        ]

    def assemble(self, results: Sequence[dict]) -> QuinticResult:
        bf, lcs = results[0], results[1:]
        at_max = []
        for lc in lcs:
            alphas = lc["history"]["alpha"][1:]
            taken = alphas[alphas > 0]
            # the grid's last point, or beyond it after an edge zoom: the bound limited the step
            at_max.append(float(np.mean(taken >= self.alpha_max)) if taken.size else 0.0)
        lc_count = sum(lc["n_iter"] for lc in lcs)
        return QuinticResult(
            coefficients=np.asarray(teacher.random_quintic(self.seed).coef, dtype=np.float64),
            bfgs_curve=Curve(bf["history"]["step"], bf["history"]["train_rmse"], "BFGS"),
            bfgs_rmse=bf["train_rmse"],
            bfgs_iters=bf["n_iter"],
            bfgs_stop=bf["stop_reason"],
            bfgs_message=bf["message"],
            taus=tuple(self.taus),
            lc_curves=tuple(Curve(lc["history"]["step"], lc["history"]["train_rmse"], f"tau={tau:g}")
                            for tau, lc in zip(self.taus, lcs)),
            lc_rmse=np.asarray([lc["train_rmse"] for lc in lcs], dtype=np.float64),
            lc_steps_done=np.asarray([lc["n_iter"] for lc in lcs], dtype=np.int64),
            lc_stop=tuple(lc["stop_reason"] for lc in lcs),
            lc_alpha_at_max=np.asarray(at_max, dtype=np.float64),
            y_rms=bf["y_rms"],
            seconds_per_bfgs_iter=bf["seconds"] / max(bf["n_iter"], 1),
            seconds_per_lc_step=sum(lc["seconds"] for lc in lcs) / lc_count if lc_count else math.nan,
        )


@dataclass(frozen=True)
class QuinticResult:
    coefficients: np.ndarray  # ascending powers
    bfgs_curve: Curve  # train RMSE against BFGS iterations
    bfgs_rmse: float  # train RMSE where BFGS stopped
    bfgs_iters: int
    bfgs_stop: str
    bfgs_message: str
    taus: tuple[float, ...]
    lc_curves: tuple[Curve, ...]  # train RMSE against low-curvature steps, one per tau
    lc_rmse: np.ndarray  # final train RMSE per tau
    lc_steps_done: np.ndarray
    lc_stop: tuple[str, ...]
    lc_alpha_at_max: np.ndarray  # per tau: fraction of the steps that took alpha at the upper grid edge region
    y_rms: float  # RMS of the training targets
    seconds_per_bfgs_iter: float
    seconds_per_lc_step: float

    def gain(self, tau: float) -> float:
        """RMSE after BFGS / RMSE after the low-curvature steps at ``tau``."""
        return float(self.bfgs_rmse / self.lc_rmse[list(self.taus).index(tau)])


# ---------------------------------------------------------------------------------------------------------------------
# The chapter's steps
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group(Sweep):
    """Several sweeps of one figure panel as one step: the tasks of each in turn; the result maps names to results."""

    parts: tuple[tuple[str, Sweep], ...] = ()

    def tasks(self) -> list[Task]:
        return [task for _, sweep in self.parts for task in sweep.tasks()]

    def assemble(self, results: Sequence[dict]) -> dict[str, Any]:
        out, i = {}, 0
        for name, sweep in self.parts:
            n = len(sweep.tasks())
            out[name] = sweep.assemble(results[i: i + n])
            i += n
        return out


ONE_D = ("teacher", "Z.001")  # Fig. 8's problems
TWO_D = "Z.008"  # Fig. 9 top
SIX_D = "I.11.19"  # Fig. 9 bottom


def steps(params: Mapping[str, Any]) -> dict[str, Sweep]:
    """The chapter's sweeps: ``fig7_adam``, ``fig8_teacher``, ``fig8_equation``, ``fig9_2d``, ``fig9_6d``, ``quintic``.
    """
    p = params
    common = dict(n_train=int(p["n_train"]), n_test=int(p["n_test"]), log_every=int(p["log_every"]),
                  seed=int(p["seed"]))
    adam = dict(common, lrs=tuple(p["adam_lrs"]), n_steps=int(p["adam_steps"]))
    adam_highd = dict(adam, n_steps=int(p["adam_steps_highd"]))
    bfgs = dict(common, maxiter=int(p["bfgs_maxiter"]), time_limit=p["bfgs_time_limit"])
    comb = dict(bfgs, lc_steps=int(p["lc_steps"]), lc_time_limit=p["lc_time_limit"], tau=p["tau"],
                alpha_max=p["alpha_max"])
    return {
        "fig7_adam": AdamSweep(problem="teacher", spectrum_lr=p["spectrum_lr"], **adam),
        "fig8_teacher": Group((("bfgs", BFGSSweep(problem="teacher", **bfgs)),
                               ("combined", CombinedSweep(problem="teacher", **comb)))),
        "fig8_equation": Group((("adam", AdamSweep(problem="Z.001", **adam)),
                                ("bfgs", BFGSSweep(problem="Z.001", **bfgs)),
                                ("combined", CombinedSweep(problem="Z.001", **comb)))),
        "fig9_2d": Group((("adam", AdamSweep(problem=TWO_D, **adam_highd)),
                          ("combined", CombinedSweep(problem=TWO_D, **comb)))),
        "fig9_6d": Group((("adam", AdamSweep(problem=SIX_D, **adam_highd)),
                          ("combined", CombinedSweep(problem=SIX_D, **comb)))),
        "quintic": QuinticSweep(
            n_train=int(p["quintic_n_train"]), maxiter=int(p["quintic_bfgs_maxiter"]),
            time_limit=p["quintic_bfgs_time_limit"], taus=tuple(p["quintic_taus"]),
            lc_steps=int(p["quintic_lc_steps"]), lc_time_limit=p["quintic_lc_time_limit"],
            alpha_max=p["quintic_alpha_max"], seed=int(p["seed"]),
        ),
    }


COST_PARTS = ("adam", "hessian_fig7", "bfgs_width40", "combined_bfgs", "low_curvature", "quintic")


def _parts(sweep: Sweep):
    if isinstance(sweep, Group):
        for _, part in sweep.parts:
            yield from _parts(part)
    else:
        yield sweep


def paper_estimate(sweeps: Mapping[str, Sweep]) -> dict[str, float]:
    """Estimated CPU-seconds (the tasks' cost model) of the chapter's steps by kind of work (``COST_PARTS``) and in
    ``total``; a task shared by several steps counts once."""
    out = dict.fromkeys(COST_PARTS, 0.0)
    seen: set[str] = set()
    for sweep in sweeps.values():
        for part in _parts(sweep):
            for task in part.tasks():
                key = task.key()
                if key in seen:
                    continue
                seen.add(key)
                if isinstance(part, QuinticSweep):
                    kind = "quintic"
                elif isinstance(task, HessianTask):
                    kind = "hessian_fig7"
                elif isinstance(task, AdamTask):
                    kind = "adam"
                elif isinstance(part, BFGSSweep):
                    kind = "bfgs_width40"
                elif isinstance(task, BFGSTask):
                    kind = "combined_bfgs"
                else:
                    kind = "low_curvature"
                out[kind] += task.cost()
    out["total"] = sum(out.values())
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Numbers for the chapter's prose (plain Python values, ready for myst_nb.glue)
# ---------------------------------------------------------------------------------------------------------------------


def spectrum_numbers(spectrum: SpectrumSummary, top_fraction: float = 0.1) -> dict[str, float | int]:
    """Fig. 7's numbers: counts, the largest eigenvalue, the bulk and top-cluster shares, the gradient's share."""
    counts = spectrum.counts()
    return {
        "n_params": spectrum.n_params,
        "n_nonneg": counts["nonnegative"],
        "n_neg": counts["negative"],
        "top_eig": spectrum.top_eigenvalue(),
        "most_negative": float(spectrum.eigenvalues[0]),
        "min_abs_eig": float(np.min(np.abs(spectrum.eigenvalues))),
        "bulk_fraction": spectrum.bulk_fraction(1e-8),
        "top_cluster_fraction": spectrum.n_top(1e-3) / spectrum.n_params,
        "n_top_cluster": spectrum.n_top(1e-3),
        "top_percent": 100 * top_fraction,
        "grad_top": spectrum.gradient_fraction_top(top_fraction),
        "grad_top_first_layer": spectrum.gradient_fraction_top(top_fraction, first_layer=True),
        "train_rmse": spectrum.train_rmse,
        "lr": spectrum.lr,
        "seconds": spectrum.seconds,
    }


def _share_at_max(combined: CombinedResult) -> float:
    """Share of the low-curvature steps taken (alpha > 0) whose alpha reached the line search's upper bound."""
    taken = np.concatenate([s.lc_alpha[s.lc_alpha > 0] for s in combined.stages])
    bound = np.concatenate([np.full(int(np.sum(s.lc_alpha > 0)), s.alpha_max) for s in combined.stages])
    return float(np.mean(taken >= bound)) if taken.size else 0.0


def learning_numbers(adam: AdamResult, bfgs: BFGSResult | None,
                     combined: CombinedResult) -> dict[str, float | int | str]:
    """Figs. 8-9's numbers for one problem: absolute and relative test RMSEs of each method, and the gains."""
    first, last = combined.stages[0], combined.stages[-1]
    out: dict[str, float | int | str] = {
        "y_rms": combined.y_rms,
        "adam_best": adam.best,
        "adam_best_rel": adam.best / adam.y_rms,
        "adam_best_lr": adam.best_lr,
        "adam_worst": float(np.nanmax(adam.min_test)),
        "f1_bfgs": first.bfgs_test,
        "f1_bfgs_iters": int(first.bfgs_iters),
        "f1_bfgs_stop": first.bfgs_stop,
        "f1_lc": first.lc_test,
        "f1_lc_steps": int(first.lc_steps),
        "f1_lc_stop": first.lc_stop,
        "f1_lc_gain": first.bfgs_test / first.lc_test,
        "lc_at_max": _share_at_max(combined),
        "scale": last.scale,
        "f2_bfgs": last.bfgs_test,
        "f2_bfgs_iters": int(last.bfgs_iters),
        "f2_bfgs_stop": last.bfgs_stop,
        "f2_lc_steps": int(last.lc_steps),
        "final": combined.test_rmse,
        "final_rel": combined.test_rmse / combined.y_rms,
        "final_train": combined.train_rmse,
        "merged_gap": abs(combined.merged_test_rmse - combined.test_rmse),
        "boost_orders": orders(first.lc_test, combined.test_rmse),
        "adam_to_final_orders": orders(adam.best, combined.test_rmse),
    }
    if bfgs is not None:
        out.update({
            "bfgs40": bfgs.test_rmse,
            "bfgs40_rel": bfgs.test_rmse / bfgs.y_rms,
            "bfgs40_iters": int(bfgs.n_iter),
            "bfgs40_stop": bfgs.stop_reason,
            "adam_to_bfgs_orders": orders(adam.best, bfgs.test_rmse),
        })
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}


def quintic_numbers(result: QuinticResult, claim_tau: float) -> dict[str, float | int | str]:
    """The quintic's numbers (§4.2's text): where BFGS stopped and what low-curvature steps at ``claim_tau`` gained."""
    i = list(result.taus).index(claim_tau)
    best = int(np.argmin(result.lc_rmse))
    return {
        "bfgs_rmse": result.bfgs_rmse,
        "bfgs_rmse_rel": result.bfgs_rmse / result.y_rms,
        "bfgs_iters": int(result.bfgs_iters),
        "bfgs_stop": result.bfgs_stop,
        "bfgs_message": result.bfgs_message,
        "lc_rmse": float(result.lc_rmse[i]),
        "lc_gain": result.gain(claim_tau),
        "lc_steps": int(result.lc_steps_done[i]),
        "lc_stop": result.lc_stop[i],
        "lc_at_max": float(result.lc_alpha_at_max[i]),
        "best_tau": float(result.taus[best]),
        "best_gain": float(result.bfgs_rmse / result.lc_rmse[best]),
        "claim_tau": float(claim_tau),
    }


def claim_values(spectrum: dict, learning: dict[str, dict], quintic: dict) -> dict[str, float]:
    """The measured value of every claim C4.n (``pml/book/claimsets/04_optimization.yaml``)."""
    one_d = [learning[p] for p in ONE_D]
    return {
        "C4.1": spectrum["bulk_fraction"],
        "C4.2": spectrum["top_cluster_fraction"],
        "C4.3": spectrum["grad_top"],
        "C4.4": quintic["bfgs_rmse"],
        "C4.5": quintic["lc_gain"],
        "C4.6": min(r["adam_to_bfgs_orders"] for r in one_d),
        "C4.7": learning["teacher"]["boost_orders"],
        "C4.8": max(r["adam_to_final_orders"] for r in one_d),
        "C4.9": min(r["final"] for r in one_d),
        "C4.10": learning[SIX_D]["adam_to_final_orders"],
        "C4.11": min(r["boost_orders"] for r in one_d) - learning[SIX_D]["boost_orders"],
    }
