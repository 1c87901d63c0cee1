"""Fit your own data to high precision, and learn how precise the fit is and why.

Paper: §5 "User's Guide to Precision" and Figure 10 of Michaud, Liu & Tegmark (2022). The rules that pick a method
live in :mod:`pml.fitting.guide` (one source of truth: the chart of the book is drawn from them).

Python::

    import pml
    model = pml.fit(X, y)                    # X: (n, d) floats, y: (n,) floats; method="auto" by default
    print(model.report)                      # method and why, train/validation error, float64 floor, error source
    y_new = model.predict(X_new)
    model.save("model.npz")
    model = pml.fitting.load("model.npz")

Command line (CSV with a header row, or ``.npz`` with one named 1-D array per column)::

    pml fit data.csv --target y --out model.npz          # prints the precision report
    pml predict model.npz new.csv [--out predictions.csv] # input columns + a column named after the target

What :func:`fit` does:

1. checks the data (numeric, finite, a non-constant target, no constant input column, enough rows) and raises
   :class:`FitError` with a message that says what is wrong and where;
2. holds out a random ``validation`` fraction of the rows (default 20%, seeded), never seen by the fit;
3. ``method="auto"``: asks :func:`pml.fitting.guide.choose` which methods suit d inputs and n rows; when the rule names
   several, fits each on the training rows and keeps the one with the smallest error on an inner validation split
   of the training rows. Any name of :data:`METHODS` fits that method instead;
4. reports (:class:`PrecisionReport`) the relative RMSE (paper Eq. 1) on the training and validation rows, the
   float64 floor for this data's scale (the error left by rounding the targets to float64), the chart's promise,
   and where the remaining error most likely comes from: the precision limit, generalisation, optimisation or the
   architecture (paper §1.2's error sources).

The pieces: :mod:`pml.fitting.checks` (input checks), :mod:`pml.fitting.methods` (the methods ``fit`` can use),
:mod:`pml.fitting.report` (the precision report and its diagnosis), :mod:`pml.fitting.model` (the fitted model and
its file).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Sequence

import numpy as np

from pml import metrics
from pml.fitting import guide
from pml.fitting.budget import (
    DEFAULT_TIME_LIMIT,
    TIMED,
    MemoryPlan,
    check_time_limit,
    choose_within,
    memory_plan,
    timed_options,
)
from pml.fitting.checks import (
    FitError,
    check_inputs,
    check_predictions,
    check_rows,
    check_scale,
    check_seed,
    check_target,
    split_rows,
)
from pml.fitting.methods import (
    MAX_SELECTION_ROWS,
    METHODS,
    check_method_fits,
    method_names,
    method_spec,
    predictor_of,
    run_method,
    warm_up,
)
from pml.fitting.model import FittedModel
from pml.fitting.report import PrecisionReport, diagnose, float64_floor
from pml.fitting.transforms import IDENTITY, Transform, admissible, of_params, transform_named

__all__ = ["fit"]


def _finite_rel_rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Relative RMSE (paper Eq. 1) over the finite predictions; NaN if there are none."""
    return metrics.finite_rmse(pred, y, relative=True)[0]


FLOOR_STOP = 100.0  # auto for d >= 3 stops trying candidates at this multiple of the float64 floor
PREDICT_CHUNK = 20_000  # with a time limit, predictions on more rows go in chunks (a polynomial's basis is wide)
TRAIN_ERROR_ROWS = 20_000  # with a time limit, the training error is measured on at most this many rows (seeded)
_END_RESERVE = 0.05  # of a named method's time limit: its predictions on every row and the report


def _predict_in_chunks(predict, X: np.ndarray) -> np.ndarray:
    """``predict(X)`` a chunk of rows at a time (each row's prediction is its own: the same numbers, less memory)."""
    if X.shape[0] <= PREDICT_CHUNK:
        return np.asarray(predict(X), dtype=np.float64).reshape(-1)
    return np.concatenate([np.asarray(predict(X[s:s + PREDICT_CHUNK]), dtype=np.float64).reshape(-1)
                           for s in range(0, X.shape[0], PREDICT_CHUNK)])


def _sampling_text(sampling: dict, chosen: str) -> str | None:
    """What a time-limited fit subsampled or left out, in words (None: nothing)."""
    parts = []
    if "fit_rows" in sampling:
        (fit_used, fit_all), (val_used, val_all) = sampling["fit_rows"], sampling["validation_rows"]
        if fit_used < fit_all or val_used < val_all:
            parts.append(f"candidates compared on seeded subsamples of {fit_used} of the {fit_all} inner-fit rows "
                         f"and {val_used} of the {val_all} inner validation rows (the time limit)")
        refit = sampling.get("refit_rows")
        if refit is not None:
            rows, of = refit
            parts.append(f"{chosen} refitted on all {of} training rows" if rows >= of else
                         f"{chosen} refitted on a seeded subsample of {rows} of the {of} training rows (the time "
                         f"left)" if rows else f"{chosen} not refitted on the {of} training rows (no time left): "
                                               f"it is the fit on the {fit_used} inner-fit rows")
    if "train_error_rows" in sampling:
        parts.append("the training error measured on a seeded subsample of {} of the {} training rows".format(
            *sampling["train_error_rows"]))
    if sampling.get("no_refit"):
        parts.append("no refit on all rows: no time was left")
    return "; ".join(parts) or None


_NOT_PARAMS = ("X", "box", "centre", "half", "input_mean", "input_std")  # data and input maps, not fitted numbers


@dataclasses.dataclass
class _Data:
    """The checked data of a fit: inputs, target, input names, the training/validation split and the transform."""

    X: np.ndarray
    y: np.ndarray
    names: tuple
    tr: np.ndarray
    va: np.ndarray
    held: str  # the held-out rows in words, for a too-few-rows message
    transform: Transform | None


@dataclasses.dataclass
class _Budget:
    """What a fit may spend (time from ``t0``, memory) and the training rows its report scores."""

    t0: float
    limit: float
    limited: bool
    memory: MemoryPlan
    search_share: float  # of the time left, for the fit or the choice among candidates (a refit gets the rest)
    scored: np.ndarray
    n_predict: int
    sampling: dict  # what a time-limited fit subsampled, for the report

    def seconds_left(self, share: float = 1.0) -> float:
        """Seconds of the limit left for a part that may take ``share`` of what is left (less the end reserve)."""
        return share * (self.limit * (1 - _END_RESERVE) - (time.perf_counter() - self.t0))


def _chunked(predict):
    """``predict`` on a chunk of rows at a time (:func:`_predict_in_chunks`)."""
    return lambda Q: _predict_in_chunks(predict, Q)


def _check_arguments(method, validation, seed, time_limit):
    """The method's spec (None for ``auto``), the seed and the time limit, checked; :class:`FitError` if bad."""
    if not isinstance(method, str):
        raise FitError(f"method must be a name; valid methods: {', '.join(method_names())}")
    spec = method_spec(method) if method != "auto" else None
    if not (isinstance(validation, (int, float)) and 0 <= validation < 1):
        raise FitError(f"validation must be a fraction in [0, 1), got {validation!r}")
    seed = check_seed(seed)
    if time_limit is not None:
        time_limit = check_time_limit(time_limit)
        if method != "auto" and method not in TIMED:
            raise FitError(f"method {method!r} cannot stop at a time limit; leave time_limit out, or use one of the "
                           f"methods that can: auto, {', '.join(TIMED)}")
    return spec, seed, time_limit


def _check_data(X, y, method: str, spec, validation: float, seed: int, smooth: bool, input_names, target_name,
                transform) -> _Data:
    """The checked data and the row split (:mod:`pml.fitting.checks`); :class:`FitError` saying what is wrong."""
    X = check_inputs(X, input_names, what="X")
    n, d = X.shape
    if transform is not None:
        try:
            transform = transform_named(transform)
        except ValueError as exc:
            raise FitError(str(exc)) from None
    names = tuple(input_names) if input_names is not None else tuple(f"x{j}" for j in range(d))
    tr, va = split_rows(n, float(validation), [seed, 11])
    held = f" ({va.size} of {n} rows held out for validation)" if va.size else ""
    if method == "auto":  # too few rows first: one row is not "a constant target"
        check_rows(n, guide.min_rows(d, smooth), d)
    else:
        check_method_fits(spec, tr.size, d, held)
    y = check_target(y, n, target_name)
    for j in range(d):
        if np.all(X[:, j] == X[0, j]):
            raise FitError(f"input {names[j]!r} is constant (every value is {float(X[0, j])!r}): drop it")
        check_scale(X[:, j], f"input {names[j]!r}")
    if transform is not None and transform not in admissible(X, y, [transform]):  # the sign as well
        raise FitError(f"transform {transform.name!r} does not suit these data: " + (
            "log x needs every input positive" if transform.log_inputs and not np.all(X > 0) else
            f"{transform.name.split(' ~ ')[0]} needs a target of that sign everywhere (and nonzero for the log)"))
    return _Data(X, y, names, tr, va, held, transform)


def _plan_budget(data: _Data, method: str, smooth: bool, refit: bool, time_limit, seed: int, t0: float) -> _Budget:
    """The fit's time limit and memory plan (refused if the data do not fit), and the training rows to score."""
    (n, d), tr = data.X.shape, data.tr
    limited = time_limit is not None or (method == "auto" and d >= 3)  # auto for d >= 3: 600 s by default
    limit = time_limit if time_limit is not None else DEFAULT_TIME_LIMIT
    try:
        plan_methods = guide.choose(d, n, smooth=smooth).methods if method == "auto" else (method,)
    except ValueError:  # no rule: refused later, with the rules' own message
        plan_methods = ()
    memory = memory_plan(n, d, tr.size, time_limit=limit if limited else None, methods=plan_methods)
    if memory.refusal:
        raise FitError(memory.refusal)
    if memory.large:
        print(f"pml: note: {memory.note()}", file=sys.stderr)
    if limited and method != "auto":
        warm_up(method)  # imports (seconds for torch): spent before the time left is given to the method
        if limit * (1 - _END_RESERVE) - (time.perf_counter() - t0) < 0.1 * limit:
            raise FitError(f"the time limit ({limit:g} s) was spent before method {method!r} could start (loading "
                           f"its libraries took {time.perf_counter() - t0:.1f} s): give a longer time limit")
    search_share = 0.5 if refit and data.va.size else 1.0  # a refit on all rows gets the other half
    # the rows whose predictions the report needs: every validation row, the training rows (a subsample if many)
    scored = tr if not limited or tr.size <= TRAIN_ERROR_ROWS else np.sort(
        np.random.default_rng([seed, 41]).choice(tr, TRAIN_ERROR_ROWS, replace=False))
    return _Budget(t0, limit, limited, memory, search_share, scored, int(scored.size + data.va.size), {})


def _compare(usable: list, data: _Data, seed: int, progress: bool, budget: _Budget):
    """``auto`` with several usable candidates: :func:`choose_within` -> (chosen name, fitted, candidates tried)."""
    X, y, transform = data.X[data.tr], data.y[data.tr], data.transform
    if data.X.shape[1] >= 3:  # within the time budget, cheapest first, under transforms (pml.fitting.budget)
        tried_transforms = [transform] if transform is not None else admissible(data.X, data.y)
        return choose_within(usable, X, y, seed=seed,
                             time_limit=budget.seconds_left(budget.search_share) / (1 - _END_RESERVE),
                             progress=progress, transforms=tried_transforms, stop_below=FLOOR_STOP * float64_floor(y),
                             max_bytes=budget.memory.work, predict_rows=budget.n_predict, sampling=budget.sampling)
    if budget.limited:  # d <= 2 with a time limit: the same comparison, stopped in time
        return choose_within(usable, X, y, seed=seed,
                             time_limit=budget.seconds_left(budget.search_share) / (1 - _END_RESERVE),
                             progress=progress, max_rows=MAX_SELECTION_ROWS, transforms=[transform or IDENTITY],
                             max_bytes=budget.memory.work, predict_rows=budget.n_predict, sampling=budget.sampling)
    # d <= 2: every candidate is cheap; compare them on at most MAX_SELECTION_ROWS inner-fit rows
    return choose_within(usable, X, y, seed=seed, time_limit=math.inf, progress=progress,
                         max_rows=MAX_SELECTION_ROWS, transforms=[transform or IDENTITY])


def _choose_auto(data: _Data, seed: int, smooth: bool, progress: bool, options: dict, budget: _Budget):
    """``auto``: the guide's rule and its candidates -> (spec, fitted or None, rule, candidates, reason, options)."""
    if options:
        raise FitError(f"options {sorted(options)} need a named method, not 'auto'")
    (n, d), n_train = data.X.shape, data.tr.size
    try:
        choice = guide.choose(d, n, smooth=smooth)
    except ValueError as exc:
        raise FitError(str(exc)) from None
    rule = choice.rule
    usable, candidates = [], []
    for name in choice.methods:
        try:
            check_method_fits(METHODS[name], n_train, d, data.held)
            usable.append(name)
        except FitError as exc:
            candidates.append({"method": name, "skipped": str(exc), "inner_rel_rmse": None})
    if not usable:
        raise FitError(f"too few rows: no method of rule {rule.key!r} can be fitted to {n_train} training "
                       f"rows{data.held}: " + "; ".join(c["skipped"] for c in candidates))
    fitted = None
    if len(usable) == 1:
        chosen = usable[0]
        candidates.append({"method": chosen, "skipped": None, "inner_rel_rmse": None})
        if budget.limited and chosen in TIMED:
            warm_up(chosen)
            options = timed_options(METHODS[chosen], budget.seconds_left(budget.search_share), budget.memory.work,
                                    budget.n_predict)
    else:
        chosen, fitted, tried = _compare(usable, data, seed, progress, budget)
        candidates += tried
    reason = (f"d = {d}, n = {n} rows, {'smooth' if smooth else 'non-smooth'} target -> rule {rule.key!r} "
              f"({', '.join(rule.methods)}). {rule.reason}")
    return METHODS[chosen], fitted, rule, candidates, reason, options


def _score(predict, spec, data: _Data, budget: _Budget) -> dict:
    """Relative RMSE (paper Eq. 1) on the scored training rows and on the validation rows, and the validation
    rows' largest relative error and count of non-finite predictions."""
    X, y, va, scored = data.X, data.y, data.va, budget.scored
    p_tr = np.asarray(predict(X[scored]), dtype=np.float64).reshape(-1)
    check_predictions(p_tr, "the training rows")
    train_rel = _finite_rel_rmse(p_tr, y[scored])
    if scored.size < data.tr.size:
        budget.sampling["train_error_rows"] = (int(scored.size), int(data.tr.size))
    if not va.size:
        return {"train_rel_rmse": train_rel, "val_rel_rmse": math.nan, "val_max_rel_err": math.nan,
                "n_val_nonfinite": 0}
    p_va = np.asarray(predict(X[va]), dtype=np.float64).reshape(-1)
    check_predictions(p_va, "the validation rows", nan_allowed=spec.name == "simplex")  # simplex: NaN outside the hull
    ok = np.isfinite(p_va)
    return {"train_rel_rmse": train_rel, "val_rel_rmse": _finite_rel_rmse(p_va, y[va]),
            "val_max_rel_err": float(np.max(np.abs(p_va[ok] - y[va][ok])) / np.sqrt(np.mean(y[va] ** 2)))
            if ok.any() else math.nan, "n_val_nonfinite": int(np.sum(~ok))}


def _refit(spec, fitted, predict, data: _Data, seed: int, progress: bool, options: dict, budget: _Budget):
    """Refit on every row, starting from the fitted transform (with a time limit: only if time is left) ->
    (fitted, predict, whether it was refitted)."""
    X, y = data.X, data.y
    if budget.limited:  # the refit takes what is left of the limit
        if spec.name not in TIMED or budget.seconds_left() < 1.0:
            budget.sampling["no_refit"] = True
            return fitted, predict, False
        opts = {**options, **timed_options(spec, budget.seconds_left(), budget.memory.work, X.shape[0])}
        fitted = run_method(spec, X, y, seed, progress, opts, of_params(fitted.params))
        predict = _chunked(predictor_of(spec, fitted))
        check_predictions(predict(X), "the rows (refit on all rows)")
        return fitted, predict, True
    fitted = run_method(spec, X, y, seed, progress, options, of_params(fitted.params))
    predict = predictor_of(spec, fitted)
    check_predictions(np.asarray(predict(X), dtype=np.float64).reshape(-1), "the rows (refit on all rows)")
    return fitted, predict, True


def _report(method: str, spec, fitted, rule, candidates: list, reason: str, scores: dict, data: _Data,
            data_floor, refitted: bool, seed: int, target_name, budget: _Budget) -> PrecisionReport:
    """The precision report: errors, float64 floor, diagnosis (:func:`diagnose`) and what was subsampled."""
    floor = float64_floor(data.y)
    source, why = diagnose(spec.kind, scores["train_rel_rmse"], scores["val_rel_rmse"], floor, data_floor)
    n_params = int(sum(v.size for k, v in fitted.state.items() if k not in _NOT_PARAMS))
    return PrecisionReport(
        method=spec.name, requested=method, kind=spec.kind, rule=rule.key if rule else None, reason=reason,
        promise=rule.promise if rule else None, candidates=tuple(candidates), details=fitted.details,
        n_rows=data.X.shape[0], n_train=int(data.tr.size), n_validation=int(data.va.size), dim=data.X.shape[1],
        input_names=data.names, target_name=str(target_name), y_rms=float(np.sqrt(np.mean(data.y**2))), **scores,
        float64_floor=floor, data_floor=data_floor, error_source=source, diagnosis=why, refit=refitted,
        n_params=n_params, seconds=time.perf_counter() - budget.t0, seed=seed,
        transform=of_params(fitted.params).name, time_limit=budget.limit if budget.limited else None,
        sampling=_sampling_text(budget.sampling, spec.name))


def fit(X, y, method: str = "auto", *, validation: float = 0.2, seed: int = 0, progress: bool | None = None,
        smooth: bool = True, refit: bool = False, input_names: Sequence[str] | None = None, target_name: str = "y",
        data_floor: float | None = None, time_limit: float | None = None, transform: str | None = None,
        **options) -> FittedModel:
    """Fit y = f(X) to high precision and report how precise the fit is (paper Section 5 and Figure 10).

    The data are checked, a random ``validation`` fraction of the rows is held out, and ``method="auto"`` asks the
    User's Guide rules (:func:`pml.fitting.guide.choose`) which methods suit d inputs and n rows; when a rule names
    several, each is fitted on the training rows and the one with the smallest error on an inner validation split is
    kept. The report gives the relative RMSE (paper Eq. 1) on the training and validation rows, the float64 floor of
    the data and where the remaining error most likely comes from (:func:`diagnose`). Used in
    :doc:`/book/05_users_guide`.

    Parameters
    ----------
    X : array_like
        (n, d) inputs, or (n,) for d = 1; finite numbers, no constant column.
    y : array_like
        (n,) targets; finite and not constant.
    method : str, optional
        ``"auto"`` (default: the guide's rules) or a name of ``pml.fitting.METHODS`` (``"poly"``, ``"spline"``,
        ``"readout"``, ``"rbf"``, ``"simplex"``, ``"lm-multistage"``, ...).
    validation : float, optional
        Fraction of rows held out, 0 <= validation < 1 (default 0.2), split with ``seed``.
    seed : int, optional
        Seed of the row split and of every random choice of the method (default 0).
    progress : bool or None, optional
        Show progress bars on stderr; None (default): only when stderr is a terminal.
    smooth : bool, optional
        False tells ``auto`` the target has kinks or steps (default True).
    refit : bool, optional
        Refit on all rows after validation (default False).
    input_names : sequence of str, optional
        Names of the d inputs (default ``x0``, ``x1``, ...).
    target_name : str, optional
        Name of the target (default ``"y"``).
    data_floor : float, optional
        The relative RMSE to which the targets are known, if they were rounded (``pml fit`` computes it from a CSV's
        digits).
    time_limit : float, optional
        Seconds for the whole fit, positive and finite: ``fit`` returns within the limit plus 10%
        (:mod:`pml.fitting.budget`: the candidates are compared on subsamples of the rows, each stops in time
        keeping its best state so far, the winner is refitted on as many rows as the time left allows, and the
        report says what was subsampled). Default: 600 s for ``auto`` with d >= 3, none otherwise (``auto`` for
        d <= 2 is fast). With a named method it sets the method's own limit; only the methods that can stop in time
        take one (``poly``, ``readout``, ``kernel``, ``deep-lm``, ``lm-multistage``).
    transform : str, optional
        Fit a transformed target against transformed inputs (:mod:`pml.fitting.transforms`), e.g. ``"log y ~ log
        x"`` for a product of powers or ``"y^2 ~ x"`` for a distance; predictions are of y. None (default): a named
        method fits y against x, and ``auto`` for d >= 3 tries every transform the data admit with its first
        candidate (the polynomial) and fits the others under the best one.
    **options
        Options of a named method (for example ``max_degree`` for ``"poly"``).

    Returns
    -------
    FittedModel
        The model; ``model.report`` is its :class:`PrecisionReport`.

    Raises
    ------
    FitError
        For bad data (non-numeric, non-finite, constant target or input, too few rows), an unknown method or option,
        a time limit for a method that cannot stop in time, data that do not fit in the available memory, or a fit
        without finite predictions; the message says what is wrong and what is valid.

    Notes
    -----
    Large fits (20,000 rows or more, or a GiB of memory or more) print one line on stderr before they start: the
    rows and about how much memory the fit will use (:func:`pml.fitting.budget.memory_plan`).
    """
    t0 = time.perf_counter()
    spec, seed, time_limit = _check_arguments(method, validation, seed, time_limit)
    data = _check_data(X, y, method, spec, validation, seed, smooth, input_names, target_name, transform)
    progress = (sys.stderr.isatty() if progress is None else bool(progress))
    budget = _plan_budget(data, method, smooth, refit, time_limit, seed, t0)
    if budget.limited and method != "auto":
        timed = timed_options(spec, budget.seconds_left(budget.search_share), budget.memory.work, budget.n_predict)
        for k, v in timed.items():
            options.setdefault(k, v)

    rule, candidates, fitted = None, [], None
    if method == "auto":
        spec, fitted, rule, candidates, reason, options = _choose_auto(data, seed, smooth, progress, options, budget)
    else:
        reason = f"requested: {spec.description}"
    check_method_fits(spec, data.tr.size, data.X.shape[1], data.held)

    if fitted is None:
        fitted = run_method(spec, data.X[data.tr], data.y[data.tr], seed, progress, options,
                            data.transform or IDENTITY)
    predict = predictor_of(spec, fitted)
    if budget.limited:
        predict = _chunked(predict)
    scores = _score(predict, spec, data, budget)
    if data_floor is not None and not (data_floor >= 0 and math.isfinite(data_floor)):
        raise FitError(f"data_floor must be a non-negative number, got {data_floor!r}")
    refitted = False
    if refit and data.va.size:
        fitted, predict, refitted = _refit(spec, fitted, predict, data, seed, progress, options, budget)
    report = _report(method, spec, fitted, rule, candidates, reason, scores, data, data_floor, refitted, seed,
                     target_name, budget)
    return FittedModel(spec.name, fitted.state, fitted.params, data.names, target_name, report, predict)
