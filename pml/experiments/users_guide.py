"""Paper §5 (Figure 10, "User's Guide for Precision"): the chart drawn from the rules ``pml fit`` uses
(:func:`run_guide`), applied to Feynman equations no earlier chapter uses. Step ``"study"``: per equation and row count,
``fit(method="auto")``, each candidate by name and the paper's baselines, one :class:`FitTask` each, scored by the
relative RMSE on fresh points from the data's distribution (the chart promises precision on held-out rows). Step
``"csv"``: a CSV through what ``pml fit`` and ``pml predict`` run. The choice of method is :mod:`pml.fitting.guide`'s
alone."""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pml import data, equations, fitting, metrics
from pml.config import Config
from pml.engine import Sweep, Task
from pml.experiments.tables import MarkdownText, Table
from pml.fitting import commands, datafiles, guide
from pml.fitting.transforms import IDENTITY, label

__all__ = [
    "BASELINES",
    "CsvSweep",
    "CsvResult",
    "CsvTask",
    "FitTask",
    "GuideConfig",
    "GuideResult",
    "NETWORKS",
    "NON_NETWORKS",
    "StudySweep",
    "StudyResult",
    "band",
    "chart_points",
    "claim_values",
    "csv_numbers",
    "csv_transcript",
    "guide_numbers",
    "paper_estimate",
    "paper_numbers",
    "rules_markdown",
    "run_guide",
    "steps",
    "study_numbers",
    "study_table",
]

NETWORKS = ("readout", "deep-lm", "lm-multistage", "adam-tanh")  # smooth-activation networks (paper: "neural networks")
NON_NETWORKS = ("poly", "spline", "rbf", "kernel", "simplex")  # polynomial / spline / kernel / interpolation methods
BASELINES = ("simplex", "lm-multistage")  # besides the rule's candidates: the paper's baseline and its recipe
AUTO_BEST_TOL = 1e-4  # auto's model counts as the most precise when within this relative margin of the best


def _dim_class(d: int) -> str:
    return {1: "1d", 2: "2d"}.get(int(d), "high_d")


def band(d: int, n: int) -> str:
    """The chart's band of (d, n) for a smooth target: "few", "little", "enough" (d <= 2) or "high-d"."""
    key = guide.choose(d, n).rule.key
    return key.split("-", 1)[1] if key[0].isdigit() else key


def _rel_rmse(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(relative RMSE over the finite predictions, fraction of points without a finite prediction)."""
    rel, n_nonfinite = metrics.finite_rmse(pred, y, relative=True)
    return rel, n_nonfinite / len(y)


def _stream(*parts) -> np.random.Generator:
    """A generator seeded from ints and strings (strings through CRC-32: stable across runs and platforms)."""
    return np.random.default_rng([zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts])


@contextlib.contextmanager
def _quiet():
    """No warnings and nothing on stderr (the book fails a chapter that writes to stderr)."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _e(v, fmt: str = ".1e") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


# ---------------------------------------------------------------------------------------------------------------------
# (1) The rules as data
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuideConfig(Config):
    d_max: int = 8  # the chart's right edge (open-ended rules are clipped here)
    n_max: float = 1e6  # the chart's top edge


@dataclass(frozen=True)
class GuideResult:
    rules: tuple[dict, ...]  # every Rule of pml.fitting.guide.RULES as a dict, in order (first match wins)
    regions_smooth: tuple[dict, ...]  # guide.chart(smooth=True)
    regions_rough: tuple[dict, ...]  # guide.chart(smooth=False)
    text: str  # guide.rules_table(): what `pml guide` prints
    d_max: int
    n_max: float


def run_guide(cfg: GuideConfig) -> GuideResult:
    return GuideResult(
        rules=tuple(r.to_dict() for r in guide.RULES),
        regions_smooth=tuple(guide.chart(True, cfg.d_max, cfg.n_max)),
        regions_rough=tuple(guide.chart(False, cfg.d_max, cfg.n_max)),
        text=guide.rules_table(), d_max=cfg.d_max, n_max=cfg.n_max,
    )


def _d_text(r: dict) -> str:
    if r["d_max"] == r["d_min"]:
        return f"{r['d_min']}"
    return f"≥ {r['d_min']}" if r["d_max"] is None else f"{r['d_min']}-{r['d_max']}"


def _n_text(r: dict) -> str:
    return f"≥ {r['n_min']:,}" if r["n_max"] is None else f"{r['n_min']:,}-{r['n_max'] - 1:,}"


def rules_markdown(result: GuideResult) -> Table:
    """The rules as a Markdown table: rule, target, d, rows, candidate methods, promised relative RMSE."""
    rows = []
    for r in result.rules:
        promise = "none" if r["promise"] is None else f"rel. RMSE ≤ {r['promise']:.0e}"
        rows.append((f"`{r['key']}`", "smooth" if r["smooth"] else "kinks or steps", _d_text(r), _n_text(r),
                     ", ".join(f"`{m}`" for m in r["methods"]), promise))
    return Table(("rule", "target", "d", "rows n", "methods (candidates; auto keeps the best on an inner split)",
                  "promise"), rows)


def guide_numbers() -> dict[str, float | int | str]:
    """The chart's promises and row thresholds, read from :data:`pml.fitting.guide.RULES` (for the prose)."""
    out: dict[str, float | int | str] = {}
    for r in guide.RULES:
        tag = r.key.replace("-", "_")
        out[f"{tag}_n_min"] = int(r.n_min)
        if r.n_max is not None:
            out[f"{tag}_n_max"] = int(r.n_max)
        if r.promise is not None:
            out[f"{tag}_promise"] = float(r.promise)
    out["n_rules"] = len(guide.RULES)
    out["max_selection_rows"] = int(fitting.MAX_SELECTION_ROWS)
    out["inner_fraction"] = float(fitting.INNER_FRACTION)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# (2) The rules applied to equations no earlier chapter uses
# ---------------------------------------------------------------------------------------------------------------------

# Equations the chapters 1-4 and 6 use, and the targets the promises were calibrated on (pml.fitting.guide's docstring):
# the application study must not use them.
SEEN = ("Z.001", "Z.008", "Z.009", "II.8.31", "I.30.5", "I.8.14", "I.44.4", "II.6.15a", "I.11.19", "cos2x", "exp_x",
        "exp_xy")


@dataclass(frozen=True)
class FitTask(Task):
    """One fit of the study: ``n`` rows of ``equation`` (data seed ``seed``, which also seeds the fit), fitted by
    ``method`` ("auto" or a name of :data:`pml.fitting.METHODS`) and scored on ``n_test`` fresh points."""

    equation: str
    n: int
    seed: int
    method: str
    n_test: int = 10_000
    validation: float = 0.2
    base_seed: int = 0  # base of every data stream (the chapter's ``seed``)
    threads: int = 1
    time_limit: float | None = None  # seconds for auto's d >= 3 candidates and for kernel / deep-lm (None: defaults)

    def run(self) -> dict:
        start = time.perf_counter()
        X, y, Xt, yt = _case_data(self.equation, self.n, self.seed, self.base_seed, self.n_test)
        r = _fit_one(self.method, X, y, Xt, yt, self.seed, self.validation, self.time_limit)
        model = r.pop("model")
        if self.method == "auto":
            if model is None:
                raise ValueError(f"{self.equation}, n = {self.n}: auto could not fit: {r['skipped']}")
            r.update(val_kept=model.report.promise_met, floor=fitting.float64_floor(yt),
                     transform=model.report.transform,
                     candidates=[[label(c["method"], c.get("transform", IDENTITY.name)), c["inner_rel_rmse"]]
                                 for c in model.report.candidates])
        r["task_seconds"] = time.perf_counter() - start
        return r

    def cost(self) -> float:
        d = equations.get(self.equation).dim
        n_fit = self.n * (1 - self.validation)
        if self.method != "auto":
            return _COST_BASE + fit_seconds(self.method, d, n_fit, self.time_limit)
        return _COST_BASE + _auto_seconds(d, self.n, n_fit, self.time_limit)


# CPU seconds of one fit (fitting.fit with its validation split, then the prediction on the 10^4 test points), one
# thread, measured (CPU time: the load of a shared machine does not count) on the machine that wrote this (a 2-core
# x86-64 VM) at the ci and paper profiles' sizes:
# (training rows, seconds) per method and input dimension d (a method's largest d listed serves every larger d).
# Between and beyond the measured sizes the cost is interpolated and extrapolated as a power law (log-log). Where
# several equations were measured at one size the entry is their mean (a global polynomial's degree, and so its cost,
# depends on the target: up to 10x between equations). lm-multistage trains each of its stages for at most its time
# limit, so its cost is capped there.
_FIT_ANCHORS = {
    "poly": {1: ((10, 0.03), (32, 0.1), (160, 0.1), (800, 0.28)),
             2: ((40, 0.03), (400, 0.27), (2400, 4.2), (8000, 22.0)),
             3: ((240, 0.05), (2400, 5.9), (8000, 18.0))},
    "spline": {1: ((10, 0.008), (160, 0.008), (800, 0.018))},
    "readout": {1: ((10, 0.05), (160, 0.06), (800, 1.9)),
                2: ((40, 0.022), (400, 0.086), (2400, 3.6), (8000, 10.5))},
    "simplex": {1: ((10, 0.01), (800, 0.01)),
                2: ((40, 0.017), (400, 0.021), (2400, 0.034), (8000, 0.1)),
                3: ((240, 0.023), (2400, 0.083)),
                4: ((240, 0.057), (2400, 0.43), (8000, 1.9)),
                5: ((240, 0.38), (2400, 3.5), (8000, 18.1))},
    "lm-multistage": {1: ((10, 0.9), (32, 2.4), (160, 1.9), (800, 3.4)),
                      2: ((40, 0.08), (400, 9.2)),
                      3: ((240, 8.3),)},
    "kernel": {3: ((240, 2.0), (2400, 40.0))},
    "deep-lm": {3: ((240, 120.0), (2400, 120.0))},  # trains until its time limit (or its validation stalls)
}
_BUDGETED = ("auto", "kernel", "deep-lm")  # the fits a study's time_limit applies to
_COST_BASE = 0.005  # sampling the rows and the test points, scoring


def fit_seconds(method: str, d: int, n_fit: float, time_limit: float | None = None) -> float:
    """Modelled CPU seconds of ``fitting.fit(method=...)`` on ``n_fit`` training rows of a d-input target, with the
    prediction on 10^4 test points (``_FIT_ANCHORS``); ``time_limit`` caps the methods that take one."""
    table = _FIT_ANCHORS[method]
    anchors = table[max([k for k in table if k <= int(d)] or [min(table)])]
    n = np.log(max(float(n_fit), 1.0))
    x = np.log([a[0] for a in anchors])
    y = np.log([a[1] for a in anchors])
    if len(anchors) == 1:
        seconds = float(np.exp(y[0] + (n - x[0])))  # one size measured: linear in the rows
    elif n <= x[0] or n >= x[-1]:
        i = 0 if n <= x[0] else len(x) - 2  # beyond the measured sizes: the nearest segment's power law
        slope = max((y[i + 1] - y[i]) / (x[i + 1] - x[i]), 0.0)
        seconds = float(np.exp(y[i] + slope * (n - x[i])))
    else:
        seconds = float(np.exp(np.interp(n, x, y)))
    if method == "lm-multistage":
        opts = fitting.METHODS["lm-multistage"].options
        seconds = min(seconds, float(opts["n_stages"]) * float(opts["time_limit"]))
    if method == "deep-lm":
        seconds = min(seconds, float(time_limit or fitting.METHODS["deep-lm"].options["time_limit"]))
    if method == "kernel" and time_limit is not None:  # the first start and the final solve run past it
        seconds = min(seconds, 2.0 * float(time_limit) + 5.0)
    return seconds


def _auto_seconds(d: int, n: int, n_fit: float, time_limit: float | None = None) -> float:
    """Modelled seconds of ``method="auto"``: every candidate on the inner split, then the winner (costed as the
    dearest) on the training rows; for d >= 3 the candidates share ``time_limit``."""
    inner = min(n_fit * (1 - fitting.INNER_FRACTION), fitting.MAX_SELECTION_ROWS)
    names = guide.choose(d, n).methods
    if d >= 3:
        budget = float(time_limit or 600.0)
        return budget + max(fit_seconds(m, d, n_fit) for m in names if m in ("poly", "readout"))
    return sum(fit_seconds(m, d, inner) for m in names) + max(fit_seconds(m, d, n_fit) for m in names)


@dataclass(frozen=True)
class StudySweep(Sweep):
    """The study's sweep: one :class:`FitTask` per (equation, n, seed) and method ("auto" first). Defaults: the
    paper profile (the paper applies its chart to no equation; these sizes are ours)."""

    equations: tuple[str, ...] = ("I.6.2a", "II.3.24", "I.29.4", "I.25.13", "I.14.4", "I.12.4", "III.15.12",
                                  "I.10.7", "I.29.16", "I.13.4", "II.35.21", "I.13.12")
    n_rows_1d: tuple[int, ...] = (12, 40, 200, 1000)  # rows per 1D equation: bands few, little, enough
    n_rows_2d: tuple[int, ...] = (50, 500, 3000, 10000)  # rows per 2D equation: few, little, enough
    n_rows_high_d: tuple[int, ...] = (300, 3000, 10000)  # rows per equation with d >= 3 (one band)
    seeds: tuple[int, ...] = (0, 1, 2)  # data seeds per (equation, n); each also seeds the fit
    baselines: tuple[str, ...] = BASELINES  # fitted besides the rule's candidates
    lm_max_rows: int | None = None  # lm-multistage only up to this many rows (None: always)
    n_test: int = 10_000  # fresh test points per (equation, n, seed), uniform on the equation's ranges
    validation: float = 0.2  # fit()'s held-out fraction (its default)
    seed: int = 0  # base of every data stream
    time_limit: float | None = None  # auto's budget for d >= 3 and the kernel / deep-lm limit (None: fit's defaults)

    def n_rows(self, d: int) -> tuple[int, ...]:
        return {"1d": self.n_rows_1d, "2d": self.n_rows_2d, "high_d": self.n_rows_high_d}[_dim_class(d)]

    def cases(self) -> list[tuple[str, int, int]]:
        """(equation, n, seed) of every case, in the study's order."""
        return [(eq_id, int(n), int(s)) for eq_id in self.equations for n in self.n_rows(equations.get(eq_id).dim)
                for s in self.seeds]

    def case_methods(self, eq_id: str, n: int) -> list[str]:
        """"auto", then every method fitted by name in a case: the rule's candidates and the baselines."""
        d = equations.get(eq_id).dim
        return ["auto"] + _methods_for(guide.choose(d, n).rule, self.baselines, d, n, self.lm_max_rows)

    def tasks(self) -> list[FitTask]:
        return [FitTask(eq_id, n, s, m, int(self.n_test), float(self.validation), int(self.seed),
                        time_limit=self.time_limit)
                for eq_id, n, s in self.cases() for m in self.case_methods(eq_id, n)]

    def assemble(self, results) -> "StudyResult":
        results = list(results)
        it = iter(results)
        cases = [_case(eq_id, n, s, {m: next(it) for m in self.case_methods(eq_id, n)})
                 for eq_id, n, s in self.cases()]
        order = list(fitting.METHODS)
        names = sorted({m for c in cases for m in c["methods"]}, key=order.index)
        return StudyResult(tuple(cases), tuple(names), int(self.n_test), sum(r["task_seconds"] for r in results))


@dataclass(frozen=True)
class StudyResult:
    """One dict per case (equation, n, seed): the rule, its promise, auto's choice and errors, the float64 floor of the
    test targets and, per method fitted by name, its test and validation errors, seconds or why it was skipped."""

    cases: tuple[dict, ...]
    methods: tuple[str, ...]  # every method name that appears, in a stable order
    n_test: int
    seconds: float  # the tasks' seconds, summed

    def select(self, **where) -> list[dict]:
        return [c for c in self.cases if all(c[k] == v for k, v in where.items())]


def _methods_for(rule: guide.Rule, baselines, d: int, n: int, lm_max_rows) -> list[str]:
    names = list(rule.methods) + [b for b in baselines if b not in rule.methods]
    if lm_max_rows is not None and n > lm_max_rows:
        names = [m for m in names if m != "lm-multistage"]
    return names


def _case_data(eq_id: str, n: int, seed: int, base_seed: int, n_test: int):
    """The case's training rows and test points (their own seeded streams: every task of a case sees the same)."""
    eq = equations.get(eq_id)
    X = data.sample_uniform(eq.ranges, n, _stream(base_seed, seed, n, eq_id, "train"))
    Xt = data.sample_uniform(eq.ranges, n_test, _stream(base_seed, seed, n, eq_id, "test"))
    with _quiet():
        y, yt = eq.func(X), eq.func(Xt)
    return X, y, Xt, yt


def _fit_one(method: str, X, y, Xt, yt, seed: int, validation: float, time_limit: float | None = None) -> dict:
    start = time.perf_counter()
    try:
        with _quiet():
            # lm-multistage keeps its own stage limits; auto's d <= 2 comparison has no limit (its result must not
            # depend on the machine's speed)
            limit = time_limit if method in _BUDGETED and not (method == "auto" and X.shape[1] <= 2) else None
            model = fitting.fit(X, y, method, validation=validation, seed=seed, progress=False, time_limit=limit)
            pred = model.predict(Xt)
    except fitting.FitError as exc:
        return {"test": math.nan, "nan_fraction": math.nan, "val": math.nan, "seconds": math.nan, "skipped": str(exc),
                "chosen": None, "model": None}
    test, nan_fraction = _rel_rmse(pred, yt)
    return {"test": test, "nan_fraction": nan_fraction, "val": float(model.report.val_rel_rmse),
            "seconds": time.perf_counter() - start, "skipped": None, "chosen": model.method, "model": model}


def _case(eq_id: str, n: int, seed: int, fits: dict[str, dict]) -> dict:
    """One case of :class:`StudyResult` from its tasks' results (``fits``: method or "auto" -> result)."""
    eq = equations.get(eq_id)
    d = eq.dim
    choice = guide.choose(d, n)
    auto = fits["auto"]
    return {
        "equation": eq_id, "formula": eq.formula, "dim": d, "n": int(n), "seed": int(seed), "band": band(d, n),
        "rule": choice.rule.key, "promise": choice.expected_rel_rmse, "chosen": auto["chosen"],
        "transform": auto.get("transform", IDENTITY.name),
        "auto": {"test": auto["test"], "val": auto["val"], "seconds": auto["seconds"],
                 "kept": guide.promise_met(auto["test"], choice.expected_rel_rmse),
                 "val_kept": auto["val_kept"],
                 "candidates": tuple((m, v) for m, v in auto["candidates"])},
        "floor": auto["floor"],
        "methods": {m: {k: r[k] for k in ("test", "nan_fraction", "val", "seconds", "skipped")}
                    for m, r in fits.items() if m != "auto"},
    }


def _best(case: dict, names) -> float:
    """The lowest test relative RMSE among ``names`` in a case (NaN if none ran)."""
    vals = [case["methods"][m]["test"] for m in names if m in case["methods"]]
    vals = [v for v in vals if math.isfinite(v)]
    return min(vals) if vals else math.nan


def study_table(result: StudyResult) -> Table:
    """One row per (equation, n): the rule, auto's choice and test relative RMSE against the promise, and every
    method's test relative RMSE (the worst over the seeds; bold: the best method of the row)."""
    methods = list(result.methods)
    columns = ("equation", "d", "n", "rule", "auto chose", "auto, test", "promise", "kept", *(f"`{m}`" for m in methods))
    rows = []
    keys = []
    for c in result.cases:
        if (c["equation"], c["n"]) not in keys:
            keys.append((c["equation"], c["n"]))
    for eq_id, n in keys:
        cs = result.select(equation=eq_id, n=n)
        c0 = cs[0]
        chosen = sorted({label(c["chosen"], c.get("transform", IDENTITY.name)) for c in cs})
        auto = max(c["auto"]["test"] for c in cs)
        kept = [c["auto"]["kept"] for c in cs]
        kept_text = "—" if kept[0] is None else ("yes" if all(kept) else f"**no** ({sum(map(bool, kept))}/{len(kept)})")
        worst = {}
        for m in methods:
            vals = [c["methods"][m]["test"] for c in cs if m in c["methods"]]
            worst[m] = max(vals) if vals and all(math.isfinite(v) for v in vals) else math.nan
        finite = [v for v in worst.values() if math.isfinite(v)]
        top = min(finite) if finite else math.nan
        cells = [(f"**{_e(v)}**" if v == top else _e(v)) for v in worst.values()]
        rows.append((eq_id, str(c0["dim"]), f"{n:,}", f"`{c0['rule']}`", ", ".join(chosen), _e(auto),
                     _e(c0["promise"], ".0e"), kept_text, *cells))
    return Table(columns, rows)


def _median(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else math.nan


def study_numbers(result: StudyResult) -> dict[str, float | int | str]:
    """Numbers for the prose (plain Python values, ready for ``myst_nb.glue``)."""
    cases = result.cases
    low = [c for c in cases if c["dim"] <= 2]
    enough = [c for c in low if c["band"] == "enough"]
    little = [c for c in low if c["band"] == "little"]
    promised = [c for c in cases if c["promise"] is not None]
    high = [c for c in cases if c["dim"] >= 3]
    out: dict[str, float | int | str] = {
        "n_cases": len(cases),
        "n_equations": len({c["equation"] for c in cases}),
        "n_seeds": len({c["seed"] for c in cases}),
        "n_test": int(result.n_test),
        "minutes": result.seconds / 60,
        "n_promised": len(promised),
        "n_kept": sum(1 for c in promised if c["auto"]["kept"]),
        "n_enough": len(enough),
        "n_enough_kept": sum(1 for c in enough if c["auto"]["kept"]),
        "n_little": len(little),
        "n_little_kept": sum(1 for c in little if c["auto"]["kept"]),
        "n_val_kept": sum(1 for c in promised if c["auto"]["val_kept"]),
        "n_high": len(high),
        "n_auto_best": sum(1 for c in cases if c["auto"]["test"] <= (1 + AUTO_BEST_TOL) * _best(c, c["methods"])),
        "auto_best_tol": AUTO_BEST_TOL,
    }
    worst = max(promised, key=lambda c: c["auto"]["test"] / c["promise"], default=None)
    if worst is not None:
        out.update(worst_ratio=worst["auto"]["test"] / worst["promise"], worst_equation=worst["equation"],
                   worst_n=worst["n"], worst_test=worst["auto"]["test"], worst_promise=float(worst["promise"]))
    else:
        out.update(worst_ratio=math.nan, worst_equation="—", worst_n=0, worst_test=math.nan, worst_promise=math.nan)
    # auto's choices: how often each method was picked (overall and for d >= 3)
    for m in fitting.METHODS:
        tag = m.replace("-", "_")
        out[f"chosen_{tag}"] = sum(1 for c in cases if c["chosen"] == m)
        out[f"high_chosen_{tag}"] = sum(1 for c in high if c["chosen"] == m)
    # 1D: the global polynomial against interpolating splines
    one_d = [c for c in cases if c["dim"] == 1 and "spline" in c["methods"] and "poly" in c["methods"]]
    out["n_1d"] = len(one_d)
    out["poly_beats_spline_1d"] = sum(1 for c in one_d if c["methods"]["poly"]["test"] <= c["methods"]["spline"]["test"])
    # LM networks against exact readouts where both ran (why auto does not pick LM)
    both = [c for c in cases if all(m in c["methods"] and c["methods"][m]["skipped"] is None
                                    for m in ("readout", "lm-multistage"))]
    out["n_lm"] = len(both)
    out["lm_better"] = sum(1 for c in both if c["methods"]["lm-multistage"]["test"] < c["methods"]["readout"]["test"])
    out["lm_time_ratio"] = _median([c["methods"]["lm-multistage"]["seconds"] / c["methods"]["readout"]["seconds"]
                                    for c in both])
    out["lm_error_ratio"] = _median([c["methods"]["lm-multistage"]["test"] / c["methods"]["readout"]["test"]
                                     for c in both])
    # networks against polynomials/splines below the enough bands, and in d >= 3
    gains = [math.log10(_best(c, NON_NETWORKS) / _best(c, NETWORKS)) for c in low if c["band"] != "enough"]
    out["low_data_best_gain"] = max([g for g in gains if math.isfinite(g)], default=math.nan)
    out["low_data_net_wins"] = sum(1 for g in gains if g > 0)
    out["n_low_data"] = len(gains)
    out["high_net_best"] = sum(1 for c in high if _best(c, NETWORKS) < _best(c, NON_NETWORKS))
    out["high_net_beats_simplex"] = sum(1 for c in high if _best(c, NETWORKS) < _best(c, ("simplex",)))
    nets_low = [_best(c, NETWORKS) for c in low]
    out["low_net_min"] = min([v for v in nets_low if math.isfinite(v)], default=math.nan)
    nan_fracs = [c["methods"]["simplex"]["nan_fraction"] for c in cases if "simplex" in c["methods"]
                 and c["methods"]["simplex"]["skipped"] is None]
    out["simplex_nan_max"] = max(nan_fracs, default=math.nan)
    return out


def _machine_precision_ratio(result: StudyResult) -> float:
    """For each d <= 2 equation at its largest n: the best polynomial/spline test relative RMSE over the float64
    floor of the test targets (worst seed); the worst over the equations."""
    ratios = []
    for eq_id in {c["equation"] for c in result.cases if c["dim"] <= 2}:
        cs = result.select(equation=eq_id)
        n_top = max(c["n"] for c in cs)
        ratios += [_best(c, ("poly", "spline")) / c["floor"] for c in cs if c["n"] == n_top]
    return max(ratios, default=math.nan)


# ---------------------------------------------------------------------------------------------------------------------
# (3) The CSV round trip through `pml fit` and `pml predict`
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvCase(Config):
    """What the CSV round trip fits: shared by its task and its step."""

    equation: str = "II.3.24"  # an equation no earlier chapter uses (flux of a point source, d = 2)
    n_rows: int = 3000  # data rows in the CSV
    n_test: int = 10_000  # rows of the CSV given to `pml predict`
    seed: int = 0  # data and test rows; `pml fit --seed` keeps its default


@dataclass(frozen=True)
class CsvTask(CsvCase, Task):
    """The CSV round trip (see :meth:`run`); its result is :class:`CsvResult`'s fields as plain data."""

    threads: int = 1

    def run(self) -> dict:
        """Write ``data.csv`` and ``new.csv`` into a temporary folder, run what ``pml fit`` and ``pml predict`` run, and
        score the predictions against the formula."""
        eq = equations.get(self.equation)
        X = data.sample_uniform(eq.ranges, self.n_rows, _stream(self.seed, self.equation, "csv"))
        Xt = data.sample_uniform(eq.ranges, self.n_test, _stream(self.seed, self.equation, "csv-test"))
        with _quiet():
            y = eq.func(X)
        names = list(eq.variables)
        target = eq.output if eq.output not in names else f"{eq.output}_out"
        fit_args = ["fit", "data.csv", "--target", target, "--out", "model.npz", "--quiet"]
        predict_args = ["predict", "model.npz", "new.csv", "--out", "predictions.csv"]
        with tempfile.TemporaryDirectory(prefix="pml-users-guide-") as tmp:
            folder = Path(tmp)
            columns = {name: [repr(float(v)) for v in X[:, j]] for j, name in enumerate(names)}
            columns[target] = [repr(float(v)) for v in y]
            with datafiles.atomic_write(folder / "data.csv") as fh:
                datafiles.write_table(columns, fh)
            with datafiles.atomic_write(folder / "new.csv") as fh:
                datafiles.write_table({name: [repr(float(v)) for v in Xt[:, j]] for j, name in enumerate(names)}, fh)
            code_fit, out_fit, err_fit, t_fit = _command(commands.fit_file, folder / "data.csv", target,
                                                         folder / "model.npz", quiet=True)
            code_pred, out_pred, err_pred, t_pred = _command(commands.predict_file, folder / "model.npz",
                                                             folder / "new.csv", folder / "predictions.csv")
            report = fitting.load(folder / "model.npz").report if code_fit == 0 else None
            if code_pred == 0:
                table = datafiles.read_table(folder / "predictions.csv")
                X_back = np.column_stack([table.column(name) for name in names])
                pred = table.column(target)
            else:
                X_back, pred = Xt, np.full(self.n_test, np.nan)
            strip = lambda text: text.replace(str(folder) + "/", "").replace(str(folder), "")  # noqa: E731
            report_text = "\n".join(line for line in out_fit.splitlines() if not line.startswith("model written to"))
            messages = strip(err_fit + err_pred)
        with _quiet():
            yt = eq.func(X_back)
        test, _ = _rel_rmse(pred, yt)
        return {
            "equation": self.equation, "formula": eq.formula, "columns": names + [target], "target": target,
            "n_rows": int(self.n_rows), "n_test": int(self.n_test), "fit_exit": code_fit, "predict_exit": code_pred,
            "command_fit": "pml " + " ".join(fit_args), "command_predict": "pml " + " ".join(predict_args),
            "report_text": strip(report_text).strip(), "messages": messages.strip(),
            "method": report.method if report else "", "rule": report.rule if report else None,
            "promise": report.promise if report else None,
            "val_rel_rmse": report.val_rel_rmse if report else math.nan, "test_rel_rmse": test,
            "floor": fitting.float64_floor(yt), "n_predictions": int(np.isfinite(pred).sum()),
            "seconds_fit": t_fit, "seconds_predict": t_pred,
        }

    def cost(self) -> float:
        d = equations.get(self.equation).dim
        csv_io = _CSV_PER_VALUE * (self.n_rows + self.n_test) * (d + 1)
        return _COST_BASE + csv_io + _auto_seconds(d, self.n_rows, self.n_rows * 0.8)  # `pml fit`'s 20% held out


_CSV_PER_VALUE = 5e-6  # seconds to write and read back one number of the CSV files


@dataclass(frozen=True)
class CsvSweep(CsvCase, Sweep):
    """The CSV step: one :class:`CsvTask`."""

    def tasks(self) -> list[CsvTask]:
        return [CsvTask(self.equation, int(self.n_rows), int(self.n_test), int(self.seed))]

    def assemble(self, results) -> "CsvResult":
        r = dict(results[0])
        r["columns"] = tuple(r["columns"])
        return CsvResult(**r)


@dataclass(frozen=True)
class CsvResult:
    equation: str
    formula: str
    columns: tuple[str, ...]  # the CSV's header: the inputs, then the target
    target: str
    n_rows: int
    n_test: int
    fit_exit: int  # exit status of `pml fit`
    predict_exit: int  # exit status of `pml predict`
    command_fit: str  # the commands as a user types them (file names without folders)
    command_predict: str
    report_text: str  # what `pml fit` printed (the precision report), without the line naming the model's folder
    messages: str  # what the commands wrote to stderr (folder names removed)
    method: str
    rule: str | None
    promise: float | None
    val_rel_rmse: float  # the report's validation error (20% of the CSV's rows held out)
    test_rel_rmse: float  # `pml predict`'s predictions against the exact formula on the test rows
    floor: float  # float64 floor of the test targets
    n_predictions: int
    seconds_fit: float
    seconds_predict: float

    @property
    def kept(self) -> bool | None:
        return guide.promise_met(self.test_rel_rmse, self.promise)


def _command(func, *args, **kwargs) -> tuple[int, str, str, float]:
    """Run one of :mod:`pml.fitting.commands` with its output captured: (exit status, stdout, stderr, seconds)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("ignore")
        code = func(*args, **kwargs)
    return int(code), out.getvalue(), err.getvalue(), time.perf_counter() - start


def csv_transcript(result: CsvResult) -> MarkdownText:
    """The two commands and what they printed, as a Markdown code block (folder names removed)."""
    text = f"$ {result.command_fit}\n{result.report_text}\n$ {result.command_predict}\n{result.messages}"
    return MarkdownText(f"```text\n{text.strip()}\n```")


def csv_numbers(result: CsvResult) -> dict[str, float | int | str]:
    """Numbers for the prose about the CSV round trip."""
    return {
        "equation": result.equation, "formula": result.formula,
        "description": equations.get(result.equation).description, "target": result.target, "n_rows": result.n_rows, "n_test": result.n_test,
        "fit_exit": result.fit_exit, "predict_exit": result.predict_exit, "method": result.method,
        "rule": str(result.rule), "promise": float(result.promise) if result.promise is not None else math.nan,
        "val": float(result.val_rel_rmse), "test": float(result.test_rel_rmse), "floor": float(result.floor),
        "floor_ratio": float(result.test_rel_rmse / result.floor),
        "promise_ratio": float(result.test_rel_rmse / result.promise) if result.promise else math.nan,
        "kept": {True: "kept", False: "not kept", None: "no promise"}[result.kept],
        "n_predictions": result.n_predictions, "seconds_fit": float(result.seconds_fit),
        "seconds_predict": float(result.seconds_predict), "command_fit": result.command_fit,
        "command_predict": result.command_predict,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Claims and the paper profile's cost
# ---------------------------------------------------------------------------------------------------------------------


def claim_values(study: StudyResult, csv: CsvResult) -> dict[str, float]:
    """The measured value of every claim C5.n (``pml/book/claimsets/05_users_guide.yaml``)."""
    cases = study.cases
    low = [c for c in cases if c["dim"] <= 2]
    enough = [c for c in low if c["band"] == "enough" and c["promise"] is not None]
    high = [c for c in cases if c["dim"] >= 3]
    gains = [math.log10(_best(c, NON_NETWORKS) / _best(c, NETWORKS)) for c in low if c["band"] != "enough"]
    nets_low = [v for v in (_best(c, NETWORKS) for c in low) if math.isfinite(v)]
    return {
        "C5.1": max((c["auto"]["test"] / c["promise"] for c in enough), default=math.nan),
        "C5.2": _machine_precision_ratio(study),
        "C5.3": min(nets_low, default=math.nan),
        "C5.4": max((g for g in gains if math.isfinite(g)), default=math.nan),
        "C5.5": (sum(1 for c in high if _best(c, NETWORKS) < _best(c, NON_NETWORKS)) / len(high)) if high else math.nan,
        "C5.6": (sum(1 for c in high if _best(c, NETWORKS) < _best(c, ("simplex",))) / len(high)) if high else math.nan,
        "C5.7": csv.test_rel_rmse / csv.promise if csv.promise else math.nan,
    }


def paper_numbers(paper: StudySweep | None = None) -> dict[str, int]:
    """The size of the paper profile's study (``StudySweep()``'s defaults unless given), for the prose."""
    paper = paper or StudySweep()
    rows = [n for e in paper.equations for n in paper.n_rows(equations.get(e).dim)]
    return {"n_equations": len(paper.equations), "n_cases": len(paper.cases()), "n_seeds": len(paper.seeds),
            "max_rows": max(rows, default=0), "n_tasks": len(paper.tasks())}


def paper_estimate(paper_steps: Mapping[str, Sweep]) -> dict[str, float]:
    """Estimated one-core seconds of the paper profile's tasks by their cost model: ``study``, ``lm``, ``csv``,
    ``total``."""
    study = paper_steps["study"].tasks()
    out = {"study": sum(t.cost() for t in study if t.method != "lm-multistage"),
           "lm": sum(t.cost() for t in study if t.method == "lm-multistage"),
           "csv": sum(t.cost() for t in paper_steps["csv"].tasks())}
    out["total"] = out["study"] + out["lm"] + out["csv"]
    return out


def steps(params: Mapping[str, Any]) -> dict[str, Sweep]:
    """The chapter's sweeps from its parameter values (the names of its parameters cell): ``"study"`` (the rules
    applied to unseen equations) and ``"csv"`` (the CSV through ``pml fit``/``pml predict``)."""
    lm_max_rows = params["lm_max_rows"]
    return {
        "study": StudySweep(
            equations=tuple(params["equation_ids"]), n_rows_1d=tuple(int(n) for n in params["n_rows_1d"]),
            n_rows_2d=tuple(int(n) for n in params["n_rows_2d"]),
            n_rows_high_d=tuple(int(n) for n in params["n_rows_high_d"]), seeds=tuple(int(s) for s in params["seeds"]),
            baselines=tuple(params["baselines"]), lm_max_rows=None if lm_max_rows is None else int(lm_max_rows),
            n_test=int(params["n_test"]), seed=int(params["seed"]),
            time_limit=None if params.get("time_limit") is None else float(params["time_limit"])),
        "csv": CsvSweep(equation=params["csv_equation"], n_rows=int(params["csv_rows"]),
                         n_test=int(params["csv_n_test"]), seed=int(params["seed"])),
    }


def chart_points(cfg: StudySweep) -> list[dict]:
    """The (d, n) the study fits, for marking on the chart (``plot_guide(points=...)``): one point per (d, n), the
    equations named once per d, at its largest n. Read from the config: the chart can be drawn before the study."""
    groups: dict[tuple[int, int], list[str]] = {}
    for eq_id in cfg.equations:
        d = equations.get(eq_id).dim
        for n in cfg.n_rows(d):
            groups.setdefault((d, int(n)), []).append(eq_id)
    top = {d: max(n for dd, n in groups if dd == d) for d, _ in groups}
    return [{"d": d, "n": n, "label": ", ".join(eqs) if n == top[d] else ""} for (d, n), eqs in sorted(groups.items())]
