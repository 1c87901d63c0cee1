"""Paper §4: the loss landscape at low loss (Fig. 7) and the optimisation tricks of §4.2 (Figs. 8-9, the §11 claims).

Every experiment here is a frozen ``Config`` and a pure ``run_*(cfg) -> Result``; the chapter
``book/04_optimization.md`` calls them through :func:`pml.cache.load_or_run`. The methods live in the library and
are only composed here: the targets in :mod:`pml.teacher` / :mod:`pml.equations`, Adam in :mod:`pml.nn.training`, BFGS
and low-curvature steps in :mod:`pml.nn.optimize`, the Hessian in :mod:`pml.nn.hessian`, boosting in :mod:`pml.nn.boosting`.

Protocol (reproduction spec Figs. 7-9, §11 and pitfalls 6-11, 21, 22):

* float64 throughout; inputs are **not** standardised; the test set covers the full training box (pitfall 12).
* Adam: width-40 depth-3 tanh MLP, full batch, one initialisation (``seed``) shared by every learning rate.
* BFGS: SciPy's algorithm with the authors' options (gtol 1e-60, maxiter 25,000), run by
  ``pml.nn.optimize.bfgs(engine="rank2")``, the same iteration with an O(N^2) instead of O(N^3) inverse-Hessian update.
* Combined pipeline: width-20 f1 by BFGS, low-curvature steps, then boosting a second width-20 net on the residual
  normalised by its mean absolute value (pitfall 9), again BFGS and low-curvature steps.
* Everything runs with one torch thread and one BLAS thread: these problems are small, and on a shared 2-core
  machine extra threads only contend (measured: a 2x-10x slow-down of the BFGS update and of the Hessian).

All RMSEs stored are **absolute** (as Figs. 8-9 plot); each result carries ``y_rms`` of its test (or training)
targets so that relative RMSEs are one division away.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from pml import data, equations, teacher
from pml.nn import boosting, hessian, optimize, training
from pml.config import Config
from pml.threads import limit_threads
from pml.nn.networks import make_mlp

__all__ = [
    "PAPER_LRS",
    "PAPER_LINE_SEARCH",
    "problem_data",
    "AdamConfig",
    "AdamResult",
    "SpectrumSummary",
    "run_adam",
    "BFGSConfig",
    "BFGSResult",
    "run_bfgs",
    "CombinedConfig",
    "CombinedResult",
    "run_combined",
    "QuinticConfig",
    "QuinticResult",
    "run_quintic",
    "orders",
]

PAPER_LRS = (0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5, 1e-5)  # spec Fig. 8 (Adam sweep)

# Line search (alpha_min, n_grid) of the low-curvature stages 2 and 4, per problem (spec Fig. 8 "per-script
# overrides"); every other problem uses the defaults (1e-12, 15). The upper bound is a config field.
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
    """(X_train, y_train, X_test, y_test) float64 for a problem of this chapter.

    ``"teacher"``: the 1-3-3-1 tanh teacher on U[-1, 1] (:func:`pml.teacher.teacher_student_data`);
    ``"quintic"``: the random quintic of §11 (:func:`pml.teacher.quintic_data`); otherwise an equation id of
    :mod:`pml.equations` with train and test points uniform on the **full** box (spec pitfall 12).
    """
    if problem == "teacher":
        return teacher.teacher_student_data(n_train, n_test, seed)
    if problem == "quintic":
        return teacher.quintic_data(n_train, n_test, seed)
    eq = equations.get(problem)
    return data.train_test_split(eq.func, eq.ranges, n_train, n_test, seed, fraction=1.0)


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


# ---------------------------------------------------------------------------------------------------------------------
# Adam sweep (Figs. 8-9) and the Hessian spectrum after Adam (Fig. 7)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdamConfig(Config):
    problem: str = "teacher"  # "teacher" or an equation id (Z.001, Z.008, I.11.19)
    n_train: int = 100_000
    n_test: int = 10_000
    width: int = 40
    depth: int = 3
    lrs: tuple[float, ...] = PAPER_LRS
    n_steps: int = 30_000  # Figs. 7-8: 30k; Fig. 9: 50k
    log_every: int = 10  # thinning of the stored curves
    seed: int = 0  # data and the shared initialisation
    spectrum_lr: float | None = None  # Fig. 7: the Hessian spectrum after the run with this lr (None: none)
    num_threads: int = 1


@dataclass(frozen=True)
class SpectrumSummary:
    """The Hessian at the end of an Adam run (Fig. 7), over all N parameters, without the eigenvectors."""

    eigenvalues: np.ndarray  # ascending (torch.linalg.eigh)
    grad_projections: np.ndarray  # |g . e_i| with the full gradient, same order
    grad_projections_first_layer: np.ndarray  # the authors' notebook: first-layer slices of g and e_i only (pitfall 6)
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


def _spectrum_summary(model, X, y, lr: float) -> SpectrumSummary:
    start = time.perf_counter()
    spec = hessian.spectrum(model, X, y)
    k = optimize.FlatModel(model, X, y).first_param_size()
    # The authors' projection (pitfall 6) from the same eigenvectors: no second Hessian.
    first = np.abs(spec.eigenvectors[:k, :].T @ spec.gradient[:k])
    return SpectrumSummary(
        eigenvalues=spec.eigenvalues,
        grad_projections=spec.grad_projections,
        grad_projections_first_layer=first,
        gradient_norm=float(np.linalg.norm(spec.gradient)),
        train_rmse=math.sqrt(spec.loss),
        lr=lr,
        seconds=time.perf_counter() - start,
    )


def run_adam(cfg: AdamConfig) -> AdamResult:
    """Adam at every learning rate from one initialisation (Figs. 8-9), and optionally Fig. 7's spectrum."""
    X, y, Xt, yt = problem_data(cfg.problem, cfg.n_train, cfg.n_test, cfg.seed)
    if cfg.spectrum_lr is not None and cfg.spectrum_lr not in cfg.lrs:
        raise ValueError(f"spectrum_lr {cfg.spectrum_lr} is not among the learning rates {cfg.lrs}")
    train_cfg = dict(n_steps=cfg.n_steps, batch_size=cfg.n_train, normalize_inputs=False, log_every=cfg.log_every,
                     selection="min_test", test_every_step=True)
    curves, min_test, final_test, spectrum = [], [], [], None
    start = time.perf_counter()
    with limit_threads(cfg.num_threads):
        for lr in cfg.lrs:
            model = make_mlp(_dim(X), cfg.width, cfg.depth, "tanh", seed=cfg.seed)
            res = training.train(model, X, y, Xt, yt, training.TrainConfig(lr=lr, **train_cfg))
            # test[s] is after update s, i.e. before update s + 1 (spec pitfall 22: the curve starts at the init)
            steps = np.concatenate([[0], res.history_step + 1])
            values = np.concatenate([[res.initial_test], res.history_test])
            curves.append(Curve(steps, values, f"Adam lr={lr:g}"))
            min_test.append(min(res.min_test, res.initial_test))
            final_test.append(res.final_test)
            if cfg.spectrum_lr is not None and lr == cfg.spectrum_lr:
                spectrum = _spectrum_summary(model, X, y, lr)
    elapsed = time.perf_counter() - start - (spectrum.seconds if spectrum else 0.0)
    return AdamResult(
        problem=cfg.problem,
        lrs=tuple(cfg.lrs),
        curves=tuple(curves),
        min_test=np.asarray(min_test, dtype=np.float64),
        final_test=np.asarray(final_test, dtype=np.float64),
        y_rms=_rms(yt),
        seconds_per_step=elapsed / (cfg.n_steps * len(cfg.lrs)),
        spectrum=spectrum,
    )


# ---------------------------------------------------------------------------------------------------------------------
# BFGS alone (the width-40 comparison curve of Fig. 8)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BFGSConfig(Config):
    problem: str = "teacher"
    n_train: int = 100_000
    n_test: int = 10_000
    width: int = 40
    depth: int = 3
    gtol: float = 1e-60
    maxiter: int = 25_000
    time_limit: float | None = None  # seconds; None: run until BFGS itself stops
    log_every: int = 10
    engine: str = "rank2"  # "scipy" is the authors' call; "rank2" the same iteration in O(N^2) per step
    seed: int = 0
    num_threads: int = 1


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


def _bfgs_kwargs(cfg) -> dict:
    return dict(gtol=cfg.gtol, maxiter=cfg.maxiter, log_every=cfg.log_every, time_limit=cfg.time_limit,
                engine=cfg.engine)


def run_bfgs(cfg: BFGSConfig) -> BFGSResult:
    """One width-40 net trained by BFGS alone until SciPy's precision-loss stop (spec Fig. 8, "width-40 BFGS")."""
    X, y, Xt, yt = problem_data(cfg.problem, cfg.n_train, cfg.n_test, cfg.seed)
    model = make_mlp(_dim(X), cfg.width, cfg.depth, "tanh", seed=cfg.seed)
    with limit_threads(cfg.num_threads):
        res = optimize.bfgs(model, X, y, Xt, yt, **_bfgs_kwargs(cfg))
    h = res.history
    return BFGSResult(
        problem=cfg.problem,
        curve=Curve(h["step"], h["test_rmse"], f"BFGS width {cfg.width}"),
        test_rmse=res.test_rmse,
        train_rmse=res.train_rmse,
        n_iter=res.n_iter,
        stop_reason=res.stop_reason,
        message=res.message,
        y_rms=_rms(yt),
        seconds_per_iter=res.wall_s / max(res.n_iter, 1),
    )


# ---------------------------------------------------------------------------------------------------------------------
# The combined pipeline: BFGS -> low-curvature steps -> boosting (BFGS -> low-curvature steps)
# ---------------------------------------------------------------------------------------------------------------------


def _lc_callback(time_limit: float | None):
    """A low-curvature-steps callback that stops after ``time_limit`` seconds (None: never)."""
    if time_limit is None:
        return None
    start = time.perf_counter()
    return lambda row: time.perf_counter() - start >= time_limit


def _bfgs_then_low_curvature(model, X, y, X_test=None, y_test=None, *, bfgs_kwargs: dict, lc_kwargs: dict,
                             lc_time_limit: float | None) -> dict:
    """A boosting stage trainer (:func:`pml.nn.boosting.boost`): BFGS, then low-curvature subspace steps from there."""
    first = optimize.bfgs(model, X, y, X_test, y_test, **bfgs_kwargs)
    second = optimize.low_curvature_steps(model, X, y, X_test=X_test, y_test=y_test,
                                          callback=_lc_callback(lc_time_limit), **lc_kwargs)
    return {"bfgs": first, "low_curvature": second}


@dataclass(frozen=True)
class CombinedConfig(Config):
    problem: str = "teacher"
    n_train: int = 100_000
    n_test: int = 10_000
    width: int = 20  # per stage (paper: 20 + 20 = 40)
    depth: int = 3
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
    allow_increase: bool = False  # True: always take the line-search step, as the authors' code (pitfall 8)
    normaliser: str = "mean_abs"  # boosting scale c (pitfall 9)
    log_every: int = 10
    engine: str = "rank2"
    seed: int = 0  # data; stage k's net is initialised from seed + k
    num_threads: int = 1

    def stage_line_search(self) -> tuple[tuple[float, int], ...]:
        if self.line_search is not None:
            if len(self.line_search) != self.n_stages:
                raise ValueError(f"line_search needs one (alpha_min, n_grid) per stage, got {self.line_search}")
            return tuple((float(a), int(n)) for a, n in self.line_search)
        paper = PAPER_LINE_SEARCH.get(self.problem, (DEFAULT_LINE_SEARCH, DEFAULT_LINE_SEARCH))
        return tuple(paper[min(k, len(paper) - 1)] for k in range(self.n_stages))


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


def run_combined(cfg: CombinedConfig) -> CombinedResult:
    """Figs. 8-9's "BFGS + low-curvature + boosting" curve: stage k trains a fresh width-``width`` net (seed + k) by
    BFGS then low-curvature steps, on the residual of the stages before normalised by its mean |.|
    (:func:`pml.nn.boosting.boost`)."""
    if cfg.n_stages < 1:
        raise ValueError(f"n_stages must be >= 1, got {cfg.n_stages}")
    X, y, Xt, yt = problem_data(cfg.problem, cfg.n_train, cfg.n_test, cfg.seed)
    models = [make_mlp(_dim(X), cfg.width, cfg.depth, "tanh", seed=cfg.seed + k) for k in range(cfg.n_stages)]
    searches = cfg.stage_line_search()
    results, scales = [], []
    with limit_threads(cfg.num_threads):
        # boost() takes one trainer for all stages; the line search differs per stage, so stages go one at a time.
        for k, (alpha_min, n_grid) in enumerate(searches):
            trainer = functools.partial(
                _bfgs_then_low_curvature,
                bfgs_kwargs=_bfgs_kwargs(cfg),
                lc_kwargs=dict(tau=cfg.tau, n_steps=cfg.lc_steps, rule=cfg.lc_rule, alpha_min=alpha_min,
                               alpha_max=cfg.alpha_max, n_grid=n_grid, allow_increase=cfg.allow_increase),
                lc_time_limit=cfg.lc_time_limit,
            )
            boosted = boosting.boost(models[: k + 1], X, y, trainer, Xt, yt, normaliser=cfg.normaliser,
                                     n_pretrained=k)
            results.append(boosted.stages[k].result)
            scales.append(boosted.stages[k].scale)
    merged = boosting.merge_stages(models, scales)
    with torch.no_grad():
        merged_pred = merged(torch.from_numpy(np.asarray(Xt, dtype=np.float64))).reshape(-1).numpy()
    merged_test = _rms(merged_pred - yt)

    # One running x axis; each stage's RMSEs are relative to its scaled target, so the combined ones are c_k times.
    steps, values, boundaries, stages, offset = [], [], [], [], 0
    lc_time, lc_count = 0.0, 0
    for k, (res, c) in enumerate(zip(results, scales)):
        bf, lc = res["bfgs"], res["low_curvature"]
        name = f"f{k + 1}"
        boundaries.append((offset, f"{name} BFGS"))
        steps.append(offset + bf.history["step"])
        values.append(c * bf.history["test_rmse"])
        offset += int(bf.n_iter)
        boundaries.append((offset, f"{name} low-curvature"))
        steps.append(offset + lc.history["step"][1:])
        values.append(c * lc.history["test_rmse"][1:])
        offset += int(lc.n_iter)
        lc_time += lc.wall_s
        lc_count += lc.n_iter
        stages.append(StageSummary(
            scale=c, bfgs_iters=bf.n_iter, bfgs_stop=bf.stop_reason, bfgs_message=bf.message,
            bfgs_test=c * bf.test_rmse, bfgs_train=c * bf.train_rmse, lc_steps=lc.n_iter, lc_stop=lc.stop_reason,
            lc_test=c * lc.test_rmse, lc_train=c * lc.train_rmse, lc_alpha=lc.history["alpha"][1:],
            lc_n_directions=lc.history["n_directions"][1:], alpha_min=searches[k][0], alpha_max=cfg.alpha_max,
            bfgs_seconds=bf.wall_s, lc_seconds=lc.wall_s,
        ))
    final = boosting.predict_stages(models, scales, Xt)
    train_final = boosting.predict_stages(models, scales, X)
    return CombinedResult(
        problem=cfg.problem,
        curve=Curve(np.concatenate(steps), np.concatenate(values), "BFGS + low-curvature + boosting"),
        boundaries=tuple(boundaries),
        stages=tuple(stages),
        test_rmse=_rms(final - yt),
        train_rmse=_rms(train_final - y),
        merged_test_rmse=merged_test,
        y_rms=_rms(yt),
        seconds_per_hessian_step=lc_time / lc_count if lc_count else math.nan,
    )


# ---------------------------------------------------------------------------------------------------------------------
# §11: BFGS on a random quintic until precision loss, then low-curvature steps at several tau
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuinticConfig(Config):
    n_train: int = 50_000  # spec §11 (no test set: the claims are about the training RMSE)
    width: int = 20  # the notebook's width; the paper's text says 40 (spec pitfall 10)
    depth: int = 3
    gtol: float = 1e-40
    maxiter: int = 25_000
    time_limit: float | None = None  # BFGS, seconds
    taus: tuple[float, ...] = (1e-6, 1e-8, 1e-10, 1e-12, 1e-14, 1e-16, 1e-18)
    lc_steps: int = 200  # per tau, each from the BFGS solution
    lc_time_limit: float | None = None  # per tau, seconds
    lc_rule: str = "abs"
    alpha_min: float = 1e-12
    alpha_max: float = 1e18  # the notebook's sweep (cell 26)
    n_grid: int = 15
    allow_increase: bool = False
    log_every: int = 10
    engine: str = "rank2"
    seed: int = 0  # the quintic's coefficients and the inputs (the authors' draw was unseeded: pitfall 11)
    num_threads: int = 1


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


def run_quintic(cfg: QuinticConfig) -> QuinticResult:
    """Spec §11: a width-20 tanh net fit to a random quintic by BFGS until precision loss, then, from that
    solution, ``lc_steps`` low-curvature steps for each tau."""
    X, y, _, _ = problem_data("quintic", cfg.n_train, 0, cfg.seed)
    model = make_mlp(1, cfg.width, cfg.depth, "tanh", seed=cfg.seed)
    curves, finals, done, stops, at_max = [], [], [], [], []
    lc_time, lc_count = 0.0, 0
    with limit_threads(cfg.num_threads):
        bf = optimize.bfgs(model, X, y, gtol=cfg.gtol, maxiter=cfg.maxiter, log_every=cfg.log_every,
                           time_limit=cfg.time_limit, engine=cfg.engine)
        for tau in cfg.taus:
            student = copy.deepcopy(model)
            lc = optimize.low_curvature_steps(
                student, X, y, tau, cfg.lc_steps, rule=cfg.lc_rule, alpha_min=cfg.alpha_min, alpha_max=cfg.alpha_max,
                n_grid=cfg.n_grid, allow_increase=cfg.allow_increase, callback=_lc_callback(cfg.lc_time_limit),
            )
            h = lc.history
            curves.append(Curve(h["step"], h["train_rmse"], f"tau={tau:g}"))
            finals.append(lc.train_rmse)
            done.append(lc.n_iter)
            stops.append(lc.stop_reason)
            alphas = h["alpha"][1:]
            taken = alphas[alphas > 0]
            # the grid's last point, or beyond it after an edge zoom: the bound limited the step
            at_max.append(float(np.mean(taken >= cfg.alpha_max)) if taken.size else 0.0)
            lc_time += lc.wall_s
            lc_count += lc.n_iter
    return QuinticResult(
        coefficients=np.asarray(teacher.random_quintic(cfg.seed).coef, dtype=np.float64),
        bfgs_curve=Curve(bf.history["step"], bf.history["train_rmse"], "BFGS"),
        bfgs_rmse=bf.train_rmse,
        bfgs_iters=bf.n_iter,
        bfgs_stop=bf.stop_reason,
        bfgs_message=bf.message,
        taus=tuple(cfg.taus),
        lc_curves=tuple(curves),
        lc_rmse=np.asarray(finals, dtype=np.float64),
        lc_steps_done=np.asarray(done, dtype=np.int64),
        lc_stop=tuple(stops),
        lc_alpha_at_max=np.asarray(at_max, dtype=np.float64),
        y_rms=_rms(y),
        seconds_per_bfgs_iter=bf.wall_s / max(bf.n_iter, 1),
        seconds_per_lc_step=lc_time / lc_count if lc_count else math.nan,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Cost: what the paper profile takes on this machine
# ---------------------------------------------------------------------------------------------------------------------

# Work of the paper's runs, from the spec (Figs. 7-9, §11): Adam steps per learning rate, and the BFGS iterations
# the authors' runs took before stopping (f1 + boosted f2 for the combined pipeline; spec "Numbers [read]").
PAPER_WORK = {
    "adam_lrs": len(PAPER_LRS),
    "adam_steps": {"teacher": 30_000, "Z.001": 30_000, "Z.008": 50_000, "I.11.19": 50_000},
    "bfgs40_iters": {"teacher": 3_600, "Z.001": 2_000},
    "combined_bfgs_iters": {"teacher": 2_300 + 25_000, "Z.001": 7_400 + 10_500, "Z.008": 23_000 + 12_000,
                            "I.11.19": 19_000 + 8_500},
    "lc_steps_per_stage": 500,
    "quintic_bfgs_iters": 5_000,  # the notebook: 4891-6665 iterations
    "quintic_lc_steps": 7 * 200,  # 7 taus x 200 steps
}


@dataclass(frozen=True)
class TimingConfig(Config):
    """Seconds per loss-and-gradient pass of the chapter's nets at a few data sizes (to extrapolate costs)."""

    n_points: tuple[int, ...] = (2_000, 20_000, 50_000)
    widths: tuple[int, ...] = (20, 40)
    n_repeats: int = 5
    seed: int = 0
    num_threads: int = 1


@dataclass(frozen=True)
class TimingResult:
    n_points: tuple[int, ...]
    widths: tuple[int, ...]
    seconds: np.ndarray  # (widths, n_points): one forward + backward pass on n points

    def scale(self, width: int, n_from: int, n_to: int) -> float:
        """Cost ratio of a pass on ``n_to`` points to one on ``n_from`` points (a + b n fitted per width)."""
        row = self.seconds[list(self.widths).index(width)]
        b, a = np.polyfit(np.asarray(self.n_points, dtype=np.float64), row, 1)
        a, b = max(a, 0.0), max(b, 0.0)
        return float((a + b * n_to) / (a + b * n_from))


def run_timing(cfg: TimingConfig) -> TimingResult:
    X_all, y_all, _, _ = problem_data("teacher", max(cfg.n_points), 0, cfg.seed)
    seconds = np.empty((len(cfg.widths), len(cfg.n_points)))
    with limit_threads(cfg.num_threads):
        for i, width in enumerate(cfg.widths):
            model = make_mlp(1, width, 3, "tanh", seed=cfg.seed)
            for j, n in enumerate(cfg.n_points):
                flat = optimize.FlatModel(model, X_all[:n], y_all[:n])
                theta = flat.theta()
                flat.loss_and_grad(theta)  # warm-up
                start = time.perf_counter()
                for _ in range(cfg.n_repeats):
                    flat.loss_and_grad(theta)
                seconds[i, j] = (time.perf_counter() - start) / cfg.n_repeats
    return TimingResult(tuple(cfg.n_points), tuple(cfg.widths), seconds)


def paper_estimate(timing: TimingResult, adam: dict, bfgs: dict, combined: dict, quintic: QuinticResult,
                   spectrum: SpectrumSummary, *, n_train_run: int, quintic_n_train_run: int, n_train: int = 100_000,
                   quintic_n_train: int = 50_000, work: dict = PAPER_WORK) -> dict[str, float]:
    """Estimated seconds of each part of the paper profile on this machine.

    The per-step costs measured in this run (at ``n_train_run`` points) are scaled to ``n_train`` points with
    :meth:`TimingResult.scale` and multiplied by the paper's amount of work (``work``: Adam steps, the BFGS iterations
    the authors' runs took, every low-curvature stage running all its steps). ``adam``, ``bfgs`` and ``combined`` map
    problem names to this run's results.
    """
    s20 = timing.scale(20, n_train_run, n_train)
    s40 = timing.scale(40, n_train_run, n_train)
    sq = timing.scale(20, quintic_n_train_run, quintic_n_train)
    out = {
        "adam": sum(work["adam_steps"][p] * work["adam_lrs"] * r.seconds_per_step * s40 for p, r in adam.items()),
        "hessian_fig7": spectrum.seconds * s40,
        "bfgs_width40": sum(work["bfgs40_iters"][p] * r.seconds_per_iter * s40 for p, r in bfgs.items()),
        "combined_bfgs": 0.0,
        "low_curvature": 0.0,
        "quintic": (work["quintic_bfgs_iters"] * quintic.seconds_per_bfgs_iter
                    + work["quintic_lc_steps"] * quintic.seconds_per_lc_step) * sq,
    }
    for p, r in combined.items():
        per_iter = sum(s.bfgs_seconds for s in r.stages) / max(sum(s.bfgs_iters for s in r.stages), 1)
        out["combined_bfgs"] += work["combined_bfgs_iters"][p] * per_iter * s20
        out["low_curvature"] += len(r.stages) * work["lc_steps_per_stage"] * r.seconds_per_hessian_step * s20
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
    """§11's numbers: where BFGS stopped and what the low-curvature steps at ``claim_tau`` gained."""
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


ONE_D = ("teacher", "Z.001")  # Fig. 8's problems
SIX_D = "I.11.19"  # Fig. 9 bottom


def claim_values(spectrum: dict, learning: dict[str, dict], quintic: dict) -> dict[str, float]:
    """The measured value of every claim C4.n (``pml/book/claimsets/04_optimization.yaml``) from the chapter's numbers:
    ``spectrum`` from :func:`spectrum_numbers`, ``learning`` maps problem -> :func:`learning_numbers`, ``quintic``
    from :func:`quintic_numbers`."""
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
