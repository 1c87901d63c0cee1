"""Beyond the paper: the paper's benchmark problems fitted to float64 precision (``book/06_beyond.md``).

Step ``"benchmark"``: one :class:`BenchTask` per (problem, method) fit of :mod:`pml.benchmarks.precision`, keeping what
its multi-stage fit did (:class:`StageTrace`). Step ``"bfgs"``: the paper's width-40 BFGS (Fig. 8) on one 1D problem,
for a direct comparison here. RMSEs are relative to y_rms of the test targets (Eq. 1) unless a name says ``abs``; the
paper's values read off Figs. 8-9 are converted the same way. Runs that reach a wall-clock limit depend on the machine
and its load."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from pml.benchmarks import precision
from pml.engine import Sweep, Task
from pml.experiments.tables import Table
from pml.nn import multistage
from pml.nn.bfgs import bfgs
from pml.nn.networks import make_mlp

__all__ = [
    "EPS",
    "FAMILIES",
    "PAPER_CURVES",
    "TAGS",
    "LABELS",
    "CLAIM_TARGETS",
    "BenchTask",
    "BenchmarkConfig",
    "BenchmarkResult",
    "StageTrace",
    "BFGSTask",
    "BFGSConfig",
    "BFGSResult",
    "steps",
    "summary_table",
    "full_table",
    "problem_numbers",
    "overview_numbers",
    "bfgs_numbers",
    "paper_estimate",
    "claim_values",
]

EPS = float(np.finfo(np.float64).eps)  # 2^-52, the float64 floor of a relative error
FAMILIES = ("trained", "readout", "classical")
TARGET_PROBLEMS = tuple(precision.TARGETS)  # the five problems with targets, in TARGETS' order

# glue-key tags of the problems (book/06_beyond.md)
TAGS = {"x2": "x2", "cos": "cos2x", "ts": "teacher", "q": "quintic", "xy": "xy", "a6": "I.11.19"}
LABELS = {"x2": "x²", "cos2x": "cos 2x", "teacher": "teacher-student", "quintic": "random quintic", "xy": "xy",
          "I.11.19": "x1y1+x2y2+x3y3"}

# The paper's learning curves, end points: absolute test RMSE read off Figs. 8-9 (about one significant digit on
# their log axes). For the quintic, the §4.2 text's BFGS training RMSE.
PAPER_CURVES = {
    "x2": {"best Adam": 2e-4, "BFGS, one network": 5e-7, "BFGS + low-curvature + boosting": 4e-12},
    "teacher": {"best Adam": 4e-5, "BFGS, one network": 8e-8, "BFGS + low-curvature + boosting": 4e-14},
    "quintic": {"BFGS, one network": 1e-7},
    "xy": {"best Adam": 2e-3, "BFGS, one network": 8e-6, "BFGS + low-curvature + boosting": 3e-7},
    "I.11.19": {"best Adam": 1e-2, "BFGS, one network": 4e-4, "BFGS + low-curvature + boosting": 1.3e-4},
}
# "BFGS, one network": the width-40 BFGS run in 1D (Fig. 8); in 2D and 6D, the first width-20 network after BFGS and
# low-curvature steps (Fig. 9 has no width-40 run); for the quintic, the §4.2 text's training RMSE.


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(v, dtype=np.float64) ** 2)))


def _test_set(problem: str) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's own test points for ``problem`` (10^4, uniform on the full domain)."""
    return precision.problems()[problem].sample(precision.N_TEST, [precision.TEST_SEED])


# ---------------------------------------------------------------------------------------------------------------------
# Step 1: the benchmark, with the stage-by-stage record of its LM multi-stage fits
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageTrace:
    """What the benchmark's LM multi-stage fit did on one problem (relative RMSEs, combined model after stage k)."""

    problem: str
    y_rms: float  # RMS of the test targets
    n_train: np.ndarray  # training points of each stage (later stages may get more, Nyquist rule)
    n_params: np.ndarray  # parameters of each stage network
    f_dominant: np.ndarray  # dominant frequency of the residual each stage fitted (NaN for stage 1)
    train_rel: np.ndarray  # combined model after stage k, on that stage's training points
    test_rel: np.ndarray  # combined model after stage k, on the benchmark's test points
    seconds: np.ndarray  # wall time of each stage
    iters: np.ndarray  # LM iterations of each stage
    stops: tuple[str, ...]  # LM stop reason of each stage
    curve_time: np.ndarray  # seconds since the fit began
    curve_rel: np.ndarray  # relative train RMSE of the combined model at each LM iteration
    curve_stage: np.ndarray  # the stage (0-based) of each curve point
    merged_test_rel: float  # the merged single network on the test points (the benchmark row's value)

    @property
    def n_stages(self) -> int:
        return int(self.train_rel.size)

    @property
    def start_rel(self) -> np.ndarray:
        """Relative train RMSE at the start of each stage's LM run (least-squares output layer, before LM)."""
        return np.array([self.curve_rel[self.curve_stage == k][0] for k in range(self.n_stages)])

    @property
    def lm_orders(self) -> np.ndarray:
        """Orders of magnitude LM gained within each stage (train RMSE, start of the stage to its end)."""
        ends = np.array([self.curve_rel[self.curve_stage == k][-1] for k in range(self.n_stages)])
        return np.log10(self.start_rel / ends)


@dataclass(frozen=True)
class BenchmarkResult:
    rows: tuple[dict, ...]  # pml.benchmarks.precision.run's rows, in problem order
    traces: dict  # problem -> StageTrace (problems whose LM multi-stage fit ran)
    seconds: float  # the tasks' wall time, summed

    def best(self, problem: str, family: str) -> dict | None:
        """The row of ``family`` with the lowest relative test RMSE on ``problem`` (None when absent)."""
        rows = [r for r in self.rows if r["problem"] == problem and r["family"] == family]
        return min(rows, key=lambda r: r["rel_rmse"]) if rows else None

    def problem_seconds(self, problem: str) -> float:
        return float(sum(r["seconds"] for r in self.rows if r["problem"] == problem))


def _trace(problem: str, fit: multistage.MultistageResult) -> dict:
    """:class:`StageTrace`'s fields as plain data (a task's result)."""
    X_test, y_test = _test_set(problem)
    y_rms = _rms(y_test)
    test_rel, times, rels, stage_of = [], [], [], []
    start = 0.0
    for k, stage in enumerate(fit.stages):
        partial = multistage.MultistageResult(fit.models[: k + 1], fit.scales[: k + 1], [])
        test_rel.append(_rms(partial.predict(X_test) - y_test) / y_rms)
        h = stage.result.history
        # the stage's net fits (target - fit so far) / scale: the combined model's residual is scale times its own
        before = stage.seconds - stage.result.wall_s  # frequency estimate, new samples, least-squares init
        times.append(start + before + h["time_s"])
        rels.append(stage.scale * h["train_rmse"] / y_rms)
        stage_of.append(np.full(h["time_s"].size, k))
        start += stage.seconds
    with torch.no_grad():
        merged = fit.network()(torch.from_numpy(np.ascontiguousarray(X_test))).reshape(-1).numpy()
    st = fit.stages
    return {
        "problem": problem,
        "y_rms": y_rms,
        "n_train": np.array([s.n_train for s in st], dtype=np.int64),
        "n_params": np.array([s.n_params for s in st], dtype=np.int64),
        "f_dominant": np.array([s.f_dominant for s in st], dtype=np.float64),
        "train_rel": np.array([s.train_rmse for s in st], dtype=np.float64) / y_rms,
        "test_rel": np.array(test_rel, dtype=np.float64),
        "seconds": np.array([s.seconds for s in st], dtype=np.float64),
        "iters": np.array([s.result.n_iter for s in st], dtype=np.int64),
        "stops": [str(s.result.stop_reason) for s in st],
        "curve_time": np.concatenate(times).astype(np.float64),
        "curve_rel": np.concatenate(rels).astype(np.float64),
        "curve_stage": np.concatenate(stage_of).astype(np.int64),
        "merged_test_rel": _rms(merged - y_test) / y_rms,
    }


def _stage_trace(plain: dict) -> StageTrace:
    return StageTrace(**{**plain, "y_rms": float(plain["y_rms"]), "stops": tuple(plain["stops"]),
                         "merged_test_rel": float(plain["merged_test_rel"])})


@dataclass(frozen=True)
class BenchTask(Task):
    """One (problem, method) fit of the precision benchmark: its row and, for ``lm-multistage``, its trace."""

    problem: str
    method: str
    quick: bool = False
    seed: int = 0
    threads: int = 1

    def run(self) -> dict:
        start = time.perf_counter()
        fits = {}
        row = precision.run_one(self.problem, self.method, self.quick, seed=self.seed,
                                on_fit=lambda name, method, fitted: fits.__setitem__(method, fitted))
        trace = _trace(self.problem, fits[self.method]) if self.method == "lm-multistage" else None
        return {"row": row, "trace": trace, "task_seconds": time.perf_counter() - start}

    def cost(self) -> float:
        dim = precision.problems()[self.problem].dim if self.problem in precision.PROBLEMS else 1
        table = _BENCH_COST_QUICK if self.quick else _BENCH_COST
        return table[self.method][min(dim, 3) - 1]


# Seconds of one benchmark fit on one core of the machine that wrote this (a shared 2-core x86-64 VM, one thread),
# per method and problem dimension (1D, 2D, 6D), full and quick budgets: the CPU time measured for the ci problems,
# rounded up (the quintic costs what the other 1D problems cost). The sizes of each fit are fixed per dimension
# (pml.benchmarks.precision), so a table is the whole model. lm-multistage trains each stage until it converges or
# reaches its time limit (40 s per stage in 1D, 60 s in 2D, 600 s in 6D; 8 s quick), and its later stages usually
# reach it: its entries are the wall times measured, close to the sum of the limits of the stages that reach them.
_BENCH_COST = {
    "lm-multistage": (85.0, 65.0, 615.0),
    "readout": (0.3, 1.0, 8.0),
    "chebyshev": (0.01, 0.01, 0.01),
    "rbf": (0.1, 0.3, 0.3),
    "poly-lsq": (0.05, 0.05, 0.1),
}
_BENCH_COST_QUICK = {
    "lm-multistage": (4.0, 6.0, 8.0),
    "readout": (0.1, 0.3, 1.0),
    "chebyshev": (0.01, 0.01, 0.01),
    "rbf": (0.1, 0.2, 0.2),
    "poly-lsq": (0.05, 0.05, 0.1),
}


@dataclass(frozen=True)
class BenchmarkConfig(Sweep):
    """The benchmark step: one :class:`BenchTask` per (problem, method) of ``pml bench precision`` on ``problems``."""

    problems: tuple[str, ...] = precision.PROBLEMS  # `pml bench precision` runs all six
    quick: bool = False  # the benchmark's quick budgets (a smoke run; its numbers are not the targets')
    seed: int = 0

    def tasks(self) -> list[BenchTask]:
        return [BenchTask(name, method, bool(self.quick), int(self.seed))
                for name, method in precision.jobs(tuple(self.problems))]

    def assemble(self, results) -> BenchmarkResult:
        traces = {r["row"]["problem"]: _stage_trace(r["trace"]) for r in results if r["trace"] is not None}
        return BenchmarkResult(rows=tuple(r["row"] for r in results), traces=traces,
                               seconds=float(sum(r["task_seconds"] for r in results)))


# ---------------------------------------------------------------------------------------------------------------------
# Step 2: the paper's optimiser on this machine (width-40 BFGS on a 1D problem)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BFGSTask(Task):
    """The paper's width-40 BFGS of Fig. 8 (``engine="rank2"``), scored on the benchmark's test points."""

    problem: str = "x2"  # a 1D benchmark problem
    n_train: int = 100_000  # uniform training points (the paper: 100k)
    width: int = 40  # the paper's width-40 depth-3 tanh net of Fig. 8
    depth: int = 3
    gtol: float = 1e-60  # the authors' options
    maxiter: int = 25_000
    time_limit: float | None = None  # seconds (the paper: none)
    log_every: int = 10
    seed: int = 0
    threads: int = 1

    def run(self) -> dict:
        p = precision.problems()[self.problem]
        if p.dim != 1:
            raise ValueError(f"the BFGS comparison runs on a 1D problem, got {self.problem!r} ({p.dim}D)")
        X, y = p.sample(self.n_train, [self.seed, 6])
        X_test, y_test = _test_set(self.problem)
        y_rms = _rms(y_test)
        model = make_mlp(1, self.width, self.depth, "tanh", seed=self.seed)
        res = bfgs(model, X, y, X_test, y_test, gtol=self.gtol, maxiter=self.maxiter,
                            log_every=self.log_every, time_limit=self.time_limit, engine="rank2")
        h = res.history
        return {
            "problem": self.problem, "y_rms": y_rms, "time_s": np.asarray(h["time_s"], dtype=np.float64),
            "step": np.asarray(h["step"], dtype=np.int64),
            "train_rel": np.asarray(h["train_rmse"], dtype=np.float64) / y_rms,
            "test_rel": np.asarray(h["test_rmse"], dtype=np.float64) / y_rms, "final_test_rel": res.test_rmse / y_rms,
            "best_test_rel": float(np.nanmin(h["test_rmse"])) / y_rms, "n_iter": int(res.n_iter),
            "n_fev": int(res.n_fev), "stop_reason": str(res.stop_reason), "wall_s": float(res.wall_s),
            "n_train": int(self.n_train),
        }

    def cost(self) -> float:
        """``maxiter`` iterations at their modelled cost (``_BFGS_COST``), at most the time limit, plus the setup:
        an upper bound when BFGS stops earlier (precision loss)."""
        w = self.width
        n = 2 * w + (self.depth - 2) * (w * w + w) + w + 1  # parameters of the 1-w-...-w-1 tanh net
        c = _BFGS_COST
        n_test = precision.N_TEST
        per_iter = (c["step"] + c["fev"] * c["pass"] * n * self.n_train + c["update"] * n * n
                    + c["pass"] * n * n_test / 3 / self.log_every)  # a logged iteration scores the test points
        seconds = self.maxiter * per_iter
        if self.time_limit is not None:
            seconds = min(seconds, float(self.time_limit))
        return c["setup"] + seconds


# CPU seconds measured on the machine that wrote this (one thread, 2-core x86-64, OpenBLAS; 0.014 s per iteration of
# the ci run, 2,000 points): a loss + gradient pass of a tanh net with N parameters on n points costs pass * N * n
# (a forward pass alone a third); a BFGS iteration makes ``fev`` of them (SciPy's Wolfe line search) and a rank-two
# update of the N x N inverse Hessian (update * N^2).
_BFGS_COST = {"setup": 0.5, "step": 2e-5, "pass": 2e-9, "fev": 1.2, "update": 1.5e-9}


@dataclass(frozen=True)
class BFGSConfig(Sweep):
    """The BFGS step: one :class:`BFGSTask` (same fields)."""

    problem: str = "x2"
    n_train: int = 100_000
    width: int = 40
    depth: int = 3
    gtol: float = 1e-60
    maxiter: int = 25_000
    time_limit: float | None = None
    log_every: int = 10
    seed: int = 0

    def tasks(self) -> list[BFGSTask]:
        return [BFGSTask(self.problem, int(self.n_train), int(self.width), int(self.depth), float(self.gtol),
                         int(self.maxiter), None if self.time_limit is None else float(self.time_limit),
                         int(self.log_every), int(self.seed))]

    def assemble(self, results) -> "BFGSResult":
        r = results[0]
        return BFGSResult(**{**r, "y_rms": float(r["y_rms"])})


@dataclass(frozen=True)
class BFGSResult:
    problem: str
    y_rms: float
    time_s: np.ndarray  # wall time of each logged iteration
    step: np.ndarray
    train_rel: np.ndarray
    test_rel: np.ndarray  # on the benchmark's test points
    final_test_rel: float
    best_test_rel: float  # lowest logged test RMSE
    n_iter: int
    n_fev: int  # loss + gradient evaluations
    stop_reason: str
    wall_s: float
    n_train: int

    @property
    def seconds_per_iter(self) -> float:
        return self.wall_s / max(self.n_iter, 1)


def steps(params: Mapping[str, Any]) -> dict[str, Sweep]:
    """The chapter's sweeps from its parameter values: ``"benchmark"`` and ``"bfgs"``."""
    limit = params["bfgs_time_limit"]
    return {
        "benchmark": BenchmarkConfig(problems=tuple(params["problems"]), quick=bool(params["quick"]),
                                     seed=int(params["seed"])),
        "bfgs": BFGSConfig(problem=params["bfgs_problem"], n_train=int(params["bfgs_n_train"]),
                           maxiter=int(params["bfgs_maxiter"]), time_limit=None if limit is None else float(limit),
                           seed=int(params["seed"])),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Tables and numbers for the chapter (plain Python values, ready for myst_nb.glue)
# ---------------------------------------------------------------------------------------------------------------------


def _e(v, digits: int = 1) -> str:
    """A number for the tables: the exponent's sign is U+2212 (a browser never breaks a line inside "1.0e−12")."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}e}".replace("e-", "e\u2212")


FAMILY_NAMES = {"trained": "trained network", "readout": "exact readout", "classical": "classical"}


def summary_table(result: BenchmarkResult) -> Table:
    """Per problem and family: the best method's relative test RMSE against pml's target, and the paper's
    best (its absolute value / y_rms)."""
    rows = []
    for problem in dict.fromkeys(r["problem"] for r in result.rows):
        first = next(r for r in result.rows if r["problem"] == problem)
        for i, family in enumerate(FAMILIES):
            row = result.best(problem, family)
            if row is None:
                continue
            target = row["target_rel_rmse"]
            verdict = "—" if target is None else ("met" if row["meets_target"] else "**missed**")
            head = (LABELS.get(problem, problem), _e(first["paper_rel_rmse"])) if i == 0 else ("", "")
            rows.append((*head, FAMILY_NAMES[family], row["method"], _e(row["rel_rmse"]), _e(target, 0), verdict))
    return Table(("problem", "paper's best", "family", "best method", "relative RMSE", "target", "verdict"), rows)


def full_table(result: BenchmarkResult) -> Table:
    """Every (problem, method) row of the benchmark: relative and absolute test RMSE, size and wall time."""
    rows = [(LABELS.get(r["problem"], r["problem"]), r["method"], _e(r["rel_rmse"]), _e(r["abs_rmse"]),
             _e(r["paper_abs_rmse"]), str(r["n_params"]), str(r["n_train"]), f"{r['seconds']:.1f}")
            for r in result.rows]
    return Table(("problem", "method", "rel. RMSE", "abs. RMSE", "paper abs.", "params", "train points", "seconds"),
                 rows)


def _orders(a: float | None, b: float | None) -> float:
    if a is None or b is None or not (a > 0 and b > 0):
        return math.nan
    return float(math.log10(a / b))


def problem_numbers(result: BenchmarkResult, problem: str) -> dict[str, float | int | str]:
    """The chapter's numbers for one problem (NaN where the problem or a family was not run)."""
    nan = math.nan
    out: dict[str, float | int | str] = {}
    rows = [r for r in result.rows if r["problem"] == problem]
    paper = rows[0]["paper_rel_rmse"] if rows else None
    out["paper"] = nan if paper is None else float(paper)
    out["paper_abs"] = float(rows[0]["paper_abs_rmse"]) if rows and rows[0]["paper_abs_rmse"] is not None else nan
    adam = PAPER_CURVES.get(problem, {}).get("best Adam")
    out["paper_adam"] = float(adam / rows[0]["y_rms"]) if rows and adam is not None else nan
    out["paper_adam_abs"] = nan if adam is None else float(adam)
    out["seconds"] = result.problem_seconds(problem) if rows else nan
    for family in FAMILIES:
        row = result.best(problem, family)
        out[family] = float(row["rel_rmse"]) if row else nan
        out[f"{family}_target"] = float(precision.TARGETS.get(problem, {}).get(family, nan))
        out[f"{family}_method"] = row["method"] if row else "—"
        out[f"{family}_gain"] = _orders(paper, row["rel_rmse"] if row else None)
        met = row["meets_target"] if row else None
        out[f"{family}_verdict"] = "—" if met is None else ("met" if met else "missed")
    trace = result.traces.get(problem)
    if trace is not None:
        last = trace.n_stages - 1
        out.update({
            "n_stages": trace.n_stages,
            "stage1_test": float(trace.test_rel[0]),
            "stage1_start": float(trace.start_rel[0]),
            "stage1_lm_orders": float(trace.lm_orders[0]),
            "stage1_iters": int(trace.iters[0]),
            "stage1_stop": trace.stops[0],
            "later_lm_orders_min": float(np.min(trace.lm_orders[1:])) if trace.n_stages > 1 else nan,
            "later_lm_orders_max": float(np.max(trace.lm_orders[1:])) if trace.n_stages > 1 else nan,
            "last_start": float(trace.start_rel[last]),
            "merged": float(trace.merged_test_rel),
            "stage1_seconds": float(trace.seconds[0]),
            "stage1_n_params": int(trace.n_params[0]),
            "stage_gain": _orders(float(trace.test_rel[0]), float(trace.test_rel[last])),
            "last_train": float(trace.train_rel[last]),
            "last_test": float(trace.test_rel[last]),
            "last_gap": float(trace.test_rel[last] / trace.train_rel[last]),
            "last_n_train": int(trace.n_train[last]),
            "last_n_params": int(trace.n_params[last]),
            "last_iters": int(trace.iters[last]),
            "last_stop": trace.stops[last],
            "lm_seconds": float(trace.seconds.sum()),
        })
    else:
        out.update({k: nan for k in ("stage1_test", "stage1_start", "stage1_lm_orders", "later_lm_orders_min",
                                      "later_lm_orders_max", "last_start", "merged", "stage1_seconds", "stage_gain",
                                      "last_train", "last_test", "last_gap", "lm_seconds")})
        out.update({k: 0 for k in ("stage1_iters", "n_stages", "stage1_n_params", "last_n_train", "last_n_params",
                                    "last_iters")})
        out.update({"stage1_stop": "—", "last_stop": "—"})
    return out


def overview_numbers(result: BenchmarkResult) -> dict[str, float | int | str]:
    """Targets met over the (problem, family) pairs that ran, and the benchmark's wall time."""
    summary = precision.summarize(list(result.rows))
    out: dict[str, float | int | str] = {
        "n_targets": len(summary), "n_met": int(sum(bool(s["meets_target"]) for s in summary)),
        "n_rows": len(result.rows), "seconds": float(result.seconds)}
    probs = precision.problems()
    low_d = [r["rel_rmse"] for r in result.rows if r["family"] == "trained" and probs[r["problem"]].dim <= 2]
    out["trained_worst_low_d"] = float(max(low_d)) if low_d else math.nan
    # merging the stages into one network: the largest change of the test RMSE (ratio merged / stages summed)
    ratios = {p: max(t.merged_test_rel, t.test_rel[-1]) / min(t.merged_test_rel, t.test_rel[-1])
              for p, t in result.traces.items()}
    worst = max(ratios, key=ratios.get) if ratios else None
    out["merged_worst_ratio"] = float(ratios[worst]) if worst else math.nan
    out["merged_worst_problem"] = LABELS.get(worst, str(worst)) if worst else "—"
    return out


def bfgs_numbers(bfgs: BFGSResult, result: BenchmarkResult) -> dict[str, float | int | str]:
    """Our BFGS against our LM multi-stage fit on the same problem (relative test RMSE, wall time)."""
    trace = result.traces.get(bfgs.problem)
    out: dict[str, float | int | str] = {
        "final": bfgs.final_test_rel, "best": bfgs.best_test_rel, "iters": bfgs.n_iter, "stop": bfgs.stop_reason,
        "seconds": bfgs.wall_s, "n_train": bfgs.n_train, "problem_label": LABELS.get(bfgs.problem, bfgs.problem),
        "paper_bfgs40": PAPER_CURVES.get(bfgs.problem, {}).get("BFGS, one network", math.nan) / bfgs.y_rms,
    }
    if trace is not None:
        # when did LM first get below what BFGS reached in all its time?
        below = np.nonzero(trace.curve_rel <= bfgs.best_test_rel)[0]
        out["lm_seconds_to_bfgs"] = float(trace.curve_time[below[0]]) if below.size else math.nan
        out["lm_final"] = float(trace.test_rel[-1])
        out["lm_seconds"] = float(trace.seconds.sum())
        out["lm_gain"] = _orders(bfgs.best_test_rel, float(trace.test_rel[-1]))
    else:
        out.update({"lm_seconds_to_bfgs": math.nan, "lm_final": math.nan, "lm_seconds": math.nan,
                    "lm_gain": math.nan})
    return out


def paper_estimate(paper_steps: Mapping[str, Sweep]) -> dict[str, float]:
    """Estimated seconds on one core of the paper profile's tasks (``steps(full_parameters(..., "paper"))``) by their
    cost model: ``benchmark``, ``bfgs`` (an upper bound: BFGS at its iteration and time limits) and ``total``."""
    out = {name: float(sum(t.cost() for t in paper_steps[name].tasks())) for name in ("benchmark", "bfgs")}
    out["total"] = out["benchmark"] + out["bfgs"]
    return out


# claim id -> (problem, family), in the order of pml/book/claimsets/06_beyond.yaml
CLAIM_TARGETS = {f"C6.{1 + 3 * i + j}": (problem, family) for i, problem in enumerate(TARGET_PROBLEMS)
                 for j, family in enumerate(FAMILIES)}


def claim_values(result: BenchmarkResult) -> dict[str, float]:
    """The measured value of every claim C6.n (``pml/book/claimsets/06_beyond.yaml``); NaN if not run."""
    out = {}
    for cid, (problem, family) in CLAIM_TARGETS.items():
        row = result.best(problem, family)
        out[cid] = float(row["rel_rmse"]) if row else math.nan
    gains = [problem_numbers(result, p)["trained_gain"] for p in dict.fromkeys(r["problem"] for r in result.rows)]
    gains = [g for g in gains if math.isfinite(g)]
    out["C6.16"] = float(min(gains)) if gains else math.nan
    return out
